//! The CMK rules of the seed document, each shown with Azure's error, through
//! azure_mgmt_cosmosdb 0.21.

use crate::sim_support;

use azure_core::Method;
use cmk_operator::sim::{Seed, SeedRoleAssignment};
use cosmosdb::models::{DatabaseAccountCreateUpdateParameters, DatabaseAccountUpdateParameters};
use serde_json::{Value, json};
use sim_support::*;

fn params(
    key_uri: &str,
    extra_props: Value,
    identity: Option<Value>,
) -> DatabaseAccountCreateUpdateParameters {
    let mut props = json!({
        "databaseAccountOfferType": "Standard",
        "locations": [{"locationName": "westus", "failoverPriority": 0}],
        "keyVaultKeyUri": key_uri,
    });
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra_props.as_object()) {
        for (k, v) in e {
            p.insert(k.clone(), v.clone());
        }
    }
    let mut body = json!({"location": "westus", "properties": props});
    if let Some(i) = identity {
        body["identity"] = i;
    }
    serde_json::from_value(body).unwrap()
}

async fn create_err(
    sim: &cmk_operator::sim::SimHandle,
    name: &str,
    p: DatabaseAccountCreateUpdateParameters,
) -> (u16, String, String) {
    let err = cosmos(sim)
        .database_accounts_client()
        .create_or_update(SUB, RG, name, p)
        .send()
        .await
        .unwrap_err();
    let (status, code, msg) = http_err(&err);
    // A substatus in the message is also sent as the x-ms-substatus header.
    if let Some(sub) = msg.split("Substatus: ").nth(1) {
        let sub = sub.trim_end_matches(')');
        let text = format!("{}", err.as_http_error().unwrap());
        assert!(
            text.contains("x-ms-substatus") && text.contains(sub),
            "{text}"
        );
    }
    (status, code, msg)
}

fn patch(v: Value) -> DatabaseAccountUpdateParameters {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn happy_path_reports_cmk_fields_and_follows_rotation() {
    let sim = start().await;
    let uri = seed_vault_and_key(
        &sim,
        good_vault(&sim, "kv-good", &[&first_party(&sim)]),
        "cmk",
    );
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();
    accounts
        .create_or_update(SUB, RG, "acct-cmk", params(&uri, json!({}), None))
        .await
        .unwrap();
    let acct = wait_account(&client, RG, "acct-cmk").await;
    let props = acct.properties.clone().unwrap();
    assert_eq!(props.key_vault_key_uri.as_deref(), Some(uri.as_str()));
    assert_eq!(
        props.default_identity.as_deref(),
        Some("FirstPartyIdentity")
    );
    assert_eq!(
        props.customer_managed_key_status.as_deref(),
        Some("Access to the configured customer managed key confirmed. ")
    );

    // keyVaultKeyUriVersion is not in the 0.21 model (2024-09-01-preview): read it raw.
    let cred = credential(&sim);
    let url = format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/acct-cmk?api-version=2025-10-15",
        sim.arm_endpoint()
    );
    let (_, raw) = send(&sim, &cred, ARM_SCOPE, Method::Get, &url, None).await;
    assert_shape(
        &raw,
        &fixture("database_account_cmk.json")
            .as_object()
            .map(|o| json!({"properties": o["properties"]}))
            .unwrap(),
        "account",
    );
    let v1 = raw["properties"]["keyVaultKeyUriVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(v1.len(), 32);

    // Rotate the key (new version): the versionless URI follows it.
    let kv_scope = kv_scope(&sim, "kv-good");
    let (status, rotated) = send(
        &sim,
        &cred,
        &kv_scope,
        Method::Post,
        &format!("{uri}/rotate?api-version=7.6"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let v2 = rotated["key"]["kid"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (_, raw) = send(&sim, &cred, ARM_SCOPE, Method::Get, &url, None).await;
    assert_eq!(raw["properties"]["keyVaultKeyUriVersion"], v2.as_str());
    assert_ne!(v1, v2);
}

#[tokio::test]
async fn vault_without_soft_delete_or_purge_protection_is_rejected() {
    let sim = start().await;
    let mut v = good_vault(&sim, "kv-nopurge", &[&first_party(&sim)]);
    v.properties
        .insert("enablePurgeProtection".into(), json!(false));
    let uri = seed_vault_and_key(&sim, v, "cmk");
    let (status, code, msg) = create_err(&sim, "acct-a", params(&uri, json!({}), None)).await;
    assert_eq!((status, code.as_str()), (400, "BadRequest"));
    assert!(msg.contains("purge protection"), "{msg}");

    let mut v = good_vault(&sim, "kv-nosoft", &[&first_party(&sim)]);
    v.properties.insert("enableSoftDelete".into(), json!(false));
    v.properties
        .insert("enablePurgeProtection".into(), json!(false));
    let uri = seed_vault_and_key(&sim, v, "cmk");
    let (status, _, msg) = create_err(&sim, "acct-b", params(&uri, json!({}), None)).await;
    assert_eq!(status, 400);
    assert!(msg.contains("soft delete"), "{msg}");
}

#[tokio::test]
async fn network_rules_that_shut_out_azure_services_are_rejected() {
    let sim = start().await;
    let mut v = good_vault(&sim, "kv-private", &[&first_party(&sim)]);
    v.properties
        .insert("publicNetworkAccess".into(), json!("Disabled"));
    let uri = seed_vault_and_key(&sim, v, "cmk");
    let (status, code, msg) = create_err(&sim, "acct-c", params(&uri, json!({}), None)).await;
    assert_eq!((status, code.as_str()), (403, "Forbidden"));
    assert!(
        msg.contains("Substatus: 4002") && msg.contains("ForbiddenByFirewall"),
        "{msg}"
    );

    let mut v = good_vault(&sim, "kv-deny", &[&first_party(&sim)]);
    v.properties.insert(
        "networkAcls".into(),
        json!({"defaultAction": "Deny", "bypass": "None"}),
    );
    let uri = seed_vault_and_key(&sim, v, "cmk");
    let (status, _, _) = create_err(&sim, "acct-d", params(&uri, json!({}), None)).await;
    assert_eq!(status, 403);

    // Deny with the AzureServices bypass is fine for Cosmos DB.
    let mut v = good_vault(&sim, "kv-bypass", &[&first_party(&sim)]);
    v.properties.insert(
        "networkAcls".into(),
        json!({"defaultAction": "Deny", "bypass": "AzureServices"}),
    );
    let uri = seed_vault_and_key(&sim, v, "cmk");
    cosmos(&sim)
        .database_accounts_client()
        .create_or_update(SUB, RG, "acct-e", params(&uri, json!({}), None))
        .await
        .unwrap();
}

#[tokio::test]
async fn missing_grant_under_access_policies_and_under_rbac() {
    let sim = start().await;
    // Access policies without the first-party principal.
    let uri = seed_vault_and_key(&sim, good_vault(&sim, "kv-nogrant", &[]), "cmk");
    let (status, _, msg) = create_err(&sim, "acct-f", params(&uri, json!({}), None)).await;
    assert_eq!(status, 403);
    assert!(
        msg.contains("Substatus: 4002") && msg.contains("access policies"),
        "{msg}"
    );

    // RBAC vault: the access policy is ignored (one model at a time) until a role is assigned.
    let mut v = good_vault(&sim, "kv-rbac", &[&first_party(&sim)]);
    v.properties
        .insert("enableRbacAuthorization".into(), json!(true));
    let uri = seed_vault_and_key(&sim, v, "cmk");
    let (status, _, msg) = create_err(&sim, "acct-g", params(&uri, json!({}), None)).await;
    assert_eq!(status, 403);
    assert!(msg.contains("role-based access control"), "{msg}");
    sim.seed(&Seed {
        role_assignments: vec![SeedRoleAssignment {
            scope: vault_id("kv-rbac"),
            role_definition_id: KV_ROLE_CRYPTO_SERVICE_ENCRYPTION_USER.into(),
            principal_id: first_party(&sim),
            principal_type: Some("ServicePrincipal".into()),
            name: None,
            ..Default::default()
        }],
        ..Default::default()
    })
    .unwrap();
    cosmos(&sim)
        .database_accounts_client()
        .create_or_update(SUB, RG, "acct-g", params(&uri, json!({}), None))
        .await
        .unwrap();
}

#[tokio::test]
async fn missing_or_disabled_key_and_missing_locations() {
    let sim = start().await;
    let uri = seed_vault_and_key(
        &sim,
        good_vault(&sim, "kv-keys", &[&first_party(&sim)]),
        "cmk",
    );
    let missing = uri.replace("/keys/cmk", "/keys/absent");
    let (status, _, msg) = create_err(&sim, "acct-h", params(&missing, json!({}), None)).await;
    assert_eq!(status, 404);
    assert!(msg.contains("Substatus: 4003"), "{msg}");

    // Disable the only version.
    let cred = credential(&sim);
    let scope = kv_scope(&sim, "kv-keys");
    let (_, k) = send(
        &sim,
        &cred,
        &scope,
        Method::Get,
        &format!("{uri}?api-version=7.6"),
        None,
    )
    .await;
    let kid = k["key"]["kid"].as_str().unwrap().to_owned();
    let (status, _) = send(
        &sim,
        &cred,
        &scope,
        Method::Patch,
        &format!("{kid}?api-version=7.6"),
        Some(json!({"attributes": {"enabled": false}})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, msg) = create_err(&sim, "acct-i", params(&uri, json!({}), None)).await;
    assert_eq!(status, 403);
    assert!(msg.contains("disabled") && msg.contains("4002"), "{msg}");

    let (status, _, msg) =
        create_err(&sim, "acct-j", params(&uri, json!({"locations": []}), None)).await;
    assert_eq!(status, 400);
    assert!(
        msg.contains("locations") && msg.contains("customer-managed"),
        "{msg}"
    );

    let (status, _, msg) = create_err(
        &sim,
        "acct-k",
        params(
            "https://nosuchvault.vault.azure.net/keys/k",
            json!({}),
            None,
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("4009"), "{msg}");
}

#[tokio::test]
async fn continuous_backup_with_cmk_needs_user_assigned_identity_and_restore_creates_new_account() {
    let sim = start().await;
    let out = sim
        .seed(&Seed {
            identities: vec![uai("cmk-uai")],
            ..Default::default()
        })
        .unwrap();
    let uai_principal = out["identities"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = seed_vault_and_key(
        &sim,
        good_vault(&sim, "kv-cont", &[&first_party(&sim), &uai_principal]),
        "cmk",
    );
    let continuous = json!({"backupPolicy": {"type": "Continuous", "continuousModeProperties": {"tier": "Continuous7Days"}}});
    let (status, _, msg) =
        create_err(&sim, "acct-cont", params(&uri, continuous.clone(), None)).await;
    assert_eq!(status, 400);
    assert!(msg.contains("user-assigned identity"), "{msg}");

    let id = identity_id("cmk-uai");
    let ident = json!({"type": "UserAssigned", "userAssignedIdentities": {id.clone(): {}}});
    let mut props = continuous.clone();
    props["defaultIdentity"] = json!(format!("UserAssignedIdentity={id}"));
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();
    let src = accounts
        .create_or_update(
            SUB,
            RG,
            "acct-cont",
            params(&uri, props.clone(), Some(ident.clone())),
        )
        .await
        .unwrap();
    let instance = src.properties.unwrap().instance_id.unwrap();
    wait_account(&client, RG, "acct-cont").await;

    // The restorable account is listed; restore to a timestamp creates a new account.
    let restorable = client
        .restorable_database_accounts_client()
        .list_by_location(SUB, "westus")
        .send()
        .await
        .unwrap()
        .into_body()
        .await
        .unwrap();
    assert_eq!(restorable.value.len(), 1);
    let ts = jiff::Timestamp::now().to_string();
    let restore_props = json!({
        "createMode": "Restore",
        "defaultIdentity": format!("UserAssignedIdentity={id}"),
        "backupPolicy": {"type": "Continuous"},
        "restoreParameters": {
            "restoreMode": "PointInTime",
            "restoreSource": format!("/subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/westus/restorableDatabaseAccounts/{instance}"),
            "restoreTimestampInUtc": ts,
        },
    });
    let restored = accounts
        .create_or_update(
            SUB,
            RG,
            "acct-restored",
            params(&uri, restore_props.clone(), Some(ident.clone())),
        )
        .await
        .unwrap();
    let rp = restored.properties.unwrap();
    assert_ne!(rp.instance_id.as_deref(), Some(instance.as_str()));
    assert_eq!(rp.key_vault_key_uri.as_deref(), Some(uri.as_str()));
    // A timestamp before the source existed is refused.
    let mut early = restore_props;
    early["restoreParameters"]["restoreTimestampInUtc"] = json!("2001-01-01T00:00:00Z");
    let (status, _, _) = create_err(&sim, "acct-restored2", params(&uri, early, Some(ident))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn disabling_the_version_in_use_revokes_until_only_delete_or_identity_update() {
    let sim = start().await;
    let uri = seed_vault_and_key(
        &sim,
        good_vault(&sim, "kv-rev", &[&first_party(&sim)]),
        "cmk",
    );
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();
    accounts
        .create_or_update(SUB, RG, "acct-rev", params(&uri, json!({}), None))
        .await
        .unwrap();
    wait_account(&client, RG, "acct-rev").await;

    let cred = credential(&sim);
    let scope = kv_scope(&sim, "kv-rev");
    let (_, k) = send(
        &sim,
        &cred,
        &scope,
        Method::Get,
        &format!("{uri}?api-version=7.6"),
        None,
    )
    .await;
    let kid = k["key"]["kid"].as_str().unwrap().to_owned();
    send(
        &sim,
        &cred,
        &scope,
        Method::Patch,
        &format!("{kid}?api-version=7.6"),
        Some(json!({"attributes": {"enabled": false}})),
    )
    .await;

    let acct = accounts.get(SUB, RG, "acct-rev").await.unwrap();
    let status = acct
        .properties
        .unwrap()
        .customer_managed_key_status
        .unwrap();
    assert!(
        status.contains("revoked") && status.contains("4002"),
        "{status}"
    );
    let err = accounts
        .update(SUB, RG, "acct-rev", patch(json!({"tags": {"x": "y"}})))
        .send()
        .await
        .unwrap_err();
    let (code, _, msg) = http_err(&err);
    assert_eq!(code, 403);
    assert!(
        msg.contains("Substatus: 4002") && msg.contains("revoked"),
        "{msg}"
    );

    // Re-enable: access returns (recovery is immediate in test config).
    send(
        &sim,
        &cred,
        &scope,
        Method::Patch,
        &format!("{kid}?api-version=7.6"),
        Some(json!({"attributes": {"enabled": true}})),
    )
    .await;
    let acct = accounts.get(SUB, RG, "acct-rev").await.unwrap();
    assert!(
        !acct
            .properties
            .unwrap()
            .customer_managed_key_status
            .unwrap()
            .contains("revoked")
    );
    // Deletion always works.
    accounts.delete(SUB, RG, "acct-rev").send().await.unwrap();
}

#[tokio::test]
async fn removing_the_grant_revokes_and_default_identity_update_recovers() {
    let sim = start().await;
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();
    let uri = seed_vault_and_key(
        &sim,
        good_vault(&sim, "kv-grant", &[&first_party(&sim)]),
        "cmk",
    );
    let mut p = params(&uri, json!({}), None);
    p.identity = Some(serde_json::from_value(json!({"type": "SystemAssigned"})).unwrap());
    let created = accounts
        .create_or_update(SUB, RG, "acct-grant", p)
        .await
        .unwrap();
    let system_principal = created.identity.unwrap().principal_id.unwrap();
    wait_account(&client, RG, "acct-grant").await;

    // Remove the first-party access policy through azure_mgmt_keyvault.
    let kv = keyvault_mgmt(&sim);
    let remove: keyvault::models::VaultAccessPolicyParameters = serde_json::from_value(json!({
        "properties": {"accessPolicies": [{"tenantId": sim.tenant_id(), "objectId": first_party(&sim), "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}}]}
    }))
    .unwrap();
    kv.vaults_client()
        .update_access_policy(RG, "kv-grant", "remove", remove, SUB)
        .await
        .unwrap();
    let err = accounts
        .update(SUB, RG, "acct-grant", patch(json!({"tags": {"a": "b"}})))
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 403);

    // Switching the default identity to one without access is refused; with access it recovers.
    let err = accounts
        .update(
            SUB,
            RG,
            "acct-grant",
            patch(json!({"properties": {"defaultIdentity": "SystemAssignedIdentity"}})),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 403);
    let add: keyvault::models::VaultAccessPolicyParameters = serde_json::from_value(json!({
        "properties": {"accessPolicies": [{"tenantId": sim.tenant_id(), "objectId": system_principal, "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}}]}
    }))
    .unwrap();
    kv.vaults_client()
        .update_access_policy(RG, "kv-grant", "add", add, SUB)
        .await
        .unwrap();
    accounts
        .update(
            SUB,
            RG,
            "acct-grant",
            patch(json!({"properties": {"defaultIdentity": "SystemAssignedIdentity"}})),
        )
        .send()
        .await
        .unwrap();
    // The PATCH answer is the account before the change: read the new state.
    wait_account(&client, RG, "acct-grant").await;
    let updated = accounts.get(SUB, RG, "acct-grant").await.unwrap();
    let up = updated.properties.unwrap();
    assert_eq!(
        up.default_identity.as_deref(),
        Some("SystemAssignedIdentity")
    );
    assert!(!up.customer_managed_key_status.unwrap().contains("revoked"));
}

#[tokio::test]
async fn key_uri_change_must_be_alone_and_identity_with_default_identity_is_silently_partial() {
    let sim = start().await;
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();
    sim.seed(&Seed {
        identities: vec![uai("u1")],
        ..Default::default()
    })
    .unwrap();
    let uri = seed_vault_and_key(
        &sim,
        good_vault(&sim, "kv-stage", &[&first_party(&sim)]),
        "cmk",
    );
    let base: DatabaseAccountCreateUpdateParameters = serde_json::from_value(json!({
        "location": "westus",
        "properties": {"databaseAccountOfferType": "Standard", "locations": [{"locationName": "westus", "failoverPriority": 0}]}
    }))
    .unwrap();
    accounts
        .create_or_update(SUB, RG, "acct-stage", base)
        .await
        .unwrap();
    wait_account(&client, RG, "acct-stage").await;

    let err = accounts
        .update(
            SUB,
            RG,
            "acct-stage",
            patch(json!({"properties": {"keyVaultKeyUri": uri, "enableAnalyticalStorage": true}})),
        )
        .send()
        .await
        .unwrap_err();
    let (status, _, msg) = http_err(&err);
    assert_eq!(status, 400);
    assert!(msg.contains("keyVaultKeyUri"), "{msg}");

    // Identity and defaultIdentity together: identity applied, default identity silently kept.
    let id = identity_id("u1");
    let both = patch(
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {id.clone(): {}}}, "properties": {"defaultIdentity": format!("UserAssignedIdentity={id}")}}),
    );
    accounts
        .update(SUB, RG, "acct-stage", both)
        .send()
        .await
        .unwrap();
    // The PATCH answer is the account before the change: read the new state.
    wait_account(&client, RG, "acct-stage").await;
    let out = accounts.get(SUB, RG, "acct-stage").await.unwrap();
    assert_eq!(
        out.properties.unwrap().default_identity.as_deref(),
        Some("FirstPartyIdentity")
    );
    assert!(out.identity.unwrap().user_assigned_identities.is_some());

    // Enabling CMK on an existing account: its own PATCH.
    accounts
        .update(
            SUB,
            RG,
            "acct-stage",
            patch(json!({"properties": {"keyVaultKeyUri": uri}})),
        )
        .send()
        .await
        .unwrap();
    let acct = wait_account(&client, RG, "acct-stage").await;
    assert_eq!(
        acct.properties.unwrap().key_vault_key_uri.as_deref(),
        Some(uri.as_str())
    );
    // A blind full PUT without keyVaultKeyUri would disable CMK: refused.
    let full: DatabaseAccountCreateUpdateParameters = serde_json::from_value(json!({
        "location": "westus",
        "properties": {"databaseAccountOfferType": "Standard", "locations": [{"locationName": "westus", "failoverPriority": 0}]}
    }))
    .unwrap();
    let (status, _, msg) = create_err(&sim, "acct-stage", full).await;
    assert_eq!(status, 400);
    assert!(msg.contains("cannot be disabled"), "{msg}");
}

/// The seed's last FAQ: a restore carries the source's user-assigned identities
/// over, their metadata bound to the source. A restored account whose default
/// identity is one of them loses its key once the source is deleted; one given
/// its own new identity keeps working.
#[tokio::test]
async fn a_restore_lists_only_its_identity_and_reusing_the_source_s_breaks_with_it() {
    let sim = start().await;
    let principals = seed_principals(&sim, &["src-id", "new-id"]);
    let uri = seed_vault_and_key(
        &sim,
        good_vault(
            &sim,
            "kv-trap",
            &[&first_party(&sim), &principals[0], &principals[1]],
        ),
        "cmk",
    );
    let (src_id, new_id) = (identity_id("src-id"), identity_id("new-id"));
    let with = |id: &str, extra: Value| {
        let mut props = json!({"backupPolicy": {"type": "Continuous"}, "defaultIdentity": format!("UserAssignedIdentity={id}")});
        for (k, v) in extra.as_object().unwrap() {
            props[k] = v.clone();
        }
        let ident = json!({"type": "UserAssigned", "userAssignedIdentities": {id: {}}});
        params(&uri, props, Some(ident))
    };
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();
    let src = accounts
        .create_or_update(SUB, RG, "acct-src", with(&src_id, json!({})))
        .await
        .unwrap();
    let instance = src.properties.unwrap().instance_id.unwrap();
    wait_account(&client, RG, "acct-src").await;
    let restore = json!({"createMode": "Restore", "restoreParameters": {
        "restoreMode": "PointInTime",
        "restoreSource": format!("/subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/westus/restorableDatabaseAccounts/{instance}"),
        "restoreTimestampInUtc": jiff::Timestamp::now().to_string(),
    }});
    for (name, id) in [("acct-own-id", &new_id), ("acct-reused-id", &src_id)] {
        accounts
            .create_or_update(SUB, RG, name, with(id, restore.clone()))
            .await
            .unwrap();
        wait_account(&client, RG, name).await;
    }
    // Only the requested identity is listed, not the source's (recorded:
    // azure-cli test_cosmosdb_system_identity_restore.yaml, 2023).
    let own = accounts.get(SUB, RG, "acct-own-id").await.unwrap();
    let ids: Vec<String> = own
        .identity
        .and_then(|i| i.user_assigned_identities)
        .and_then(|m| {
            m.as_object()
                .map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect())
        })
        .unwrap_or_default();
    assert_eq!(ids, vec![new_id.to_ascii_lowercase()]);

    let status_of = |name: &'static str| {
        let client = client.clone();
        async move {
            let a = client
                .database_accounts_client()
                .get(SUB, RG, name)
                .send()
                .await
                .unwrap();
            let body: Value =
                serde_json::from_slice(&a.into_raw_response().into_body().collect().await.unwrap())
                    .unwrap();
            body["properties"]["customerManagedKeyStatus"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert!(!status_of("acct-reused-id").await.contains("revoked"));
    // The source goes: the account that reused its identity loses the key.
    accounts.delete(SUB, RG, "acct-src").send().await.unwrap();
    for _ in 0..200 {
        if accounts.get(SUB, RG, "acct-src").await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    let reused = status_of("acct-reused-id").await;
    assert!(
        reused.contains("revoked") && reused.contains("4000"),
        "{reused}"
    );
    assert!(!status_of("acct-own-id").await.contains("revoked"));
}
