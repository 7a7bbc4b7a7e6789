//! `cmk-operator run` refuses contradictory or meaningless flags before it
//! touches Kubernetes or Azure, naming the flag and the fix.

use std::process::Command;

fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cmk-operator"))
        .arg("run")
        .args(args)
        // No cluster is needed: the flags are checked first.
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("cmk-operator runs");
    assert!(!out.status.success(), "{args:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_simulator_url_with_real_azure_is_refused() {
    let err = refused(&["--azure", "azure", "--simulator-url", "http://127.0.0.1:1"]);
    assert!(
        err.contains("--simulator-url") && err.contains("--azure simulator"),
        "{err}"
    );
}

#[test]
fn an_external_simulator_needs_https_and_its_ca_file() {
    let err = refused(&[
        "--azure",
        "simulator",
        "--simulator-url",
        "http://127.0.0.1:1",
    ]);
    assert!(err.contains("https only"), "{err}");
    let err = refused(&[
        "--azure",
        "simulator",
        "--simulator-url",
        "https://127.0.0.1:1",
    ]);
    assert!(err.contains("--simulator-ca-file is missing"), "{err}");
    let err = refused(&[
        "--azure",
        "simulator",
        "--simulator-url",
        "https://127.0.0.1:1",
        "--simulator-ca-file",
        "/nonexistent/ca.pem",
    ]);
    assert!(err.contains("cannot read /nonexistent/ca.pem"), "{err}");
}

#[test]
fn a_resync_budget_that_is_not_positive_is_refused() {
    for bad in ["0", "-1", "NaN"] {
        let flag = format!("--resync-reads-per-second={bad}");
        let err = refused(&["--azure", "simulator", &flag]);
        assert!(err.contains("--resync-reads-per-second"), "{bad}: {err}");
    }
}

#[test]
fn a_malformed_tenancy_policy_is_refused_naming_the_entry() {
    let path = std::env::temp_dir().join(format!("cmk-bad-tenancy-{}.yaml", std::process::id()));
    std::fs::write(
        &path,
        "namespaces:\n  - namespace: team-a\n    scopes: [/subscriptions/s]\n  - namespace: team-b\n    scopes: [/subscriptions/s/resourceGroups]\n",
    )
    .unwrap();
    let err = refused(&["--tenancy-config", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(
        err.contains("--tenancy-config") && err.contains("entry 1") && err.contains("team-b"),
        "{err}"
    );
    assert!(err.contains("/subscriptions/s/resourceGroups"), "{err}");

    let err = refused(&["--tenancy-config", "/nonexistent/tenancy.yaml"]);
    assert!(
        err.contains("cannot read the tenancy policy /nonexistent/tenancy.yaml"),
        "{err}"
    );
}

#[test]
fn a_zero_retry_after_cap_is_refused() {
    let err = refused(&["--azure", "simulator", "--max-retry-after-seconds=0"]);
    assert!(err.contains("--max-retry-after-seconds"), "{err}");
}
