//! The chart's alerting rules (templates/prometheusrule.yaml) against what the
//! operator really exports: the in-process operator is driven into each state
//! (Ready, revoked key, expiring key, throttled by Azure, deletion blocked, no
//! leader), its `/metrics` is scraped twice, the samples become promtool's
//! `input_series`, and Prometheus's own `promtool test rules` says which
//! alerts fire.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cmk_operator::sim::{FaultConfig, ThrottleFault};
use cmk_operator::telemetry::Metrics;
use kube::api::DeleteParams;
use serde_json::{Value, json};

use crate::common::helm::{docs, find, render, scratch_dir};
use crate::common::{self, eventually};
use crate::support::*;

/// The chart release the rules are rendered for: its metrics job.
const RELEASE: &str = "cmk";
const RELEASE_NS: &str = "cmk-system";
const JOB: &str = "cmk-cosmos-cmk-operator-metrics";
/// Long enough for every rule's `for` (the longest default is 15m).
const EVAL_AT: &str = "30m";
const MINUTES: u32 = 60;
const PATIENCE: Duration = Duration::from_secs(90);

const KEY_REVOKED: &str = "CosmosCMKKeyRevoked";
const NOT_READY: &str = "CosmosCMKResourceNotReady";
const KEY_EXPIRING: &str = "CosmosCMKKeyExpiring";
const NO_LEADER: &str = "CosmosCMKNoLeader";
const THROTTLED: &str = "CosmosCMKAzureThrottled";
const DELETION_BLOCKED: &str = "CosmosCMKDeletionBlocked";
const ALL: [&str; 6] = [
    KEY_REVOKED,
    NOT_READY,
    KEY_EXPIRING,
    NO_LEADER,
    THROTTLED,
    DELETION_BLOCKED,
];

/// One sample of the text exposition format.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a `/metrics` answer (comments skipped).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let value = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            let Some((name, rest)) = series.split_once('{') else {
                return Sample {
                    name: series.into(),
                    labels: BTreeMap::new(),
                    value,
                };
            };
            let mut labels = BTreeMap::new();
            let mut chars = rest.trim_end_matches('}').chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(chars.next(), Some('"'), "{line}");
                let mut val = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some('n') => val.push('\n'),
                            Some(other) => val.push(other),
                            None => {}
                        },
                        '"' => break,
                        c => val.push(c),
                    }
                }
                if chars.peek() == Some(&',') {
                    chars.next();
                }
                labels.insert(key.trim().to_owned(), val);
            }
            Sample {
                name: name.into(),
                labels,
                value,
            }
        })
        .collect()
}

/// Two scrapes of the operator, `seconds_apart` (wall clock) with the Unix
/// time of the later one.
struct Scrapes {
    first: Vec<Sample>,
    last: Vec<Sample>,
    at_unix: f64,
}

/// A series in promtool's notation, `name{label="value",...}`, with the
/// labels a Prometheus scrape through the chart's ServiceMonitor adds
/// (`honorLabels: true` keeps the resource's own `namespace`).
fn series(s: &Sample) -> String {
    let mut labels = s.labels.clone();
    labels.insert("job".into(), JOB.into());
    labels.insert("instance".into(), "10.0.0.7:9090".into());
    labels
        .entry("namespace".into())
        .or_insert(RELEASE_NS.into());
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).expect("a string")))
        .collect();
    format!("{}{{{}}}", s.name, inner.join(","))
}

/// promtool's `input_series` from two real scrapes, one sample a minute for
/// an hour: a counter grows each minute by what it grew between the scrapes;
/// a gauge keeps its last value, except a `*_timestamp_seconds` one, which
/// moves to promtool's clock (it starts at 0, the time of the last scrape).
fn input_series(scrapes: &Scrapes) -> Vec<Value> {
    scrapes
        .last
        .iter()
        .map(|s| {
            let cumulative = ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .any(|suffix| s.name.ends_with(suffix));
            let values = if cumulative {
                let before = scrapes
                    .first
                    .iter()
                    .find(|f| f.name == s.name && f.labels == s.labels)
                    .map_or(0.0, |f| f.value);
                format!("{before}+{}x{MINUTES}", s.value - before)
            } else if s.name.ends_with("_timestamp_seconds") {
                format!("{}+0x{MINUTES}", s.value - scrapes.at_unix)
            } else {
                format!("{}+0x{MINUTES}", s.value)
            };
            json!({"series": series(s), "values": values})
        })
        .collect()
}

/// The chart's rule groups rendered with `values`, annotations taken off:
/// promtool compares annotations exactly, and theirs template the live value
/// (`promtool check rules`, in tests/packaging/alerts.rs, checks them).
fn rules(values: &[&str]) -> Value {
    let mut args = vec!["--set", "prometheusRule.enabled=true"];
    args.extend_from_slice(values);
    let rendered = docs(&render(RELEASE, RELEASE_NS, &args));
    let mut groups = find(&rendered, "PrometheusRule")[0]["spec"]["groups"].clone();
    for group in groups.as_array_mut().expect("groups") {
        for rule in group["rules"].as_array_mut().expect("rules") {
            rule.as_object_mut().expect("a rule").remove("annotations");
        }
    }
    json!({ "groups": groups })
}

/// Which alerts fire, by name, each with the labels of every firing alert.
type Expected = BTreeMap<&'static str, Vec<Value>>;

/// Runs `promtool test rules` on `input` with the rules rendered from
/// `values`; `expected` names every alert checked (those not named are not).
fn promtool_says(state: &str, input: Vec<Value>, values: &[&str], expected: &Expected) {
    if let Err(e) = promtool_test(state, input, values, expected) {
        panic!("{e}");
    }
}

/// [`promtool_says`], returning promtool's complaint.
fn promtool_test(
    state: &str,
    input: Vec<Value>,
    values: &[&str],
    expected: &Expected,
) -> Result<(), String> {
    let dir = scratch_dir(&format!("alerts-{state}-{}", std::process::id()));
    std::fs::write(dir.join("rules.json"), rules(values).to_string()).expect("rules written");
    let tests: Vec<Value> = expected
        .iter()
        .map(|(alert, fired)| {
            json!({
                "eval_time": EVAL_AT,
                "alertname": alert,
                "exp_alerts": fired.iter().map(|l| json!({"exp_labels": l})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let test = json!({
        "rule_files": ["rules.json"],
        "evaluation_interval": "1m",
        "tests": [{
            "name": state,
            "interval": "1m",
            "input_series": input,
            "alert_rule_test": tests,
        }],
    });
    let file = dir.join("test.json");
    std::fs::write(&file, test.to_string()).expect("test written");
    let out = std::process::Command::new(promtool())
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{state}: promtool test rules failed ({}):\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// promtool, built from Prometheus's Go module by tests/promtool/build.
fn promtool() -> &'static std::path::PathBuf {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| common::script_output_path("tests/promtool/build"))
}

/// Serves `metrics` on a loopback port, as the operator's metrics listener does.
async fn serve(metrics: Arc<Metrics>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(cmk_operator::telemetry::serve(
        listener,
        metrics,
        std::future::pending(),
    ));
    addr
}

/// `GET /metrics`, the body.
async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics listener");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n\r\n")
        .await
        .expect("sent");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// Scrapes until `ready` holds for the samples, then once more after the
/// operator did some more work (its next resync), as two scrapes of Prometheus.
async fn scrape_when(addr: SocketAddr, what: &str, ready: impl Fn(&[Sample]) -> bool) -> Scrapes {
    let first = eventually(PATIENCE, what, || async {
        let samples = parse(&scrape(addr).await);
        ready(&samples).then_some(samples)
    })
    .await;
    let reconciles = |samples: &[Sample]| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == "cmk_operator_reconciles_total")
            .map(|s| s.value)
            .sum()
    };
    let before = reconciles(&first);
    let last = eventually(
        PATIENCE,
        "another reconcile before the second scrape",
        || async {
            let samples = parse(&scrape(addr).await);
            (reconciles(&samples) > before && ready(&samples)).then_some(samples)
        },
    )
    .await;
    Scrapes {
        first,
        last,
        at_unix: jiff::Timestamp::now().as_millisecond() as f64 / 1000.0,
    }
}

/// Whether a `Ready` condition series with `reason` is exported for `name`.
fn ready_reason(samples: &[Sample], kind: &str, name: &str, reason: &str) -> bool {
    samples.iter().any(|s| {
        s.name == "cmk_operator_resource_condition"
            && s.labels["kind"] == kind
            && s.labels["name"] == name
            && s.labels["type"] == "Ready"
            && s.labels["reason"] == reason
    })
}

fn labels(pairs: &[(&str, &str)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// None of `alerts` fires.
fn none_of(alerts: &[&'static str]) -> Expected {
    alerts.iter().map(|a| (*a, vec![])).collect()
}

const BINDING: &str = "orders-key";
const ACCOUNT: &str = "orders";
const VAULT: &str = "cmk-demo-policies";
const KEY: &str = "cosmos-orders";

/// Gives the key version in use an expiry (or none); the operator reads it
/// at its next resync and reports it in the binding's status.
async fn key_expires_on(env: &Env, key_uri: &str, version: &str, at: Option<jiff::Timestamp>) {
    let exp = at.map(|t| t.as_second());
    env.update_key_version(key_uri, version, json!({ "exp": exp }))
        .await;
}

/// The binding's `KeyExpiring` condition has this status in a scrape.
fn key_expiring_is(scrape: &[Sample], status: &str) -> bool {
    scrape.iter().any(|s| {
        s.name == "cmk_operator_resource_condition"
            && s.labels["type"] == "KeyExpiring"
            && s.labels["status"] == status
    })
}

#[tokio::test]
async fn chart_alerts_fire_on_what_the_operator_really_exports() {
    let mut env = Env::start("alerts").await;
    let ns = env.ns.clone();
    let addr = serve(env.metrics.clone()).await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    let a = env.account_reason(ACCOUNT, "Ready").await;
    let s = a.status.expect("status");
    let (key_uri, version) = (s.key_vault_key_uri.unwrap(), s.key_version_in_use.unwrap());

    // Ready: nothing fires.
    let ready = scrape_when(addr, "both Ready in /metrics", |s| {
        ready_reason(s, "KeyVaultBinding", BINDING, "KeyReady")
            && ready_reason(s, "CosmosAccountCMK", ACCOUNT, "Ready")
    })
    .await;
    promtool_says("ready", input_series(&ready), &[], &none_of(&ALL));

    // The key expires in 40 days: outside the binding's notify window (30
    // days by default, so KeyExpiring is False), inside a 45-day alert window.
    let days = |d: i64| jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * d);
    key_expires_on(&env, &key_uri, &version, Some(days(40))).await;
    let far = scrape_when(addr, "the key's expiry in /metrics", |s| {
        s.iter()
            .any(|s| s.name == "cmk_operator_key_expiration_timestamp_seconds")
            && key_expiring_is(s, "False")
    })
    .await;
    let expiring_alert = labels(&[
        ("namespace", &ns),
        ("name", BINDING),
        ("vault", VAULT),
        ("key", KEY),
        ("severity", "warning"),
    ]);
    let mut expected = none_of(&[KEY_REVOKED, NOT_READY, NO_LEADER, DELETION_BLOCKED]);
    expected.insert(KEY_EXPIRING, vec![expiring_alert]);
    promtool_says("expiring-far", input_series(&far), &[], &none_of(&ALL));
    promtool_says(
        "expiring-wide-window",
        input_series(&far),
        &["--set", "prometheusRule.rules.keyExpiring.withinDays=45"],
        &expected,
    );
    // In 10 days: within the binding's notify window, so the operator raises
    // KeyExpiring and the alert fires whatever withinDays says.
    key_expires_on(&env, &key_uri, &version, Some(days(10))).await;
    let notified = scrape_when(addr, "KeyExpiring in /metrics", |s| {
        key_expiring_is(s, "True")
    })
    .await;
    promtool_says("expiring", input_series(&notified), &[], &expected);
    promtool_says(
        "expiring-notify-window",
        input_series(&notified),
        &["--set", "prometheusRule.rules.keyExpiring.withinDays=5"],
        &expected,
    );
    key_expires_on(&env, &key_uri, &version, None).await;
    scrape_when(addr, "no expiry in /metrics", |s| {
        !s.iter()
            .any(|s| s.name == "cmk_operator_key_expiration_timestamp_seconds")
    })
    .await;

    // Revoked: the version in use disabled behind the operator's back.
    env.set_key_version_enabled(&key_uri, &version, false).await;
    env.account_reason(ACCOUNT, "KeyRevoked").await;
    env.binding_reason(BINDING, "KeyDisabled").await;
    let revoked = scrape_when(addr, "KeyRevoked in /metrics", |s| {
        ready_reason(s, "CosmosAccountCMK", ACCOUNT, "KeyRevoked")
            && ready_reason(s, "KeyVaultBinding", BINDING, "KeyDisabled")
            && !s
                .iter()
                .any(|s| s.name == "cmk_operator_key_expiration_timestamp_seconds")
    })
    .await;
    let mut expected = none_of(&[KEY_EXPIRING, NO_LEADER, DELETION_BLOCKED]);
    expected.insert(
        KEY_REVOKED,
        vec![labels(&[
            ("namespace", &ns),
            ("name", ACCOUNT),
            ("severity", "critical"),
        ])],
    );
    // The binding is not Ready; the account has its own alert.
    expected.insert(
        NOT_READY,
        vec![labels(&[
            ("kind", "KeyVaultBinding"),
            ("namespace", &ns),
            ("name", BINDING),
            ("severity", "warning"),
        ])],
    );
    promtool_says("revoked", input_series(&revoked), &[], &expected);
    // The comparison has teeth: without the rule, the expected alert is missing.
    let missing = promtool_test(
        "revoked-without-rule",
        input_series(&revoked),
        &["--set", "prometheusRule.rules.keyRevoked.enabled=false"],
        &expected,
    )
    .expect_err("no KeyRevoked rule, no KeyRevoked alert");
    assert!(missing.contains(KEY_REVOKED), "{missing}");
    env.enable_key_version(&key_uri, &version).await;
    env.account_reason(ACCOUNT, "Ready").await;

    // Throttled: Azure answers 429 to every call for a while.
    env.sim.set_faults(FaultConfig {
        throttle: vec![ThrottleFault {
            operation: "*".into(),
            count: 1_000_000,
            retry_after_secs: 1,
        }],
        ..Default::default()
    });
    let throttled_total = |s: &[Sample]| -> f64 {
        s.iter()
            .filter(|s| s.name == "cmk_operator_azure_throttled_total")
            .map(|s| s.value)
            .sum()
    };
    let throttling = scrape_when(addr, "429s counted", |s| throttled_total(s) > 0.0).await;
    let mut expected = none_of(&[KEY_REVOKED, NO_LEADER, DELETION_BLOCKED]);
    expected.insert(THROTTLED, vec![labels(&[("severity", "warning")])]);
    assert!(
        throttled_total(&throttling.last) > throttled_total(&throttling.first),
        "429s between the scrapes"
    );
    promtool_says("throttled", input_series(&throttling), &[], &expected);
    env.sim.clear_faults();
    env.account_reason(ACCOUNT, "Ready").await;

    // Deletion blocked: the credential the deletion needs is gone.
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": "Delete", "credentialRef": {"secretName": "gone"}}}),
    )
    .await;
    env.accounts()
        .delete(ACCOUNT, &DeleteParams::default())
        .await
        .expect("delete accepted");
    env.account_reason(ACCOUNT, "DeletionBlocked").await;
    let blocked = scrape_when(addr, "DeletionBlocked in /metrics", |s| {
        ready_reason(s, "CosmosAccountCMK", ACCOUNT, "DeletionBlocked")
    })
    .await;
    let mut expected = none_of(&[KEY_REVOKED, KEY_EXPIRING, NO_LEADER, NOT_READY]);
    expected.insert(
        DELETION_BLOCKED,
        vec![labels(&[
            ("namespace", &ns),
            ("name", ACCOUNT),
            ("severity", "warning"),
        ])],
    );
    promtool_says("deletion-blocked", input_series(&blocked), &[], &expected);

    // No leader: the operator stops leading (as when its lease is lost), and
    // then no replica is scraped at all.
    let metrics = env.metrics.clone();
    env.stop_operator().await;
    metrics.set_leader(false);
    let text = scrape(addr).await;
    let standby = Scrapes {
        first: parse(&text),
        last: parse(&text),
        at_unix: jiff::Timestamp::now().as_second() as f64,
    };
    assert!(
        standby
            .last
            .iter()
            .any(|s| s.name == "cmk_operator_leader" && s.value == 0.0),
        "{text}"
    );
    let mut expected = none_of(&[KEY_REVOKED, KEY_EXPIRING, THROTTLED]);
    expected.insert(NO_LEADER, vec![labels(&[("severity", "critical")])]);
    promtool_says("no-leader", input_series(&standby), &[], &expected);
    let mut expected = none_of(&[KEY_REVOKED, NOT_READY, THROTTLED]);
    expected.insert(
        NO_LEADER,
        vec![labels(&[("job", JOB), ("severity", "critical")])],
    );
    promtool_says("not-scraped", vec![], &[], &expected);
}
