//! The tenancy boundary: a namespace acts in Azure only where the platform
//! team's policy allows it. Outside it nothing reaches Azure, not even a token
//! request or a read. These tests hand the operator its policy directly, so
//! they restart it to change the policy; following the policy file while
//! running is tested in `tenancy_file` and `controller::tenancy_gate`.

use std::time::Duration;

use cmk_operator::api::Phase;
use cmk_operator::api::conditions::{self, READY};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;

use crate::support::*;

/// Every request the simulator has seen, token endpoint and reads included.
fn requests(env: &Env) -> u64 {
    env.sim
        .counters()
        .values()
        .flat_map(|by_status| by_status.values())
        .sum()
}

async fn restart_with(env: &mut Env, scopes: &[&str]) {
    env.stop_operator().await;
    env.settings.tenancy = allow_namespace(&env.ns, scopes).into();
    env.start_operator();
}

#[tokio::test]
async fn a_namespace_outside_its_allowance_makes_no_azure_call() {
    let mut env = Env::start("tenancy").await;
    // This namespace may only target another team's resource group; the
    // examples point at the cmk-demo group (and its vault).
    let other_group = format!("/subscriptions/{SUB}/resourceGroups/other-team");
    restart_with(&mut env, &[&other_group]).await;
    env.sim.reset_counters();

    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": "Delete"}}),
    )
    .await;

    let binding = env
        .binding_reason("orders-key", "NamespaceNotAllowed")
        .await;
    let status = binding.status.expect("status");
    assert_eq!(status.phase, Phase::Failed);
    let message = &conditions::find(&status.conditions, READY)
        .expect("Ready")
        .message;
    for part in [
        env.ns.as_str(),
        "Microsoft.KeyVault/vaults/cmk-demo-policies",
        &other_group,
        "tenancy.namespaces",
    ] {
        assert!(
            message.contains(part),
            "binding message names {part}: {message}"
        );
    }

    let account = env.account_reason("orders", "NamespaceNotAllowed").await;
    let status = account.status.expect("status");
    assert_eq!(status.phase, Phase::Failed);
    let message = &conditions::find(&status.conditions, READY)
        .expect("Ready")
        .message;
    for part in [
        env.ns.as_str(),
        "Microsoft.DocumentDB/databaseAccounts/cmk-demo-orders",
        "tenancy.namespaces",
    ] {
        assert!(
            message.contains(part),
            "account message names {part}: {message}"
        );
    }
    for name in ["orders-key", "orders"] {
        assert!(
            env.event_reasons(name)
                .await
                .contains(&"NamespaceNotAllowed".to_owned()),
            "{name}: a NamespaceNotAllowed event"
        );
    }
    // Past a resync (2 s here) the refusal holds and still nothing reached Azure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.account_reason("orders", "NamespaceNotAllowed").await;
    assert_eq!(
        requests(&env),
        0,
        "no Azure request at all: {:?}",
        env.sim.counters()
    );
    assert!(env.writes().is_empty(), "{:?}", env.writes());

    // Widened (the policy is read at start): both go ahead.
    restart_with(&mut env, &[&format!("/subscriptions/{SUB}")]).await;
    env.binding_reason("orders-key", "KeyReady").await;
    env.account_reason("orders", "Ready").await;
    assert!(env.calls("DatabaseAccounts_CreateOrUpdate") >= 1);

    // Narrowed again, then deleted with deletionPolicy Delete: the account is
    // left in Azure and the finalizer goes, without any call.
    restart_with(&mut env, &[&other_group]).await;
    env.account_reason("orders", "NamespaceNotAllowed").await;
    env.sim.reset_counters();
    env.accounts()
        .delete("orders", &DeleteParams::default())
        .await
        .expect("deleted");
    env.wait_gone("orders").await;
    assert_eq!(
        requests(&env),
        0,
        "deletion outside the allowance makes no Azure request: {:?}",
        env.sim.counters()
    );
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let deletion = events
        .list(&ListParams::default())
        .await
        .expect("events listed")
        .items
        .into_iter()
        .find(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("orders")
                && e.reason.as_deref() == Some("NamespaceNotAllowed")
                && e.action.as_deref().and_then(|a| a.split('/').next()) == Some("Delete")
        })
        .expect("the deletion has its own NamespaceNotAllowed event");
    let note = deletion.note.unwrap_or_default();
    assert!(note.contains("left in place"), "{note}");
    let (status, _) = env
        .arm(
            azure_core::Method::Get,
            &Env::account_path("cmk-demo-orders"),
            None,
        )
        .await;
    assert_eq!(status, 200, "the Azure account was left in place");
}
