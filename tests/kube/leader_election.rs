//! Leader election against the real API server: one leader at a time, a
//! hand-over within the lease duration when the leader stops, neither
//! changed by a leader whose clock is an hour off, and a leader whose
//! renewals hang stops acting before another can take its lease.

use crate::common;
use crate::stalling_proxy::StallingProxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cmk_operator::leader::{self, LeaseSettings};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};

fn settings(ns: &str, identity: &str) -> LeaseSettings {
    LeaseSettings {
        namespace: ns.to_owned(),
        name: "cosmos-cmk-operator".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
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
    let acquired = leader::acquire(&api, &a).await;
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
    let renewing = tokio::spawn(async move { leader::hold(&api_a, &a_hold, acquired).await });
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

/// Replica `me` on a node whose clock is `skew` off, renewing by hand every
/// retry period with the election's own rule, until aborted.
async fn renew_with_skewed_clock(api: Api<Lease>, s: LeaseSettings, skew: SignedDuration) {
    loop {
        let now = Timestamp::now() + skew;
        let current = api.get_opt(&s.name).await.expect("read the lease");
        let spec = leader::claim(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            Duration::ZERO,
            &s.identity,
            now,
            s.lease_duration,
        );
        let spec = spec.expect("the skewed replica holds the lease");
        match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(s.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                api.create(&PostParams::default(), &lease)
                    .await
                    .expect("create the lease");
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                api.replace(&s.name, &PostParams::default(), &lease)
                    .await
                    .expect("renew the lease");
            }
        }
        tokio::time::sleep(s.retry_period).await;
    }
}

/// B stands by while A renews for five seconds, then A stops; returns how
/// long after that B took the lease.
async fn handover_from_a_skewed_leader(prefix: &str, skew: SignedDuration) -> Duration {
    let (client, ns) = common::test_namespace(prefix).await;
    let api: Api<Lease> = Api::namespaced(client, &ns);
    let a = settings(&ns, "replica-a");
    let renewing = tokio::spawn(renew_with_skewed_clock(api.clone(), a, skew));
    while api.get_opt("cosmos-cmk-operator").await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = settings(&ns, "replica-b");
    let api_b = api.clone();
    let standby = tokio::spawn(async move {
        leader::acquire(&api_b, &b).await;
        tokio::time::Instant::now()
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !standby.is_finished(),
        "B took the lease while A (clock {skew:?} off) was renewing it"
    );
    renewing.abort();
    let stopped = tokio::time::Instant::now();
    // Generous: only load delays B. A clock-based rule would wait an hour here
    // for a leader whose clock is an hour ahead.
    let took_over = tokio::time::timeout(Duration::from_secs(60), standby)
        .await
        .unwrap_or_else(|_| panic!("B takes over from A (clock {skew:?} off) once it stops"))
        .unwrap();
    let lease = api.get("cosmos-cmk-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("replica-b"));
    took_over.duration_since(stopped)
}

#[tokio::test]
async fn a_leader_whose_clock_is_an_hour_behind_keeps_its_lease_until_it_stops() {
    let handover =
        handover_from_a_skewed_leader("skew-behind", SignedDuration::from_hours(-1)).await;
    // Safety as a lower bound: A's last renewal was at most a retry period
    // (300 ms) before it stopped.
    assert!(
        handover >= Duration::from_millis(3000 - 300 - 100),
        "B took over {handover:?} after A stopped: before A's lease lapsed"
    );
}

#[tokio::test]
async fn a_stopped_leader_whose_clock_is_an_hour_ahead_is_replaced_within_a_lease_duration() {
    let handover = handover_from_a_skewed_leader("skew-ahead", SignedDuration::from_hours(1)).await;
    assert!(
        handover >= Duration::from_millis(3000 - 300 - 100),
        "B took over {handover:?} after A stopped: before A's lease lapsed"
    );
}

/// Sets a flag when dropped: the guarded work was cancelled.
struct DropFlag(Arc<std::sync::Mutex<Option<tokio::time::Instant>>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        if let Ok(mut at) = self.0.lock() {
            *at = Some(tokio::time::Instant::now());
        }
    }
}

#[tokio::test]
async fn a_leader_whose_renewals_hang_stops_acting_before_another_can_lead() {
    let (client, ns) = common::test_namespace("stall").await;
    let api: Api<Lease> = Api::namespaced(client, &ns);
    // A reaches the API server through a proxy that can stop passing bytes:
    // its requests then hang (connections open, no answer, no error).
    let proxy = StallingProxy::start().await;
    let api_a: Api<Lease> = Api::namespaced(proxy.client().await, &ns);
    // A 3 s margin between A's deadline and the earliest takeover, so load
    // cannot make a correct leader look late.
    let timing = |identity: &str| LeaseSettings {
        lease_duration: Duration::from_secs(5),
        renew_deadline: Duration::from_secs(2),
        ..settings(&ns, identity)
    };
    let a = timing("replica-a");
    a.check().expect("sound timings");
    let acquired = leader::acquire(&api_a, &a).await;

    // A's work: marks each step it takes, and when it was dropped.
    let last_step = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
    let dropped = Arc::new(std::sync::Mutex::new(None));
    let work = {
        let (last_step, guard) = (last_step.clone(), DropFlag(dropped.clone()));
        async move {
            let _guard = guard;
            loop {
                *last_step.lock().unwrap() = tokio::time::Instant::now();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let leading =
        tokio::spawn(async move { leader::while_leading(&api_a, &a, acquired, work).await });
    let b = timing("replica-b");
    let api_b = api.clone();
    let standby = tokio::spawn(async move {
        leader::acquire(&api_b, &b).await;
        tokio::time::Instant::now()
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!standby.is_finished(), "B must not lead while A renews");
    assert!(!leading.is_finished(), "A leads while its renewals pass");

    proxy.stall();
    let took_over = tokio::time::timeout(Duration::from_secs(60), standby)
        .await
        .expect("B takes over once A's renewals hang")
        .unwrap();
    // Safety: A was stopped, not merely asked to, before B led.
    let stopped = dropped
        .lock()
        .unwrap()
        .expect("A's work was dropped by the time B leads");
    assert!(
        stopped < took_over,
        "A's work dropped {:?} after B took over",
        stopped.duration_since(took_over)
    );
    let last = *last_step.lock().unwrap();
    assert!(last < took_over, "A acted after B took over");
    let led = tokio::time::timeout(Duration::from_secs(5), leading)
        .await
        .expect("A stepped down")
        .unwrap();
    assert_eq!(
        led,
        Err(leader::Lost::RenewDeadline(Duration::from_secs(2)))
    );
}
