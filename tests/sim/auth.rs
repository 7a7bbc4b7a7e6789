//! Entra ID token endpoint (azure_identity 0.21 ClientSecretCredential and
//! WorkloadIdentityCredential) and the 401 challenges of ARM and Key Vault.

use crate::sim_support;

use std::sync::Arc;

use azure_core::auth::TokenCredential;
use azure_core::{Method, Request, Url};
use azure_identity::{ClientSecretCredential, WorkloadIdentityCredential};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::roles;
use cmk_operator::sim::{
    FederatedCredential, Seed, SeedIdentity, SeedKey, SeedRoleAssignment, SeedVault,
};
use serde_json::json;
use sim_support::*;

const ISSUER: &str = "https://oidc.prod-aks.azure.com/tenant/issuer";
const SUBJECT: &str = "system:serviceaccount:cmk-system:cmk-operator";

fn assertion(aud: &str, sub: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let exp = jiff::Timestamp::now().as_second() + 600;
    let p = URL_SAFE_NO_PAD
        .encode(json!({"aud": [aud], "iss": ISSUER, "sub": sub, "exp": exp}).to_string());
    format!("{h}.{p}.c2lnbmF0dXJl")
}

#[tokio::test]
async fn client_secret_tokens_and_errors() {
    let sim = start().await;
    let cred = credential(&sim);
    let tok = cred.get_token(&[ARM_SCOPE]).await.unwrap();
    let left = tok.expires_on - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(55) && left <= time::Duration::hours(1),
        "{left}"
    );

    let base = Url::parse(&sim.authority_host()).unwrap();
    let (id, _, _) = sim.operator_credentials();
    let wrong = ClientSecretCredential::new(
        sim.http_client(),
        base.clone(),
        sim.tenant_id().into(),
        id.clone(),
        "nope".into(),
    );
    assert!(wrong.get_token(&[ARM_SCOPE]).await.is_err());
    assert_eq!(sim.count_status("Token", 401), 1);
    let unknown = ClientSecretCredential::new(
        sim.http_client(),
        base.clone(),
        sim.tenant_id().into(),
        "unknown-client".into(),
        "x".into(),
    );
    assert!(unknown.get_token(&[ARM_SCOPE]).await.is_err());
    assert!(
        cred.get_token(&["https://storage.azure.com/.default"])
            .await
            .is_err()
    );
    let other_tenant = ClientSecretCredential::new(
        sim.http_client(),
        base,
        "other-tenant".into(),
        id,
        "x".into(),
    );
    assert!(other_tenant.get_token(&[ARM_SCOPE]).await.is_err());
    assert_eq!(sim.count_status("Token", 400), 3);
}

#[tokio::test]
async fn workload_identity_federated_assertion() {
    let sim = start().await;
    let out = sim
        .seed(&Seed {
            identities: vec![SeedIdentity {
                federated_credentials: vec![FederatedCredential {
                    issuer: ISSUER.into(),
                    subject: SUBJECT.into(),
                    ..Default::default()
                }],
                ..uai("operator-wi")
            }],
            ..Default::default()
        })
        .unwrap();
    let client_id = out["identities"][0]["clientId"]
        .as_str()
        .unwrap()
        .to_owned();
    let principal = out["identities"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    // ARM authorizes by role: Reader on the resource group lets it read.
    sim.seed(&Seed {
        role_assignments: vec![SeedRoleAssignment {
            scope: format!("/subscriptions/{SUB}/resourceGroups/{RG}"),
            role_definition_id: roles::READER.into(),
            principal_id: principal.clone(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .unwrap();
    let base = Url::parse(&sim.authority_host()).unwrap();
    let wi: Arc<dyn TokenCredential> = Arc::new(WorkloadIdentityCredential::new(
        sim.http_client(),
        base.clone(),
        sim.tenant_id().into(),
        client_id.clone(),
        assertion("api://AzureADTokenExchange", SUBJECT),
    ));
    // The token works against ARM, and Key Vault sees the identity's principal.
    let client = cosmos_with(&sim, wi.clone(), azure_core::RetryOptions::none());
    let err = client
        .database_accounts_client()
        .get(SUB, RG, "none")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 404);
    // Key Vault sees the identity's own principal: no grant, then a grant.
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-wi", &[])],
        keys: vec![key("kv-wi", "k")],
        ..Default::default()
    })
    .unwrap();
    let kc = KeyReader::new(&sim, &sim.vault_uri("kv-wi").unwrap(), wi.clone());
    let err = kc.get("k").await.unwrap_err();
    let (status, _, msg) = http_err(&err);
    assert_eq!(status, 403);
    assert!(msg.contains(&format!("oid={principal}")), "{msg}");
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-wi", &[&principal])],
        ..Default::default()
    })
    .unwrap();
    kc.get("k").await.unwrap();

    let wrong_sub = WorkloadIdentityCredential::new(
        sim.http_client(),
        base.clone(),
        sim.tenant_id().into(),
        client_id.clone(),
        assertion(
            "api://AzureADTokenExchange",
            "system:serviceaccount:other:sa",
        ),
    );
    assert!(wrong_sub.get_token(&[ARM_SCOPE]).await.is_err());
    let wrong_aud = WorkloadIdentityCredential::new(
        sim.http_client(),
        base,
        sim.tenant_id().into(),
        client_id,
        assertion("api://other", SUBJECT),
    );
    assert!(wrong_aud.get_token(&[ARM_SCOPE]).await.is_err());
}

#[tokio::test]
async fn missing_expired_and_wrong_audience_tokens_get_401_challenges() {
    let sim = start().await;
    let (_, _, oid) = sim.operator_credentials();
    // Expired token through the SDK.
    let expired = Arc::new(StaticToken(sim.issue_token(
        &oid,
        "https://management.azure.com",
        -10,
    )));
    let err = cosmos_with(&sim, expired, azure_core::RetryOptions::none())
        .database_accounts_client()
        .get(SUB, RG, "a")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 401);
    assert_eq!(http_err(&err).1, "ExpiredAuthenticationToken");
    // Vault token on ARM.
    let vault_tok = Arc::new(StaticToken(sim.issue_token(
        &oid,
        "https://vault.azure.net",
        600,
    )));
    let err = cosmos_with(&sim, vault_tok.clone(), azure_core::RetryOptions::none())
        .database_accounts_client()
        .get(SUB, RG, "a")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).1, "InvalidAuthenticationTokenAudience");
    // Forged token.
    let forged = Arc::new(StaticToken("simtok.eyJ4IjoxfQ.00".into()));
    let err = cosmos_with(&sim, forged, azure_core::RetryOptions::none())
        .database_accounts_client()
        .get(SUB, RG, "a")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).1, "InvalidAuthenticationToken");

    // No Authorization header at all: ARM and Key Vault challenges.
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-auth", &[])],
        keys: vec![key("kv-auth", "k")],
        ..Default::default()
    })
    .unwrap();
    let http = sim.http_client();
    let arm_url = format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/a?api-version=2025-10-15",
        sim.arm_endpoint()
    );
    let resp = http
        .execute_request(&Request::new(Url::parse(&arm_url).unwrap(), Method::Get))
        .await
        .unwrap();
    assert_eq!(u16::from(resp.status()), 401);
    let challenge = resp
        .headers()
        .get_optional_string(&azure_core::headers::WWW_AUTHENTICATE)
        .unwrap();
    assert!(
        challenge.starts_with("Bearer authorization_uri="),
        "{challenge}"
    );
    let kv_url = format!(
        "{}keys/k?api-version=7.6",
        sim.vault_uri("kv-auth").unwrap()
    );
    let resp = http
        .execute_request(&Request::new(Url::parse(&kv_url).unwrap(), Method::Get))
        .await
        .unwrap();
    assert_eq!(u16::from(resp.status()), 401);
    let challenge = resp
        .headers()
        .get_optional_string(&azure_core::headers::WWW_AUTHENTICATE)
        .unwrap();
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization=\"{}{}\", resource=\"https://vault.azure.net\"",
            sim.authority_host(),
            sim.tenant_id()
        )
    );
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "Unauthorized");

    // ARM token on Key Vault, read as the SDK's KeyClient reads.
    let arm_tok = Arc::new(StaticToken(sim.issue_token(
        &oid,
        "https://management.azure.com",
        600,
    )));
    let kc = KeyReader::new(&sim, &sim.vault_uri("kv-auth").unwrap(), arm_tok);
    let err = kc.get("k").await.unwrap_err();
    assert_eq!(
        http_err(&err),
        (401, "Unauthorized".into(), http_err(&err).2)
    );
    // The discovery document points at the token endpoint.
    let disc = format!(
        "{}{}/v2.0/.well-known/openid-configuration",
        sim.authority_host(),
        sim.tenant_id()
    );
    let resp = http
        .execute_request(&Request::new(Url::parse(&disc).unwrap(), Method::Get))
        .await
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap()).unwrap();
    assert!(
        body["token_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/oauth2/v2.0/token")
    );
}

#[tokio::test]
async fn federated_identity_credentials_through_azure_mgmt_msi() {
    let sim = start().await;
    let out = sim
        .seed(&Seed {
            identities: vec![uai("wi-arm")],
            ..Default::default()
        })
        .unwrap();
    let client_id = out["identities"][0]["clientId"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = Url::parse(&sim.authority_host()).unwrap();
    let wi = WorkloadIdentityCredential::new(
        sim.http_client(),
        base,
        sim.tenant_id().into(),
        client_id,
        assertion("api://AzureADTokenExchange", SUBJECT),
    );
    assert!(
        wi.get_token(&[ARM_SCOPE]).await.is_err(),
        "no federated credential yet"
    );

    let fics = msi(&sim).federated_identity_credentials_client();
    // The msi 2024-11-30 example body.
    let params: msi_sdk::models::FederatedIdentityCredential = serde_json::from_value(json!({
        "properties": {"issuer": ISSUER, "subject": SUBJECT, "audiences": ["api://AzureADTokenExchange"]}
    }))
    .unwrap();
    let created = fics
        .create_or_update(SUB, RG, "wi-arm", "ficResourceName", params)
        .await
        .unwrap();
    assert_eq!(created.properties.unwrap().subject, SUBJECT);
    wi.get_token(&[ARM_SCOPE]).await.unwrap();
    let got = fics
        .get(SUB, RG, "wi-arm", "ficResourceName")
        .await
        .unwrap();
    assert_eq!(got.properties.unwrap().issuer, ISSUER);
    let cred = credential(&sim);
    let url = format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/wi-arm/federatedIdentityCredentials/ficResourceName?api-version=2024-11-30",
        sim.arm_endpoint()
    );
    let (_, raw) = send(&sim, &cred, ARM_SCOPE, Method::Get, &url, None).await;
    assert_shape(&raw, &fixture("federated_identity_credential.json"), "fic");
    // A bad issuer is refused; deleting the credential stops new tokens.
    let bad: msi_sdk::models::FederatedIdentityCredential = serde_json::from_value(json!({
        "properties": {"issuer": "http://plain", "subject": SUBJECT, "audiences": ["api://AzureADTokenExchange"]}
    }))
    .unwrap();
    let err = fics
        .create_or_update(SUB, RG, "wi-arm", "bad", bad)
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 400);
    fics.delete(SUB, RG, "wi-arm", "ficResourceName")
        .send()
        .await
        .unwrap();
    wi.clear_cache().await.unwrap();
    assert!(wi.get_token(&[ARM_SCOPE]).await.is_err());
}

/// A principal of its own, seen by ARM through a token the simulator mints.
fn as_principal(
    sim: &cmk_operator::sim::SimHandle,
    oid: &str,
    aud: &str,
) -> Arc<dyn TokenCredential> {
    Arc::new(StaticToken(sim.issue_token(oid, aud, 600)))
}

fn account_url(sim: &cmk_operator::sim::SimHandle, name: &str) -> String {
    format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/{name}?api-version=2025-10-15",
        sim.arm_endpoint()
    )
}

#[tokio::test]
async fn arm_calls_are_authorized_by_role_assignments_and_definitions() {
    let sim = start().await;
    let out = sim
        .seed(&Seed {
            identities: vec![uai("restricted"), uai("assignee"), uai("docdb-only")],
            ..Default::default()
        })
        .unwrap();
    let who = out["identities"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cred = as_principal(&sim, &who, "https://management.azure.com");
    let sub = format!("/subscriptions/{SUB}");
    let rg = format!("{sub}/resourceGroups/{RG}");
    let account = format!("{rg}/providers/Microsoft.DocumentDB/databaseAccounts/authz-a");

    // No role: even a read of a missing account is 403, with ARM's exact body.
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Get,
        &account_url(&sim, "authz-a"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "AuthorizationFailed");
    assert_eq!(
        body["error"]["message"],
        format!(
            "The client '{who}' with object id '{who}' does not have authorization to perform action 'Microsoft.DocumentDB/databaseAccounts/read' over scope '{account}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        )
    );

    // Reader on the resource group, inherited by the account: reads pass (404), writes not.
    let assign = |scope: &str, role: &str| Seed {
        role_assignments: vec![SeedRoleAssignment {
            scope: scope.into(),
            role_definition_id: role.into(),
            principal_id: who.clone(),
            ..Default::default()
        }],
        ..Default::default()
    };
    sim.seed(&assign(&rg, roles::READER)).unwrap();
    let (status, _) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Get,
        &account_url(&sim, "authz-a"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Delete,
        &account_url(&sim, "authz-a"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Microsoft.DocumentDB/databaseAccounts/delete'")
    );
    // Not upwards: the subscription-wide list is outside the resource group.
    let list = format!(
        "{}subscriptions/{SUB}/providers/Microsoft.DocumentDB/databaseAccounts?api-version=2025-10-15",
        sim.arm_endpoint()
    );
    let (status, _) = send(&sim, &cred, ARM_SCOPE, Method::Get, &list, None).await;
    assert_eq!(status, 403);

    // Contributor's notActions subtract Microsoft.Authorization/*/Write.
    sim.seed(&assign(&sub, roles::CONTRIBUTOR)).unwrap();
    let (status, _) = send(&sim, &cred, ARM_SCOPE, Method::Get, &list, None).await;
    assert_eq!(status, 200);
    let assignee = out["identities"][1]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let ra_url = format!(
        "{}{}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        sim.arm_endpoint(),
        rg.trim_start_matches('/'),
        "7d1c4a2e-9f3b-4c5d-8e6f-0a1b2c3d4e5f"
    );
    let ra_body = json!({"properties": {"roleDefinitionId": format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/{}", roles::READER), "principalId": assignee}});
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &ra_url,
        Some(ra_body.clone()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Microsoft.Authorization/roleAssignments/write'")
    );
    // Role Based Access Control Administrator adds it.
    sim.seed(&assign(&rg, roles::RBAC_ADMINISTRATOR)).unwrap();
    let (status, _) = send(&sim, &cred, ARM_SCOPE, Method::Put, &ra_url, Some(ra_body)).await;
    assert_eq!(status, 201);

    // Assigning a user-assigned identity to an account is a linked check:
    // DocumentDB Account Contributor alone may write the account, not assign it.
    let who = out["identities"][2]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cred = as_principal(&sim, &who, "https://management.azure.com");
    let assign = |scope: &str, role: &str| Seed {
        role_assignments: vec![SeedRoleAssignment {
            scope: scope.into(),
            role_definition_id: role.into(),
            principal_id: who.clone(),
            ..Default::default()
        }],
        ..Default::default()
    };
    sim.seed(&assign(&rg, roles::DOCUMENTDB_ACCOUNT_CONTRIBUTOR))
        .unwrap();
    let create = json!({
        "location": "westus",
        "kind": "GlobalDocumentDB",
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {identity_id("assignee"): {}}},
        "properties": {"databaseAccountOfferType": "Standard", "locations": [{"locationName": "westus", "failoverPriority": 0}]},
    });
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &account_url(&sim, "authz-a"),
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "LinkedAuthorizationFailed");
    assert!(body["error"]["message"].as_str().unwrap().contains(&format!(
        "does not have permission to perform action 'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked scope(s) '{}'",
        identity_id("assignee")
    )));
    sim.seed(&assign(
        &identity_id("assignee"),
        roles::MANAGED_IDENTITY_OPERATOR,
    ))
    .unwrap();
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &account_url(&sim, "authz-a"),
        Some(create),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn custom_roles_grant_their_actions_and_data_actions_only() {
    let sim = start().await;
    let out = sim
        .seed(&Seed {
            identities: vec![uai("custom")],
            vaults: vec![SeedVault {
                properties: json!({"enableSoftDelete": true, "enablePurgeProtection": true, "enableRbacAuthorization": true})
                    .as_object()
                    .cloned()
                    .unwrap(),
                ..good_vault(&sim, "kv-custom", &[])
            }],
            keys: vec![SeedKey { ..key("kv-custom", "k") }],
            ..Default::default()
        })
        .unwrap();
    let who = out["identities"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let sub = format!("/subscriptions/{SUB}");
    // The default principal (Owner at the root) creates the role through ARM.
    let role = "3f2a7b1c-5d4e-4f60-9a8b-7c6d5e4f3a2b";
    let url = format!(
        "{}subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}?api-version=2022-04-01",
        sim.arm_endpoint()
    );
    let body = json!({"properties": {
        "roleName": "vault reader and key reader",
        "type": "CustomRole",
        "permissions": [{"actions": ["Microsoft.KeyVault/vaults/read"], "notActions": [],
                         "dataActions": ["Microsoft.KeyVault/vaults/keys/*"],
                         "notDataActions": ["Microsoft.KeyVault/vaults/keys/create/action"]}],
        "assignableScopes": [sub],
    }});
    let owner = credential(&sim);
    let (status, created) = send(&sim, &owner, ARM_SCOPE, Method::Put, &url, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["id"],
        format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}")
    );
    let (status, got) = send(&sim, &owner, ARM_SCOPE, Method::Get, &url, None).await;
    assert_eq!(
        (status, got["properties"]["type"].as_str()),
        (200, Some("CustomRole"))
    );
    // Built-in roles are readable by id, with their real permissions.
    let builtin = format!(
        "{}subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{}?api-version=2022-04-01",
        sim.arm_endpoint(),
        roles::KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER
    );
    let (_, b) = send(&sim, &owner, ARM_SCOPE, Method::Get, &builtin, None).await;
    assert_eq!(
        b["properties"]["roleName"],
        "Key Vault Crypto Service Encryption User"
    );
    assert_eq!(
        b["properties"]["permissions"][0]["dataActions"][1],
        "Microsoft.KeyVault/vaults/keys/wrap/action"
    );

    sim.seed(&Seed {
        role_assignments: vec![SeedRoleAssignment {
            scope: sub.clone(),
            role_definition_id: format!(
                "{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"
            ),
            principal_id: who.clone(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .unwrap();
    let arm = as_principal(&sim, &who, "https://management.azure.com");
    let vault_url = format!(
        "{}{}?api-version=2024-11-01",
        sim.arm_endpoint(),
        vault_id("kv-custom").trim_start_matches('/')
    );
    let (status, _) = send(&sim, &arm, ARM_SCOPE, Method::Get, &vault_url, None).await;
    assert_eq!(status, 200);
    let (status, body) = send(
        &sim,
        &arm,
        ARM_SCOPE,
        Method::Put,
        &vault_url,
        Some(json!({"location": "westus", "properties": {}})),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Microsoft.KeyVault/vaults/write'")
    );
    // Data plane: keys/* less create.
    let kv = as_principal(&sim, &who, "https://vault.azure.net");
    let base = sim.vault_uri("kv-custom").unwrap();
    let (status, _) = send(
        &sim,
        &kv,
        "https://vault.azure.net/.default",
        Method::Get,
        &format!("{base}keys/k?api-version=7.6"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(
        &sim,
        &kv,
        "https://vault.azure.net/.default",
        Method::Post,
        &format!("{base}keys/k2/create?api-version=7.6"),
        Some(json!({"kty": "RSA"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Microsoft.KeyVault/vaults/keys/create/action")
    );
}
