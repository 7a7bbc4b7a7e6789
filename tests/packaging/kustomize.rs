//! deploy/kustomize: the base is the chart rendered with its defaults (so the
//! two install paths cannot drift), and each overlay builds with the control
//! plane's own `kubectl kustomize` and passes a server-side dry run.

use crate::common;

use std::path::{Path, PathBuf};

use cmk_operator::tenancy::TenancyPolicy;
use common::helm::{apply_chart_crds, docs, dry_run_server, find, render, scratch_dir};
use serde_json::Value;

const OVERLAYS: [&str; 2] = ["plain", "workload-identity"];
const HELM_ONLY_LABELS: [&str; 2] = ["helm.sh/chart", "app.kubernetes.io/managed-by"];

fn kustomize_dir() -> PathBuf {
    common::repo_root().join("deploy/kustomize")
}

fn strip_helm_labels(doc: &mut Value) {
    for pointer in ["/metadata/labels", "/spec/template/metadata/labels"] {
        if let Some(map) = doc.pointer_mut(pointer).and_then(Value::as_object_mut) {
            for l in HELM_ONLY_LABELS {
                map.remove(l);
            }
        }
    }
}

/// The chart's tenancy ConfigMap, which the base generates from tenancy.yaml
/// instead (a hashed name rolls the pods on a change, as the chart's
/// checksum annotation does).
const TENANCY_CONFIG_MAP: &str = "cosmos-cmk-operator-tenancy";

/// What base/operator.yaml must hold: the chart's defaults for release
/// "cosmos-cmk-operator" in cmk-system, without Helm's own labels, the
/// tenancy ConfigMap and its checksum annotation, and without the CRDs
/// (crds.enabled=false: the base has them in crds.yaml, with no Helm
/// annotation).
fn expected_operator_docs() -> Vec<Value> {
    let mut out = docs(&render(
        "cosmos-cmk-operator",
        "cmk-system",
        &["--set", "crds.enabled=false"],
    ));
    out.retain(|d| !(d["kind"] == "ConfigMap" && d["metadata"]["name"] == TENANCY_CONFIG_MAP));
    for d in &mut out {
        strip_helm_labels(d);
        if let Some(annotations) = d
            .pointer_mut("/spec/template/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove("checksum/tenancy");
            if annotations.is_empty() {
                d["spec"]["template"]["metadata"]
                    .as_object_mut()
                    .expect("pod metadata")
                    .remove("annotations");
            }
        }
    }
    out
}

#[test]
fn base_is_rendered_from_the_chart() {
    let path = kustomize_dir().join("base/operator.yaml");
    let expected = expected_operator_docs();
    if std::env::var_os("CMK_UPDATE_KUSTOMIZE").is_some() {
        let mut text = String::from(
            "# Generated from charts/cosmos-cmk-operator (default values, release\n\
             # cosmos-cmk-operator, namespace cmk-system) by tests/packaging/kustomize.rs; do not edit:\n\
             #   CMK_UPDATE_KUSTOMIZE=1 cargo test --test packaging kustomize::\n",
        );
        for d in &expected {
            text.push_str("---\n");
            text.push_str(&serde_saphyr::to_string(d).expect("yaml"));
        }
        std::fs::write(&path, text).expect("operator.yaml written");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        docs(&on_disk) == expected,
        "deploy/kustomize/base/operator.yaml drifted from the chart; regenerate it:\n    CMK_UPDATE_KUSTOMIZE=1 cargo test --test packaging kustomize::"
    );

    // The base's own tenancy policy is the chart's default: nothing allowed.
    let tenancy =
        std::fs::read_to_string(kustomize_dir().join("base/tenancy.yaml")).expect("tenancy.yaml");
    assert_eq!(
        TenancyPolicy::from_yaml(&tenancy),
        Ok(TenancyPolicy::default())
    );

    let crds = std::fs::read_to_string(kustomize_dir().join("base/crds.yaml")).expect("crds.yaml");
    let generated = std::fs::read_to_string(common::repo_root().join("crds/cosmoscmk.io.yaml"))
        .expect("crds/cosmoscmk.io.yaml");
    assert!(
        crds == generated,
        "deploy/kustomize/base/crds.yaml drifted from crds/; copy it again:\n    cp crds/cosmoscmk.io.yaml deploy/kustomize/base/crds.yaml"
    );
}

fn kustomize(dir: &Path) -> String {
    common::kubectl(&["kustomize", dir.to_str().expect("utf-8")])
}

fn pod_spec(rendered: &[Value]) -> &Value {
    &find(rendered, "Deployment")[0]["spec"]["template"]
}

/// The one ConfigMap whose (hashed) name starts with `prefix`.
fn config_map<'a>(rendered: &'a [Value], prefix: &str) -> &'a Value {
    let found: Vec<_> = find(rendered, "ConfigMap")
        .into_iter()
        .filter(|c| {
            c["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one ConfigMap named {prefix}<hash>: {found:?}"
    );
    found[0]
}

#[test]
fn overlays_build_as_shipped() {
    for overlay in OVERLAYS {
        let rendered = docs(&kustomize(&kustomize_dir().join("overlays").join(overlay)));
        for d in &rendered {
            if d["kind"] == "CustomResourceDefinition"
                || d["kind"] == "ClusterRole"
                || d["kind"] == "ClusterRoleBinding"
                || d["kind"] == "Namespace"
            {
                continue;
            }
            assert_eq!(
                d["metadata"]["namespace"], "cmk-system",
                "{overlay}: {}",
                d["metadata"]["name"]
            );
        }
        let kinds: Vec<&str> = rendered.iter().filter_map(|d| d["kind"].as_str()).collect();
        for kind in [
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
        ] {
            assert!(
                kinds.contains(&kind),
                "{overlay} renders a {kind}: {kinds:?}"
            );
        }
        let template = pod_spec(&rendered);
        let container = &template["spec"]["containers"][0];
        // The settings ConfigMap (with its content hash in the name) is wired in.
        let cm = config_map(&rendered, "cosmos-cmk-operator-settings-");
        assert_eq!(
            container["envFrom"][0]["configMapRef"]["name"],
            cm["metadata"]["name"]
        );
        assert!(cm["data"]["CMK_FIRST_PARTY_PRINCIPAL_ID"].is_string());
        // So is the overlay's tenancy policy (hashed too: a change rolls the
        // pods), in place of the base's; as shipped it allows nothing.
        let tenancy = config_map(&rendered, "cosmos-cmk-operator-tenancy-");
        let volume = template["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == "tenancy")
            .expect("tenancy volume");
        assert_eq!(volume["configMap"]["name"], tenancy["metadata"]["name"]);
        let policy = tenancy["data"]["tenancy.yaml"]
            .as_str()
            .expect("tenancy.yaml");
        assert_eq!(
            TenancyPolicy::from_yaml(policy),
            Ok(TenancyPolicy::default()),
            "{overlay}: {policy}"
        );
        assert!(
            container["args"]
                .as_array()
                .expect("args")
                .iter()
                .any(|a| a == "--tenancy-config"),
            "{overlay}: the policy is passed"
        );
        // Hardening from the chart survives the overlay.
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"][0],
            "ALL"
        );
        let env = container["env"].as_array().expect("env");
        assert!(
            env.iter().any(|e| e["name"] == "POD_NAME"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"),
            "{overlay}: POD_NAME from the downward API"
        );
        assert_eq!(
            find(&rendered, "Deployment")[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "kustomize"
        );

        let sa = find(&rendered, "ServiceAccount")[0];
        let wi = template["metadata"]["labels"].get("azure.workload.identity/use");
        let annotation = sa["metadata"]["annotations"].get("azure.workload.identity/client-id");
        let secret_env = container["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == "AZURE_CLIENT_SECRET");
        match overlay {
            "plain" => {
                assert!(
                    wi.is_none() && annotation.is_none(),
                    "plain has no workload identity"
                );
                let secret = secret_env.expect("plain reads a client secret");
                assert_eq!(
                    secret["valueFrom"]["secretKeyRef"]["name"],
                    "cosmos-cmk-operator-azure"
                );
                assert!(cm["data"]["AZURE_TENANT_ID"].is_string());
                assert!(cm["data"]["AZURE_CLIENT_ID"].is_string());
            }
            _ => {
                assert_eq!(wi.expect("pod label"), "true");
                assert!(annotation.expect("SA annotation").is_string());
                assert!(secret_env.is_none(), "workload identity needs no secret");
            }
        }
    }
}

#[tokio::test]
async fn overlays_pass_a_server_side_dry_run() {
    apply_chart_crds();
    for overlay in OVERLAYS {
        // Each overlay, moved into a namespace of this test's own by a
        // kustomization on top (as a user's own overlay would).
        let (_client, ns) = common::test_namespace(&format!("kust-{overlay}")).await;
        let dir = scratch_dir(&format!("kustomize-{ns}"));
        let target = kustomize_dir().join("overlays").join(overlay);
        std::fs::write(
            dir.join("kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {ns}\nnameSuffix: -{ns}\nresources:\n  - {}\n",
                relative(&dir, &target)
            ),
        )
        .expect("wrapper kustomization");
        let yaml = kustomize(&dir);
        let rendered = docs(&yaml);
        let sa = find(&rendered, "ServiceAccount")[0]["metadata"]["name"].clone();
        for b in find(&rendered, "ClusterRoleBinding")
            .into_iter()
            .chain(find(&rendered, "RoleBinding"))
        {
            assert_eq!(
                b["subjects"][0]["namespace"],
                ns.as_str(),
                "{overlay}: bindings follow the namespace"
            );
            assert_eq!(
                b["subjects"][0]["name"], sa,
                "{overlay}: bindings follow the SA name"
            );
        }
        let applied = dry_run_server(&yaml)
            .unwrap_or_else(|e| panic!("{overlay}: server-side dry run rejected:\n{e}"));
        assert_eq!(applied.len(), rendered.len(), "{overlay}: {applied:?}");
    }
}

/// `to` relative to `from` (both absolute, under the repository).
fn relative(from: &Path, to: &Path) -> String {
    let root = common::repo_root();
    let up = from
        .strip_prefix(root)
        .expect("under repo")
        .components()
        .count();
    format!(
        "{}{}",
        "../".repeat(up),
        to.strip_prefix(root).expect("under repo").display()
    )
}

/// The README's Role and RoleBinding for credentialRef Secrets (a user adds
/// them per namespace) are what the chart renders for a namespace of
/// `tenancy.namespaces`, apart from labels.
#[test]
fn readme_credential_secret_rbac_is_the_charts() {
    let readme =
        std::fs::read_to_string(kustomize_dir().join("README.md")).expect("kustomize README");
    let block = readme
        .split("```yaml\n# credential-secrets-team-a.yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README's credential-secrets-team-a.yaml block");
    let mut documented = docs(block);
    let mut rendered = docs(&render(
        "cosmos-cmk-operator",
        "cmk-system",
        &[
            "--set-json",
            r#"tenancy.namespaces=[{"namespace":"team-a"}]"#,
            "--show-only",
            "templates/rbac.yaml",
        ],
    ));
    rendered.retain(|d| d["metadata"]["namespace"] == "team-a");
    for d in rendered.iter_mut().chain(documented.iter_mut()) {
        d["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("labels");
    }
    assert_eq!(documented, rendered);
}
