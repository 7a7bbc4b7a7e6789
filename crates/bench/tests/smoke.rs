//! The benchmark and a fault run end to end at the smallest scale, so the
//! paths they need (the repository root, the control plane, the CRDs, the
//! operator binary) cannot break unnoticed: a 3-account `cmk-bench run` and a
//! 3-account `cmk-bench fault sigkill` with 2 kills, seconds each. Only that
//! they finish and print their report is checked; the figures are not
//! pass/fail (BENCHMARKS.md). Needs the local control plane (as every
//! Kubernetes test: `tests/control-plane/up`, or `CMK_TEST_KUBECONFIG`) and
//! the operator binary of the same build:
//!
//! ```text
//! cargo build --bin cmk-operator && cargo test -p cmk-bench --test smoke
//! ```

use std::path::PathBuf;
use std::process::{Command, Output};

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

/// Runs `cmk-bench` from another directory than the checkout's root (the
/// root must be found from the binary), with the settings that keep it short.
fn bench(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cmk-bench"))
        .args(args)
        .arg("--operator")
        .arg(operator())
        .args(["--accounts", "3", "--bindings", "1", "--lro-ms", "500"])
        .args(["--arm-latency-ms", "5", "--kv-latency-ms", "5"])
        .args(["--poll-seconds", "1", "--resync-seconds", "5"])
        .args(["--timeout-seconds", "120"])
        .current_dir(std::env::temp_dir())
        .output()
        .expect("cmk-bench runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "cmk-bench {args:?} failed:\n{stdout}\n{stderr}"
    );
    out
}

#[test]
fn a_three_account_benchmark_prints_its_report() {
    let out = bench(&["run", "--steady-seconds", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "== cmk-bench: 3 accounts over 1 bindings ==",
        "time to all Ready:",
        "steady state",
        "operator process: peak RSS",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
}

#[test]
fn a_short_sigkill_fault_run_ends_clean() {
    let out = bench(&["fault", "sigkill", "--kills", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fault Sigkill: CLEAN"),
        "no clean verdict in:\n{stderr}"
    );
}
