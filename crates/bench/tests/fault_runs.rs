//! Fault runs of the operator at small scale (see BENCHMARKS.md). Each runs
//! `cmk-bench fault <kind>`: the local control plane, the simulator and the
//! operator as a separate process, a bounded run under the fault, and a check
//! that every resource ends Ready with nothing duplicated or orphaned in the
//! simulator's ledger. Minutes each, so ignored by default:
//!
//! ```text
//! cargo build --bin cmk-operator
//! cargo test -p cmk-bench --test fault_runs -- --ignored --test-threads 1
//! ```

use std::path::PathBuf;
use std::process::Command;

/// The operator binary of the same build (the workspace's target directory).
fn operator() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_cmk-bench")).with_file_name("cmk-operator");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build --bin cmk-operator)",
        path.display()
    );
    path
}

fn fault(kind: &str, extra: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_cmk-bench"))
        .args(["fault", kind, "--operator"])
        .arg(operator())
        .args(extra)
        .status()
        .expect("cmk-bench runs");
    assert!(status.success(), "fault run {kind} did not end clean");
}

#[test]
#[ignore = "minutes; run by hand: cargo test -p cmk-bench --test fault_runs -- --ignored"]
fn sigkill_50_times_during_convergence() {
    fault(
        "sigkill",
        &[
            "--accounts",
            "50",
            "--kills",
            "60",
            "--lro-ms",
            "150000",
            "--poll-seconds",
            "2",
        ],
    );
}

#[test]
#[ignore = "minutes; run by hand: cargo test -p cmk-bench --test fault_runs -- --ignored"]
fn half_the_calls_throttled_for_a_minute() {
    fault(
        "throttle",
        &[
            "--accounts",
            "50",
            "--lro-ms",
            "3000",
            "--poll-seconds",
            "2",
        ],
    );
}

#[test]
#[ignore = "minutes; run by hand: cargo test -p cmk-bench --test fault_runs -- --ignored"]
fn server_errors_and_stalled_operations() {
    fault(
        "errors",
        &[
            "--accounts",
            "50",
            "--lro-ms",
            "3000",
            "--poll-seconds",
            "2",
        ],
    );
}

#[test]
#[ignore = "minutes; run by hand: cargo test -p cmk-bench --test fault_runs -- --ignored"]
fn key_revoked_mid_run() {
    fault(
        "revoke",
        &[
            "--accounts",
            "20",
            "--lro-ms",
            "1000",
            "--poll-seconds",
            "1",
            "--resync-seconds",
            "15",
        ],
    );
}

#[test]
#[ignore = "minutes; run by hand: cargo test -p cmk-bench --test fault_runs -- --ignored"]
fn api_server_restarted_twice_mid_run() {
    fault(
        "apiserver-restart",
        &[
            "--accounts",
            "50",
            "--restarts",
            "2",
            "--outage-seconds",
            "10",
            "--lro-ms",
            "3000",
            "--poll-seconds",
            "2",
        ],
    );
}

#[test]
#[ignore = "minutes; run by hand: cargo test -p cmk-bench --test fault_runs -- --ignored"]
fn leader_killed_standby_takes_over() {
    fault(
        "leader-handover",
        &[
            "--accounts",
            "50",
            "--lro-ms",
            "3000",
            "--poll-seconds",
            "2",
        ],
    );
}
