//! The Helm chart in charts/cosmos-cmk-operator: lint, schema, rendered
//! content, and a server-side dry run of the rendered manifests against the
//! local control plane (a real kube-apiserver validates every field).

use crate::common;

use std::collections::BTreeSet;

use cmk_operator::tenancy::{Request, TenancyPolicy};
use common::helm::{
    CHART_CRDS, apply_chart_crds, chart_dir, docs, dry_run_server, find, helm, helm_kube, render,
    try_render,
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
        "networkPolicy.enabled=true",
        "commonLabels.team=payments",
        "deploymentAnnotations.owner=platform",
        "revisionHistoryLimit=3",
        "strategy.rollingUpdate.maxSurge=2",
        "proxy.httpsProxy=http://proxy.corp.example:3128",
        "proxy.httpProxy=http://proxy.corp.example:3128",
        "proxy.noProxy=.corp.example\\,10.0.0.0/8",
    ]
    .iter()
    .flat_map(|v| ["--set".to_owned(), v.to_string()])
    .chain([
        "--set-json".to_owned(),
        format!(r#"tenancy.namespaces=[{{"namespace":"{ns}"}}]"#),
        "--set-json".to_owned(),
        format!("extraObjects={EXTRA_OBJECTS}"),
        "--set-json".to_owned(),
        // The chart README's CA example (the CLI parses it, see below).
        r#"extraArgs=["--extra-ca-file=/etc/ssl/corp/ca.crt"]"#.to_owned(),
        "--set-json".to_owned(),
        format!("extraVolumes={CA_VOLUMES}"),
        "--set-json".to_owned(),
        format!("extraVolumeMounts={CA_MOUNTS}"),
    ])
    .collect()
}

/// extraObjects of both forms (a map, a string of YAML), using tpl.
const EXTRA_OBJECTS: &str = r#"[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"{{ include \"cmk.fullname\" . }}-extra"},"data":{"cluster":"{{ .Values.operator.clusterId }}"}},"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra-text\n  namespace: {{ .Release.Namespace }}\ndata:\n  replicas: '{{ .Values.replicaCount }}'\n"]"#;

/// A CA bundle mounted from a ConfigMap (the chart README's example for a
/// TLS-inspecting proxy).
pub(crate) const CA_VOLUMES: &str =
    r#"[{"name":"corp-ca","configMap":{"name":"corp-ca","optional":true}}]"#;
pub(crate) const CA_MOUNTS: &str =
    r#"[{"name":"corp-ca","mountPath":"/etc/ssl/corp","readOnly":true}]"#;

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The generated CRDs, as documents.
fn generated_crds() -> Vec<Value> {
    docs(
        &std::fs::read_to_string(common::repo_root().join("crds/cosmoscmk.io.yaml"))
            .expect("crds/cosmoscmk.io.yaml"),
    )
}

/// The rendered CRDs with the chart's labels and the keep annotation taken
/// off (checked first: the labels are the chart's, the annotation is there
/// exactly when `keep`).
fn without_chart_metadata(rendered: &[Value], keep: bool) -> Vec<Value> {
    find(rendered, "CustomResourceDefinition")
        .into_iter()
        .map(|crd| {
            let mut crd = crd.clone();
            let meta = crd["metadata"].as_object_mut().expect("metadata");
            let labels = meta.remove("labels").expect("the chart labels its CRDs");
            assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{labels}");
            assert_eq!(labels["app.kubernetes.io/instance"], "cmk", "{labels}");
            assert_eq!(labels["app.kubernetes.io/part-of"], "cosmos-cmk-operator");
            match meta.remove("annotations") {
                Some(a) if keep => {
                    assert_eq!(a, serde_json::json!({"helm.sh/resource-policy": "keep"}))
                }
                None if !keep => {}
                other => panic!("crds.keep={keep}, annotations {other:?}"),
            }
            crd
        })
        .collect()
}

#[test]
fn chart_crds_are_the_generated_crds() {
    // One source: the chart's file is the generator's output, byte for byte.
    let generated = std::fs::read_to_string(common::repo_root().join("crds/cosmoscmk.io.yaml"))
        .expect("crds/cosmoscmk.io.yaml");
    let in_chart = std::fs::read_to_string(chart_dir().join(CHART_CRDS))
        .unwrap_or_else(|e| panic!("charts/cosmos-cmk-operator/{CHART_CRDS}: {e}"));
    assert!(
        generated == in_chart,
        "the chart's CRDs drifted from crds/; copy them again:\n    cp crds/cosmoscmk.io.yaml charts/cosmos-cmk-operator/{CHART_CRDS}"
    );
    let files: Vec<_> = std::fs::read_dir(chart_dir().join("files/crds"))
        .expect("chart files/crds dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "only the generated CRD file belongs in the chart's files/crds/: {files:?}"
    );
    assert!(
        !chart_dir().join("crds").exists(),
        "no crds/ directory: Helm installs it once and never upgrades it; the CRDs are templates"
    );

    // What renders is exactly those CRDs, labelled, kept on uninstall by default.
    let expected = generated_crds();
    assert_eq!(expected.len(), 2);
    let default = docs(&render("cmk", "cmk-system", &[]));
    assert_eq!(without_chart_metadata(&default, true), expected);
    let not_kept = docs(&render("cmk", "cmk-system", &["--set", "crds.keep=false"]));
    assert_eq!(without_chart_metadata(&not_kept, false), expected);
    let none = docs(&render(
        "cmk",
        "cmk-system",
        &["--set", "crds.enabled=false"],
    ));
    assert!(find(&none, "CustomResourceDefinition").is_empty());
}

/// A CRD of a group of the test's own (`widgets.<group>`), version `v1`
/// with `spec.size`, plus `spec.color` and a printer column when `v2`.
fn widget_crd(group: &str, v2: bool) -> String {
    let (color, columns) = if v2 {
        (
            "\n              color:\n                type: string",
            "\n    additionalPrinterColumns:\n    - jsonPath: .spec.color\n      name: Color\n      type: string",
        )
    } else {
        ("", "")
    };
    format!(
        "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n  names:\n    kind: Widget\n    listKind: WidgetList\n    plural: widgets\n    singular: widget\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true{columns}\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              size:\n                type: integer{color}\n"
    )
}

/// A copy of the chart whose CRD file holds `crd` instead of the operator's
/// (a real install must not take over the CRDs every other test uses).
fn chart_with_crd(ns: &str, crd: &str) -> String {
    let chart = common::helm::chart_copy(ns);
    std::fs::write(chart.join(CHART_CRDS), crd).expect("test CRD written");
    chart.to_str().expect("utf-8").to_owned()
}

fn get_crd(name: &str) -> Option<Value> {
    let out = common::helm::kubectl_stdin(&["get", "crd", name, "-o", "json"], "");
    match out {
        Ok(json) => Some(serde_json::from_str(&json).expect("CRD json")),
        Err(e) if e.contains("NotFound") => None,
        Err(e) => panic!("kubectl get crd {name}: {e}"),
    }
}

/// A real `helm install`, `upgrade` and `uninstall` of the chart (CRDs
/// included) against the local control plane, in `ns`.
fn helm_release(verb: &str, release: &str, ns: &str, chart: Option<&str>, extra: &[&str]) {
    let mut args = vec![verb, release];
    args.extend(chart);
    args.extend(["--namespace", ns]);
    args.extend_from_slice(extra);
    helm_kube(&args).unwrap_or_else(|e| panic!("helm {args:?} failed:\n{e}"));
}

fn release_values(ns: &str) -> Vec<String> {
    // Cluster-scoped names (ClusterRole, binding) of the test's own.
    vec!["--set".into(), format!("fullnameOverride=cmk-{ns}")]
}

#[tokio::test]
async fn helm_upgrade_updates_the_crds_and_uninstall_keeps_them() {
    let (_client, ns) = common::test_namespace("chart-crd-up").await;
    let group = format!("{ns}.chart-test.cosmoscmk.io");
    let crd = format!("widgets.{group}");
    let values = release_values(&ns);

    let chart = chart_with_crd(&ns, &widget_crd(&group, false));
    helm_release("install", "crd-up", &ns, Some(&chart), &strs(&values));
    let installed = get_crd(&crd).expect("helm install created the CRD");
    assert_eq!(
        installed["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
        "crds.keep is on by default"
    );
    assert_eq!(
        installed["metadata"]["annotations"]["meta.helm.sh/release-name"],
        "crd-up"
    );
    let schema = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties";
    assert!(installed.pointer(&format!("{schema}/color")).is_none());

    // The chart's CRD file changes; `helm upgrade` changes the CRD in the cluster.
    let chart = chart_with_crd(&ns, &widget_crd(&group, true));
    helm_release("upgrade", "crd-up", &ns, Some(&chart), &strs(&values));
    let upgraded = get_crd(&crd).expect("the CRD is still there");
    assert_eq!(
        upgraded.pointer(&format!("{schema}/color/type")),
        Some(&Value::from("string")),
        "helm upgrade updated the CRD's schema: {upgraded}"
    );
    assert_eq!(
        upgraded["spec"]["versions"][0]["additionalPrinterColumns"][0]["name"],
        "Color"
    );

    // Uninstalling leaves the CRD (and so every resource of its kinds).
    helm_release("uninstall", "crd-up", &ns, None, &[]);
    assert!(
        get_crd(&crd).is_some(),
        "helm.sh/resource-policy: keep leaves the CRD on uninstall"
    );
    let role = common::helm::kubectl_stdin(&["get", "clusterrole", &format!("cmk-{ns}")], "");
    assert!(
        role.is_err_and(|e| e.contains("NotFound")),
        "the rest of the release is gone"
    );
    common::kubectl(&["delete", "crd", &crd, "--wait=false"]);
}

#[tokio::test]
async fn crds_from_the_old_crds_directory_are_taken_over_and_keep_false_deletes_them() {
    let (_client, ns) = common::test_namespace("chart-crd-own").await;
    let group = format!("{ns}.chart-test.cosmoscmk.io");
    let crd = format!("widgets.{group}");
    let text = widget_crd(&group, false);
    // As an earlier chart (CRDs in crds/) or `kubectl apply` left it: no Helm metadata.
    common::helm::apply(&text).expect("CRD applied without Helm");
    let chart = chart_with_crd(&ns, &text);
    let mut values = release_values(&ns);
    values.extend(["--set".into(), "crds.keep=false".into()]);

    let refused = helm_kube(
        &[
            &[
                "install",
                "crd-own",
                chart.as_str(),
                "--namespace",
                ns.as_str(),
            ],
            strs(&values).as_slice(),
        ]
        .concat(),
    );
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("invalid ownership metadata")),
        "Helm does not silently take over a CRD it did not install: {refused:?}"
    );
    // The documented migration: --take-ownership.
    let taking = [strs(&values).as_slice(), &["--take-ownership"]].concat();
    helm_release("install", "crd-own", &ns, Some(&chart), &taking);
    let owned = get_crd(&crd).expect("the CRD is there");
    assert_eq!(
        owned["metadata"]["annotations"]["meta.helm.sh/release-name"],
        "crd-own"
    );
    assert!(
        owned["metadata"]["annotations"]
            .get("helm.sh/resource-policy")
            .is_none(),
        "crds.keep=false: no keep annotation"
    );

    // Without keep, uninstalling deletes the CRD (and every resource of its kinds).
    helm_release("uninstall", "crd-own", &ns, None, &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get_crd(&crd).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "crds.keep=false: the CRD went with the release"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
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
    // The CRDs exist (the rendered ones are dry-run too, as updates).
    apply_chart_crds();
    for extra in [vec![], all_options(&ns)] {
        let yaml = render("cmk", &ns, &strs(&extra));
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
        if !extra.is_empty() {
            // The NetworkPolicy, the credentials Role and the extraObjects
            // are accepted by the API server too.
            for name in [
                "networkpolicy.networking.k8s.io/cmk-cosmos-cmk-operator",
                "role.rbac.authorization.k8s.io/cmk-cosmos-cmk-operator-credentials",
                "configmap/cmk-cosmos-cmk-operator-extra",
                "configmap/cmk-extra-text",
            ] {
                assert!(
                    applied.iter().any(|a| a == name),
                    "{name} accepted: {applied:?}"
                );
            }
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
        (&["--set-string", "crds.enabled=yes"], "/crds/enabled"),
        (
            &["--set", "crds.keeep=true"],
            "additional properties 'keeep'",
        ),
        (
            &["--set-string", "networkPolicy.enabled=on"],
            "/networkPolicy/enabled",
        ),
        (
            &["--set-json", r#"networkPolicy.egress="all""#],
            "/networkPolicy/egress",
        ),
        (
            &["--set-json", r#"networkPolicy.ingress.from={"a":1}"#],
            "/networkPolicy/ingress/from",
        ),
        (&["--set-json", "extraObjects=[1]"], "/extraObjects/0"),
        // Cross-field rules the template enforces.
        (
            &["--set", "health.port=9090"],
            "health.port and metrics.port must differ",
        ),
        (
            &[
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--set",
                "metrics.podMonitor.enabled=true",
            ],
            "would scrape every pod twice",
        ),
        (&["--set", "strategy.type=Blue"], "/strategy/type"),
        (
            &["--set", "revisionHistoryLimit=-1"],
            "/revisionHistoryLimit",
        ),
        (
            &["--set", "proxy.httpsProxy=proxy:3128"],
            "/proxy/httpsProxy",
        ),
        (&["--set-json", "extraArgs=[1]"], "/extraArgs/0"),
        (
            &["--set-json", r#"extraVolumeMounts=[{"name":"x"}]"#],
            "/extraVolumeMounts/0",
        ),
        (
            &["--set-json", r#"commonLabels={"bad key":"x"}"#],
            // helm's schema library names another key's path for a
            // propertyNames failure; the refused name is what it gets right.
            "'bad key' does not match pattern",
        ),
        (
            &["--set", "rbac.aggregateClusterRoles=maybe"],
            "/rbac/aggregateClusterRoles",
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

/// What a rules list grants: (apiGroup, resource, verb, resourceName), the
/// name "" when any name; panics on nonResourceURLs and wildcards, which the
/// chart does not use.
type Grant = (String, String, String, String);

fn grants(rules: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        assert!(rule.get("nonResourceURLs").is_none(), "{rule}");
        let names: Vec<&str> = match rule.get("resourceNames") {
            Some(n) => n
                .as_array()
                .expect("resourceNames")
                .iter()
                .map(|n| n.as_str().unwrap())
                .collect(),
            None => vec![""],
        };
        for g in rule["apiGroups"].as_array().expect("apiGroups") {
            for r in rule["resources"].as_array().expect("resources") {
                for v in rule["verbs"].as_array().expect("verbs") {
                    let (g, r, v) = (
                        g.as_str().unwrap(),
                        r.as_str().unwrap(),
                        v.as_str().unwrap(),
                    );
                    assert!(g != "*" && r != "*" && v != "*", "wildcard in {rule}");
                    for n in &names {
                        out.insert((g.to_owned(), r.to_owned(), v.to_owned(), n.to_string()));
                    }
                }
            }
        }
    }
    out
}

/// Grants on any name.
fn expand(spec: &[(&str, &[&str], &[&str])]) -> BTreeSet<Grant> {
    spec.iter()
        .flat_map(|(g, rs, vs)| named(g, rs, vs, ""))
        .collect()
}

/// Grants on one name ("": any).
fn named(group: &str, resources: &[&str], verbs: &[&str], name: &str) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for r in resources {
        for v in verbs {
            out.insert((
                group.to_owned(),
                r.to_string(),
                v.to_string(),
                name.to_owned(),
            ));
        }
    }
    out
}

/// The operator's cluster-wide grants, without any Secret.
fn cluster_grants() -> BTreeSet<Grant> {
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
    ])
    .into_iter()
    // The cluster id (operator.clusterId empty): kube-system's uid, by name only.
    .chain(named("", &["namespaces"], &["get"], "kube-system"))
    .collect()
}

/// The ClusterRoles the operator is bound to (not the aggregated ones for users).
fn operator_cluster_roles(rendered: &[Value]) -> Vec<&Value> {
    find(rendered, "ClusterRole")
        .into_iter()
        .filter(|r| r.get("aggregationRule").is_none() && !is_aggregated(r))
        .collect()
}

/// Whether a ClusterRole is aggregated into the built-in user-facing roles.
pub(crate) fn is_aggregated(role: &Value) -> bool {
    role["metadata"]["labels"].as_object().is_some_and(|l| {
        l.keys()
            .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
    })
}

#[test]
fn rbac_is_exactly_least_privilege() {
    let ns = "cmk-system";
    let rendered = docs(&render("cmk", ns, &[]));
    // The operator's own ClusterRole; users' aggregated ones
    // (`-view`, `-edit`) are checked in chart_values.rs.
    let cluster_roles = operator_cluster_roles(&rendered);
    assert_eq!(cluster_roles.len(), 1);
    assert_eq!(
        grants(&cluster_roles[0]["rules"]),
        cluster_grants(),
        "ClusterRole rules: no Secret, since the default tenancy policy allows no namespace"
    );
    // A cluster id given: no namespace read at all.
    let named_id = docs(&render(
        "cmk",
        ns,
        &["--set", "operator.clusterId=prod-east"],
    ));
    let without_ns: BTreeSet<Grant> = cluster_grants()
        .into_iter()
        .filter(|g| g.1 != "namespaces")
        .collect();
    assert_eq!(
        grants(&operator_cluster_roles(&named_id)[0]["rules"]),
        without_ns
    );
    let args =
        &find(&named_id, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array()
            .unwrap()
            .windows(2)
            .any(|w| w[0] == "--cluster-id" && w[1] == "prod-east")
    );
    // The shared old default is refused by the chart's schema.
    let refused = common::helm::helm(&[
        "template",
        "cmk",
        common::repo_root()
            .join("charts/cosmos-cmk-operator")
            .to_str()
            .unwrap(),
        "--set",
        "operator.clusterId=default",
    ]);
    assert!(refused.is_err(), "clusterId=default must be refused");
    let roles = find(&rendered, "Role");
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["metadata"]["namespace"], ns);
    // The Lease the operator is told to use (--lease-name), and only it; a
    // create cannot be limited by name in Kubernetes RBAC.
    let args =
        &find(&rendered, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"];
    let lease = args
        .as_array()
        .unwrap()
        .windows(2)
        .find(|w| w[0] == "--lease-name")
        .map(|w| w[1].as_str().unwrap().to_owned())
        .expect("--lease-name");
    assert_eq!(lease, "cmk-cosmos-cmk-operator");
    let mut lease_grants = named(
        "coordination.k8s.io",
        &["leases"],
        &["get", "update"],
        &lease,
    );
    lease_grants.extend(named("coordination.k8s.io", &["leases"], &["create"], ""));
    assert_eq!(
        grants(&roles[0]["rules"]),
        lease_grants,
        "leader-election Role rules"
    );
    let custom = docs(&render(
        "cmk",
        ns,
        &["--set", "operator.leaseName=my-lease"],
    ));
    assert!(
        grants(&find(&custom, "Role")[0]["rules"]).contains(&(
            "coordination.k8s.io".into(),
            "leases".into(),
            "update".into(),
            "my-lease".into()
        )),
        "operator.leaseName names the Lease in the Role too"
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
    let out = helm(&[
        "install",
        "cmk",
        chart.to_str().unwrap(),
        "--dry-run=client",
        "--namespace",
        "cmk-system",
        "--set-json",
        r#"tenancy.namespaces=[{"namespace":"team-a"},{"namespace":"team-b"}]"#,
    ])
    .expect("helm install --dry-run=client renders NOTES");
    assert!(
        out.contains("Secrets (spec.credentialRef) are readable by name in: team-a, team-b."),
        "{out}"
    );
}

/// The namespaces in which the rendered RBAC lets the ServiceAccount read
/// Secrets (by name only), and whether the ClusterRole does.
fn secret_reads(extra: &[&str]) -> (BTreeSet<String>, bool) {
    let rendered = docs(&render("cmk", "cmk-system", extra));
    let secret_get = named("", &["secrets"], &["get"], "");
    let cluster = grants(&operator_cluster_roles(&rendered)[0]["rules"]);
    let cluster_wide = cluster.is_superset(&secret_get);
    assert_eq!(
        cluster
            .difference(&secret_get)
            .cloned()
            .collect::<BTreeSet<_>>(),
        cluster_grants(),
        "{extra:?}"
    );
    let mut namespaces = BTreeSet::new();
    for role in find(&rendered, "Role") {
        let name = role["metadata"]["name"].as_str().unwrap();
        if name.ends_with("-leader-election") {
            continue;
        }
        assert_eq!(name, "cmk-cosmos-cmk-operator-credentials");
        assert_eq!(grants(&role["rules"]), secret_get, "{extra:?}: {role}");
        let ns = role["metadata"]["namespace"].as_str().unwrap().to_owned();
        let binding = find(&rendered, "RoleBinding")
            .into_iter()
            .find(|b| b["metadata"]["namespace"] == ns.as_str() && b["roleRef"]["name"] == name)
            .unwrap_or_else(|| panic!("{extra:?}: a RoleBinding for the Role in {ns}"));
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert_eq!(
            binding["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": "cmk-cosmos-cmk-operator", "namespace": "cmk-system"}])
        );
        assert!(namespaces.insert(ns), "{extra:?}: one Role per namespace");
    }
    (namespaces, cluster_wide)
}

#[test]
fn secret_reads_are_limited_to_the_namespaces_the_tenancy_policy_allows() {
    let set = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
    let tenancy = |list: &str| format!("tenancy.namespaces={list}");
    let listed =
        tenancy(r#"[{"namespace":"team-a"},{"namespace":"team-b","operatorIdentity":true}]"#);
    let wildcard = tenancy(r#"[{"namespace":"team-a"},{"namespace":"*"}]"#);
    let cases: &[(&[&str], BTreeSet<String>, bool)] = &[
        (&[], set(&[]), false),
        (&["--set-json", &listed], set(&["team-a", "team-b"]), false),
        // The documented fallback: "*" lets every namespace use the
        // operator, so Secrets are read by name everywhere.
        (&["--set-json", &wildcard], set(&[]), true),
        // Watching one namespace: Secrets there only, if the policy allows it.
        (
            &[
                "--set-json",
                &listed,
                "--set",
                "operator.watchNamespace=team-b",
            ],
            set(&["team-b"]),
            false,
        ),
        (
            &[
                "--set-json",
                &listed,
                "--set",
                "operator.watchNamespace=team-c",
            ],
            set(&[]),
            false,
        ),
        (
            &[
                "--set-json",
                &wildcard,
                "--set",
                "operator.watchNamespace=team-c",
            ],
            set(&["team-c"]),
            false,
        ),
    ];
    for (extra, namespaces, cluster_wide) in cases {
        assert_eq!(
            secret_reads(extra),
            (namespaces.clone(), *cluster_wide),
            "{extra:?}"
        );
    }
}

#[test]
fn network_policy_is_off_by_default_and_admits_only_what_the_operator_needs() {
    let default = docs(&render("cmk", "cmk-system", &[]));
    assert!(
        find(&default, "NetworkPolicy").is_empty(),
        "off by default, as in cert-manager"
    );

    let on = docs(&render(
        "cmk",
        "cmk-system",
        &[
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "metrics.port=9100",
        ],
    ));
    let np = find(&on, "NetworkPolicy");
    assert_eq!(np.len(), 1);
    let spec = &np[0]["spec"];
    assert_eq!(
        spec["podSelector"]["matchLabels"],
        find(&on, "Deployment")[0]["spec"]["selector"]["matchLabels"],
        "it selects the operator's pods"
    );
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    // Ingress: the health and metrics ports only, from anywhere by default.
    assert_eq!(
        spec["ingress"],
        serde_json::json!([{"ports": [
            {"port": 8080, "protocol": "TCP"},
            {"port": 9100, "protocol": "TCP"},
        ]}])
    );
    // Egress: DNS, and 443/6443 (API server, Azure ARM, login, Key Vault).
    assert_eq!(
        spec["egress"],
        serde_json::json!([
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
            {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]},
        ])
    );

    // Both lists can be narrowed; an empty egress list denies all egress.
    let narrowed = docs(&render(
        "cmk",
        "cmk-system",
        &[
            "--set",
            "networkPolicy.enabled=true",
            "--set-json",
            r#"networkPolicy.ingress.from=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]"#,
            "--set-json",
            "networkPolicy.egress=[]",
        ],
    ));
    let spec = &find(&narrowed, "NetworkPolicy")[0]["spec"];
    assert_eq!(
        spec["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert_eq!(spec["egress"], serde_json::json!([]));
}

#[test]
fn extra_objects_are_rendered_with_tpl() {
    assert!(
        find(&docs(&render("cmk", "cmk-system", &[])), "ConfigMap").len() == 1,
        "only the tenancy ConfigMap by default"
    );
    let rendered = docs(&render(
        "cmk",
        "team-ns",
        &[
            "--set",
            "operator.clusterId=blue",
            "--set",
            "replicaCount=3",
            "--set-json",
            &format!("extraObjects={EXTRA_OBJECTS}"),
        ],
    ));
    let cm = |name: &str| {
        find(&rendered, "ConfigMap")
            .into_iter()
            .find(|c| c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("ConfigMap {name} rendered"))
            .clone()
    };
    // A map: its strings go through tpl (helpers and values).
    assert_eq!(
        cm("cmk-cosmos-cmk-operator-extra")["data"]["cluster"],
        "blue"
    );
    // A string of YAML, the same.
    let text = cm("cmk-extra-text");
    assert_eq!(text["metadata"]["namespace"], "team-ns");
    assert_eq!(text["data"]["replicas"], "3");
}

/// The container arguments the chart and the kustomize base render, parsed by
/// the real binary's CLI: a flag renamed in one and not the other fails here.
/// `--help` last makes clap parse (and check) every argument before it, then
/// exit 0 without starting anything.
#[test]
fn the_rendered_container_arguments_parse_with_the_real_cli() {
    let defaults = render("cmk", "cmk-system", &[]);
    let options = all_options("team-a");
    let everything = render("cmk", "cmk-system", &strs(&options));
    let kustomize =
        std::fs::read_to_string(common::repo_root().join("deploy/kustomize/base/operator.yaml"))
            .expect("kustomize base");
    for (what, yaml) in [
        ("chart defaults", defaults),
        ("chart with every option", everything),
        ("kustomize base", kustomize),
    ] {
        let docs = docs(&yaml);
        let deployment = find(&docs, "Deployment");
        let container = &deployment[0]["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<String> = container["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string argument").to_owned())
            .collect();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cmk-operator"))
            .args(&args)
            .arg("--help")
            .output()
            .expect("the binary runs");
        assert!(
            out.status.success(),
            "{what}: the CLI refuses {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `simulator.url` (tests and demos only) switches the operator to the
/// simulator with its CA mounted; by default nothing of it renders and the
/// backend is real Azure. `workloadIdentity.projectToken` projects the
/// federated token and sets what the webhook would.
#[test]
fn simulator_and_projected_token_values_render_only_when_set() {
    let container = |rendered: &[Value]| {
        find(rendered, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0].clone()
    };
    let args = |c: &Value| -> Vec<String> {
        c["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string").to_owned())
            .collect()
    };
    let default = docs(&render("cmk", "cmk-system", &[]));
    let c = container(&default);
    assert_eq!(&args(&c)[..3], ["run", "--azure", "azure"]);
    assert!(!args(&c).iter().any(|a| a.contains("simulator")));
    assert!(
        !serde_json::to_string(&default)
            .unwrap()
            .contains("simulator-ca")
    );
    assert!(
        !serde_json::to_string(&c)
            .unwrap()
            .contains("AZURE_FEDERATED_TOKEN_FILE")
    );

    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let sim = docs(&render(
        "cmk",
        "cmk-system",
        &[
            "--set",
            "simulator.url=https://10.213.0.2:8443/",
            "--set",
            &format!("simulator.caCert={ca}"),
        ],
    ));
    let c = container(&sim);
    assert_eq!(
        &args(&c)[..7],
        [
            "run",
            "--azure",
            "simulator",
            "--simulator-url",
            "https://10.213.0.2:8443/",
            "--simulator-ca-file",
            "/etc/cmk-operator/simulator/ca.crt"
        ]
    );
    let cm = find(&sim, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "cmk-cosmos-cmk-operator-simulator-ca")
        .expect("the CA's ConfigMap");
    assert_eq!(cm["data"]["ca.crt"], ca);
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/etc/cmk-operator/simulator" && m["name"] == "simulator-ca")
    );
    for bad in [
        vec!["--set", "simulator.url=https://10.213.0.2:8443/"],
        vec![
            "--set",
            "simulator.url=http://10.213.0.2:8443/",
            "--set",
            "simulator.caCert=x",
        ],
    ] {
        let err = try_render("cmk", "cmk-system", &bad).expect_err("refused");
        assert!(err.contains("simulator"), "{bad:?}: {err}");
    }

    let wi = [
        "--set",
        "workloadIdentity.enabled=true",
        "--set",
        "workloadIdentity.clientId=11111111-2222-3333-4444-555555555555",
        "--set",
        "workloadIdentity.projectToken=true",
    ];
    let err = try_render("cmk", "cmk-system", &wi).expect_err("tenantId required");
    assert!(err.contains("azure.tenantId"), "{err}");
    let mut with_tenant = wi.to_vec();
    with_tenant.extend([
        "--set",
        "azure.tenantId=66666666-7777-8888-9999-000000000000",
        "--set",
        "operator.cloud=AzureUSGovernment",
    ]);
    let projected = docs(&render("cmk", "cmk-system", &with_tenant));
    let c = container(&projected);
    let env: std::collections::BTreeMap<String, String> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(
        env["AZURE_CLIENT_ID"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(
        env["AZURE_TENANT_ID"],
        "66666666-7777-8888-9999-000000000000"
    );
    assert_eq!(
        env["AZURE_FEDERATED_TOKEN_FILE"],
        "/var/run/secrets/azure/tokens/azure-identity-token"
    );
    assert_eq!(
        env["AZURE_AUTHORITY_HOST"],
        "https://login.microsoftonline.us/"
    );
    let spec = &find(&projected, "Deployment")[0]["spec"]["template"]["spec"];
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "azure-identity-token")
        .expect("the token volume");
    assert_eq!(
        volume["projected"]["sources"][0]["serviceAccountToken"],
        serde_json::json!({"path": "azure-identity-token", "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600})
    );
}
