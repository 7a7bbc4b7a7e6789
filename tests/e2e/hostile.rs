//! Hostile or broken answers from Azure: the operator never crashes, freezes
//! or is misled, and SIGTERM ends it within its grace period whatever is in
//! flight.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cmk_operator::sim::{FaultConfig, LatencyFault};
use serde_json::json;

use crate::common;
use crate::support::*;

/// The operator binary against the test's simulator, killed when the test
/// ends however it ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn operator_process(env: &Env) -> Operator {
    Operator(
        Command::new(env!("CARGO_BIN_EXE_cmk-operator"))
            .args(["--log-format", "text", "run", "--azure", "simulator"])
            .args(["--simulator-url", env.sim.base_url()])
            .args(["--namespace", &env.ns, "--leader-election", "false"])
            .arg("--tenancy-config")
            .arg(tenancy_config_file(&env.ns))
            .args(["--health-listen", "127.0.0.1:0"])
            .env("KUBECONFIG", common::kubeconfig_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the operator binary starts"),
    )
}

/// A reconcile stuck in a slow Azure call (here 2 minutes; a Retry-After
/// wait is the same) held SIGTERM for the whole call timeout. Now in-flight
/// reconciles get the shutdown drain (10 s) and are then dropped.
#[tokio::test]
async fn sigterm_ends_the_process_within_the_drain_whatever_is_in_flight() {
    let mut env = Env::start("hostile-term").await;
    env.kill_operator(); // the process below is the operator here
    env.sim.set_faults(FaultConfig {
        latency: vec![LatencyFault {
            operation: "Vaults_Get".into(),
            ms: 120_000,
        }],
        ..Default::default()
    });
    let mut op = operator_process(&env);
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    // Let the binding's reconcile reach the vault read and hang there.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(op.0.try_wait().unwrap().is_none(), "the operator runs");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(op.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let sent = tokio::time::Instant::now();
    let exit = loop {
        if let Some(exit) = op.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = sent.elapsed();
    assert!(exit.success(), "{exit:?}");
    // The 10 s drain, then out (the call itself had 25 s more to go).
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(13),
        "exited {took:?} after SIGTERM"
    );
}
