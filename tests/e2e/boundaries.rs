//! Safety at the boundaries real platforms have: two clusters syncing one
//! manifest, a resource re-created or restored with a new uid, the deleted
//! accounts Azure remembers, a central vault serving other subscriptions, a
//! status anyone may patch, a restore from a source made outside the cluster.
//! Each test names the guard (a rule in `reconcile::destructive` or its facts)
//! it pins: with that guard removed, the test fails.

use cmk_operator::api::PermissionModel;
use cmk_operator::api::conditions::find;
use cmk_operator::azure::AzurePort;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::support::*;

const DELETE: &str = "Delete";

async fn delete_now(env: &Env, name: &str) {
    env.accounts()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

/// The example binding, opted in to removing unused grants: its vault's id.
async fn opted_in_binding(env: &Env) -> String {
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"grantRemoval": "RemoveWhenUnused"}}),
    )
    .await;
    let binding = env.bindings().get("orders-key").await.unwrap();
    binding.spec.vault_resource_id
}

/// Judged by the simulator's own rule, not by the adapter under test.
async fn holds_access(env: &Env, vault: &str, principal: &str) -> bool {
    env.sim.holds_key_access(vault, principal)
}

/// The example binding and `orders` (first party, disabling previous
/// versions) Ready: the key URI and the version in use.
async fn ready_orders_disabling_previous_versions(env: &Env) -> (String, String) {
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"rotation": {"disablePreviousVersion": true}}}),
    )
    .await;
    let a = env.account_reason("orders", "Ready").await;
    let s = a.status.unwrap();
    (s.key_vault_key_uri.unwrap(), s.key_version_in_use.unwrap())
}

/// Waits until `orders` moved off `v1` and keeps it as retained.
async fn retired(env: &Env, v1: &str) -> cmk_operator::api::CosmosAccountCMK {
    env.wait(&env.accounts(), "orders", "v1 retired", |a| {
        a.status.as_ref().is_some_and(|s| {
            s.retained_key_versions.iter().any(|r| r.version == v1)
                && s.key_version_in_use.as_deref() != Some(v1)
        })
    })
    .await
}

fn ready_message(a: &cmk_operator::api::CosmosAccountCMK) -> String {
    a.status
        .as_ref()
        .and_then(|s| find(&s.conditions, "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// An ApplicationSet syncing one `CosmosAccountCMK` (policy Delete) into a
/// second cluster: that cluster's operator never writes to the account and
/// decommissioning it never deletes what the first cluster serves.
/// Pins: `ownership::classify`'s cluster comparison (`OtherCluster`) and
/// `destructive::account_deletion`'s `NotOurs`.
#[tokio::test]
async fn the_same_manifest_in_a_second_cluster_never_writes_or_deletes_the_account() {
    let mut env = Env::start("two-clusters").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": DELETE}}),
    )
    .await;
    env.account_reason("orders", "Ready").await;
    let writes =
        env.calls("DatabaseAccounts_Update") + env.calls("DatabaseAccounts_CreateOrUpdate");

    // The same objects, seen by the second cluster's operator.
    env.stop_operator().await;
    env.settings.cluster_id = "e2e-west".into();
    env.start_operator();
    let seen = env.account_reason("orders", "OwnedByAnotherCluster").await;
    assert!(
        ready_message(&seen).contains("cluster e2e"),
        "{}",
        ready_message(&seen)
    );

    delete_now(&env, "orders").await;
    env.wait_gone("orders").await;
    assert!(
        env.event_reasons("orders")
            .await
            .contains(&"AccountNotDeleted".to_owned())
    );
    assert!(
        env.account_exists("cmk-demo-orders").await,
        "the account survived"
    );
    assert_eq!(env.calls("DatabaseAccounts_Delete"), 0);
    assert_eq!(
        env.calls("DatabaseAccounts_Update") + env.calls("DatabaseAccounts_CreateOrUpdate"),
        writes,
        "no write from the second cluster: {:?}",
        env.writes()
    );
}

/// A resource deleted with Retain and applied again (or restored by Velero)
/// has a new uid: it manages the account, but its Delete policy waits until
/// the owner is confirmed with the uid the tags name.
/// Pins: `destructive::account_deletion`'s uid comparison (`MineUnconfirmed`).
#[tokio::test]
async fn a_resource_with_a_new_uid_deletes_its_account_only_after_confirming() {
    let env = Env::start("new-uid").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    let first = env.account_reason("orders", "Ready").await;
    let old_uid = first.uid().unwrap();
    delete_now(&env, "orders").await;
    env.wait_gone("orders").await;

    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": DELETE}}),
    )
    .await;
    let again = env
        .wait(&env.accounts(), "orders", "Ready with the new uid", |a| {
            ready_reason(a).as_deref() == Some("Ready") && a.uid() != Some(old_uid.clone())
        })
        .await;
    assert!(
        ready_message(&again).contains(&format!("cosmoscmk.io/confirm-owner={old_uid}")),
        "Ready says how to confirm: {}",
        ready_message(&again)
    );

    delete_now(&env, "orders").await;
    let blocked = env.account_reason("orders", "DeletionBlocked").await;
    assert!(
        ready_message(&blocked).contains(&old_uid),
        "{}",
        ready_message(&blocked)
    );
    assert!(env.account_exists("cmk-demo-orders").await);
    assert_eq!(
        env.calls("DatabaseAccounts_Delete"),
        0,
        "{:?}",
        env.writes()
    );

    env.accounts()
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"cosmoscmk.io/confirm-owner": old_uid}}}),
            ),
        )
        .await
        .unwrap();
    env.wait_gone("orders").await;
    assert_eq!(env.calls("DatabaseAccounts_Delete"), 1);
    assert!(!env.account_exists("cmk-demo-orders").await);
}

/// A resource re-applied from Git without its status, after its account was
/// deleted: Azure still remembers (and can restore) the deleted account, so
/// nothing empty is created under its name until the user asks.
/// Pins: `destructive::account_creation`'s restorable-deleted check.
#[tokio::test]
async fn an_account_azure_can_restore_is_not_recreated_empty_after_status_is_lost() {
    let env = Env::start("status-lost").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "13-account-continuous-backup.yaml",
        json!({"spec": {"deletionPolicy": DELETE}}),
    )
    .await;
    env.account_reason("ledger", "Ready").await;
    delete_now(&env, "ledger").await;
    env.wait_gone("ledger").await;
    assert!(!env.account_exists("cmk-demo-ledger").await);
    let creates = env.calls("DatabaseAccounts_CreateOrUpdate");

    env.apply_example("13-account-continuous-backup.yaml", json!({}))
        .await;
    let missing = env.account_reason("ledger", "AccountMissing").await;
    assert!(
        ready_message(&missing).contains("Azure can still restore it"),
        "{}",
        ready_message(&missing)
    );
    assert_eq!(
        env.calls("DatabaseAccounts_CreateOrUpdate"),
        creates,
        "not re-created"
    );

    env.accounts()
        .patch(
            "ledger",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"cosmoscmk.io/recreate-account": "1"}}}),
            ),
        )
        .await
        .unwrap();
    env.account_reason("ledger", "Ready").await;
    assert_eq!(env.calls("DatabaseAccounts_CreateOrUpdate"), creates + 1);
}

/// A central vault: the first-party grant serves every first-party account of
/// the tenant on it. Deleting our account keeps it by default; with the
/// binding's opt-in it is still kept while an account in a third
/// subscription uses it, and goes once nothing does.
/// Pins: `destructive::grant_removal`'s opt-in, and its Azure check across
/// every subscription the operator can read (`Subscriptions_List`); events
/// never name an account outside the namespace's scopes.
#[tokio::test]
async fn a_central_vaults_first_party_grant_is_kept_unless_opted_in_and_unused_everywhere() {
    const THIRD: &str = "00000000-0000-0000-0000-0000000000d3";
    let env = Env::start("central-vault").await;
    let fp = env.settings.first_party_principal.clone();
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    let vault = env
        .bindings()
        .get("orders-key")
        .await
        .unwrap()
        .spec
        .vault_resource_id;
    let delete = json!({"spec": {"deletionPolicy": DELETE}});

    // The default keeps it.
    env.apply_example("10-account-first-party.yaml", delete.clone())
        .await;
    env.account_reason("orders", "Ready").await;
    delete_now(&env, "orders").await;
    env.wait_gone("orders").await;
    assert!(holds_access(&env, &vault, &fp).await, "kept by default");
    assert!(
        env.event_reasons("orders")
            .await
            .contains(&"GrantKept".to_owned())
    );

    // Opted in (a fresh world, so the operator makes the grant again), but a
    // first-party account in a third subscription uses the vault.
    drop(env);
    let env = Env::start("central-vault-2").await;
    assert_eq!(opted_in_binding(&env).await, vault);
    env.apply_example("10-account-first-party.yaml", delete)
        .await;
    let a = env.account_reason("orders", "Ready").await;
    let key_uri = a.status.unwrap().key_vault_key_uri.unwrap();
    env.create_foreign_account_in(
        THIRD,
        "cmk-demo-third",
        &key_uri,
        Default::default(),
        Default::default(),
    )
    .await;
    let policy_writes = env.calls("Vaults_UpdateAccessPolicy");
    delete_now(&env, "orders").await;
    env.wait_gone("orders").await;
    assert!(
        holds_access(&env, &vault, &fp).await,
        "an account in a third subscription uses it: {:?}",
        env.writes()
    );
    assert_eq!(
        env.calls("Vaults_UpdateAccessPolicy"),
        policy_writes,
        "{:?}",
        env.writes()
    );
    // The event says why, without naming an account outside the namespace's scopes.
    let notes = env.event_notes("orders").await;
    assert!(
        notes.iter().any(|n| n.starts_with("GrantKept")
            && n.contains("an account outside this namespace's tenancy scopes")
            && !n.contains(THIRD)),
        "{notes:?}"
    );
}

/// A status patch that adds a grant on a vault outside the namespace's
/// tenancy scopes (another team's): even with a binding here that names that
/// vault and opts in, the grant is never removed.
/// Pins: `destructive::grant_removal`'s tenancy check of the grant's vault.
#[tokio::test]
async fn a_status_patch_cannot_aim_a_grant_removal_at_another_teams_vault() {
    let mut env = Env::start("status-vault").await;
    let fp = env.settings.first_party_principal.clone();
    let ours = opted_in_binding(&env).await;
    // The other team's vault, which already serves the first party.
    let theirs = ours.replace("cmk-demo-policies", "cmk-demo-rbac");
    let account = format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/cmk-demo-orders"
    );
    env.stop_operator().await;
    env.settings.tenancy = allow_namespace(&env.ns, &[&ours, &account]).into();
    env.start_operator();
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": DELETE}}),
    )
    .await;
    let a = env.account_reason("orders", "Ready").await;
    // A binding here names their vault and opts in; it is refused, never Ready.
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"metadata": {"name": "their-key"}, "spec": {"vaultResourceId": theirs, "grantRemoval": "RemoveWhenUnused"}}),
    )
    .await;
    env.binding_reason("their-key", "NamespaceNotAllowed").await;
    // Their grant, exactly as the operator would have made and recorded it
    // (so only the tenancy check, not the adapter's re-read, can keep it).
    let theirs_grant = env
        .backdoor()
        .grant(&theirs, PermissionModel::Rbac, &fp)
        .await
        .expect("their vault grants the first party");
    assert!(holds_access(&env, &theirs, &fp).await);

    let mut grants = serde_json::to_value(&a.status.unwrap().grants).unwrap();
    grants
        .as_array_mut()
        .unwrap()
        .push(serde_json::to_value(&theirs_grant).unwrap());
    env.accounts()
        .patch_status(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"grants": grants}})),
        )
        .await
        .unwrap();
    delete_now(&env, "orders").await;
    env.wait_gone("orders").await;
    assert_eq!(
        env.calls("RoleAssignments_Delete"),
        0,
        "{:?} {:?}",
        env.writes(),
        env.event_notes("orders").await
    );
    assert!(
        holds_access(&env, &theirs, &fp).await,
        "their grant survives"
    );
}

/// A restore whose source was made outside the cluster (here: its resource
/// deleted with Retain, so only Azure knows it) is still refused when it
/// would reuse the source's user-assigned identity.
/// Pins: the restore facts' Azure lookup of a source no resource names.
#[tokio::test]
async fn a_restore_from_a_source_outside_the_cluster_checks_its_identity() {
    let env = Env::start("outside-source").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("13-account-continuous-backup.yaml", json!({}))
        .await;
    env.account_reason("ledger", "Ready").await;
    delete_now(&env, "ledger").await;
    env.wait_gone("ledger").await;
    assert!(
        env.account_exists("cmk-demo-ledger").await,
        "Retain left it"
    );
    let (restorable, when) = env.restore_point("cmk-demo-ledger").await;
    let source_identity = format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cmk-demo-ledger-id"
    );
    env.apply_example(
        "14-account-restore.yaml",
        json!({"spec": {"restore": {"sourceAccountId": restorable, "timestamp": when}, "identity": {"userAssignedIdentityId": source_identity}}}),
    )
    .await;
    env.account_reason("ledger-restored", "RestoreReusesSourceIdentity")
        .await;
    assert_eq!(
        env.calls("DatabaseAccounts_CreateOrUpdate"),
        1,
        "{:?}",
        env.writes()
    );
}

/// Backups Azure keeps longer than the spec says: an account outside the
/// cluster on the same key keeps 720 h of periodic backups, while this
/// resource's spec keeps 8 h. A version it retires is kept for 720 h (the
/// longest window Azure shows on the key), then disabled.
/// Pins: `destructive::version_disable`'s windows read from Azure.
#[tokio::test]
async fn a_version_is_kept_for_the_longest_backup_window_azure_shows_on_its_key() {
    let env = Env::start("long-window").await;
    let (key_uri, v1) = ready_orders_disabling_previous_versions(&env).await;
    let long = cmk_operator::api::BackupPolicy {
        periodic_retention_hours: Some(720),
        ..Default::default()
    };
    env.create_foreign_account_in(SUB, "cmk-demo-longkeep", &key_uri, Default::default(), long)
        .await;
    env.new_key_version(&key_uri).await;
    retired(&env, &v1).await;

    // Past the spec's 8 h and the 24 h grace: kept for Azure's 720 h.
    env.settings
        .clock
        .advance(std::time::Duration::from_secs(25 * 3600));
    let kept = env
        .wait(&env.accounts(), "orders", "v1 kept for 720 h", |a| {
            a.status.as_ref().is_some_and(|s| {
                s.retained_key_versions.iter().any(|r| {
                    r.version == v1
                        && r.kept_because
                            .as_deref()
                            .is_some_and(|k| k.contains("720 h"))
                })
            })
        })
        .await;
    assert_eq!(env.calls("KeyVault_UpdateKey"), 0, "{:?}", kept.status);

    // Past 720 h: disabled.
    env.settings
        .clock
        .advance(std::time::Duration::from_secs(700 * 3600));
    env.wait(&env.accounts(), "orders", "v1 disabled", |a| {
        a.status.as_ref().is_some_and(|s| {
            s.retained_key_versions
                .iter()
                .any(|r| r.version == v1 && r.disabled)
        })
    })
    .await;
    assert_eq!(env.calls("KeyVault_UpdateKey"), 1);
}

/// A resource of the cluster that needs the first party on the vault but has
/// no account in Azure yet (here: observe-only, waiting for an account someone
/// else will make) keeps the grant when another resource is deleted, though
/// Azure shows nothing using it.
/// Pins: `destructive::grant_removal`'s check of the cluster's own resources.
#[tokio::test]
async fn a_grant_a_resource_of_the_cluster_still_needs_is_kept() {
    let env = Env::start("peer-needs").await;
    let fp = env.settings.first_party_principal.clone();
    let vault = opted_in_binding(&env).await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": DELETE}}),
    )
    .await;
    env.account_reason("orders", "Ready").await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"metadata": {"name": "orders-planned"}, "spec": {"accountName": "cmk-demo-orders-planned", "reconcilePolicy": "ObserveOnly"}}),
    )
    .await;
    env.account_reason("orders-planned", "AccountMissing").await;
    delete_now(&env, "orders").await;
    env.wait_gone("orders").await;
    assert!(holds_access(&env, &vault, &fp).await, "{:?}", env.writes());
    let notes = env.event_notes("orders").await;
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("GrantKept") && n.contains("another resource of this cluster")),
        "{notes:?}"
    );
}

/// A status patch that moves a retired version's times into the past cannot
/// get it disabled early: the version counts as retired no earlier than Key
/// Vault created the key's newer version.
/// Pins: `destructive::version_disable`'s floor at the latest version's
/// creation time (`latest_created`).
#[tokio::test]
async fn a_status_patch_cannot_hurry_a_version_past_its_grace_period() {
    let env = Env::start("status-retired").await;
    let (key_uri, v1) = ready_orders_disabling_previous_versions(&env).await;
    env.new_key_version(&key_uri).await;
    let rotated = retired(&env, &v1).await;

    // "Retired ten days ago, safe since nine": a status edit.
    let long_ago = |h: i64| {
        (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(h))
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let mut kept = serde_json::to_value(&rotated.status.unwrap().retained_key_versions).unwrap();
    for r in kept.as_array_mut().unwrap() {
        if r["version"] == v1.as_str() {
            r["retiredAt"] = json!(long_ago(240));
            r["safeToDisableAfter"] = json!(long_ago(216));
        }
    }
    env.accounts()
        .patch_status(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"retainedKeyVersions": kept}})),
        )
        .await
        .unwrap();
    env.wait(
        &env.accounts(),
        "orders",
        "v1 kept for its grace period",
        |a| {
            a.status.as_ref().is_some_and(|s| {
                s.retained_key_versions.iter().any(|r| {
                    r.version == v1
                        && r.kept_because
                            .as_deref()
                            .is_some_and(|k| k.contains("grace period"))
                })
            })
        },
    )
    .await;
    assert_eq!(env.calls("KeyVault_UpdateKey"), 0, "{:?}", env.writes());
}
