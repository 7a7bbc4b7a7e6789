//! Hostile or broken answers from Azure: the operator never crashes, freezes
//! or is misled, and SIGTERM ends it within its grace period whatever is in
//! flight.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cmk_operator::sim::{FaultConfig, HostileAnswer, HostileFault, LatencyFault};
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
    operator_with_logs(env, Stdio::null())
}

fn operator_with_logs(env: &Env, logs: Stdio) -> Operator {
    Operator(
        Command::new(env!("CARGO_BIN_EXE_cmk-operator"))
            .args(["--log-format", "text", "run", "--azure", "simulator"])
            .args(["--simulator-url", env.sim.base_url()])
            .arg("--simulator-ca-file")
            .arg(simulator_ca_file(&env.sim, &env.ns))
            .args(["--namespace", &env.ns, "--leader-election", "false"])
            .arg("--tenancy-config")
            .arg(tenancy_config_file(&env.ns))
            .args(["--health-listen", "127.0.0.1:0"])
            .env("KUBECONFIG", common::kubeconfig_path())
            .stdout(Stdio::null())
            .stderr(logs)
            .spawn()
            .expect("the operator binary starts"),
    )
}

/// `--health-listen 127.0.0.1:0` gets some free port: the log names it, and
/// that is where /healthz answers.
#[tokio::test]
async fn the_port_bound_for_health_is_logged() {
    use std::io::BufRead;
    let mut env = Env::start("health-port").await;
    env.kill_operator();
    let mut op = operator_with_logs(&env, Stdio::piped());
    let stderr = op.0.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("serving /healthz") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the health listener is logged");
    let line = strip_ansi(&line);
    let bound = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bound="))
        .expect("the bound address is in the line")
        .trim_matches('"')
        .to_owned();
    assert!(!bound.ends_with(":0"), "{line}");
    let (status, _) = http_get(&format!("http://{bound}/healthz")).await;
    assert_eq!(status, 200, "{line}");
}

/// The text log colours field names; the escapes are not part of the text.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for e in chars.by_ref() {
                if e.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn http_get(url: &str) -> (u16, Vec<u8>) {
    let req = azure_core::Request::new(
        azure_core::Url::parse(url).expect("url"),
        azure_core::Method::Get,
    );
    let resp = azure_core::new_http_client()
        .execute_request(&req)
        .await
        .expect("http");
    let status = u16::from(resp.status());
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap_or_default()
            .to_vec(),
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
    // Evidence, not a fixed sleep: the binding's reconcile reached the vault
    // read (which now hangs).
    let waited = tokio::time::Instant::now();
    while env.sim.arrived("Vaults_Get") == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the vault read never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    // The 10 s drain, then out (the call itself had minutes more to go); the
    // upper bound leaves a loaded machine room.
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "exited {took:?} after SIGTERM"
    );
}

/// Hostile answers from every Azure read a settled account and its binding
/// make (a garbage vault, a truncated key, a huge role-assignment list, an
/// account read without its identities and tags): the Ready account stays
/// Ready, nothing is written to Azure on their strength, a resource that is
/// not Ready yet reports the transient `AzureInvalidResponse`, and both
/// recover once the answers are whole again.
#[tokio::test]
async fn hostile_answers_mislead_nothing_and_everything_recovers() {
    let env = Env::start("hostile").await;
    env.apply_example("01-binding-rbac.yaml", json!({})).await;
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    env.binding_reason("billing-key", "KeyReady").await;
    env.account_reason("billing", "Ready").await;

    let writes = env.writes();
    let reads = env.calls("DatabaseAccounts_Get");
    let always = |operation: &str, answer: HostileAnswer| HostileFault {
        operation: operation.into(),
        answer,
        count: None,
    };
    env.sim.set_faults(FaultConfig {
        hostile: vec![
            always(
                "DatabaseAccounts_Get",
                HostileAnswer::Omit {
                    fields: vec!["identity".into(), "tags".into()],
                },
            ),
            always("Vaults_Get", HostileAnswer::Garbage),
            always("KeyVault_GetKey", HostileAnswer::Truncated),
            always("RoleAssignments_*", HostileAnswer::Huge { bytes: None }),
        ],
        ..Default::default()
    });
    // A new binding meets the same answers before it was ever Ready.
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    // Several resyncs (every 2 s) under the faults.
    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < until {
        let account = env.accounts().get("billing").await.expect("account");
        assert_eq!(ready_reason(&account).as_deref(), Some("Ready"));
        let binding = env.bindings().get("billing-key").await.expect("binding");
        let reason = binding
            .status
            .as_ref()
            .and_then(|s| cmk_operator::api::conditions::find(&s.conditions, "Ready"))
            .map(|c| c.reason.clone());
        assert_eq!(reason.as_deref(), Some("KeyReady"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        env.calls("DatabaseAccounts_Get") > reads,
        "the account was read under the faults"
    );
    let fresh = env
        .binding_reason("orders-key", "AzureInvalidResponse")
        .await;
    let record = fresh.status.unwrap().last_azure_error.expect("recorded");
    assert!(
        record
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("not JSON"),
        "{record:?}"
    );
    assert_eq!(
        env.writes(),
        writes,
        "no hostile answer led to an Azure write"
    );

    env.sim.clear_faults();
    env.binding_reason("orders-key", "KeyReady").await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    env.account_reason("orders", "Ready").await;
    env.account_reason("billing", "Ready").await;
}
