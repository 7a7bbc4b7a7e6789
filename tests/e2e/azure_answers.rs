//! The operator on Azure's real answers, as the replayed recordings show them
//! (tests/sim/replay, docs/simulator.md "Replayed transcripts"): a disabled
//! key version read with 200 and `enabled: false`, a PATCH answered with the
//! account as it stood (`Updating`), accounts read while `Creating` or
//! `Updating`, a backup migration whose operation ends before or after the
//! reads show it, and a restore from the subscription-wide restorable list.

use std::time::Duration;

use cmk_operator::api::CosmosAccountCMK;
use cmk_operator::api::conditions::find;
use serde_json::{Value, json};

use crate::support::*;

const UPDATE: &str = "DatabaseAccounts_Update";

/// A user-assigned identity the example binding grants (events.rs uses it too).
const BILLING_ID: &str = "/subscriptions/00000000-0000-0000-0000-00000000c0de/resourceGroups/cmk-demo/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cmk-demo-billing-id";

fn ready_message(a: &CosmosAccountCMK) -> String {
    a.status
        .as_ref()
        .and_then(|s| find(&s.conditions, "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// `orders` Ready with `spec` merged into the example; its key URI and version.
async fn ready_orders(env: &Env, spec: Value) -> (String, String) {
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({ "spec": spec }))
        .await;
    let s = env.account_reason("orders", "Ready").await.status.unwrap();
    (s.key_vault_key_uri.unwrap(), s.key_version_in_use.unwrap())
}

/// The account as Azure reports it.
async fn in_azure(env: &Env, name: &str) -> Value {
    let (status, body) = env
        .arm(azure_core::Method::Get, &Env::account_path(name), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until `orders` is Ready with Azure showing what `check` wants.
async fn converged(env: &Env, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = env.accounts().get("orders").await.unwrap();
        let body = in_azure(env, "cmk-demo-orders").await;
        if ready_reason(&a).as_deref() == Some("Ready") && check(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "orders: no {what}; status {:?}; Azure {body}",
            a.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_no_azure_refusal(env: &Env, name: &str, a: &CosmosAccountCMK) {
    assert_eq!(
        env.sim.count_status(UPDATE, 412),
        0,
        "{name}: an update was sent while Azure held the account: {:?}",
        env.writes()
    );
    let s = a.status.as_ref().unwrap();
    assert!(
        s.last_azure_error.is_none(),
        "{name}: {:?}",
        s.last_azure_error
    );
}

/// Key Vault answers a disabled version's GET with 200 and
/// `attributes.enabled: false` (azure-cli test_keyvault_key.yaml, 2020). A
/// previous version someone already disabled is read as disabled: retired
/// without a second write, and the account stays Ready (no lost access).
/// Pins: `SdkAzure::version_enabled` reading `attributes.enabled`.
#[tokio::test]
async fn a_previous_version_someone_disabled_reads_as_disabled() {
    let env = Env::start("answers-disabled").await;
    let (key_uri, v1) = ready_orders(
        &env,
        json!({"rotation": {"disablePreviousVersion": true, "previousVersionGraceHours": 24}}),
    )
    .await;
    env.new_key_version(&key_uri).await;
    env.wait(&env.accounts(), "orders", "v1 retired", |a| {
        a.status.as_ref().is_some_and(|s| {
            s.retained_key_versions.iter().any(|r| r.version == v1)
                && s.key_version_in_use.as_deref() != Some(v1.as_str())
        })
    })
    .await;
    // A person disables it first; Key Vault still answers its GET with 200.
    env.set_key_version_enabled(&key_uri, &v1, false).await;
    let person = env.sim.arrived("KeyVault_UpdateKey");
    assert_eq!(person, 1, "{:?}", env.writes());

    env.settings.clock.advance(Duration::from_secs(25 * 3600));
    let a = env
        .wait(&env.accounts(), "orders", "v1 read as disabled", |a| {
            a.status.as_ref().is_some_and(|s| {
                s.retained_key_versions
                    .iter()
                    .any(|r| r.version == v1 && r.disabled)
            })
        })
        .await;
    assert_eq!(
        env.sim.arrived("KeyVault_UpdateKey"),
        person,
        "the disabled version was written again: {:?}",
        env.writes()
    );
    assert_eq!(env.sim.count_status("KeyVault_GetKey", 403), 0);
    assert_eq!(ready_reason(&a).as_deref(), Some("Ready"), "{:?}", a.status);
    assert_no_azure_refusal(&env, "orders", &a);
}

/// Azure answers a PATCH with the account as it stood, `Updating`
/// (azure-cli test_cosmosdb_managed_service_identity.yaml, 2022, five
/// answers). The operator waits for the operation: one write, no failure.
#[tokio::test]
async fn a_patch_answered_with_the_old_state_is_written_once() {
    let env = Env::start("answers-patch").await;
    ready_orders(&env, json!({})).await;
    env.sim.set_lro_duration(Duration::from_millis(1500));
    let before = env.sim.arrived(UPDATE);
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"backupPolicy": {"periodicIntervalMinutes": 60}}}),
    )
    .await;
    converged(&env, "60-minute backups", |b| {
        b["properties"]["backupPolicy"]["periodicModeProperties"]["backupIntervalInMinutes"] == 60
    })
    .await;
    assert_eq!(
        env.sim.arrived(UPDATE),
        before + 1,
        "one PATCH for one change: {:?}",
        env.writes()
    );
    let a = env.accounts().get("orders").await.unwrap();
    assert_no_azure_refusal(&env, "orders", &a);
}

/// Create answers `Creating` (every recording 2021–2024) and reads say so
/// until the operation ends; someone else's update reads `Updating`. An
/// adopted account is waited for in both states (a write then would meet
/// Azure's 412), then brought to the spec. Each state is held (a stalled
/// operation) until the operator has reported it, then released.
/// Pins: `account_stage`'s wait on any provisioning state but Succeeded/Failed.
#[tokio::test]
async fn accounts_azure_reports_creating_or_updating_are_waited_for() {
    let env = Env::start("answers-states").await;
    // `orders` has the first party granted on the vault the adopted account uses.
    let (key_uri, _) = ready_orders(&env, json!({})).await;
    stall_next_operation(&env);
    let body = json!({"location": "eastus", "kind": "GlobalDocumentDB", "properties": {
        "databaseAccountOfferType": "Standard",
        "locations": [{"locationName": "eastus", "failoverPriority": 0}],
        "keyVaultKeyUri": key_uri, "defaultIdentity": "FirstPartyIdentity"}});
    let (status, answer) = env
        .arm(
            azure_core::Method::Put,
            &Env::account_path("cmk-demo-legacy"),
            Some(body),
        )
        .await;
    assert_eq!(
        (status, answer["properties"]["provisioningState"].as_str()),
        (200, Some("Creating")),
        "{answer}"
    );
    env.apply_example("15-account-existing.yaml", json!({}))
        .await;
    env.wait(&env.accounts(), "legacy", "the wait on Creating", |a| {
        ready_message(a).contains("is Creating in Azure")
    })
    .await;
    assert_eq!(env.sim.release_stalled_operations(), 1);
    let a = env.account_reason("legacy", "Ready").await;
    // `orders`' create and the person's: none by the operator for `legacy`.
    assert_eq!(env.sim.arrived("DatabaseAccounts_CreateOrUpdate"), 2);
    assert_no_azure_refusal(&env, "legacy", &a);

    // Someone else's update holds the account; a spec change waits for it.
    // (Their PATCH keeps the owner tags: ARM replaces the whole tag map.)
    let mut tags = in_azure(&env, "cmk-demo-legacy").await["tags"].clone();
    tags["team"] = json!("someone-else");
    stall_next_operation(&env);
    let (status, answer) = env
        .arm(
            azure_core::Method::Patch,
            &Env::account_path("cmk-demo-legacy"),
            Some(json!({ "tags": tags })),
        )
        .await;
    assert_eq!(
        (status, answer["properties"]["provisioningState"].as_str()),
        (200, Some("Updating")),
        "{answer}"
    );
    let before = env.sim.arrived(UPDATE);
    env.apply_example(
        "15-account-existing.yaml",
        json!({"spec": {"backupPolicy": {"periodicIntervalMinutes": 60}}}),
    )
    .await;
    let a = env
        .wait(&env.accounts(), "legacy", "the wait on Updating", |a| {
            ready_message(a).contains("is Updating in Azure")
        })
        .await;
    assert_no_azure_refusal(&env, "legacy", &a);
    assert_eq!(env.sim.arrived(UPDATE), before, "{:?}", env.writes());
    assert_eq!(env.sim.release_stalled_operations(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let body = in_azure(&env, "cmk-demo-legacy").await;
        let p = &body["properties"]["backupPolicy"]["periodicModeProperties"];
        let a = env.accounts().get("legacy").await.unwrap();
        if p["backupIntervalInMinutes"] == 60 && ready_reason(&a).as_deref() == Some("Ready") {
            assert_no_azure_refusal(&env, "legacy", &a);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.sim.arrived(UPDATE), before + 1, "{:?}", env.writes());
}

/// The next long-running operation never ends until released.
fn stall_next_operation(env: &Env) {
    env.sim.set_faults(cmk_operator::sim::FaultConfig {
        lro: Some(cmk_operator::sim::LroFault {
            mode: cmk_operator::sim::LroMode::Stall,
            count: Some(1),
        }),
        ..Default::default()
    });
}

/// Periodic → continuous, then a tier change asked while the migration runs,
/// with Azure's migration ending `offset_ms` after its operation; done when
/// Azure shows the new tier and `orders` is Ready, with no update refused.
async fn migrate_then_change_tier(env: &Env, lro: Duration, offset_ms: i64) {
    ready_orders(
        env,
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentityId": BILLING_ID}}),
    )
    .await;
    env.sim.set_lro_duration(lro);
    env.sim.set_migration_offset(offset_ms);
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"identity": {"type": "UserAssigned", "userAssignedIdentityId": BILLING_ID},
            "backupPolicy": {"type": "Continuous", "continuousTier": "Continuous7Days"}}}),
    )
    .await;
    env.wait(&env.accounts(), "orders", "the migration started", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.pending_operation.is_some())
            || ready_reason(a).as_deref() == Some("MigratingToContinuousBackup")
    })
    .await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"identity": {"type": "UserAssigned", "userAssignedIdentityId": BILLING_ID},
            "backupPolicy": {"type": "Continuous", "continuousTier": "Continuous30Days"}}}),
    )
    .await;
    let body = converged(env, "Continuous30Days", |b| {
        b["properties"]["backupPolicy"]["continuousModeProperties"]["tier"] == "Continuous30Days"
    })
    .await;
    assert_eq!(body["properties"]["backupPolicy"]["type"], "Continuous");
    let a = env.accounts().get("orders").await.unwrap();
    assert_no_azure_refusal(env, "orders", &a);
}

/// The migration outlives its operation: the operation says Succeeded while
/// reads still show `migrationState` `InProgress`. The next change waits for
/// the reads, not the operation.
/// Pins: `account_stage`'s wait on `backup.migrating`.
#[tokio::test]
async fn a_migration_that_outlives_its_operation_is_waited_for() {
    let env = Env::start("answers-migrate-long").await;
    migrate_then_change_tier(&env, Duration::from_millis(200), 3000).await;
    let reasons = env.event_reasons("orders").await;
    assert!(
        reasons.iter().any(|r| r == "UpdatingBackupPolicy"),
        "{reasons:?}"
    );
}

/// The reads show `Continuous` while the operation still runs (the recorded
/// order reversed): the next change waits for the operation.
#[tokio::test]
async fn a_migration_whose_reads_finish_first_waits_for_its_operation() {
    let env = Env::start("answers-migrate-short").await;
    migrate_then_change_tier(&env, Duration::from_secs(3), -2500).await;
}

/// `az cosmosdb restore` finds its source in the subscription-wide
/// restorable list (RestorableDatabaseAccounts_List). A restore whose
/// `sourceAccountId` is taken from that list, between the item's
/// `oldestRestorableTime` and now, becomes Ready. The operator itself reads
/// the named source by its id (RestorableDatabaseAccounts_GetByLocation):
/// one item, not the subscription's list.
#[tokio::test]
async fn a_restore_from_the_subscription_wide_restorable_list() {
    let env = Env::start("answers-restore").await;
    restore_from_the_list(&env, false).await;
}

/// The same for a source deleted before the restore (the list gives its
/// `deletionTime`; the restore time lies before it).
#[tokio::test]
async fn a_restore_of_a_deleted_account_from_the_restorable_list() {
    let env = Env::start("answers-restore-deleted").await;
    restore_from_the_list(&env, true).await;
}

async fn restore_from_the_list(env: &Env, deleted: bool) {
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "13-account-continuous-backup.yaml",
        json!({"spec": {"deletionPolicy": "Delete"}}),
    )
    .await;
    env.account_reason("ledger", "Ready").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let when = jiff::Timestamp::now();
    if deleted {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        env.accounts()
            .delete("ledger", &Default::default())
            .await
            .expect("deleted");
        env.wait_gone("ledger").await;
        assert!(!env.account_exists("cmk-demo-ledger").await);
    }
    let (status, list) = env
        .arm(
            azure_core::Method::Get,
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.DocumentDB/restorableDatabaseAccounts?api-version=2025-10-15"
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let item = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["properties"]["accountName"] == "cmk-demo-ledger")
        .unwrap_or_else(|| panic!("the source is listed: {list}"))
        .clone();
    let time = |field: &str| -> Option<jiff::Timestamp> {
        item["properties"][field]
            .as_str()
            .and_then(|t| t.parse().ok())
    };
    let oldest = time("oldestRestorableTime").unwrap_or_else(|| panic!("{item}"));
    assert!(oldest <= when, "{item}");
    match time("deletionTime") {
        Some(gone) => assert!(deleted && when < gone, "{item}"),
        None => assert!(!deleted, "a deleted source lists its deletionTime: {item}"),
    }
    let source = item["id"].as_str().unwrap();
    let by_id = env.sim.arrived("RestorableDatabaseAccounts_GetByLocation");
    env.apply_example(
        "14-account-restore.yaml",
        json!({"spec": {"restore": {"sourceAccountId": source,
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}}}),
    )
    .await;
    let restored = env.account_reason("ledger-restored", "Ready").await;
    let body = in_azure(env, "cmk-demo-ledger-restored").await;
    assert_eq!(body["properties"]["createMode"], "Restore");
    assert_eq!(
        body["properties"]["restoreParameters"]["restoreSource"]
            .as_str()
            .map(str::to_ascii_lowercase),
        Some(source.to_ascii_lowercase())
    );
    assert!(env.sim.arrived("RestorableDatabaseAccounts_GetByLocation") > by_id);
    assert!(
        restored
            .status
            .as_ref()
            .is_some_and(|s| s.last_azure_error.is_none())
    );
}
