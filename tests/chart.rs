//! The Helm chart in charts/cosmos-cmk-operator: lint, schema, rendered
//! content, and a server-side dry run of the rendered manifests against the
//! local control plane (a real kube-apiserver validates every field).

mod common;

use std::collections::BTreeSet;

use cmk_operator::tenancy::{Request, TenancyPolicy};
use common::helm::{
    apply_chart_crds, chart_dir, docs, dry_run_server, find, helm, render, try_render,
};
use serde_json::Value;

const WI_CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";

/// Values that switch on every optional part (except the ServiceMonitor, whose
/// CRD the local control plane does not have).
fn all_options(ns: &str) -> Vec<String> {
    [
        "workloadIdentity.enabled=true",
        &format!("workloadIdentity.clientId={WI_CLIENT_ID}"),
        "azure.tenantId=66666666-7777-8888-9999-000000000000",
        "operator.firstPartyPrincipalId=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "operator.cloud=AzureUSGovernment",
        "operator.logFormat=text",
        "operator.logLevel=debug",
        &format!("operator.watchNamespace={ns}"),
        "metrics.service.enabled=true",
        "replicaCount=3",
        "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "priorityClassName=system-cluster-critical",
    ]
    .iter()
    .flat_map(|v| ["--set".to_owned(), v.to_string()])
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn chart_crds_are_a_copy_of_the_generated_crds() {
    let generated = std::fs::read_to_string(common::repo_root().join("crds/cosmoscmk.io.yaml"))
        .expect("crds/cosmoscmk.io.yaml");
    let in_chart = std::fs::read_to_string(chart_dir().join("crds/cosmoscmk.io.yaml"))
        .expect("charts/cosmos-cmk-operator/crds/cosmoscmk.io.yaml");
    assert!(
        generated == in_chart,
        "the chart's CRDs drifted from crds/; copy them again:\n    cp crds/cosmoscmk.io.yaml charts/cosmos-cmk-operator/crds/"
    );
    let files: Vec<_> = std::fs::read_dir(chart_dir().join("crds"))
        .expect("chart crds dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "only the generated CRD file belongs in the chart's crds/: {files:?}"
    );
}

#[test]
fn helm_lint_strict_is_clean() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8");
    let ns = "cmk-lint";
    for extra in [vec![], all_options(ns)] {
        let mut args = vec!["lint", "--strict", chart, "--namespace", ns];
        args.extend(strs(&extra));
        let out =
            helm(&args).unwrap_or_else(|e| panic!("helm lint --strict {extra:?} failed:\n{e}"));
        assert!(out.contains("0 chart(s) failed"), "{out}");
        for bad in ["[WARNING]", "[ERROR]"] {
            assert!(!out.contains(bad), "helm lint reported {bad}:\n{out}");
        }
    }
}

#[tokio::test]
async fn rendered_chart_passes_a_server_side_dry_run() {
    let (_client, ns) = common::test_namespace("chart-dry").await;
    // CRDs first, from the chart itself, as `helm install` does.
    apply_chart_crds();
    for extra in [vec![], all_options(&ns)] {
        let yaml = render(
            "cmk",
            &ns,
            &[&["--include-crds"], strs(&extra).as_slice()].concat(),
        );
        let rendered = docs(&yaml);
        let applied = dry_run_server(&yaml)
            .unwrap_or_else(|e| panic!("dry run with {extra:?} rejected:\n{e}"));
        assert_eq!(
            applied.len(),
            rendered.len(),
            "every rendered object is accepted: {applied:?}"
        );
        let kinds: BTreeSet<&str> = rendered.iter().filter_map(|d| d["kind"].as_str()).collect();
        for kind in [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
        ] {
            assert!(
                kinds.contains(kind),
                "{kind} rendered with {extra:?}: {kinds:?}"
            );
        }
    }
}

#[test]
fn bad_values_fail_at_template_time() {
    let cases: &[(&[&str], &str)] = &[
        (&["--set-string", "replicaCount=two"], "/replicaCount"),
        (&["--set", "replicaCount=0"], "/replicaCount"),
        (&["--set", "replicaCount=1.5"], "/replicaCount"),
        (&["--set", "operator.cloud=AzureMars"], "/operator/cloud"),
        (&["--set", "operator.logFormat=xml"], "/operator/logFormat"),
        (
            &["--set", "operator.resyncSeconds=0"],
            "/operator/resyncSeconds",
        ),
        (
            &["--set-string", "operator.concurrency=many"],
            "/operator/concurrency",
        ),
        (
            &["--set", "operator.resyncReadsPerSecond=0"],
            "/operator/resyncReadsPerSecond",
        ),
        (
            &["--set", "operator.firstPartyPrincipalId=not-a-guid"],
            "/operator/firstPartyPrincipalId",
        ),
        (
            &["--set", "operator.watchNamespace=Not_A_Namespace"],
            "/operator/watchNamespace",
        ),
        (&["--set", "image.repository="], "/image/repository"),
        (&["--set", "image.repository=null"], "image"),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            "/image/pullPolicy",
        ),
        (&["--set", "image.digest=latest"], "/image/digest"),
        (&["--set", "health.port=70000"], "/health/port"),
        (&["--set", "metrics.port=0"], "/metrics/port"),
        (
            &["--set", "workloadIdentity.enabled=true"],
            "/workloadIdentity/clientId",
        ),
        (
            &["--set", "workloadIdentity.clientId=nope"],
            "/workloadIdentity/clientId",
        ),
        (
            &["--set", "securityContext.readOnlyRootFilesystem=false"],
            "/securityContext/readOnlyRootFilesystem",
        ),
        (
            &["--set", "securityContext.allowPrivilegeEscalation=true"],
            "/securityContext/allowPrivilegeEscalation",
        ),
        (
            &["--set", "podSecurityContext.runAsNonRoot=false"],
            "/podSecurityContext/runAsNonRoot",
        ),
        (
            &["--set", "resources.limits.memory=lots"],
            "/resources/limits/memory",
        ),
        (
            &["--set", "replicaCont=2"],
            "additional properties 'replicaCont'",
        ),
        (
            &["--set", "operator.resync=60"],
            "additional properties 'resync'",
        ),
        (
            &[
                "--set-json",
                r#"tenancy.namespaces=[{"namespace":"team-a","scopes":["/resourceGroups/rg"]}]"#,
            ],
            "/tenancy/namespaces/0/scopes/0",
        ),
        (
            &[
                "--set-json",
                r#"tenancy.namespaces=[{"namespace":"team-a","scopes":["/subscriptions/s/resourceGroups"]}]"#,
            ],
            "/tenancy/namespaces/0/scopes/0",
        ),
        (
            &[
                "--set-json",
                r#"tenancy.namespaces=[{"namespace":"Team_A"}]"#,
            ],
            "/tenancy/namespaces/0/namespace",
        ),
        (
            &[
                "--set-json",
                r#"tenancy.namespaces=[{"namespace":"a","scope":["/subscriptions/s"]}]"#,
            ],
            "additional properties 'scope'",
        ),
        // Cross-field rules the template enforces.
        (
            &["--set", "health.port=9090"],
            "health.port and metrics.port must differ",
        ),
        (
            &["--set", "metrics.serviceMonitor.enabled=true"],
            "needs metrics.service.enabled",
        ),
    ];
    let mut wrong = Vec::new();
    for (args, expect) in cases {
        match try_render("cmk", "cmk-system", args) {
            Ok(_) => wrong.push(format!("{args:?} rendered; the schema must reject it")),
            Err(e) if e.contains(expect) => {}
            Err(e) => wrong.push(format!(
                "{args:?} failed without mentioning {expect:?}:\n{e}"
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    // And the schema does not reject the values it documents.
    render("cmk", "cmk-system", &[]);
    render("cmk", "cmk-system", &strs(&all_options("cmk-system")));
}

#[test]
fn workload_identity_annotates_the_service_account_and_labels_the_pod() {
    let off = docs(&render("cmk", "cmk-system", &[]));
    let sa = find(&off, "ServiceAccount")[0];
    assert!(
        sa["metadata"]["annotations"]
            .get("azure.workload.identity/client-id")
            .is_none()
    );
    let pod_labels = &find(&off, "Deployment")[0]["spec"]["template"]["metadata"]["labels"];
    assert!(pod_labels.get("azure.workload.identity/use").is_none());

    let on = docs(&render(
        "cmk",
        "cmk-system",
        &[
            "--set",
            "workloadIdentity.enabled=true",
            "--set",
            &format!("workloadIdentity.clientId={WI_CLIENT_ID}"),
        ],
    ));
    let sa = find(&on, "ServiceAccount")[0];
    assert_eq!(
        sa["metadata"]["annotations"]["azure.workload.identity/client-id"],
        WI_CLIENT_ID
    );
    let deployment = find(&on, "Deployment")[0];
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], sa["metadata"]["name"]);
    // The webhook injects the credential; no client secret is wired in.
    let env = pod["spec"]["containers"][0]["env"].as_array().expect("env");
    assert!(env.iter().all(|e| e["name"] != "AZURE_CLIENT_SECRET"));
}

/// (apiGroup, resource, verb) triples of a rules list; panics on resourceNames
/// or nonResourceURLs, which the chart does not use.
fn triples(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        assert!(rule.get("resourceNames").is_none(), "{rule}");
        assert!(rule.get("nonResourceURLs").is_none(), "{rule}");
        for g in rule["apiGroups"].as_array().expect("apiGroups") {
            for r in rule["resources"].as_array().expect("resources") {
                for v in rule["verbs"].as_array().expect("verbs") {
                    let (g, r, v) = (
                        g.as_str().unwrap(),
                        r.as_str().unwrap(),
                        v.as_str().unwrap(),
                    );
                    assert!(g != "*" && r != "*" && v != "*", "wildcard in {rule}");
                    out.insert((g.to_owned(), r.to_owned(), v.to_owned()));
                }
            }
        }
    }
    out
}

fn expand(spec: &[(&str, &[&str], &[&str])]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for (g, rs, vs) in spec {
        for r in *rs {
            for v in *vs {
                out.insert((g.to_string(), r.to_string(), v.to_string()));
            }
        }
    }
    out
}

#[test]
fn rbac_is_exactly_least_privilege() {
    let ns = "cmk-system";
    let rendered = docs(&render("cmk", ns, &[]));
    let cluster_roles = find(&rendered, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1);
    assert_eq!(
        triples(&cluster_roles[0]["rules"]),
        expand(&[
            (
                "cosmoscmk.io",
                &["keyvaultbindings", "cosmosaccountcmks"],
                &["get", "list", "watch", "patch", "update"],
            ),
            (
                "cosmoscmk.io",
                &["keyvaultbindings/status", "cosmosaccountcmks/status"],
                &["get", "patch", "update"],
            ),
            ("events.k8s.io", &["events"], &["create", "patch"]),
            ("", &["secrets"], &["get"]),
        ]),
        "ClusterRole rules"
    );
    let roles = find(&rendered, "Role");
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["metadata"]["namespace"], ns);
    assert_eq!(
        triples(&roles[0]["rules"]),
        expand(&[(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "update"]
        )]),
        "leader-election Role rules"
    );

    let sa = find(&rendered, "ServiceAccount")[0]["metadata"]["name"].clone();
    let crb = find(&rendered, "ClusterRoleBinding");
    assert_eq!(crb.len(), 1);
    assert_eq!(
        crb[0]["roleRef"]["name"],
        cluster_roles[0]["metadata"]["name"]
    );
    let rbs = find(&rendered, "RoleBinding");
    assert_eq!(rbs.len(), 1);
    assert_eq!(rbs[0]["roleRef"]["kind"], "Role");
    assert_eq!(rbs[0]["roleRef"]["name"], roles[0]["metadata"]["name"]);
    for b in crb.iter().chain(rbs.iter()) {
        let subjects = b["subjects"].as_array().expect("subjects");
        assert_eq!(subjects.len(), 1, "{b}");
        assert_eq!(subjects[0]["kind"], "ServiceAccount");
        assert_eq!(subjects[0]["name"], sa);
        assert_eq!(subjects[0]["namespace"], ns);
    }

    // Watching one namespace binds the same ClusterRole there only.
    let one = docs(&render(
        "cmk",
        ns,
        &["--set", "operator.watchNamespace=team-a"],
    ));
    assert!(find(&one, "ClusterRoleBinding").is_empty());
    let rbs = find(&one, "RoleBinding");
    let scoped: Vec<_> = rbs
        .iter()
        .filter(|b| b["roleRef"]["kind"] == "ClusterRole")
        .collect();
    assert_eq!(scoped.len(), 1);
    assert_eq!(scoped[0]["metadata"]["namespace"], "team-a");
    let args =
        find(&one, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert!(
        args.as_array()
            .unwrap()
            .windows(2)
            .any(|w| w[0] == "--namespace" && w[1] == "team-a")
    );

    // rbac.create=false renders no RBAC at all.
    let none = docs(&render("cmk", ns, &["--set", "rbac.create=false"]));
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(
            find(&none, kind).is_empty(),
            "{kind} rendered with rbac.create=false"
        );
    }
}

#[test]
fn deployment_is_hardened_probed_and_configured() {
    let rendered = docs(&render(
        "cmk",
        "cmk-system",
        &[
            "--set",
            "operator.firstPartyPrincipalId=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "--set",
            "operator.resyncSeconds=600",
            "--set",
            "operator.pollSeconds=5",
            // --set would pass 2.5 as a string.
            "--set-json",
            "operator.resyncReadsPerSecond=2.5",
            "--set",
            "operator.concurrency=4",
            "--set",
            "operator.cloud=AzureChinaCloud",
        ],
    ));
    let d = find(&rendered, "Deployment")[0];
    assert_eq!(
        d["spec"]["replicas"], 2,
        "two replicas by default: leader election exists"
    );
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][k][r].is_string(), "resources.{k}.{r} set");
        }
    }

    let ports: Vec<(String, i64)> = c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![("health".to_owned(), 8080), ("metrics".to_owned(), 9090)]
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "health");

    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    assert_eq!(
        &args[..5],
        &["run", "--azure", "azure", "--log-format", "json"]
    );
    let flag = |name: &str| {
        args.windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1])
            .unwrap_or_else(|| panic!("{name} missing from {args:?}"))
    };
    assert_eq!(flag("--cloud"), "AzureChinaCloud");
    assert_eq!(
        flag("--first-party-principal-id"),
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    );
    assert_eq!(flag("--resync-seconds"), "600");
    assert_eq!(flag("--poll-seconds"), "5");
    assert_eq!(flag("--resync-reads-per-second"), "2.5");
    assert_eq!(flag("--concurrency"), "4");
    assert_eq!(flag("--health-listen"), "0.0.0.0:8080");
    assert_eq!(flag("--metrics-listen"), "0.0.0.0:9090");
    assert_eq!(flag("--leader-election"), "true");
    assert!(!args.contains(&"--namespace"), "all namespaces by default");

    let env = c["env"].as_array().expect("env");
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let e = env
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], path);
    }
    assert_eq!(
        c["image"], "ghcr.io/cosmos-cmk/cosmos-cmk-operator:0.1.0",
        "appVersion by default"
    );
}

/// The tenancy policy file the chart renders, the Deployment's flag for it,
/// and its mount.
fn tenancy_of(rendered: &[Value]) -> (TenancyPolicy, String) {
    let cm = find(rendered, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "cmk-cosmos-cmk-operator-tenancy")
        .expect("the tenancy ConfigMap");
    let text = cm["data"]["tenancy.yaml"].as_str().expect("tenancy.yaml");
    let policy = TenancyPolicy::from_yaml(text)
        .unwrap_or_else(|e| panic!("the operator accepts the rendered policy:\n{text}\n{e}"));
    let pod = &find(rendered, "Deployment")[0]["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let file = args
        .windows(2)
        .find(|w| w[0] == "--tenancy-config")
        .map(|w| w[1])
        .expect("--tenancy-config passed");
    let mount = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "tenancy")
        .expect("tenancy mounted");
    assert_eq!(mount["readOnly"], true);
    assert_eq!(
        format!("{}/tenancy.yaml", mount["mountPath"].as_str().unwrap()),
        file
    );
    let volume = pod["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "tenancy")
        .expect("tenancy volume");
    assert_eq!(volume["configMap"]["name"], cm["metadata"]["name"]);
    let checksum = pod["metadata"]["annotations"]["checksum/tenancy"]
        .as_str()
        .expect("checksum annotation")
        .to_owned();
    (policy, checksum)
}

#[test]
fn tenancy_policy_is_empty_by_default_and_rendered_from_values() {
    let (default, default_sum) = tenancy_of(&docs(&render("cmk", "cmk-system", &[])));
    assert_eq!(
        default,
        TenancyPolicy::default(),
        "nothing allowed by default"
    );

    let sub = "/subscriptions/00000000-0000-0000-0000-00000000c0de";
    let values = format!(
        r#"tenancy.namespaces=[{{"namespace":"team-a","operatorIdentity":true,"scopes":["{sub}/resourceGroups/team-a"]}},{{"namespace":"*","scopes":["{sub}/resourceGroups/shared"]}}]"#
    );
    let rendered = docs(&render(
        "cmk",
        "cmk-system",
        &[
            "--set-json",
            &values,
            "--set",
            "podAnnotations.team=platform",
        ],
    ));
    let (policy, sum) = tenancy_of(&rendered);
    assert_ne!(sum, default_sum, "a policy change rolls the pods");
    assert_eq!(
        find(&rendered, "Deployment")[0]["spec"]["template"]["metadata"]["annotations"]["team"],
        "platform",
        "podAnnotations still apply"
    );
    let account = |group: &str| {
        vec![format!(
            "{sub}/resourceGroups/{group}/providers/Microsoft.DocumentDB/databaseAccounts/a"
        )]
    };
    fn ask<'a>(namespace: &'a str, credential_ref: bool, targets: &'a [String]) -> Request<'a> {
        Request {
            namespace,
            credential_ref,
            targets,
        }
    }
    let (team_a, team_a2, shared) = (account("team-a"), account("team-a2"), account("shared"));
    assert_eq!(policy.check(&ask("team-a", false, &team_a)), Ok(()));
    assert!(policy.check(&ask("team-a", false, &team_a2)).is_err());
    assert!(
        policy.check(&ask("team-b", false, &shared)).is_err(),
        "the \"*\" entry left operatorIdentity false"
    );
    assert_eq!(policy.check(&ask("team-b", true, &shared)), Ok(()));
}

#[test]
fn pdb_only_with_more_than_one_replica() {
    let two = docs(&render("cmk", "cmk-system", &[]));
    let pdb = find(&two, "PodDisruptionBudget");
    assert_eq!(pdb.len(), 1);
    assert_eq!(pdb[0]["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb[0]["spec"]["selector"]["matchLabels"],
        find(&two, "Deployment")[0]["spec"]["selector"]["matchLabels"]
    );
    let one = docs(&render("cmk", "cmk-system", &["--set", "replicaCount=1"]));
    assert!(find(&one, "PodDisruptionBudget").is_empty());
}

#[test]
fn metrics_service_and_service_monitor_are_optional() {
    let default = docs(&render("cmk", "cmk-system", &[]));
    assert!(
        find(&default, "Service").is_empty(),
        "no metrics Service by default"
    );
    assert!(
        find(&default, "ServiceMonitor").is_empty(),
        "no ServiceMonitor by default"
    );

    let on = docs(&render(
        "cmk",
        "cmk-system",
        &[
            "--set",
            "metrics.service.enabled=true",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.serviceMonitor.labels.release=prometheus",
        ],
    ));
    let svc = find(&on, "Service")[0];
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(svc["spec"]["ports"][0]["port"], 9090);
    let sm = find(&on, "ServiceMonitor")[0];
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    // The ServiceMonitor selects the Service (whose labels include the selector labels).
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(&svc["metadata"]["labels"][k], v, "Service label {k}");
    }
}

#[test]
fn notes_explain_the_next_steps() {
    let chart = chart_dir();
    let out = helm(&[
        "install",
        "cmk",
        chart.to_str().unwrap(),
        "--dry-run=client",
        "--namespace",
        "cmk-system",
    ])
    .expect("helm install --dry-run=client renders NOTES");
    assert!(
        out.contains("operator.firstPartyPrincipalId is empty"),
        "{out}"
    );
    assert!(out.contains("no Azure credential configured"), "{out}");
    assert!(
        out.contains("rollout status deployment/cmk-cosmos-cmk-operator"),
        "{out}"
    );
    assert!(
        out.contains("tenancy.namespaces is empty, so NO namespace may use the operator"),
        "{out}"
    );
}
