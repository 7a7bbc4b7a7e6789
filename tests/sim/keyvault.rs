//! Key Vault: data plane (azure_security_keyvault 0.21 where it has the
//! operation, azure_core otherwise), vaults and access policies
//! (azure_mgmt_keyvault), role assignments (azure_mgmt_authorization) and
//! user-assigned identities (azure_mgmt_msi).

use crate::sim_support;

use std::sync::Arc;

use azure_core::auth::TokenCredential;
use azure_core::{Method, Url};
use azure_identity::ClientSecretCredential;
use azure_security_keyvault::prelude::KeyVaultKey;
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::Seed;
use serde_json::json;
use sim_support::*;

#[tokio::test]
async fn key_lifecycle_create_get_versions_disable_rotate_policy() {
    let sim = start().await;
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-life", &[])],
        ..Default::default()
    })
    .unwrap();
    let vault = sim.vault_uri("kv-life").unwrap();
    let cred = credential(&sim);
    let scope = kv_scope(&sim, "kv-life");

    // Create (KeyVault_CreateKey) with the 7.6 example body.
    let create = json!({"kty": "RSA", "key_size": 3072, "key_ops": ["wrapKey", "unwrapKey"], "attributes": {}, "tags": {"purpose": "cmk"}});
    let (status, created) = send(
        &sim,
        &cred,
        &scope,
        Method::Post,
        &format!("{vault}keys/cmk/create?api-version=7.6"),
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_shape(&created, &fixture("key_bundle.json"), "key");
    let kid1 = created["key"]["kid"].as_str().unwrap().to_owned();
    assert!(kid1.starts_with(&format!("{vault}keys/cmk/")), "{kid1}");
    serde_json::from_slice::<KeyVaultKey>(&serde_json::to_vec(&created).unwrap())
        .expect("parses into the SDK's KeyVaultKey");

    // Bad size: Key Vault's BadParameter.
    let (status, err) = send(
        &sim,
        &cred,
        &scope,
        Method::Post,
        &format!("{vault}keys/bad/create?api-version=7.6"),
        Some(json!({"kty": "RSA", "key_size": 1024})),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("BadParameter"))
    );

    // Get through the SDK's KeyClient (api-version 7.0), latest and by version.
    let kc = key_client(&sim, "kv-life");
    let latest = kc.get("cmk").await.unwrap();
    assert_eq!(latest.key.id.as_deref(), Some(kid1.as_str()));
    let v1 = kid1.rsplit('/').next().unwrap().to_owned();
    let by_version = kc.get_version("cmk", &v1).await.unwrap();
    assert_eq!(by_version.properties.attributes.enabled, Some(true));
    assert_eq!(
        by_version.properties.attributes.recovery_level.as_deref(),
        Some("Recoverable")
    );

    // Wrap (azure_core) then unwrap through the SDK.
    let (status, wrapped) = send(
        &sim,
        &cred,
        &scope,
        Method::Post,
        &format!("{kid1}/wrapkey?api-version=7.6"),
        Some(
            json!({"alg": "RSA-OAEP-256", "value": "ovQIlbB0DgWhZA7sgkPxbg9H-Ly-VlNGPSgGrrZvlIo"}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (status, plain) = send(
        &sim,
        &cred,
        &scope,
        Method::Post,
        &format!("{kid1}/unwrapkey?api-version=7.6"),
        Some(json!({"alg": "RSA-OAEP-256", "value": wrapped["value"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(plain["kid"].as_str(), Some(kid1.as_str()));
    assert!(!plain["value"].as_str().unwrap_or_default().is_empty());

    // Rotate: a new version; versions lists both.
    let (_, rotated) = send(
        &sim,
        &cred,
        &scope,
        Method::Post,
        &format!("{vault}keys/cmk/rotate?api-version=7.6"),
        None,
    )
    .await;
    let kid2 = rotated["key"]["kid"].as_str().unwrap().to_owned();
    assert_ne!(kid1, kid2);
    let (_, versions) = send(
        &sim,
        &cred,
        &scope,
        Method::Get,
        &format!("{vault}keys/cmk/versions?api-version=7.6"),
        None,
    )
    .await;
    assert_shape(&versions, &fixture("key_versions.json"), "versions");
    assert_eq!(versions["value"].as_array().unwrap().len(), 2);

    // Disable the first version (UpdateKey): still readable, marked disabled
    // (recorded: azure-cli test_keyvault_key.yaml); wrapping with it is refused.
    let (status, upd) = send(
        &sim,
        &cred,
        &scope,
        Method::Patch,
        &format!("{kid1}?api-version=7.6"),
        Some(json!({"attributes": {"enabled": false}})),
    )
    .await;
    assert_eq!(
        (status, upd["attributes"]["enabled"].as_bool()),
        (200, Some(false))
    );
    let disabled = kc.get_version("cmk", &v1).await.unwrap();
    assert_eq!(disabled.properties.attributes.enabled, Some(false));
    let (status, err) = send(
        &sim,
        &cred,
        &scope,
        Method::Post,
        &format!("{kid1}/wrapkey?api-version=7.6"),
        Some(json!({"alg": "RSA-OAEP-256", "value": "AAAA"})),
    )
    .await;
    assert_eq!(
        (status, err["error"]["innererror"]["code"].as_str()),
        (403, Some("KeyDisabled")),
        "{err}"
    );

    // Rotation policy: default, then the 7.5 example body.
    let (_, default_policy) = send(
        &sim,
        &cred,
        &scope,
        Method::Get,
        &format!("{vault}keys/cmk/rotationpolicy?api-version=7.6"),
        None,
    )
    .await;
    assert_eq!(
        default_policy["lifetimeActions"][0]["action"]["type"],
        "Notify"
    );
    let policy = json!({
        "lifetimeActions": [
            {"trigger": {"timeAfterCreate": "P90D"}, "action": {"type": "Rotate"}},
            {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}
        ],
        "attributes": {"expiryTime": "P2Y"}
    });
    let (status, stored) = send(
        &sim,
        &cred,
        &scope,
        Method::Put,
        &format!("{vault}keys/cmk/rotationpolicy?api-version=7.6"),
        Some(policy),
    )
    .await;
    assert_eq!(status, 200);
    assert_shape(&stored, &fixture("rotation_policy.json"), "policy");

    // Missing key: KeyNotFound through the SDK.
    let err = kc.get("absent").await.unwrap_err();
    assert_eq!(http_err(&err).1, "KeyNotFound");

    // Kids name the host the client used: here with an explicit port, and
    // under the China cloud's vault suffix with its own token.
    let port = sim.addr().port();
    let named = format!("https://kv-life.vault.azure.net:{port}/");
    let (status, got) = send(
        &sim,
        &cred,
        &scope,
        Method::Get,
        &format!("{named}keys/cmk?api-version=7.6"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        got["key"]["kid"].as_str().unwrap().starts_with(&named),
        "{got}"
    );
    let (id, secret, _) = sim.operator_credentials();
    let china: Arc<dyn TokenCredential> = Arc::new(ClientSecretCredential::new(
        sim.http_client(),
        Url::parse("https://login.chinacloudapi.cn/").unwrap(),
        sim.tenant_id().to_owned(),
        id,
        secret,
    ));
    let in_china = "https://kv-life.vault.azure.cn/keys/cmk?api-version=7.6";
    let (status, got) = send(
        &sim,
        &china,
        "https://vault.azure.cn/.default",
        Method::Get,
        in_china,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        got["key"]["kid"]
            .as_str()
            .unwrap()
            .starts_with("https://kv-life.vault.azure.cn/keys/cmk/"),
        "{got}"
    );
    // A public-cloud token is for another audience there.
    let (status, got) = send(&sim, &cred, &scope, Method::Get, in_china, None).await;
    assert_eq!(
        (status, got["error"]["code"].as_str()),
        (401, Some("Unauthorized"))
    );
}

#[tokio::test]
async fn permissions_follow_the_active_model() {
    let sim = start().await;
    let (_, _, operator) = sim.operator_credentials();
    // Access policies: the operator has none on this vault.
    let mut v = good_vault(&sim, "kv-ap", &[]);
    v.properties.insert("accessPolicies".into(), json!([]));
    sim.seed(&Seed {
        vaults: vec![v],
        keys: vec![key("kv-ap", "k")],
        ..Default::default()
    })
    .unwrap();
    let err = key_client(&sim, "kv-ap").get("k").await.unwrap_err();
    let (status, code, msg) = http_err(&err);
    assert_eq!((status, code.as_str()), (403, "Forbidden"));
    assert!(msg.contains("does not have keys get permission"), "{msg}");

    // accessPolicies/add through azure_mgmt_keyvault grants it.
    let add: keyvault::models::VaultAccessPolicyParameters = serde_json::from_value(json!({
        "properties": {"accessPolicies": [{"tenantId": sim.tenant_id(), "objectId": operator, "permissions": {"keys": ["get", "list"]}}]}
    }))
    .unwrap();
    let out = keyvault_mgmt(&sim)
        .vaults_client()
        .update_access_policy(RG, "kv-ap", "add", add, SUB)
        .await
        .unwrap();
    assert_eq!(out.properties.access_policies.len(), 1);
    key_client(&sim, "kv-ap").get("k").await.unwrap();

    // RBAC vault: ForbiddenByRbac until a role assignment exists.
    let mut v = good_vault(&sim, "kv-rb", &[]);
    v.properties
        .insert("enableRbacAuthorization".into(), json!(true));
    sim.seed(&Seed {
        vaults: vec![v],
        keys: vec![key("kv-rb", "k")],
        ..Default::default()
    })
    .unwrap();
    let cred = credential(&sim);
    let scope = kv_scope(&sim, "kv-rb");
    let (status, body) = send(
        &sim,
        &cred,
        &scope,
        Method::Get,
        &format!("{}keys/k?api-version=7.6", sim.vault_uri("kv-rb").unwrap()),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["innererror"]["code"].as_str()),
        (403, Some("ForbiddenByRbac"))
    );
    assert_shape(&body, &fixture("keyvault_error.json"), "error");

    let authz = authorization(&sim);
    let ra_name = "0b5fe924-9a61-425c-96af-cfe6e287ca2d";
    let params: authz::models::RoleAssignmentCreateParameters = serde_json::from_value(json!({
        "properties": {
            "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{KV_ROLE_ADMINISTRATOR}"),
            "principalId": operator,
            "principalType": "ServicePrincipal"
        }
    }))
    .unwrap();
    let ra = authz
        .role_assignments_client()
        .create(vault_id("kv-rb"), ra_name, params.clone())
        .await
        .unwrap();
    assert_eq!(ra.name.as_deref(), Some(ra_name));
    key_client(&sim, "kv-rb").get("k").await.unwrap();
    let got = authz
        .role_assignments_client()
        .get(vault_id("kv-rb"), ra_name)
        .await
        .unwrap();
    assert_eq!(got.properties.unwrap().principal_id, operator);
    // Same role for the same principal under another name: 409 RoleAssignmentExists.
    let err = authz
        .role_assignments_client()
        .create(
            vault_id("kv-rb"),
            "1b5fe924-9a61-425c-96af-cfe6e287ca2d",
            params,
        )
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).1, "RoleAssignmentExists");
    // Unknown principal: PrincipalNotFound.
    let bad: authz::models::RoleAssignmentCreateParameters = serde_json::from_value(json!({
        "properties": {"roleDefinitionId": KV_ROLE_ADMINISTRATOR, "principalId": "11111111-1111-1111-1111-111111111111"}
    }))
    .unwrap();
    let err = authz
        .role_assignments_client()
        .create(
            vault_id("kv-rb"),
            "2b5fe924-9a61-425c-96af-cfe6e287ca2d",
            bad,
        )
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).1, "PrincipalNotFound");
    // Raw shape and list at the vault scope.
    let cred = credential(&sim);
    let ra_url = format!(
        "{}{}/providers/Microsoft.Authorization/roleAssignments",
        sim.arm_endpoint(),
        vault_id("kv-rb").trim_start_matches('/')
    );
    let (_, raw) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Get,
        &format!("{ra_url}/{ra_name}?api-version=2022-04-01"),
        None,
    )
    .await;
    assert_shape(&raw, &fixture("role_assignment.json"), "roleAssignment");
    let (_, list) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Get,
        &format!("{ra_url}?api-version=2022-04-01"),
        None,
    )
    .await;
    // At, above and below the scope, as ARM lists them: the grant, and the
    // default operator principal's Owner at the root scope.
    let scopes: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ra| ra["properties"]["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes.len(), 2, "{scopes:?}");
    assert!(scopes.contains(&vault_id("kv-rb").as_str()) && scopes.contains(&"/"));
    authz
        .role_assignments_client()
        .delete(vault_id("kv-rb"), ra_name)
        .await
        .unwrap();
    let err = key_client(&sim, "kv-rb").get("k").await.unwrap_err();
    assert_eq!(http_err(&err).0, 403);
}

#[tokio::test]
async fn vaults_and_identities_through_management_sdks() {
    let sim = start().await;
    let kv = keyvault_mgmt(&sim);
    let params: keyvault::models::VaultCreateOrUpdateParameters = serde_json::from_value(json!({
        "location": "westus",
        "properties": {
            "tenantId": sim.tenant_id(),
            "sku": {"family": "A", "name": "standard"},
            "enableSoftDelete": true,
            "enablePurgeProtection": true,
            "enableRbacAuthorization": true,
            "accessPolicies": []
        }
    }))
    .unwrap();
    let created = kv
        .vaults_client()
        .create_or_update(RG, "kv-mgmt", params, SUB)
        .await
        .unwrap();
    assert!(
        created
            .properties
            .vault_uri
            .as_deref()
            .unwrap()
            .eq("https://kv-mgmt.vault.azure.net"),
        "the create answer's URI has no trailing slash (recorded 2020, 2023)"
    );
    let got = kv.vaults_client().get(RG, "kv-mgmt", SUB).await.unwrap();
    assert_eq!(got.properties.enable_rbac_authorization, Some(true));
    assert_eq!(
        got.properties.vault_uri.as_deref(),
        Some("https://kv-mgmt.vault.azure.net/")
    );
    let cred = credential(&sim);
    let url = format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/kv-mgmt?api-version=2024-11-01",
        sim.arm_endpoint()
    );
    let (_, raw) = send(&sim, &cred, ARM_SCOPE, Method::Get, &url, None).await;
    assert_shape(&raw, &fixture("vault.json"), "vault");
    // Purge protection cannot be turned off.
    let off: keyvault::models::VaultCreateOrUpdateParameters = serde_json::from_value(json!({
        "location": "westus",
        "properties": {"tenantId": sim.tenant_id(), "sku": {"family": "A", "name": "standard"}, "enablePurgeProtection": false}
    }))
    .unwrap();
    let err = kv
        .vaults_client()
        .create_or_update(RG, "kv-mgmt", off, SUB)
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 400);
    let err = kv
        .vaults_client()
        .get(RG, "kv-none", SUB)
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).1, "ResourceNotFound");

    // User-assigned identity GET through azure_mgmt_msi (api-version 2023-01-31).
    let out = sim
        .seed(&Seed {
            identities: vec![uai("id-one")],
            ..Default::default()
        })
        .unwrap();
    let ident = msi(&sim)
        .user_assigned_identities_client()
        .get(SUB, RG, "id-one")
        .await
        .unwrap();
    let props = ident.properties.unwrap();
    assert_eq!(
        props.principal_id.as_deref(),
        out["identities"][0]["principalId"].as_str()
    );
    assert_eq!(
        props.client_id.as_deref(),
        out["identities"][0]["clientId"].as_str()
    );
    let url = format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-one?api-version=2024-11-30",
        sim.arm_endpoint()
    );
    let (_, raw) = send(&sim, &cred, ARM_SCOPE, Method::Get, &url, None).await;
    assert_shape(&raw, &fixture("user_assigned_identity.json"), "identity");
    let err = msi(&sim)
        .user_assigned_identities_client()
        .get(SUB, RG, "id-none")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 404);
}
