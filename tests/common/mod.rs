//! Shared plumbing for tests that need Kubernetes: the local control plane
//! (a real kube-apiserver + etcd, see tests/control-plane/), a client for it,
//! the CRDs installed, and a fresh namespace per test.
#![allow(dead_code)] // each test binary uses a different subset

pub mod helm;
pub mod rbac;

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

/// Starts the control plane once per test binary (`up` is idempotent, and
/// serialises concurrent callers) and returns the kubeconfig path it printed
/// as its last line. The first run may build the binaries (minutes).
/// `CMK_TEST_KUBECONFIG` names a control plane already running (another
/// checkout's, shared by a second worktree) and skips `up`.
pub fn kubeconfig_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| match std::env::var_os("CMK_TEST_KUBECONFIG") {
        Some(path) => PathBuf::from(path),
        None => script_output_path("tests/control-plane/up"),
    })
}

/// Runs a repository script that prints a path as its last line (the control
/// plane's `up`, helm's `build`), panicking with its output if it fails.
pub fn script_output_path(script: &str) -> PathBuf {
    let out = Command::new(repo_root().join(script))
        .output()
        .unwrap_or_else(|e| panic!("{script} cannot run: {e}"));
    assert!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(
        stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("{script} printed no path"))
            .trim(),
    )
}

/// A client for the local control plane, authenticated as the admin user.
pub async fn client() -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    kube::Client::try_from(config).expect("client builds")
}

/// Applies every CRD in `*.yaml`/`*.yml` files of `dir` (server-side apply,
/// so repeated runs converge) and waits until each is Established, i.e.
/// served. Returns the CRD names in file order.
pub async fn apply_crds(client: &kube::Client, dir: &Path) -> Vec<String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("CRD directory {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    let mut names = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("CRD file readable");
        // Empty documents (e.g. after a trailing `---`) are skipped.
        let values: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
        for value in values {
            let crd: CustomResourceDefinition = serde_json::from_value(value)
                .unwrap_or_else(|e| panic!("{}: not a CRD: {e}", file.display()));
            let name = crd.metadata.name.clone().expect("CRD has a name");
            api.patch(
                &name,
                &PatchParams::apply("cmk-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("CRD {name} must install: {e}"));
            names.push(name);
        }
    }
    for name in &names {
        let established = await_condition(api.clone(), name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(60), established)
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not Established within 60 s"))
            .expect("watching the CRD works");
    }
    names
}

/// Installs the operator's CRDs from `crds/`, once per test binary.
pub async fn ensure_crds(client: &kube::Client) {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        apply_crds(client, &repo_root().join("crds")).await;
    })
    .await;
}

/// A client, the CRDs, and a namespace of the test's own, named
/// `{prefix}-{pid}-{seq}-{millis}` (`prefix`: lowercase letters, digits, `-`).
/// Namespaces are never reused or deleted: without a controller-manager they
/// cannot finish deleting.
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

/// A client for the local control plane that authenticates with a bearer
/// token (e.g. a ServiceAccount's, from the TokenRequest API) instead of the
/// admin certificate, so RBAC applies to it.
pub async fn client_with_token(token: &str) -> kube::Client {
    let mut kubeconfig = Kubeconfig::read_from(kubeconfig_path()).expect("kubeconfig readable");
    let user: kube::config::AuthInfo =
        serde_json::from_value(serde_json::json!({ "token": token })).expect("token auth info");
    for named in &mut kubeconfig.auth_infos {
        named.auth_info = Some(user.clone());
    }
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    kube::Client::try_from(config).expect("client builds")
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

/// Polls `check` every half second until it returns Some, or panics naming
/// `what` after `limit` (generous limits: only load delays the answer).
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
