//! A key's life on a schedule: the binding writes Key Vault's rotation
//! policy, the simulator rotates on it under a sped-up clock and every
//! account follows; `cosmoscmk.io/rotate` rotates once per value; a version
//! nearing its expiry raises `KeyExpiring`.

use std::time::Duration;

use cmk_operator::api::{CosmosAccountCMK, KeyVaultBinding, ROTATE_ANNOTATION};
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support::*;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn version_in_use(a: &CosmosAccountCMK) -> Option<String> {
    a.status.as_ref()?.key_version_in_use.clone()
}

fn key_version(b: &KeyVaultBinding) -> Option<String> {
    b.status.as_ref()?.key_version.clone()
}

fn condition(b: &KeyVaultBinding, type_: &str) -> Option<(String, String, String)> {
    let c = cmk_operator::api::conditions::find(&b.status.as_ref()?.conditions, type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The orders binding (with `rotation`) and two accounts on it, Ready.
async fn two_accounts_on(env: &Env, rotation: serde_json::Value) -> String {
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"key": {"rotation": rotation}}}),
    )
    .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    env.apply_example("11-account-system-assigned.yaml", json!({}))
        .await;
    let a = env.account_reason("orders", "Ready").await;
    env.account_reason("inventory", "Ready").await;
    version_in_use(&a).expect("a version in use")
}

async fn annotate(env: &Env, key: &str, value: &str) {
    env.bindings()
        .patch(
            "orders-key",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .expect("annotated");
}

/// Every account on the binding reports the binding's current version.
async fn accounts_follow(env: &Env) -> String {
    let b = env
        .wait(&env.bindings(), "orders-key", "a key version", |b| {
            key_version(b).is_some()
        })
        .await;
    let v = key_version(&b).unwrap();
    for name in ["orders", "inventory"] {
        env.wait(&env.accounts(), name, "the binding's version in use", |a| {
            version_in_use(a).as_deref() == Some(v.as_str())
        })
        .await;
    }
    v
}

#[tokio::test]
async fn a_schedule_rotates_the_key_and_every_account_follows() {
    let env = Env::start("rotation-schedule").await;
    let v1 = two_accounts_on(&env, json!({"rotateAfter": "P7D"})).await;
    let b = env
        .wait(&env.bindings(), "orders-key", "the policy applied", |b| {
            b.status.as_ref().is_some_and(|s| {
                s.rotation_policy
                    .as_ref()
                    .is_some_and(|p| p.rotate_after.as_deref() == Some("P7D"))
                    && s.next_rotation_on.is_some()
            })
        })
        .await;
    assert_eq!(key_version(&b).as_deref(), Some(v1.as_str()));
    assert_eq!(env.calls("KeyVault_UpdateKeyRotationPolicy"), 1);

    // A day of one second: P7D falls due seven seconds after creation.
    env.sim.set_key_day(Duration::from_secs(1));
    env.wait(&env.bindings(), "orders-key", "a scheduled rotation", |b| {
        key_version(b).is_some_and(|v| v != v1)
    })
    .await;
    env.sim.set_key_day(DAY);
    let v2 = accounts_follow(&env).await;
    assert_ne!(v2, v1);
    assert_eq!(
        env.calls("KeyVault_RotateKey"),
        0,
        "Key Vault rotated, not the operator"
    );
    let a = env.accounts().get("orders").await.unwrap();
    let s = a.status.unwrap();
    assert_eq!(s.previous_key_version.as_deref(), Some(v1.as_str()));
    assert_eq!(
        env.calls("KeyVault_UpdateKeyRotationPolicy"),
        1,
        "a converged policy is not written again"
    );
}

#[tokio::test]
async fn a_policy_changed_in_key_vault_is_restored_and_one_set_by_others_is_left() {
    let env = Env::start("rotation-drift").await;
    two_accounts_on(&env, json!({"rotateAfter": "P90D", "expiresAfter": "P1Y"})).await;
    env.wait(&env.bindings(), "orders-key", "the policy applied", |b| {
        b.status
            .as_ref()
            .is_some_and(|s| s.rotation_policy.is_some())
    })
    .await;
    // Someone shortens the schedule in Key Vault: the spec's comes back.
    let vault = env.binding_vault_uri("orders-key").await;
    let drifted = cmk_operator::api::KeyRotation {
        rotate_after: Some("P30D".into()),
        ..Default::default()
    };
    use cmk_operator::azure::AzurePort;
    env.backdoor()
        .set_rotation_policy(&vault, "cosmos-orders", &drifted)
        .await
        .unwrap();
    annotate(&env, "cosmoscmk.io/reconcile", "now").await;
    env.wait(
        &env.bindings(),
        "orders-key",
        "the spec's policy again",
        |_| env.calls("KeyVault_UpdateKeyRotationPolicy") >= 3,
    )
    .await;
    let back = env
        .backdoor()
        .get_rotation_policy(&vault, "cosmos-orders")
        .await
        .unwrap();
    assert_eq!(back.rotate_after.as_deref(), Some("P90D"));
    assert_eq!(back.expires_after.as_deref(), Some("P1Y"));

    // Without spec.key.rotation the operator leaves the key's policy alone.
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.wait(
        &env.bindings(),
        "orders-key",
        "no policy in the status",
        |b| {
            b.status
                .as_ref()
                .is_some_and(|s| s.rotation_policy.is_none())
        },
    )
    .await;
    let writes = env.calls("KeyVault_UpdateKeyRotationPolicy");
    env.backdoor()
        .set_rotation_policy(&vault, "cosmos-orders", &drifted)
        .await
        .unwrap();
    annotate(&env, "cosmoscmk.io/reconcile", "again").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        env.calls("KeyVault_UpdateKeyRotationPolicy"),
        writes + 1,
        "only the backdoor wrote"
    );
    let kept = env
        .backdoor()
        .get_rotation_policy(&vault, "cosmos-orders")
        .await
        .unwrap();
    assert_eq!(kept.rotate_after.as_deref(), Some("P30D"));
}

/// A key is shared: a schedule someone else set on it (Terraform, another
/// cluster's binding) is not taken over by a binding that names another one;
/// once the key's policy is reset to none, the binding's is applied.
#[tokio::test]
async fn a_policy_found_on_the_key_is_left_to_its_owner() {
    let env = Env::start("rotation-foreign").await;
    two_accounts_on(&env, json!(null)).await;
    let vault = env.binding_vault_uri("orders-key").await;
    let theirs = cmk_operator::api::KeyRotation {
        rotate_after: Some("P60D".into()),
        expires_after: Some("P2Y".into()),
        ..Default::default()
    };
    use cmk_operator::azure::AzurePort;
    env.backdoor()
        .set_rotation_policy(&vault, "cosmos-orders", &theirs)
        .await
        .unwrap();
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"key": {"rotation": {"rotateAfter": "P90D", "expiresAfter": "P1Y"}}}}),
    )
    .await;
    crate::common::eventually(
        Duration::from_secs(60),
        "a RotationPolicyKept event",
        || async {
            env.event_reasons("orders-key")
                .await
                .contains(&"RotationPolicyKept".to_owned())
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        env.calls("KeyVault_UpdateKeyRotationPolicy"),
        1,
        "only the other owner wrote"
    );
    let kept = env
        .backdoor()
        .get_rotation_policy(&vault, "cosmos-orders")
        .await
        .unwrap();
    assert_eq!(kept.rotate_after.as_deref(), Some("P60D"));
    let b = env.bindings().get("orders-key").await.unwrap();
    assert!(b.status.unwrap().rotation_policy.is_none());

    // The owner hands the key over: its policy reset to Key Vault's default.
    env.backdoor()
        .set_rotation_policy(
            &vault,
            "cosmos-orders",
            &cmk_operator::api::KeyRotation {
                notify_before_expiry: Some("P30D".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    annotate(&env, "cosmoscmk.io/reconcile", "handed-over").await;
    env.wait(
        &env.bindings(),
        "orders-key",
        "the spec's policy applied",
        |b| {
            b.status
                .as_ref()
                .and_then(|s| s.rotation_policy.as_ref())
                .is_some_and(|p| p.rotate_after.as_deref() == Some("P90D"))
        },
    )
    .await;
}

#[tokio::test]
async fn the_rotate_annotation_rotates_once_per_value() {
    let mut env = Env::start("rotation-annotation").await;
    let v1 = two_accounts_on(&env, serde_json::Value::Null).await;
    annotate(&env, ROTATE_ANNOTATION, "incident-1").await;
    let b = env
        .wait(
            &env.bindings(),
            "orders-key",
            "the request carried out",
            |b| {
                b.status.as_ref().is_some_and(|s| {
                    s.rotate_request
                        .as_ref()
                        .is_some_and(|r| r.value == "incident-1" && r.version.is_some())
                })
            },
        )
        .await;
    let v2 = b.status.unwrap().rotate_request.unwrap().version.unwrap();
    assert_ne!(v2, v1);
    assert_eq!(accounts_follow(&env).await, v2);
    assert_eq!(env.calls("KeyVault_RotateKey"), 1);
    assert_eq!(
        env.calls("KeyVault_GetKeyRotationPolicy") + env.calls("KeyVault_UpdateKeyRotationPolicy"),
        0,
        "without spec.key.rotation the key's policy is neither read nor written"
    );
    assert!(
        env.event_reasons("orders-key")
            .await
            .contains(&"KeyRotated".to_owned())
    );

    // The rotate went through but the status lost it (a crash between the
    // two): the restarted operator finds a version made since the request in
    // Key Vault, so it records that one and rotates nothing.
    env.stop_operator().await;
    env.bindings()
        .patch_status(
            "orders-key",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"rotateRequest": {"version": null}}})),
        )
        .await
        .unwrap();
    env.start_operator();
    env.wait(
        &env.bindings(),
        "orders-key",
        "the request recorded again",
        |b| {
            b.status.as_ref().is_some_and(|s| {
                s.rotate_request
                    .as_ref()
                    .is_some_and(|r| r.version.as_deref() == Some(v2.as_str()))
            })
        },
    )
    .await;
    // Resyncs and a forced reconcile later, still one rotation.
    annotate(&env, "cosmoscmk.io/reconcile", "1").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.calls("KeyVault_RotateKey"), 1);

    annotate(&env, ROTATE_ANNOTATION, "incident-2").await;
    env.wait(&env.bindings(), "orders-key", "the second request", |b| {
        b.status.as_ref().is_some_and(|s| {
            s.rotate_request
                .as_ref()
                .is_some_and(|r| r.value == "incident-2" && r.version.is_some())
        })
    })
    .await;
    assert_eq!(env.calls("KeyVault_RotateKey"), 2);
    let v3 = accounts_follow(&env).await;
    assert_ne!(v3, v2);
}

#[tokio::test]
async fn a_version_nearing_its_expiry_raises_key_expiring_and_stays_ready() {
    let env = Env::start("rotation-expiry").await;
    two_accounts_on(
        &env,
        json!({"rotateBeforeExpiry": "P7D", "expiresAfter": "P28D", "notifyBeforeExpiry": "P28D"}),
    )
    .await;
    // The first version has no expiry (the policy's applies to new versions).
    let b = env
        .wait(&env.bindings(), "orders-key", "the policy applied", |b| {
            b.status
                .as_ref()
                .is_some_and(|s| s.rotation_policy.is_some())
        })
        .await;
    assert!(condition(&b, "KeyExpiring").is_none());
    assert_eq!(b.status.unwrap().key_expires_on, None);

    annotate(&env, ROTATE_ANNOTATION, "with-expiry").await;
    let b = env
        .wait(&env.bindings(), "orders-key", "KeyExpiring", |b| {
            condition(b, "KeyExpiring").is_some_and(|c| c.0 == "True")
        })
        .await;
    let (_, reason, message) = condition(&b, "KeyExpiring").unwrap();
    assert_eq!(reason, "WithinNotifyWindow");
    assert!(message.contains("in 27d 23h"), "{message}");
    let s = b.status.clone().unwrap();
    let expires: jiff::Timestamp = s.key_expires_on.clone().unwrap().parse().unwrap();
    let next: jiff::Timestamp = s.next_rotation_on.clone().unwrap().parse().unwrap();
    assert_eq!(
        expires.duration_since(next),
        jiff::SignedDuration::from_hours(7 * 24)
    );
    assert!(
        message.contains(&format!("Key Vault rotates it at {next}")),
        "{message}"
    );
    assert_eq!(
        condition(&b, "Ready").map(|c| c.0).as_deref(),
        Some("True"),
        "Ready until access is lost"
    );
    let warnings: Vec<_> = env
        .events_about("orders-key")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("KeyExpiring"))
        .collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    accounts_follow(&env).await;
}
