//! The identity scenarios of the seed: first party, system-assigned (the
//! two-step), user-assigned on an RBAC vault, continuous backup, restore.

use std::time::Duration;

use cmk_operator::api::conditions::find;
use cmk_operator::api::{CosmosAccountCMK, PermissionModel, Phase};
use cmk_operator::azure::AzurePort;
use serde_json::json;

use crate::support::*;

const STAGES: [&str; 5] = [
    "VaultReady",
    "IdentityGranted",
    "AccountCreated",
    "RotationTracked",
    "Ready",
];

fn assert_all_stages_true(a: &CosmosAccountCMK) {
    let s = a.status.as_ref().expect("status");
    for stage in STAGES {
        let c = find(&s.conditions, stage).unwrap_or_else(|| panic!("{stage} missing"));
        assert_eq!(c.status, "True", "{stage}: {}", c.message);
        assert_eq!(
            c.observed_generation, a.metadata.generation,
            "{stage} describes this generation"
        );
    }
    assert_eq!(s.observed_generation, a.metadata.generation);
}

#[tokio::test]
async fn first_party_account_on_an_access_policy_vault() {
    let env = Env::start("first-party").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    let binding = env.binding_reason("orders-key", "KeyReady").await;
    let account = env.account_reason("orders", "Ready").await;
    assert_all_stages_true(&account);

    let s = account.status.clone().unwrap();
    let b = binding.status.unwrap();
    assert_eq!(b.permission_model, Some(PermissionModel::AccessPolicy));
    assert!(b.key_created_by_operator);
    assert_eq!(s.phase, Phase::Ready);
    assert_eq!(
        s.key_vault_key_uri, b.key_uri,
        "the account holds the versionless key URI, read back from Azure"
    );
    assert_eq!(s.key_version_in_use, b.key_version);
    assert_eq!(s.default_identity.as_deref(), Some("FirstPartyIdentity"));
    assert!(s.created_by_operator);
    assert_eq!(
        env.calls("DatabaseAccounts_CreateOrUpdate"),
        1,
        "one create"
    );
    assert_eq!(env.calls("Vaults_UpdateAccessPolicy"), 1, "one grant");

    let events = env.event_reasons("orders").await;
    for reason in ["GrantedKeyAccess", "CreatingAccount", "Ready"] {
        assert!(
            events.contains(&reason.to_owned()),
            "event {reason} in {events:?}"
        );
    }

    // Steady state: several resyncs later, no Azure write and no status write.
    let writes = env.writes().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        env.writes().len(),
        writes,
        "no Azure write at steady state: {:?}",
        env.writes()
    );
    let again = env.accounts().get("orders").await.unwrap();
    assert_eq!(
        again.metadata.resource_version, account.metadata.resource_version,
        "no status write at steady state"
    );
}

#[tokio::test]
async fn accounts_applied_together_share_one_grant() {
    let env = Env::start("shared-grant").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    // More accounts than workers, all waiting on the binding: they reach the
    // grant check together and one of them grants for all.
    let names: Vec<String> = (0..6).map(|i| format!("shared-{i}")).collect();
    for name in &names {
        env.apply_example(
            "10-account-first-party.yaml",
            json!({"metadata": {"name": name}, "spec": {"accountName": format!("cmk-demo-{name}")}}),
        )
        .await;
    }
    for name in &names {
        env.account_reason(name, "Ready").await;
    }
    assert_eq!(env.calls("DatabaseAccounts_CreateOrUpdate"), 6);
    assert_eq!(
        env.calls("Vaults_UpdateAccessPolicy"),
        1,
        "the first party's grant is written once for all six accounts"
    );
}

#[tokio::test]
async fn system_assigned_identity_takes_the_two_step() {
    let env = Env::start("system").await;
    // removeFirstPartyGrant acts only where the vault's binding opts in.
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"grantRemoval": "RemoveWhenUnused"}}),
    )
    .await;
    env.apply_example("11-account-system-assigned.yaml", json!({}))
        .await;
    let account = env.account_reason("inventory", "Ready").await;
    assert_all_stages_true(&account);
    let s = account.status.unwrap();
    let first_party = env.settings.first_party_principal.clone();
    assert_eq!(
        s.default_identity.as_deref(),
        Some("SystemAssignedIdentity")
    );
    let principal = s.identity_principal_id.clone().expect("system principal");
    assert_ne!(principal, first_party);
    assert!(
        s.grants.iter().all(|g| g.principal_id != first_party),
        "the first-party grant was dropped"
    );

    let vault = env
        .bindings()
        .get("orders-key")
        .await
        .unwrap()
        .spec
        .vault_resource_id;
    // Judged by the simulator's own rule, not by the adapter under test.
    assert!(
        env.sim.holds_key_access(&vault, &principal)
            && !env.sim.holds_key_access(&vault, &first_party),
        "only the account's own identity keeps access"
    );
    let events = env.event_reasons("inventory").await;
    for reason in [
        "CreatingAccount",
        "EnablingSystemIdentity",
        "SettingDefaultIdentity",
        "RemovedKeyAccess",
    ] {
        assert!(
            events.contains(&reason.to_owned()),
            "event {reason} in {events:?}"
        );
    }
}

#[tokio::test]
async fn user_assigned_identity_on_an_rbac_vault() {
    let env = Env::start("user").await;
    env.apply_example("01-binding-rbac.yaml", json!({})).await;
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    let binding = env.binding_reason("billing-key", "KeyReady").await;
    assert_eq!(
        binding.status.unwrap().permission_model,
        Some(PermissionModel::Rbac)
    );
    let account = env.account_reason("billing", "Ready").await;
    assert_all_stages_true(&account);
    let s = account.status.unwrap();
    let id = account
        .spec
        .identity
        .user_assigned_identity_id
        .clone()
        .unwrap();
    assert_eq!(
        s.default_identity,
        Some(format!("UserAssignedIdentity={id}"))
    );
    assert_eq!(env.calls("RoleAssignments_Create"), 1);
    assert_eq!(
        env.calls("Vaults_UpdateAccessPolicy"),
        0,
        "an RBAC vault gets no access policy"
    );
    assert!(s.grants[0].role_assignment_id.is_some());
}

#[tokio::test]
async fn continuous_backup_then_restore_to_a_new_account() {
    let env = Env::start("restore").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("13-account-continuous-backup.yaml", json!({}))
        .await;
    env.account_reason("ledger", "Ready").await;
    let (status, source) = env
        .arm(
            azure_core::Method::Get,
            &Env::account_path("cmk-demo-ledger"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(source["properties"]["backupPolicy"]["type"], "Continuous");
    let instance = source["properties"]["instanceId"]
        .as_str()
        .expect("instanceId")
        .to_owned();

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let when = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let restorable = format!(
        "/subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/eastus/restorableDatabaseAccounts/{instance}"
    );
    env.apply_example(
        "14-account-restore.yaml",
        json!({"spec": {"restore": {"sourceAccountId": restorable, "timestamp": when}}}),
    )
    .await;
    let restored = env.account_reason("ledger-restored", "Ready").await;
    assert_all_stages_true(&restored);
    let (status, body) = env
        .arm(
            azure_core::Method::Get,
            &Env::account_path("cmk-demo-ledger-restored"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["properties"]["createMode"], "Restore");
}

#[tokio::test]
async fn a_doomed_restore_is_refused_before_it_starts() {
    let env = Env::start("restore-guard").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("13-account-continuous-backup.yaml", json!({}))
        .await;
    let ledger = env.account_reason("ledger", "Ready").await;
    let v1 = ledger.status.unwrap().key_version_in_use.unwrap();
    let (restorable, when) = env.restore_point("cmk-demo-ledger").await;
    let restore = json!({"sourceAccountId": restorable, "timestamp": when});

    // The source's own identity: the seed's last FAQ.
    let source_identity = format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cmk-demo-ledger-id"
    );
    env.apply_example(
        "14-account-restore.yaml",
        json!({"spec": {"restore": restore, "identity": {"userAssignedIdentityId": source_identity}}}),
    )
    .await;
    env.account_reason("ledger-restored", "RestoreReusesSourceIdentity")
        .await;

    // The key version the source used at that time is disabled after a rotation.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let key_uri = env
        .bindings()
        .get("orders-key")
        .await
        .unwrap()
        .status
        .unwrap()
        .key_uri
        .unwrap();
    let vault_uri = format!("{}/", key_uri.rsplit_once("/keys/").unwrap().0);
    env.backdoor()
        .create_key(
            &vault_uri,
            "cosmos-orders",
            cmk_operator::api::KeyType::Rsa,
            3072,
        )
        .await
        .unwrap();
    env.wait(&env.accounts(), "ledger", "v1 retired", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.retained_key_versions.iter().any(|r| r.version == v1))
    })
    .await;
    env.set_key_version_enabled(&key_uri, &v1, false).await;
    env.apply_example(
        "14-account-restore.yaml",
        json!({"metadata": {"name": "ledger-restored-2"}, "spec": {"accountName": "cmk-demo-ledger-restored-2", "restore": restore}}),
    )
    .await;
    let refused = env
        .account_reason("ledger-restored-2", "RestoreKeyVersionDisabled")
        .await;
    let msg = find(&refused.status.unwrap().conditions, "Ready")
        .unwrap()
        .message
        .clone();
    assert!(msg.contains(&v1), "{msg}");
    assert_eq!(
        env.calls("DatabaseAccounts_CreateOrUpdate"),
        1,
        "no restore was started: {:?}",
        env.writes()
    );

    // Re-enabled, the restore goes ahead.
    env.set_key_version_enabled(&key_uri, &v1, true).await;
    env.account_reason("ledger-restored-2", "Ready").await;
}
