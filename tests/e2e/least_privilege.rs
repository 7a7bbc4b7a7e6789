//! The chart's RBAC is enough: the operator runs a whole scenario (lease,
//! watches, finalizer, status, events, deletion) with nothing but the token of
//! the chart's ServiceAccount.

use cmk_operator::leader::{self, LeaseSettings};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::common::rbac;
use crate::support::*;

#[tokio::test]
async fn a_full_scenario_runs_on_the_charts_rbac_alone() {
    let mut env = Env::start("least-privilege").await;
    env.kill_operator();
    let identity = rbac::install_operator_identity(&env.ns).await;
    let leases: Api<Lease> = Api::namespaced(identity.client.clone(), &env.ns);
    let lease = LeaseSettings {
        namespace: env.ns.clone(),
        name: identity.lease_name.clone(),
        identity: "replica-0".into(),
        lease_duration: std::time::Duration::from_secs(15),
        retry_period: std::time::Duration::from_secs(1),
    };
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        leader::acquire(&leases, &lease),
    )
    .await
    .expect("the ServiceAccount may take the lease");
    env.operator_client = identity.client.clone();
    env.start_operator();

    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": "Delete"}}),
    )
    .await;
    env.account_reason("orders", "Ready").await;
    assert!(
        env.event_reasons("orders")
            .await
            .contains(&"CreatingAccount".to_owned()),
        "events are published"
    );

    env.accounts()
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("orders").await;
    assert_eq!(
        env.calls("DatabaseAccounts_Delete"),
        1,
        "the finalizer ran under the ServiceAccount"
    );
}
