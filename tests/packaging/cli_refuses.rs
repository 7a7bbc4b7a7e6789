//! `cmk-operator run` refuses contradictory or meaningless flags, and a real
//! Azure (the default) it has no settings for, before it touches Kubernetes or
//! Azure, naming the flag and the fix.

use std::process::{Command, Stdio};
use std::time::Duration;

fn refused(args: &[&str]) -> String {
    refused_with(args, &[])
}

/// Every setting real Azure reads from the environment.
const AZURE_ENV: [&str; 6] = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "CMK_FIRST_PARTY_PRINCIPAL_ID",
    "CMK_AZURE",
];

/// Runs `cmk-operator run ARGS` with only `env` of [`AZURE_ENV`] set, and
/// returns its stderr once it has exited with the error status (not a panic's,
/// and within a minute: a start that hangs fails the test).
fn refused_with(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cmk-operator"));
    command
        .arg("run")
        .args(args)
        // No cluster is needed: the flags are checked first.
        .env("KUBECONFIG", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for name in AZURE_ENV {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("cmk-operator runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waitable").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} neither started nor failed within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("stderr read");
    assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_flagless_run_without_azure_settings_refuses_naming_each_missing_one() {
    let err = refused(&[]);
    assert!(
        err.contains("manages real Azure") && err.contains("`--azure simulator`"),
        "{err}"
    );
    for setting in [
        "--first-party-principal-id (or CMK_FIRST_PARTY_PRINCIPAL_ID)",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE",
    ] {
        assert!(err.contains(setting), "{setting} not named: {err}");
    }
    assert!(!err.contains("simulator started"), "{err}");

    // With credentials in the environment, only the first-party id is missing.
    let err = refused_with(
        &[],
        &[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ],
    );
    assert!(err.contains("--first-party-principal-id"), "{err}");
    assert!(!err.contains("AZURE_TENANT_ID"), "{err}");
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
fn a_simulator_ca_file_without_its_url_is_refused() {
    for backend in ["simulator", "azure"] {
        let err = refused(&["--azure", backend, "--simulator-ca-file", "/tmp/ca.pem"]);
        assert!(
            err.contains("--simulator-ca-file") && err.contains("--simulator-url"),
            "{backend}: {err}"
        );
    }
}

#[test]
fn an_extra_ca_file_applies_to_azure_only_and_must_hold_certificates() {
    let err = refused(&["--azure", "simulator", "--extra-ca-file", "/tmp/ca.pem"]);
    assert!(
        err.contains("--extra-ca-file") && err.contains("only applies with --azure azure"),
        "{err}"
    );
    let err = refused(&[
        "--azure",
        "azure",
        "--extra-ca-file",
        "/nonexistent/corp-ca.pem",
    ]);
    assert!(
        err.contains("/nonexistent/corp-ca.pem") && err.contains("cannot be read"),
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
