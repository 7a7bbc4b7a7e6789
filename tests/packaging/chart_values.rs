//! The chart's conventional values (those cert-manager and External Secrets
//! users expect): each renders where it should, and only when set. Lint and
//! the server-side dry run of all of them together are in chart.rs
//! (`all_options`).

use crate::chart::{CA_MOUNTS, CA_VOLUMES, is_aggregated};
use crate::common;

use common::helm::{docs, find, render};
use serde_json::{Value, json};

const NS: &str = "cmk-system";

fn rendered(extra: &[&str]) -> Vec<Value> {
    docs(&render("cmk", NS, extra))
}

fn deployment(extra: &[&str]) -> Value {
    find(&rendered(extra), "Deployment")[0].clone()
}

fn container(d: &Value) -> &Value {
    &d["spec"]["template"]["spec"]["containers"][0]
}

fn env_names(d: &Value) -> Vec<String> {
    container(d)["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn common_labels_are_on_every_object_the_chart_renders() {
    let docs = rendered(&[
        "--set",
        "commonLabels.team=payments",
        "--set",
        "commonLabels.cost-center=cc-42",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set-json",
        r#"tenancy.namespaces=[{"namespace":"team-a"}]"#,
    ]);
    assert!(docs.len() >= 14, "{} objects", docs.len());
    for doc in &docs {
        let labels = &doc["metadata"]["labels"];
        assert_eq!(
            (&labels["team"], &labels["cost-center"]),
            (&json!("payments"), &json!("cc-42")),
            "{} {}",
            doc["kind"],
            doc["metadata"]["name"]
        );
    }
    let d = find(&docs, "Deployment")[0];
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["team"], "payments",
        "the pods carry them too"
    );
    // The selector does not: it is immutable, and must not change with them.
    assert!(d["spec"]["selector"]["matchLabels"].get("team").is_none());
}

#[test]
fn deployment_annotations_history_and_strategy() {
    let default = deployment(&[]);
    assert!(default["metadata"].get("annotations").is_none());
    assert_eq!(default["spec"]["revisionHistoryLimit"], 5);
    assert_eq!(
        default["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    );

    let set = deployment(&[
        "--set",
        "deploymentAnnotations.owner=platform",
        "--set",
        "revisionHistoryLimit=2",
        "--set",
        "strategy.rollingUpdate.maxSurge=25%",
    ]);
    assert_eq!(set["metadata"]["annotations"], json!({"owner": "platform"}));
    assert!(
        set["spec"]["template"]["metadata"]["annotations"]
            .get("owner")
            .is_none(),
        "deployment annotations stay off the pods"
    );
    assert_eq!(set["spec"]["revisionHistoryLimit"], 2);
    assert_eq!(set["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(
        set["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );

    // Recreate takes no rollingUpdate (the API server refuses one): the
    // default's is dropped rather than merged in.
    let recreate = deployment(&["--set", "strategy.type=Recreate"]);
    assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn extra_args_env_and_volumes_come_after_the_charts_own() {
    let default = deployment(&[]);
    let default_args = container(&default)["args"].as_array().unwrap().clone();
    let default_mounts = container(&default)["volumeMounts"]
        .as_array()
        .unwrap()
        .len();
    let default_volumes = default["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .len();

    let d = deployment(&[
        "--set-json",
        r#"extraArgs=["--lease-namespace=leases", "--simulator-lro-ms", "5"]"#,
        "--set-json",
        r#"extraEnv=[{"name":"SSL_CERT_DIR","value":"/etc/ssl/corp"}]"#,
        "--set-json",
        &format!("extraVolumes={CA_VOLUMES}"),
        "--set-json",
        &format!("extraVolumeMounts={CA_MOUNTS}"),
    ]);
    let args = container(&d)["args"].as_array().unwrap();
    assert_eq!(&args[..default_args.len()], &default_args[..]);
    assert_eq!(
        &args[default_args.len()..],
        &[
            json!("--lease-namespace=leases"),
            json!("--simulator-lro-ms"),
            json!("5")
        ]
    );
    assert!(env_names(&d).contains(&"SSL_CERT_DIR".to_owned()));
    let mounts = container(&d)["volumeMounts"].as_array().unwrap();
    assert_eq!(mounts.len(), default_mounts + 1);
    assert_eq!(mounts[default_mounts]["mountPath"], "/etc/ssl/corp");
    let volumes = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), default_volumes + 1);
    assert_eq!(volumes[default_volumes]["configMap"]["name"], "corp-ca");
}

#[test]
fn proxy_variables_only_when_set() {
    let default = deployment(&[]);
    for name in ["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"] {
        assert!(!env_names(&default).contains(&name.to_owned()), "{name}");
    }
    let d = deployment(&[
        "--set",
        "proxy.httpsProxy=http://proxy.corp.example:3128",
        "--set",
        "proxy.httpProxy=http://proxy.corp.example:3128",
        "--set",
        r"proxy.noProxy=.corp.example\,10.0.0.0/8",
    ]);
    let env = container(&d)["env"].as_array().unwrap();
    let value = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .map(|e| e["value"].clone())
            .unwrap_or_else(|| panic!("{n} set"))
    };
    assert_eq!(value("HTTPS_PROXY"), "http://proxy.corp.example:3128");
    assert_eq!(value("HTTP_PROXY"), "http://proxy.corp.example:3128");
    assert_eq!(value("NO_PROXY"), ".corp.example,10.0.0.0/8");
}

#[test]
fn service_monitor_brings_its_service_and_pod_monitor_needs_none() {
    let sm = rendered(&["--set", "metrics.serviceMonitor.enabled=true"]);
    let svc = find(&sm, "Service");
    assert_eq!(
        svc.len(),
        1,
        "the ServiceMonitor brings the Service it scrapes through"
    );
    let monitor = find(&sm, "ServiceMonitor")[0];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&svc[0]["metadata"]["labels"][k], v, "Service label {k}");
    }

    let pm = rendered(&[
        "--set",
        "metrics.podMonitor.enabled=true",
        "--set",
        "metrics.podMonitor.labels.release=prometheus",
        "--set",
        "metrics.podMonitor.interval=15s",
    ]);
    assert!(
        find(&pm, "Service").is_empty(),
        "a PodMonitor needs no Service"
    );
    assert!(find(&pm, "ServiceMonitor").is_empty());
    let monitor = find(&pm, "PodMonitor")[0];
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(
        (&endpoint["port"], &endpoint["path"], &endpoint["interval"]),
        (&json!("metrics"), &json!("/metrics"), &json!("15s"))
    );
    assert_eq!(endpoint["honorLabels"], true, "as the ServiceMonitor's");
    // It selects the operator's pods, whose container names the port.
    let d = find(&pm, "Deployment")[0];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &d["spec"]["template"]["metadata"]["labels"][k], v,
            "pod label {k}"
        );
    }
    assert!(
        container(d)["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "metrics")
    );
}

#[test]
fn aggregated_cluster_roles_give_view_and_edit_the_two_kinds() {
    let docs = rendered(&[]);
    let aggregated: Vec<&Value> = find(&docs, "ClusterRole")
        .into_iter()
        .filter(|r| is_aggregated(r))
        .collect();
    assert_eq!(aggregated.len(), 2);
    let by_name = |suffix: &str| {
        *aggregated
            .iter()
            .find(|r| r["metadata"]["name"] == format!("cmk-cosmos-cmk-operator-{suffix}"))
            .unwrap_or_else(|| panic!("-{suffix} role"))
    };
    let label = |r: &Value, to: &str| {
        r["metadata"]["labels"][format!("rbac.authorization.k8s.io/aggregate-to-{to}")] == "true"
    };
    let view = by_name("view");
    let edit = by_name("edit");
    for to in ["view", "edit", "admin"] {
        assert!(label(view, to), "view role aggregates to {to}");
    }
    assert!(!label(edit, "view"), "edit verbs never reach view");
    assert!(label(edit, "edit") && label(edit, "admin"));
    let verbs = |r: &Value| -> Vec<String> {
        r["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rule| rule["verbs"].as_array().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(verbs(view), ["get", "list", "watch"]);
    assert_eq!(
        verbs(edit),
        ["create", "update", "patch", "delete", "deletecollection"]
    );
    let edit_resources = &edit["rules"][0]["resources"];
    assert_eq!(
        edit_resources,
        &json!(["keyvaultbindings", "cosmosaccountcmks"]),
        "status stays the operator's"
    );
    for r in [view, edit] {
        assert_eq!(r["rules"][0]["apiGroups"], json!(["cosmoscmk.io"]));
    }

    let off = rendered(&["--set", "rbac.aggregateClusterRoles=false"]);
    assert!(
        find(&off, "ClusterRole").iter().all(|r| !is_aggregated(r)),
        "opted out"
    );
}
