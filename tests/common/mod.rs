//! Shared plumbing for tests that need Kubernetes: the local control plane
//! (a real kube-apiserver + etcd, see tests/control-plane/), a client for it,
//! the CRDs installed, and a fresh namespace per test.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use tokio::sync::OnceCell;

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the control plane once per test binary (`up` is idempotent) and
/// returns the kubeconfig path it printed.
pub fn kubeconfig_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new(repo_root().join("tests/control-plane/up"))
            .output()
            .expect("tests/control-plane/up runs");
        assert!(
            out.status.success(),
            "tests/control-plane/up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("up prints the kubeconfig path")
                .trim(),
        )
    })
}

/// A client for the local control plane, authenticated as the admin user.
pub async fn client() -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    kube::Client::try_from(config).expect("client builds")
}

/// Applies `crds/` (server-side apply, so repeated runs converge) and waits
/// until both CRDs are Established. Done once per test binary.
pub async fn ensure_crds(client: &kube::Client) {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let text = std::fs::read_to_string(repo_root().join("crds/cosmoscmk.io.yaml"))
            .expect("crds exist");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let crd: CustomResourceDefinition =
                serde::Deserialize::deserialize(doc).expect("a CRD");
            let name = crd.metadata.name.clone().expect("named");
            api.patch(
                &name,
                &PatchParams::apply("cmk-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("CRD {name} must install: {e}"));
            let established = await_condition(api.clone(), &name, conditions::is_crd_established());
            tokio::time::timeout(Duration::from_secs(30), established)
                .await
                .unwrap_or_else(|_| panic!("CRD {name} not Established within 30s"))
                .expect("watch works");
        }
    })
    .await;
}

/// A client, the CRDs, and a namespace of the test's own (namespaces are never
/// reused, since without a controller-manager they cannot finish deleting).
pub async fn test_namespace(prefix: &str) -> (kube::Client, String) {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let client = client().await;
    ensure_crds(&client).await;
    let name = format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis()
            % 100_000
    );
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
    (client, name)
}

/// Runs the control plane's own kubectl against it and returns stdout; panics with stderr on failure.
pub fn kubectl(args: &[&str]) -> String {
    let out = Command::new(repo_root().join("target/control-plane/bin/kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// RFC 7386 JSON merge patch: objects merge, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}
