//! Every `AzurePort` method of the SDK adapter against the simulator over HTTP.

use crate::adapter_support;
use crate::sim_support;

use adapter_support::*;
use cmk_operator::api::{
    BackupPolicy, BackupPolicyType, ContinuousTier, Grant, KeyType, PermissionModel, RestoreSource,
};
use cmk_operator::azure::{AccountChange, AzureError, AzurePort, DisableOutcome, RevokeOutcome};
use cmk_operator::reconcile::account::OperationState;
use cmk_operator::reconcile::binding::KeyFacts;
use cmk_operator::sim::{Seed, SeedProvider, SeedRoleAssignment, SeedVault};
use serde_json::json;
use sim_support::*;

fn rbac_vault(name: &str) -> SeedVault {
    SeedVault {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        name: name.into(),
        location: Some("westus".into()),
        properties: json!({"enableSoftDelete": true, "enablePurgeProtection": true, "enableRbacAuthorization": true})
            .as_object()
            .cloned()
            .unwrap(),
    }
}

#[tokio::test]
async fn accounts_starting_together_read_the_provider_once() {
    let sim = start().await;
    let azure = adapter(&sim);
    let checks = (0..8).map(|_| azure.provider_registered(SUB));
    for registered in futures::future::join_all(checks).await {
        assert!(registered.unwrap());
    }
    assert_eq!(
        sim.count("Providers_Get"),
        1,
        "one read, seven waited for it"
    );
}

/// Accounts about to be created together join the restorable list in flight
/// of their subscription; a list asked for after the last one was answered
/// is read anew (a finished answer is never reused), and another
/// subscription's list is its own.
#[tokio::test]
async fn creations_together_join_the_restorable_list_in_flight_never_a_finished_one() {
    let sim = start().await;
    let azure = adapter(&sim);
    let lists = (0..8).map(|_| azure.restorable_accounts(SUB));
    for list in futures::future::join_all(lists).await {
        list.unwrap();
    }
    assert_eq!(
        sim.count("RestorableDatabaseAccounts_List"),
        1,
        "one read, seven joined it"
    );
    azure.restorable_accounts(SUB).await.unwrap();
    assert_eq!(sim.count("RestorableDatabaseAccounts_List"), 2, "read anew");
    let other = "11111111-1111-1111-1111-111111111111";
    let (a, b) = futures::join!(
        azure.restorable_accounts(SUB),
        azure.restorable_accounts(other)
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(sim.count("RestorableDatabaseAccounts_List"), 4);
}

#[tokio::test]
async fn vault_facts_and_network_rules() {
    let sim = start().await;
    let azure = adapter(&sim);
    let mut closed = good_vault(&sim, "kv-closed", &[]);
    closed
        .properties
        .insert("publicNetworkAccess".into(), json!("Disabled"));
    let mut fw = good_vault(&sim, "kv-fw", &[]);
    fw.properties.insert(
        "networkAcls".into(),
        json!({"defaultAction": "Deny", "bypass": "None"}),
    );
    sim.seed(&Seed {
        vaults: vec![
            good_vault(&sim, "kv-open", &[]),
            closed,
            fw,
            rbac_vault("kv-rbac"),
        ],
        ..Default::default()
    })
    .unwrap();

    let open = azure
        .get_vault(&vault_id("kv-open"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.vault_uri, sim.vault_uri("kv-open").unwrap());
    assert!(open.soft_delete && open.purge_protection && open.public_network_access);
    assert!(!open.firewall_deny_by_default && !open.rbac_authorization);
    let closed = azure
        .get_vault(&vault_id("kv-closed"))
        .await
        .unwrap()
        .unwrap();
    assert!(!closed.public_network_access);
    let fw = azure.get_vault(&vault_id("kv-fw")).await.unwrap().unwrap();
    assert!(fw.public_network_access && fw.firewall_deny_by_default && !fw.bypass_azure_services);
    assert!(
        azure
            .get_vault(&vault_id("kv-rbac"))
            .await
            .unwrap()
            .unwrap()
            .rbac_authorization
    );
    assert_eq!(azure.get_vault(&vault_id("kv-none")).await.unwrap(), None);
    let bad = azure
        .get_vault("/subscriptions/x/vaults/y")
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("not a resource id"), "{bad}");
}

#[tokio::test]
async fn keys_latest_version_create_and_disable() {
    let sim = start().await;
    let azure = adapter(&sim);
    let (_, _, operator) = sim.operator_credentials();
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-keys", &[&operator])],
        keys: vec![cmk_operator::sim::SeedKey {
            versions: Some(2),
            ..key("kv-keys", "two")
        }],
        ..Default::default()
    })
    .unwrap();
    let vault = azure
        .get_vault(&vault_id("kv-keys"))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        azure.get_key(&vault.vault_uri, "absent").await.unwrap(),
        KeyFacts::Missing
    );
    let KeyFacts::Present {
        version: v2,
        enabled: true,
        key_type,
        ..
    } = azure.get_key(&vault.vault_uri, "two").await.unwrap()
    else {
        panic!("present and enabled expected")
    };
    assert_eq!(key_type, "RSA");

    let created = azure
        .create_key(&vault.vault_uri, "fresh", KeyType::Rsa, 3072)
        .await
        .unwrap();
    let KeyFacts::Present {
        version: fresh,
        enabled: true,
        ..
    } = &created
    else {
        panic!("{created:?}")
    };
    assert_eq!(
        azure.get_key(&vault.vault_uri, "fresh").await.unwrap(),
        created
    );
    assert_eq!(fresh.len(), 32);

    // The adapter never disables a key's latest version (checked in Key Vault).
    let uri = format!("{}keys/two", vault.vault_uri);
    assert!(matches!(
        azure.disable_key_version(&uri, &v2).await.unwrap(),
        DisableOutcome::Kept(why) if why.contains("latest")
    ));
    assert_eq!(sim.count("KeyVault_UpdateKey"), 0);
    // An earlier version is disabled, once.
    let KeyFacts::Present { version: v3, .. } = azure
        .create_key(&vault.vault_uri, "two", KeyType::Rsa, 3072)
        .await
        .unwrap()
    else {
        panic!("new version")
    };
    assert_eq!(
        azure.disable_key_version(&uri, &v2).await.unwrap(),
        DisableOutcome::Disabled
    );
    assert_eq!(
        azure.disable_key_version(&uri, &v2).await.unwrap(),
        DisableOutcome::AlreadyDisabled
    );
    assert_eq!(sim.count_status("KeyVault_UpdateKey", 200), 1);
    // A person disables the latest version: get_key still reports it, disabled,
    // read from Key Vault's own answer (200, attributes.enabled false, as
    // recorded) without falling back to the version list.
    set_key_version_enabled(&sim, &uri, &v3, false).await;
    let listed = sim.count("KeyVault_GetKeyVersions");
    let KeyFacts::Present {
        version,
        enabled,
        key_type,
        created,
        ..
    } = azure.get_key(&vault.vault_uri, "two").await.unwrap()
    else {
        panic!("the key is there")
    };
    assert_eq!(
        (version, enabled, key_type.as_str()),
        (v3.clone(), false, "RSA")
    );
    assert!(created.is_some(), "Key Vault's attributes.created is read");
    assert_eq!(sim.count("KeyVault_GetKeyVersions"), listed);
    assert_eq!(sim.count_status("KeyVault_UpdateKey", 200), 2);
    // A key URI on another host never receives the Key Vault token.
    let err = azure
        .disable_key_version("https://evil.example.com/keys/two", &v2)
        .await
        .unwrap_err();
    assert!(matches!(err, AzureError::Rejected { .. }), "{err}");
}

#[tokio::test]
async fn provider_registration_and_identities() {
    let sim = start().await;
    let azure = adapter(&sim);
    let out = sim
        .seed(&Seed {
            identities: vec![uai("id-app")],
            providers: vec![SeedProvider {
                subscription_id: "11111111-0000-0000-0000-000000000000".into(),
                namespace: "Microsoft.DocumentDB".into(),
                registration_state: "NotRegistered".into(),
            }],
            ..Default::default()
        })
        .unwrap();
    assert!(azure.provider_registered(SUB).await.unwrap());
    assert!(
        !azure
            .provider_registered("11111111-0000-0000-0000-000000000000")
            .await
            .unwrap()
    );
    let principal = out["identities"][0]["principalId"].as_str().unwrap();
    assert_eq!(
        azure
            .user_assigned_principal(&identity_id("id-app"))
            .await
            .unwrap()
            .as_deref(),
        Some(principal)
    );
    assert_eq!(
        azure
            .user_assigned_principal(&identity_id("id-none"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn access_policy_grants_add_and_remove_only_their_entry() {
    let sim = start().await;
    let azure = adapter(&sim);
    let (_, _, operator) = sim.operator_credentials();
    let other = "aaaaaaaa-0000-4000-8000-000000000001";
    let mut vault = good_vault(&sim, "kv-ap", &[]);
    // Someone else's entry with more rights, which must survive.
    vault.properties["accessPolicies"]
        .as_array_mut()
        .unwrap()
        .push(json!({"tenantId": sim.tenant_id(), "objectId": other, "permissions": {"keys": ["get", "list"]}}));
    sim.seed(&Seed {
        vaults: vec![vault],
        ..Default::default()
    })
    .unwrap();
    let id = vault_id("kv-ap");
    let fp = first_party(&sim);
    let ask = vec![fp.clone(), operator.clone(), other.to_owned()];

    let before = azure
        .granted_principals(&id, PermissionModel::AccessPolicy, &ask)
        .await
        .unwrap();
    assert_eq!(before, vec![operator.clone()], "the operator has 'all'");
    let grant = azure
        .grant(&id, PermissionModel::AccessPolicy, &fp)
        .await
        .unwrap();
    assert_eq!(
        (
            grant.model,
            grant.principal_id.as_str(),
            grant.role_assignment_id.as_deref()
        ),
        (PermissionModel::AccessPolicy, fp.as_str(), None)
    );
    // Retried: still one entry's worth of access, nothing replaced.
    azure.grant(&id, PermissionModel::Auto, &fp).await.unwrap();
    let after = azure
        .granted_principals(&id, PermissionModel::Auto, &ask)
        .await
        .unwrap();
    assert_eq!(after, vec![fp.clone(), operator.clone()]);

    azure.revoke_grant(&id, &grant).await.unwrap();
    assert_eq!(
        azure
            .granted_principals(&id, PermissionModel::AccessPolicy, &ask)
            .await
            .unwrap(),
        vec![operator.clone()]
    );
    // The other principal's entry is untouched.
    let state = sim.state_json().to_string();
    assert!(state.contains(other), "other entry kept");
    assert_eq!(sim.count_status("Vaults_UpdateAccessPolicy", 200), 3);
    // Revoking again, or on a vanished vault, is fine.
    azure.revoke_grant(&id, &grant).await.unwrap();
    azure
        .revoke_grant(&vault_id("kv-gone"), &grant)
        .await
        .unwrap();

    // A person's entry (get, list) the operator adds to is marked found in
    // place, and is never removed or narrowed; nor when a record claims it.
    let added = azure
        .grant(&id, PermissionModel::AccessPolicy, other)
        .await
        .unwrap();
    assert!(added.entry_found, "{added:?}");
    let claimed = Grant {
        entry_found: false,
        ..added.clone()
    };
    for g in [&added, &claimed] {
        assert!(matches!(
            azure.revoke_grant(&id, g).await.unwrap(),
            RevokeOutcome::Kept(_)
        ));
    }
    let entry = sim.state_json().to_string();
    assert!(
        entry.contains("\"list\""),
        "the person's permissions are kept: {entry}"
    );
    assert_eq!(
        azure
            .granted_principals(&id, PermissionModel::AccessPolicy, &[other.to_owned()])
            .await
            .unwrap(),
        vec![other.to_owned()]
    );
}

#[tokio::test]
async fn rbac_grants_are_idempotent_role_assignments() {
    let sim = start().await;
    let azure = adapter(&sim);
    let out = sim
        .seed(&Seed {
            vaults: vec![rbac_vault("kv-rb")],
            identities: vec![uai("id-a"), uai("id-b")],
            ..Default::default()
        })
        .unwrap();
    let a = out["identities"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = out["identities"][1]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    // b already holds Crypto User at the resource group (a parent scope).
    sim.seed(&Seed {
        role_assignments: vec![SeedRoleAssignment {
            scope: format!("/subscriptions/{SUB}/resourceGroups/{RG}"),
            role_definition_id: "12338af0-0e69-4776-bea7-57ae8d297424".into(),
            principal_id: b.clone(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .unwrap();
    let id = vault_id("kv-rb");
    let ask = vec![a.clone(), b.clone()];
    assert_eq!(
        azure
            .granted_principals(&id, PermissionModel::Rbac, &ask)
            .await
            .unwrap(),
        vec![b.clone()]
    );

    let g1 = azure.grant(&id, PermissionModel::Rbac, &a).await.unwrap();
    let g2 = azure.grant(&id, PermissionModel::Auto, &a).await.unwrap();
    assert_eq!(g1, g2, "a retried grant PUTs the same assignment");
    let ra = g1.role_assignment_id.clone().unwrap();
    assert!(
        ra.to_ascii_lowercase()
            .starts_with(&id.to_ascii_lowercase()),
        "{ra}"
    );
    assert_eq!(sim.count_status("RoleAssignments_Create", 201), 1);
    assert_eq!(sim.count_status("RoleAssignments_Create", 200), 1);
    let body = sim.state_json().to_string();
    assert!(body.contains("ServicePrincipal"), "principalType sent");
    assert_eq!(
        azure
            .granted_principals(&id, PermissionModel::Auto, &ask)
            .await
            .unwrap(),
        vec![a.clone(), b.clone()]
    );

    assert_eq!(
        azure.revoke_grant(&id, &g1).await.unwrap(),
        RevokeOutcome::Removed
    );
    assert_eq!(
        azure
            .granted_principals(&id, PermissionModel::Rbac, &ask)
            .await
            .unwrap(),
        vec![b.clone()]
    );
    // Already gone: read first, nothing to delete.
    assert_eq!(
        azure.revoke_grant(&id, &g1).await.unwrap(),
        RevokeOutcome::AlreadyGone
    );
    assert_eq!(sim.count("RoleAssignments_Delete"), 1);
}

#[tokio::test]
async fn account_lifecycle_create_update_delete() {
    let sim = start().await;
    let azure = adapter(&sim);
    let fp = first_party(&sim);
    let key_uri = seed_vault_and_key(&sim, good_vault(&sim, "kv-acct", &[&fp]), "cmk");
    let out = sim
        .seed(&Seed {
            identities: vec![uai("id-acct")],
            ..Default::default()
        })
        .unwrap();
    let uai_principal = out["identities"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-acct", &[&fp, &uai_principal])],
        ..Default::default()
    })
    .unwrap();
    let target = account("acct-life");
    assert_eq!(azure.get_account(&target).await.unwrap(), None);

    // A versioned URI is sent versionless (the account follows new versions).
    let vault_uri = sim.vault_uri("kv-acct").unwrap();
    let KeyFacts::Present { version, .. } = azure.get_key(&vault_uri, "cmk").await.unwrap() else {
        panic!("key expected")
    };
    sim.reset_counters();
    let op = azure
        .create_account(&new_account("acct-life", &format!("{key_uri}/{version}")))
        .await
        .unwrap();
    assert_eq!(op.kind.as_str(), "CreateAccount");
    assert!(op.poll_url.contains("operationsStatus"), "{}", op.poll_url);
    let mid = azure.get_account(&target).await.unwrap().unwrap();
    assert_ne!(mid.provisioning_state, "Succeeded");
    assert_eq!(finish(&azure, &op).await, OperationState::Succeeded);
    let acct = azure.get_account(&target).await.unwrap().unwrap();
    assert_eq!(acct.provisioning_state, "Succeeded");
    assert_eq!(acct.key_vault_key_uri.as_deref(), Some(key_uri.as_str()));
    assert_eq!(acct.default_identity.as_deref(), Some("FirstPartyIdentity"));
    assert_eq!(acct.key_version_in_use.as_ref().map(String::len), Some(32));
    assert!(acct.revoked.is_none());
    assert_eq!(
        acct.customer_managed_key_status.as_deref(),
        Some("Access to the configured customer managed key confirmed. ")
    );
    assert_eq!(sim.count("DatabaseAccounts_CreateOrUpdate"), 1);
    // The subscription-wide list (DatabaseAccounts_List) holds it too.
    let listed = azure.accounts_in_subscription(SUB).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].id.to_ascii_lowercase(),
        target.id().to_ascii_lowercase()
    );
    assert_eq!(sim.count("DatabaseAccounts_List"), 1);
    assert!(
        azure
            .accounts_in_subscription("00000000-0000-0000-0000-00000000ffff")
            .await
            .unwrap()
            .is_empty()
    );

    // Staged updates: system identity, then a user-assigned one (kept together),
    // then the default identity alone.
    let op = azure
        .update_account(&target, &AccountChange::EnableSystemIdentity)
        .await
        .unwrap();
    assert_eq!(finish(&azure, &op).await, OperationState::Succeeded);
    let acct = azure.get_account(&target).await.unwrap().unwrap();
    assert!(acct.system_principal_id.is_some());
    let op = azure
        .update_account(
            &target,
            &AccountChange::AddUserAssignedIdentity(identity_id("id-acct")),
        )
        .await
        .unwrap();
    assert_eq!(op.kind.as_str(), "AddUserAssignedIdentity");
    assert_eq!(finish(&azure, &op).await, OperationState::Succeeded);
    let acct = azure.get_account(&target).await.unwrap().unwrap();
    assert!(acct.system_principal_id.is_some(), "system identity kept");
    assert_eq!(acct.user_assigned_ids.len(), 1);
    let di = format!("UserAssignedIdentity={}", identity_id("id-acct"));
    let op = azure
        .update_account(&target, &AccountChange::SetDefaultIdentity(di.clone()))
        .await
        .unwrap();
    assert_eq!(finish(&azure, &op).await, OperationState::Succeeded);
    assert_eq!(
        azure
            .get_account(&target)
            .await
            .unwrap()
            .unwrap()
            .default_identity,
        Some(di)
    );

    // Key URI alone, to a second key in the same vault.
    sim.seed(&Seed {
        keys: vec![key("kv-acct", "cmk2")],
        ..Default::default()
    })
    .unwrap();
    let key2 = key_uri.replace("/cmk", "/cmk2");
    let op = azure
        .update_account(&target, &AccountChange::SetKeyUri(key2.clone()))
        .await
        .unwrap();
    assert_eq!(finish(&azure, &op).await, OperationState::Succeeded);
    assert_eq!(
        azure
            .get_account(&target)
            .await
            .unwrap()
            .unwrap()
            .key_vault_key_uri,
        Some(key2)
    );
    assert_eq!(
        sim.count("DatabaseAccounts_Update"),
        4,
        "one PATCH per change"
    );

    // Delete: 202 then gone; deleting again is a no-op.
    let op = azure
        .delete_account(&target)
        .await
        .unwrap()
        .expect("pending delete");
    assert_eq!(op.kind.as_str(), "DeleteAccount");
    assert_eq!(finish(&azure, &op).await, OperationState::Succeeded);
    assert_eq!(azure.get_account(&target).await.unwrap(), None);
    assert_eq!(azure.delete_account(&target).await.unwrap(), None);
}

#[tokio::test]
async fn continuous_backup_restore_and_failed_operations() {
    let sim = start().await;
    let azure = adapter(&sim);
    let out = sim
        .seed(&Seed {
            identities: vec![uai("id-cont")],
            ..Default::default()
        })
        .unwrap();
    let principal = out["identities"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_uri = seed_vault_and_key(&sim, good_vault(&sim, "kv-cont", &[&principal]), "cmk");
    let mut new = new_account("acct-cont", &key_uri);
    new.user_assigned_identity = Some(identity_id("id-cont"));
    new.default_identity = format!("UserAssignedIdentity={}", identity_id("id-cont"));
    new.backup = BackupPolicy {
        type_: BackupPolicyType::Continuous,
        continuous_tier: Some(ContinuousTier::Continuous7Days),
        ..Default::default()
    };
    let op = azure.create_account(&new).await.unwrap();
    assert_eq!(finish(&azure, &op).await, OperationState::Succeeded);
    let state = sim.state_json();
    let props = state.to_string();
    assert!(props.contains("Continuous7Days"), "tier sent");
    let acct = azure
        .get_account(&account("acct-cont"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acct.user_assigned_ids, vec![identity_id("id-cont")]);

    // Restore it to a point in its life.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let instance = state
        .pointer("/accounts")
        .and_then(|a| a.as_object())
        .and_then(|m| m.values().find(|a| a["name"] == "acct-cont"))
        .and_then(|a| a["instanceId"].as_str())
        .map(str::to_owned)
        .expect("instance id in state");
    let mut restored = new.clone();
    restored.account = account("acct-restored");
    restored.restore = Some(RestoreSource {
        source_account_id: Some(format!(
            "/subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/westus/restorableDatabaseAccounts/{instance}"
        )),
        timestamp: Some(jiff::Timestamp::now().to_string()),
    });
    let op = azure.create_account(&restored).await.unwrap();
    assert_eq!(finish(&azure, &op).await, OperationState::Succeeded);
    assert!(
        azure
            .get_account(&account("acct-restored"))
            .await
            .unwrap()
            .is_some()
    );

    // An LRO that fails inside Azure is reported as Failed with its error.
    sim.set_faults(cmk_operator::sim::FaultConfig {
        lro: Some(cmk_operator::sim::LroFault {
            mode: cmk_operator::sim::LroMode::Fail,
            count: Some(1),
        }),
        ..Default::default()
    });
    let op = azure
        .update_account(&account("acct-cont"), &AccountChange::EnableSystemIdentity)
        .await
        .unwrap();
    let OperationState::Failed(err) = finish(&azure, &op).await else {
        panic!("failed expected")
    };
    assert_eq!(err.code.as_deref(), Some("InternalServerError"));
    assert_eq!(err.operation, "EnableSystemIdentity");
}

#[tokio::test]
async fn revoked_account_is_reported_with_its_substatus() {
    let sim = start().await;
    let azure = adapter(&sim);
    let fp = first_party(&sim);
    let key_uri = seed_vault_and_key(&sim, good_vault(&sim, "kv-rev", &[&fp]), "cmk");
    let op = azure
        .create_account(&new_account("acct-rev", &key_uri))
        .await
        .unwrap();
    assert_eq!(finish(&azure, &op).await, OperationState::Succeeded);
    let acct = azure
        .get_account(&account("acct-rev"))
        .await
        .unwrap()
        .unwrap();
    let version = acct.key_version_in_use.unwrap();

    set_key_version_enabled(&sim, &key_uri, &version, false).await;
    let acct = azure
        .get_account(&account("acct-rev"))
        .await
        .unwrap()
        .unwrap();
    let revoked = acct.revoked.expect("revoked");
    assert_eq!(revoked.sub_status, Some(4002));
    assert!(
        acct.customer_managed_key_status
            .unwrap()
            .contains("revoked")
    );
    // Writes are refused with the CMK cause while revoked.
    let err = azure
        .update_account(&account("acct-rev"), &AccountChange::EnableSystemIdentity)
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(403), "{err}");
}
