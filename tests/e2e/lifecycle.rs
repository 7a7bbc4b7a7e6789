//! Rotation, revocation, drift, deletion and an operator restart mid-creation.

use std::time::Duration;

use cmk_operator::api::{KeyType, Phase};
use cmk_operator::azure::{AccountChange, AccountRef, AzurePort, SdkAzure};
use kube::api::DeleteParams;
use serde_json::json;

use crate::support::*;

pub(crate) async fn ready_orders(env: &Env) -> (String, String) {
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    let a = env.account_reason("orders", "Ready").await;
    let s = a.status.unwrap();
    (s.key_vault_key_uri.unwrap(), s.key_version_in_use.unwrap())
}

fn vault_uri(key_uri: &str) -> String {
    format!("{}/", key_uri.rsplit_once("/keys/").unwrap().0)
}

fn orders_ref() -> AccountRef {
    AccountRef {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        name: "cmk-demo-orders".into(),
    }
}

#[tokio::test]
async fn a_new_key_version_is_tracked() {
    let env = Env::start("rotate-version").await;
    let (key_uri, v1) = ready_orders(&env).await;
    let created = env
        .backdoor()
        .create_key(&vault_uri(&key_uri), "cosmos-orders", KeyType::Rsa, 3072)
        .await
        .unwrap();
    let cmk_operator::reconcile::binding::KeyFacts::Present { version: v2, .. } = created else {
        panic!("key created")
    };
    let a = env
        .wait(&env.accounts(), "orders", "the new version in use", |a| {
            a.status.as_ref().and_then(|s| s.key_version_in_use.clone()) == Some(v2.clone())
        })
        .await;
    let s = a.status.unwrap();
    assert_eq!(s.previous_key_version, Some(v1));
    let rotated = s.last_rotation_time.expect("rotation time").0;
    let safe = s
        .previous_version_safe_to_disable_after
        .expect("safe time")
        .0;
    assert_eq!(
        safe.duration_since(rotated),
        jiff::SignedDuration::from_hours(24)
    );
    assert!(
        !s.previous_version_disabled,
        "disabling is opt-in and never before 24 h"
    );
    assert_eq!(env.calls("KeyVault_UpdateKey"), 0);
}

#[tokio::test]
async fn a_new_key_in_the_binding_moves_the_account_to_it() {
    let env = Env::start("rotate-key").await;
    let (key_uri, _) = ready_orders(&env).await;
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"key": {"name": "cosmos-orders-2"}}}),
    )
    .await;
    let a = env
        .wait(&env.accounts(), "orders", "the new key URI", |a| {
            a.status
                .as_ref()
                .and_then(|s| s.key_vault_key_uri.clone())
                .is_some_and(|u| u.ends_with("/keys/cosmos-orders-2"))
                && ready_reason(a).as_deref() == Some("Ready")
        })
        .await;
    assert_ne!(a.status.unwrap().key_vault_key_uri, Some(key_uri));
    assert!(
        env.event_reasons("orders")
            .await
            .contains(&"SettingKeyUri".to_owned())
    );
    // An ordinary key change is progress: while the binding catches up with
    // its spec the account says so, but never with a Warning.
    let warnings: Vec<String> = env
        .events_about("orders")
        .await
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| format!("{:?}: {:?}", e.reason, e.note))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        env.calls("DatabaseAccounts_CreateOrUpdate"),
        1,
        "the account was updated, not recreated"
    );
}

#[tokio::test]
async fn revocation_is_reported_without_writes_and_recovers() {
    let env = Env::start("revoke").await;
    let (key_uri, version) = ready_orders(&env).await;
    env.set_key_version_enabled(&key_uri, &version, false).await;
    let a = env.account_reason("orders", "KeyRevoked").await;
    let s = a.status.unwrap();
    assert_eq!(s.phase, Phase::Revoked);
    let err = s.last_azure_error.expect("the Azure error is recorded");
    assert_eq!(err.sub_status, Some(4002));
    assert!(
        env.event_reasons("orders")
            .await
            .contains(&"KeyRevoked".to_owned())
    );

    let writes = env.writes().len();
    // Settle first: the transition itself may take a write or two.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = env.accounts().get("orders").await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        env.writes().len(),
        writes,
        "no Azure write while revoked: {:?}",
        env.writes()
    );
    assert_eq!(
        env.accounts()
            .get("orders")
            .await
            .unwrap()
            .metadata
            .resource_version,
        seen.metadata.resource_version,
        "no status write per resync while revoked"
    );

    env.enable_key_version(&key_uri, &version).await;
    env.account_reason("orders", "Ready").await;
}

/// Changes the account's key URI behind the operator's back, waiting out any
/// operation that holds the account's lock (Azure answers 412 meanwhile).
async fn drift_key_uri(azure: &SdkAzure, uri: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let op = loop {
        match azure
            .update_account(&orders_ref(), &AccountChange::SetKeyUri(uri.to_owned()))
            .await
        {
            Ok(op) => break op,
            Err(e)
                if e.class() == cmk_operator::azure::ErrorClass::Retryable
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("drift injection failed: {e}"),
        }
    };
    while azure.poll(&op).await.unwrap()
        == cmk_operator::reconcile::account::OperationState::InProgress
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn drift_is_corrected_or_only_reported() {
    let env = Env::start("drift").await;
    let (key_uri, _) = ready_orders(&env).await;
    let azure = env.backdoor();
    azure
        .create_key(&vault_uri(&key_uri), "rogue", KeyType::Rsa, 3072)
        .await
        .unwrap();
    let rogue = format!("{}keys/rogue", vault_uri(&key_uri));
    drift_key_uri(&azure, &rogue).await;
    // Azure itself must be put back (the status alone may not have seen the drift yet).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while azure
        .get_account(&orders_ref())
        .await
        .unwrap()
        .unwrap()
        .key_vault_key_uri
        != Some(key_uri.clone())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the drift was not corrected within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.account_reason("orders", "Ready").await;
    // The step's event is published once Azure has answered the write, so it
    // may trail the change this test saw in Azure.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !env
        .event_reasons("orders")
        .await
        .contains(&"SettingKeyUri".to_owned())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no SettingKeyUri event for the corrected drift within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Observe-only: the same drift is only reported.
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"reconcilePolicy": "ObserveOnly"}}),
    )
    .await;
    drift_key_uri(&azure, &rogue).await;
    env.account_reason("orders", "DriftDetected").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let facts = azure.get_account(&orders_ref()).await.unwrap().unwrap();
    assert_eq!(
        facts.key_vault_key_uri,
        Some(rogue),
        "observe-only changed nothing"
    );
}

#[tokio::test]
async fn retain_leaves_the_account_and_delete_removes_it_with_its_grants() {
    let env = Env::start("delete").await;
    ready_orders(&env).await;
    env.apply_example(
        "01-binding-rbac.yaml",
        json!({"spec": {"grantRemoval": "RemoveWhenUnused"}}),
    )
    .await;
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    env.account_reason("billing", "Ready").await;

    env.accounts()
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("orders").await;
    assert!(
        env.backdoor()
            .get_account(&orders_ref())
            .await
            .unwrap()
            .is_some(),
        "Retain keeps the account"
    );
    assert_eq!(
        env.calls("Vaults_UpdateAccessPolicy"),
        1,
        "Retain keeps the grant"
    );

    env.accounts()
        .delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("billing").await;
    let billing = AccountRef {
        name: "cmk-demo-billing".into(),
        ..orders_ref()
    };
    assert!(
        env.backdoor()
            .get_account(&billing)
            .await
            .unwrap()
            .is_none(),
        "Delete removes the account"
    );
    assert_eq!(
        env.calls("DatabaseAccounts_Delete"),
        1,
        "only the account that asked for it"
    );
    assert_eq!(
        env.calls("RoleAssignments_Delete"),
        1,
        "the grant the operator made is removed (its binding opted in): {:?}",
        env.event_notes("billing").await
    );
}

#[tokio::test]
async fn a_restart_mid_creation_resumes_the_same_operation() {
    let mut env = Env::start("restart").await;
    env.sim.set_lro_duration(Duration::from_secs(3));
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    env.wait(&env.accounts(), "orders", "a pending create", |a| {
        a.status
            .as_ref()
            .and_then(|s| s.pending_operation.as_ref())
            .is_some_and(|p| p.kind.as_str() == "CreateAccount")
    })
    .await;
    env.kill_operator();
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.start_operator();
    env.account_reason("orders", "Ready").await;
    assert_eq!(
        env.calls("DatabaseAccounts_CreateOrUpdate"),
        1,
        "the create was not issued again"
    );
    assert!(
        env.calls("OperationsStatus_Get") + env.calls("OperationResults_Get") >= 1,
        "the persisted operation was polled"
    );
}

#[tokio::test]
async fn transient_azure_failures_leave_a_ready_account_alone() {
    let env = Env::start("transient").await;
    ready_orders(&env).await;
    let before = env.accounts().get("orders").await.unwrap();
    let faults: cmk_operator::sim::FaultConfig = serde_json::from_value(json!({
        "errors": [{"operation": "DatabaseAccounts_Get", "status": 503, "code": "ServiceUnavailable"}]
    }))
    .unwrap();
    env.sim.set_faults(faults);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        env.sim.count_status("DatabaseAccounts_Get", 503) >= 1,
        "the fault was hit"
    );
    let during = env.accounts().get("orders").await.unwrap();
    assert_eq!(ready_reason(&during).as_deref(), Some("Ready"));
    assert_eq!(
        during.metadata.resource_version, before.metadata.resource_version,
        "no status write for a blip"
    );
    env.sim.clear_faults();
}

/// Throttled again and again, an account reports it once: the text of the
/// failure carries no pause (it changed with every retry), so the status is
/// written and the Warning published on the transition only, and each retry
/// waits longer.
#[tokio::test]
async fn repeated_throttling_is_one_status_change_and_one_event() {
    let env = Env::start("throttled").await;
    let faults: cmk_operator::sim::FaultConfig = serde_json::from_value(json!({
        "throttle": [{"operation": "RestorableDatabaseAccounts_List", "count": 4, "retryAfterSecs": 1}]
    }))
    .unwrap();
    env.sim.set_faults(faults);
    ready_orders(&env).await;
    assert_eq!(
        env.sim.count_status("RestorableDatabaseAccounts_List", 429),
        4,
        "the fault was hit each time"
    );
    let throttled: Vec<_> = env
        .events_about("orders")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("AzureThrottled"))
        .map(|e| (e.note, e.series.map(|s| s.count)))
        .collect();
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0].1, None, "no repeat counted: {throttled:?}");
}
