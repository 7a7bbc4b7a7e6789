//! The events and failure reasons the README promises, each seen on a real
//! API server: a key created (and one below the recommended size), a
//! user-assigned identity added, a previous key version disabled, an account
//! deleted and one retained, and Azure's failures named by their reasons.

use std::time::Duration;

use cmk_operator::api::KeyType;
use cmk_operator::azure::AzurePort;
use cmk_operator::sim::{ErrorFault, FaultConfig};
use kube::api::DeleteParams;
use serde_json::json;

use crate::support::*;

async fn wait_event(env: &Env, name: &str, reason: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reasons = env.event_reasons(name).await;
        if reasons.iter().any(|r| r == reason) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: no {reason} event; saw {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn promised_events_are_published() {
    let env = Env::start("events").await;
    // A key the vault does not have, below the recommended size.
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"key": {"name": "cosmos-events", "size": 2048}}}),
    )
    .await;
    wait_event(&env, "orders-key", "KeyCreated").await;
    wait_event(&env, "orders-key", "KeySizeBelowRecommended").await;

    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": "Delete", "rotation": {"disablePreviousVersion": true, "previousVersionGraceHours": 24}}}),
    )
    .await;
    let a = env.account_reason("orders", "Ready").await;
    let s = a.status.unwrap();
    let (key_uri, v1) = (s.key_vault_key_uri.unwrap(), s.key_version_in_use.unwrap());

    // To a user-assigned identity.
    let ua = "/subscriptions/00000000-0000-0000-0000-00000000c0de/resourceGroups/cmk-demo/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cmk-demo-billing-id";
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": "Delete", "rotation": {"disablePreviousVersion": true, "previousVersionGraceHours": 24},
            "identity": {"type": "UserAssigned", "userAssignedIdentityId": ua}}}),
    )
    .await;
    wait_event(&env, "orders", "AddingUserAssignedIdentity").await;
    env.account_reason("orders", "Ready").await;

    // A rotation; once the version is past its window, it is disabled.
    let vault_uri = format!("{}/", key_uri.rsplit_once("/keys/").unwrap().0);
    env.backdoor()
        .create_key(&vault_uri, "cosmos-events", KeyType::Rsa, 3072)
        .await
        .expect("new version");
    env.wait(&env.accounts(), "orders", "the rotation tracked", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.previous_key_version.as_deref() == Some(v1.as_str()))
    })
    .await;
    env.settings.clock.advance(Duration::from_secs(25 * 3600));
    wait_event(&env, "orders", "DisabledPreviousKeyVersion").await;

    // Deleted with the account, and retained.
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"metadata": {"name": "kept"}, "spec": {"accountName": "cmk-demo-kept"}}),
    )
    .await;
    env.account_reason("kept", "Ready").await;
    for name in ["orders", "kept"] {
        env.accounts()
            .delete(name, &DeleteParams::default())
            .await
            .expect("deleted");
        env.wait_gone(name).await;
    }
    wait_event(&env, "orders", "DeletingAccount").await;
    wait_event(&env, "kept", "Retained").await;
}

/// Azure's refusals on a first reconcile, each named by its reason.
#[tokio::test]
async fn azure_failures_are_named_by_their_reasons() {
    let env = Env::start("failure-reasons").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.binding_reason("orders-key", "KeyReady").await;
    let cases = [
        (400, "BadRequest", "AzureRejected"),
        (401, "AuthenticationFailed", "AzureAuthenticationFailed"),
        (403, "AuthorizationFailed", "AzureForbidden"),
    ];
    for (i, (status, code, reason)) in cases.into_iter().enumerate() {
        env.sim.set_faults(FaultConfig {
            errors: vec![ErrorFault {
                operation: "DatabaseAccounts_Get".to_owned(),
                rate: 1.0,
                status,
                code: code.to_owned(),
                count: None,
            }],
            ..Default::default()
        });
        let name = format!("fail-{i}");
        env.apply_example(
            "10-account-first-party.yaml",
            json!({"metadata": {"name": name}, "spec": {"accountName": format!("cmk-demo-fail-{i}")}}),
        )
        .await;
        env.account_reason(&name, reason).await;
        wait_event(&env, &name, reason).await;
    }
    env.sim.set_faults(FaultConfig::default());
}

/// The recorder folds a repeat into the first event's series (as
/// kube-runtime's does, which kubectl and dashboards read), keeps distinct
/// events distinct, and remembers only a digest of each.
#[tokio::test]
async fn a_repeated_event_counts_up_on_the_first_one() {
    use cmk_operator::controller::event_recorder::Recorder;
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event, EventType, Reporter};

    let env = Env::start("recorder").await;
    let recorder = Recorder::new(
        env.client.clone(),
        Reporter {
            controller: "cosmos-cmk-operator".into(),
            instance: None,
        },
    );
    let regarding = |name: &str| ObjectReference {
        api_version: Some("cosmoscmk.io/v1alpha1".into()),
        kind: Some("CosmosAccountCMK".into()),
        namespace: Some(env.ns.clone()),
        name: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        ..Default::default()
    };
    let event = |reason: &str| Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(format!("{reason} happened")),
        action: "Reconcile".into(),
        secondary: None,
    };
    for _ in 0..3 {
        recorder
            .publish(&event("AzureThrottled"), &regarding("a"))
            .await
            .expect("published");
    }
    recorder
        .publish(&event("KeyRevoked"), &regarding("a"))
        .await
        .expect("published");
    recorder
        .publish(&event("AzureThrottled"), &regarding("b"))
        .await
        .expect("published");

    let about_a = env.events_about("a").await;
    let summary: Vec<(Option<String>, Option<i32>)> = about_a
        .iter()
        .map(|e| (e.reason.clone(), e.series.as_ref().map(|s| s.count)))
        .collect();
    assert_eq!(
        summary,
        [
            (Some("AzureThrottled".to_owned()), Some(3)),
            (Some("KeyRevoked".to_owned()), None)
        ],
        "one event per (type, reason, action, object), repeats counted on it"
    );
    assert_eq!(env.events_about("b").await.len(), 1);
    assert_eq!(recorder.remembered(), 3);

    // An event deleted on the API server (they expire) is published anew.
    let api: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    let name = about_a[0].metadata.name.clone().expect("named");
    api.delete(&name, &Default::default())
        .await
        .expect("deleted");
    recorder
        .publish(&event("AzureThrottled"), &regarding("a"))
        .await
        .expect("published again");
    let reasons = env.event_reasons("a").await;
    assert_eq!(reasons, ["KeyRevoked", "AzureThrottled"], "{reasons:?}");
}
