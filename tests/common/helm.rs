//! helm (built from its Go module by tests/helm/build) and small helpers to
//! render the chart and apply YAML to the local control plane.

use std::io::Write;
use std::path::PathBuf;

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::{kubeconfig_path, repo_root};

/// Path of the chart.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/cosmos-cmk-operator")
}

/// Builds helm when its go.mod/go.sum changed (a no-op otherwise) and returns its path.
pub fn helm_bin() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| super::script_output_path("tests/helm/build"))
}

/// Runs helm; Ok(stdout) or Err(stderr + stdout).
pub fn helm(args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm_bin())
        .args(args)
        // Keep helm's caches and config out of $HOME.
        .env("HELM_CACHE_HOME", repo_root().join("target/helm/cache"))
        .env("HELM_CONFIG_HOME", repo_root().join("target/helm/config"))
        .env("HELM_DATA_HOME", repo_root().join("target/helm/data"))
        .output()
        .expect("helm runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

/// Runs helm against the local control plane (`--kubeconfig` added); Ok(stdout)
/// or Err(stderr + stdout).
pub fn helm_kube(args: &[&str]) -> Result<String, String> {
    let kubeconfig = kubeconfig_path().to_str().expect("utf-8 path");
    let mut all = vec!["--kubeconfig", kubeconfig];
    all.extend_from_slice(args);
    helm(&all)
}

/// A copy of the chart under target/chart-tests/`name`/ (replaced if there),
/// for tests that change its files, e.g. the CRDs it renders.
pub fn chart_copy(name: &str) -> PathBuf {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).expect("chart copy dir");
        for entry in std::fs::read_dir(from).expect("chart dir readable") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("chart file copied");
            }
        }
    }
    let dir = scratch_dir(name).join("chart");
    let _ = std::fs::remove_dir_all(&dir);
    copy(&chart_dir(), &dir);
    dir
}

/// `helm template <release> <chart> --namespace <ns> <extra...>`; panics on failure.
pub fn render(release: &str, namespace: &str, extra: &[&str]) -> String {
    try_render(release, namespace, extra)
        .unwrap_or_else(|e| panic!("helm template {extra:?} failed: {e}"))
}

/// Like [`render`], returning helm's error instead of panicking.
pub fn try_render(release: &str, namespace: &str, extra: &[&str]) -> Result<String, String> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        release,
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        namespace,
    ];
    args.extend_from_slice(extra);
    helm(&args)
}

/// The documents of a multi-document YAML stream, as JSON values (empty ones skipped).
pub fn docs(yaml: &str) -> Vec<serde_json::Value> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).expect("valid YAML");
    docs.into_iter().filter(|v| !v.is_null()).collect()
}

/// The documents of `kind`.
pub fn find<'a>(docs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Runs the control plane's kubectl with `stdin` piped in; Ok(stdout) or Err(stderr).
pub fn kubectl_stdin(args: &[&str], stdin: &str) -> Result<String, String> {
    let mut child = Command::new(repo_root().join("target/control-plane/bin/kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    let out = child.wait_with_output().expect("kubectl finishes");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Server-side dry run of `yaml` with strict field validation; returns kubectl's
/// `-o name` lines.
pub fn dry_run_server(yaml: &str) -> Result<Vec<String>, String> {
    kubectl_stdin(
        &[
            "apply",
            "--dry-run=server",
            "--server-side",
            "--field-manager=cmk-chart-tests",
            "--validate=strict",
            "-o",
            "name",
            "-f",
            "-",
        ],
        yaml,
    )
    .map(|out| out.lines().map(str::to_owned).collect())
}

/// Server-side apply of `yaml` for real.
pub fn apply(yaml: &str) -> Result<String, String> {
    kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=cmk-chart-tests",
            "-f",
            "-",
        ],
        yaml,
    )
}

/// The chart's copy of the generated CRDs, which templates/crds.yaml renders
/// (the same bytes as `crds/cosmoscmk.io.yaml`, a test keeps them equal).
pub const CHART_CRDS: &str = "files/crds/cosmoscmk.io.yaml";

/// Installs the chart's CRDs (server-side apply of the chart's copy).
pub fn apply_chart_crds() {
    let text = std::fs::read_to_string(chart_dir().join(CHART_CRDS)).expect("chart CRDs exist");
    apply(&text).unwrap_or_else(|e| panic!("chart CRDs must install: {e}"));
    super::kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/keyvaultbindings.cosmoscmk.io",
        "crd/cosmosaccountcmks.cosmoscmk.io",
    ]);
}

/// A scratch directory under target/ for rendered files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = repo_root().join("target/chart-tests").join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
