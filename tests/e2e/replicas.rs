//! Two operator processes against one API server: only the lease holder
//! reconciles, and the standby takes over when the leader is killed.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::common;
use crate::support::*;

/// A replica process, killed when the test ends however it ends.
struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn replica(ns: &str, name: &str) -> Replica {
    Replica(
        Command::new(env!("CARGO_BIN_EXE_cmk-operator"))
            .args([
                "--log-format",
                "text",
                "run",
                "--azure",
                "simulator",
                "--namespace",
                ns,
                "--lease-namespace",
                ns,
                "--cluster-id",
                "e2e-replicas",
            ])
            .arg("--tenancy-config")
            .arg(tenancy_config_file(ns))
            .args([
                "--health-listen",
                "127.0.0.1:0",
                "--resync-seconds",
                "2",
                "--poll-seconds",
                "1",
                "--simulator-lro-ms",
                "100",
            ])
            .env("KUBECONFIG", common::kubeconfig_path())
            .env("POD_NAME", name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the operator binary starts"),
    )
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("cosmos-cmk-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

async fn wait_holder(leases: &Api<Lease>, who: &str, within: Duration) -> tokio::time::Instant {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if holder(leases).await.as_deref() == Some(who) {
            return tokio::time::Instant::now();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{who} did not take the lease within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reporting instances of the events about `name`.
async fn reporters(env: &Env, name: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    api.list(&ListParams::default())
        .await
        .expect("events listed")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reporting_instance)
        .collect()
}

#[tokio::test]
async fn only_the_leader_reconciles_and_the_standby_takes_over() {
    let mut env = Env::start("replicas").await;
    env.kill_operator(); // the two processes below are the operator here
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let mut a = replica(&env.ns, "replica-a");
    wait_holder(&leases, "replica-a", Duration::from_secs(30)).await;
    let _b = replica(&env.ns, "replica-b");

    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    env.account_reason("orders", "Ready").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = reporters(&env, "orders").await;
    assert!(
        !before.is_empty() && before.iter().all(|r| r == "replica-a"),
        "only the leader acted: {before:?}"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    a.0.kill().expect("leader killed");
    let killed = tokio::time::Instant::now();
    let took_over = wait_holder(&leases, "replica-b", Duration::from_secs(40)).await;
    let handover = took_over.duration_since(killed);
    // Liveness is wait_holder's bound; safety is a lower bound load cannot
    // break: the killed leader renewed at most one retry period (2 s) before
    // it died, so its 15 s lease still held for at least 13 s.
    assert!(
        handover >= Duration::from_secs(13) - Duration::from_millis(500),
        "replica-b led {handover:?} after the kill: before the lease expired"
    );
    // The new leader reconciles (its embedded simulator has no such account, so it acts).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !reporters(&env, "orders")
        .await
        .iter()
        .any(|r| r == "replica-b")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica-b never reconciled"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
