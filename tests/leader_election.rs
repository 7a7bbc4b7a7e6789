//! Leader election against the real API server: one leader at a time, and a
//! hand-over within the lease duration when the leader stops.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cmk_operator::leader::{self, LeaseSettings};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

fn settings(ns: &str, identity: &str) -> LeaseSettings {
    LeaseSettings {
        namespace: ns.to_owned(),
        name: "cosmos-cmk-operator".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        retry_period: Duration::from_millis(300),
    }
}

#[tokio::test]
async fn one_leader_at_a_time_and_handover_when_it_stops() {
    let (client, ns) = common::test_namespace("lease").await;
    let api: Api<Lease> = Api::namespaced(client, &ns);
    let leaders = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));

    // Replica A leads, and "reconciles" while it holds the lease.
    let a = settings(&ns, "replica-a");
    leader::acquire(&api, &a).await;
    leaders.fetch_add(1, Ordering::SeqCst);

    // Replica B waits for the lease.
    let b = settings(&ns, "replica-b");
    let (api_b, leaders_b, max_b) = (api.clone(), leaders.clone(), max_seen.clone());
    let standby = tokio::spawn(async move {
        leader::acquire(&api_b, &b).await;
        let now = leaders_b.fetch_add(1, Ordering::SeqCst) + 1;
        max_b.fetch_max(now, Ordering::SeqCst);
        tokio::time::Instant::now()
    });
    // A renews for a while; B must not take over meanwhile.
    let (api_a, a_hold) = (api.clone(), a.clone());
    let renewing = tokio::spawn(async move { leader::hold(&api_a, &a_hold).await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!standby.is_finished(), "B must not lead while A renews");

    // A is killed: it stops renewing and stops reconciling.
    renewing.abort();
    let stopped = tokio::time::Instant::now();
    leaders.fetch_sub(1, Ordering::SeqCst);
    // Liveness is the timeout (generous: a loaded machine only delays B).
    // Safety is a lower bound, which load cannot break: A's last renewal was
    // at most one retry period before it stopped, so B may not lead before
    // the lease duration minus that period has passed.
    let took_over = tokio::time::timeout(Duration::from_secs(60), standby)
        .await
        .expect("B takes over")
        .unwrap();
    let handover = took_over.duration_since(stopped);
    assert!(
        handover
            >= Duration::from_secs(3) - Duration::from_millis(300) - Duration::from_millis(100),
        "B took over {handover:?} after A stopped: before A's lease expired"
    );
    assert_eq!(max_seen.load(Ordering::SeqCst), 1, "never two leaders");
    let lease = api.get("cosmos-cmk-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(lease.lease_transitions, Some(1));
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once() {
    let (client, ns) = common::test_namespace("release").await;
    let api: Api<Lease> = Api::namespaced(client, &ns);
    let a = settings(&ns, "replica-a");
    leader::acquire(&api, &a).await;
    leader::release(&api, &a).await.unwrap();
    let b = settings(&ns, "replica-b");
    tokio::time::timeout(Duration::from_secs(1), leader::acquire(&api, &b))
        .await
        .expect("taken within one retry");
}
