//! The chart's opt-in PrometheusRule and Grafana dashboard: what renders,
//! what values change, `promtool check rules` on the rendered groups (and on
//! the dashboard's queries), and every series they read is one the operator
//! exports and docs/metrics.md describes. tests/e2e/alerts.rs runs the rules
//! in `promtool test rules` against the operator's real samples.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cmk_operator::resource_metrics::{KeyTimes, ResourceFigures};
use cmk_operator::telemetry::{KindCounts, Metrics};
use common::helm::{docs, dry_run_server, find, render, scratch_dir, try_render};
use serde_json::{Value, json};

const ALERTS: [&str; 6] = [
    "CosmosCMKKeyRevoked",
    "CosmosCMKResourceNotReady",
    "CosmosCMKKeyExpiring",
    "CosmosCMKNoLeader",
    "CosmosCMKAzureThrottled",
    "CosmosCMKDeletionBlocked",
];

/// promtool, built from Prometheus's Go module by tests/promtool/build.
fn promtool() -> &'static PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| common::script_output_path("tests/promtool/build"))
}

/// `promtool check rules` on `groups`; Ok(stdout) or Err(its output).
fn check_rules(name: &str, groups: &Value) -> Result<String, String> {
    let file = scratch_dir("alerts").join(format!("{name}-{}.json", std::process::id()));
    std::fs::write(&file, json!({ "groups": groups }).to_string()).expect("rules written");
    let out = std::process::Command::new(promtool())
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn rendered(extra: &[&str]) -> Vec<Value> {
    docs(&render("cmk", "cmk-system", extra))
}

/// The rendered PrometheusRule's rules (with `prometheusRule.enabled`).
fn rule_list(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--set", "prometheusRule.enabled=true"];
    args.extend_from_slice(extra);
    let all = rendered(&args);
    let rule = find(&all, "PrometheusRule");
    assert_eq!(rule.len(), 1);
    rule[0]["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

fn named<'a>(rules: &'a [Value], alert: &str) -> Vec<&'a Value> {
    rules.iter().filter(|r| r["alert"] == alert).collect()
}

/// The dashboard JSON the chart ships.
fn dashboard() -> Value {
    let path = common::helm::chart_dir().join("files/dashboards/cosmos-cmk-operator.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard file")).expect("JSON")
}

fn dashboard_queries(d: &Value) -> Vec<String> {
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets").clone())
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect()
}

/// Every `cmk_operator_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.len() > "cmk_operator_".len() && w.starts_with("cmk_operator_"))
        .map(str::to_owned)
        .collect()
}

/// What the operator declares on `/metrics`, each family with the names its
/// samples take (`_total` of a counter, `_bucket`/`_sum`/`_count` of a histogram).
fn exported() -> BTreeSet<String> {
    // A family shows once it has a series: one of each.
    let metrics = Metrics::default();
    let took = std::time::Duration::from_millis(3);
    metrics.reconciled("KeyVaultBinding", "Ok", took);
    metrics.reconcile_failed("KeyVaultBinding");
    metrics.azure_call("GetKey", "429", took);
    let _worker = metrics.active_worker("KeyVaultBinding");
    metrics.count_from(Box::new(|| {
        vec![KindCounts {
            kind: "KeyVaultBinding".into(),
            phases: vec![("Ready", 1)],
            failing: 0,
        }]
    }));
    metrics.figures_from(Box::new(|| {
        vec![ResourceFigures {
            kind: "KeyVaultBinding".into(),
            conditions: vec![("Ready".into(), "True".into(), "KeyReady".into())],
            key: Some(KeyTimes {
                expires: Some(1),
                next_rotation: Some(1),
                ..KeyTimes::default()
            }),
            safe_to_disable_after: Some(1),
            ..ResourceFigures::default()
        }]
    }));
    let text = metrics.encode();
    let mut names = BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut words = line.split(' ');
        let (family, kind) = (words.next().unwrap(), words.next().unwrap());
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["", "_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{family}{s}")));
    }
    names
}

#[test]
fn prometheus_rule_and_dashboard_are_opt_in() {
    let default = rendered(&[]);
    assert!(find(&default, "PrometheusRule").is_empty());
    assert!(
        !default.iter().any(|d| d["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-dashboard"))),
        "no dashboard ConfigMap by default"
    );
}

#[test]
fn prometheus_rule_has_every_alert_with_overridable_thresholds() {
    let all = rendered(&[
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.labels.release=prometheus",
    ]);
    let rule = find(&all, "PrometheusRule")[0];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "cmk-system");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        rule["metadata"]["labels"]["app.kubernetes.io/instance"],
        "cmk"
    );

    let rules = rule_list(&[]);
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(names, ALERTS.into_iter().collect());
    for r in &rules {
        let expr = r["expr"].as_str().expect("expr");
        assert!(
            expr.contains(r#"job="cmk-cosmos-cmk-operator-metrics""#),
            "every series is this installation's: {expr}"
        );
        assert!(
            r["annotations"]["summary"].is_string() && r["annotations"]["description"].is_string(),
            "{r}"
        );
        assert!(r["labels"]["severity"].is_string(), "{r}");
    }
    let defaults: Vec<(&str, &str, &str)> = vec![
        ("CosmosCMKKeyRevoked", "1m", "critical"),
        ("CosmosCMKResourceNotReady", "15m", "warning"),
        ("CosmosCMKKeyExpiring", "10m", "warning"),
        ("CosmosCMKNoLeader", "5m", "critical"),
        ("CosmosCMKAzureThrottled", "15m", "warning"),
        ("CosmosCMKDeletionBlocked", "15m", "warning"),
    ];
    for (alert, for_, severity) in defaults {
        for r in named(&rules, alert) {
            assert_eq!(
                (r["for"].as_str(), r["labels"]["severity"].as_str()),
                (Some(for_), Some(severity)),
                "{alert}"
            );
        }
    }
    let expiring = named(&rules, "CosmosCMKKeyExpiring")[0]["expr"]
        .as_str()
        .unwrap();
    assert!(
        expiring.contains("< 30 * 86400") && expiring.contains(r#"type="KeyExpiring""#),
        "by expiry time, and by the KeyExpiring condition: {expiring}"
    );

    // Thresholds, durations, severities, extra labels, the selector, and a rule off.
    let tuned = rule_list(&[
        "--set",
        "prometheusRule.rules.keyExpiring.withinDays=7",
        "--set",
        "prometheusRule.rules.notReady.for=1h",
        "--set",
        "prometheusRule.rules.noLeader.severity=page",
        "--set-json",
        "prometheusRule.rules.azureThrottling.ratio=0.25",
        "--set",
        "prometheusRule.rules.azureThrottling.window=30m",
        "--set",
        "prometheusRule.rules.deletionBlocked.enabled=false",
        "--set",
        "prometheusRule.alertLabels.team=platform",
        "--set-string",
        r#"prometheusRule.seriesSelector=service="cmk-metrics""#,
    ]);
    assert!(named(&tuned, "CosmosCMKDeletionBlocked").is_empty());
    assert!(
        named(&tuned, "CosmosCMKKeyExpiring")[0]["expr"]
            .as_str()
            .unwrap()
            .contains("< 7 * 86400")
    );
    assert_eq!(named(&tuned, "CosmosCMKResourceNotReady")[0]["for"], "1h");
    assert_eq!(
        named(&tuned, "CosmosCMKNoLeader")[0]["labels"]["severity"],
        "page"
    );
    let throttled = named(&tuned, "CosmosCMKAzureThrottled")[0]["expr"]
        .as_str()
        .unwrap();
    assert!(
        throttled.ends_with("> 0.25") && throttled.contains("[30m]"),
        "{throttled}"
    );
    for r in &tuned {
        assert_eq!(r["labels"]["team"], "platform", "{r}");
        let expr = r["expr"].as_str().unwrap();
        assert!(
            expr.contains(r#"service="cmk-metrics""#) && !expr.contains("job="),
            "{expr}"
        );
    }
    check_rules("tuned", &json!([{"name": "tuned", "rules": tuned}]))
        .unwrap_or_else(|e| panic!("the tuned rules are valid: {e}"));
}

#[test]
fn promtool_checks_the_rendered_rules() {
    let all = rendered(&["--set", "prometheusRule.enabled=true"]);
    let groups = &find(&all, "PrometheusRule")[0]["spec"]["groups"];
    let out = check_rules("rendered", groups)
        .unwrap_or_else(|e| panic!("promtool check rules refused the chart's rules:\n{e}"));
    assert!(out.contains("SUCCESS: 6 rules found"), "{out}");
    // The check has teeth: a broken expression or annotation template fails it.
    let mut broken = groups.clone();
    broken[0]["rules"][0]["expr"] = json!("max by (namespace (cmk_operator_leader");
    assert!(check_rules("broken-expr", &broken).is_err());
    let mut broken = groups.clone();
    broken[0]["rules"][0]["annotations"]["summary"] = json!("{{ $labels.name ");
    assert!(check_rules("broken-template", &broken).is_err());
}

#[test]
fn bad_alert_values_fail_at_template_time() {
    for (value, path) in [
        (
            "prometheusRule.rules.azureThrottling.ratio=2",
            "/prometheusRule/rules/azureThrottling/ratio",
        ),
        (
            "prometheusRule.rules.keyExpiring.withinDays=0",
            "/prometheusRule/rules/keyExpiring/withinDays",
        ),
        (
            "prometheusRule.rules.notReady.for=soon",
            "/prometheusRule/rules/notReady/for",
        ),
        (
            "prometheusRule.rules.keyRevokd.enabled=true",
            "/prometheusRule/rules",
        ),
        ("grafanaDashboard.enabeld=true", "/grafanaDashboard"),
    ] {
        let err = try_render("cmk", "cmk-system", &["--set", value])
            .expect_err(&format!("{value} must be refused"));
        assert!(err.contains(path), "{value}: {err}");
    }
}

#[tokio::test]
async fn grafana_dashboard_is_a_configmap_the_sidecar_loads() {
    let (_client, ns) = common::test_namespace("chart-dashboard").await;
    let yaml = render(
        "cmk",
        &ns,
        &[
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "grafanaDashboard.annotations.grafana_folder=Operators",
        ],
    );
    let all = docs(&yaml);
    let cm: Vec<&Value> = find(&all, "ConfigMap")
        .into_iter()
        .filter(|c| c["metadata"]["name"] == "cmk-cosmos-cmk-operator-dashboard")
        .collect();
    assert_eq!(cm.len(), 1);
    let cm = cm[0];
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "Operators");
    assert_eq!(cm["metadata"]["namespace"], ns.as_str());
    let json: Value = serde_json::from_str(
        cm["data"]["cosmos-cmk-operator.json"]
            .as_str()
            .expect("the dashboard file"),
    )
    .expect("the ConfigMap holds the dashboard JSON");
    assert_eq!(json, dashboard(), "the file, unchanged");
    let only_cm: String = yaml
        .split("\n---")
        .filter(|d| d.contains("cmk-cosmos-cmk-operator-dashboard"))
        .collect();
    dry_run_server(&only_cm).unwrap_or_else(|e| panic!("the API server accepts it: {e}"));

    // Another sidecar label and namespace.
    let moved = rendered(&[
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "grafanaDashboard.labels.grafana_dashboard=yes",
        "--set",
        "grafanaDashboard.namespace=monitoring",
    ]);
    let cm = find(&moved, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "cmk-cosmos-cmk-operator-dashboard")
        .expect("rendered");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "yes");
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
}

#[test]
fn dashboard_panels_query_valid_promql() {
    let d = dashboard();
    assert_eq!(d["uid"], "cosmos-cmk-operator");
    let panels = d["panels"].as_array().expect("panels");
    let ids: BTreeSet<i64> = panels.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in panels {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        assert!(
            !p["targets"].as_array().unwrap().is_empty(),
            "{}",
            p["title"]
        );
    }
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Leader",
        "Revoked keys",
        "Resources not Ready",
        "Deletion blocked",
        "Key expiry and rotation",
        "Azure 429 share (10m)",
    ] {
        assert!(titles.contains(&wanted), "{wanted} in {titles:?}");
    }
    // promtool parses each query as a recording rule ($job as Grafana's "All").
    let rules: Vec<Value> = dashboard_queries(&d)
        .iter()
        .enumerate()
        .map(|(i, q)| json!({"record": format!("dashboard:query_{i}"), "expr": q.replace("$job", ".+")}))
        .collect();
    check_rules("dashboard", &json!([{"name": "dashboard", "rules": rules}]))
        .unwrap_or_else(|e| panic!("a dashboard query is not valid PromQL:\n{e}"));
}

#[test]
fn rules_and_dashboard_read_only_exported_documented_series() {
    let exported = exported();
    let doc_path: &Path = &common::repo_root().join("docs/metrics.md");
    let documented = metric_names(&std::fs::read_to_string(doc_path).expect("docs/metrics.md"));
    let rules: String = rule_list(&[])
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    let used: BTreeSet<String> = metric_names(&rules)
        .into_iter()
        .chain(metric_names(&dashboard_queries(&dashboard()).join(" ")))
        .collect();
    assert!(used.len() >= 8, "{used:?}");
    for name in &used {
        assert!(
            exported.contains(name),
            "{name} is read but not exported: {exported:?}"
        );
        assert!(
            documented.contains(name),
            "{name} is read but not in docs/metrics.md"
        );
    }
    // The document describes what is exported, and all of it.
    for name in &documented {
        assert!(
            exported.contains(name),
            "docs/metrics.md names {name}, which is not exported"
        );
    }
    let families: BTreeSet<&str> = exported
        .iter()
        .map(|n| {
            ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .fold(n.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n))
        })
        .collect();
    for family in families {
        assert!(
            documented.iter().any(|d| d.starts_with(family)),
            "{family} is exported but not in docs/metrics.md"
        );
    }
}

#[test]
fn service_monitor_keeps_the_resources_namespace_label() {
    // Without honorLabels Prometheus renames the series' `namespace` (the
    // resource's) to `exported_namespace`, and the rules' labels would name
    // the operator's namespace instead.
    let monitor = |extra: &[&str]| {
        let mut args = vec![
            "--set",
            "metrics.service.enabled=true",
            "--set",
            "metrics.serviceMonitor.enabled=true",
        ];
        args.extend_from_slice(extra);
        find(&rendered(&args), "ServiceMonitor")[0]["spec"]["endpoints"][0]["honorLabels"].clone()
    };
    assert_eq!(monitor(&[]), json!(true));
    assert_eq!(
        monitor(&["--set", "metrics.serviceMonitor.honorLabels=false"]),
        json!(false)
    );
}

#[test]
fn helm_lint_strict_is_clean_with_alerts_and_dashboard() {
    let chart = common::helm::chart_dir();
    let out = common::helm::helm(&[
        "lint",
        "--strict",
        chart.to_str().expect("utf-8"),
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "metrics.service.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    ])
    .unwrap_or_else(|e| panic!("helm lint --strict failed:\n{e}"));
    assert!(out.contains("0 chart(s) failed"), "{out}");
    for bad in ["[WARNING]", "[ERROR]"] {
        assert!(!out.contains(bad), "helm lint reported {bad}:\n{out}");
    }
}
