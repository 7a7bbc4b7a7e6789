//! The local control plane a run uses: this checkout's (started with
//! `tests/control-plane/up`, idempotent), or one already running that
//! `CMK_TEST_KUBECONFIG` names (another worktree's, as the tests share it).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::Res;
use crate::repo::repo_root;

/// Names a running control plane's kubeconfig; `up` is then not run.
pub const KUBECONFIG_ENV: &str = "CMK_TEST_KUBECONFIG";

/// A control plane named by `CMK_TEST_KUBECONFIG`, if any.
fn external() -> Option<PathBuf> {
    std::env::var_os(KUBECONFIG_ENV).map(PathBuf::from)
}

/// Refuses a run that stops and restarts the control plane when it is not
/// this checkout's own (another worktree's, named by `CMK_TEST_KUBECONFIG`).
pub fn ensure_owned() -> Res<()> {
    match external() {
        Some(k) => Err(format!(
            "this run stops and restarts the control plane, and {KUBECONFIG_ENV}={} names one this checkout does not own: unset it",
            k.display()
        )
        .into()),
        None => Ok(()),
    }
}

/// `tests/control-plane/down`: stops the API server and etcd, keeps etcd's data.
pub fn control_plane_down() -> Res<()> {
    ensure_owned()?;
    let script = repo_root()?.join("tests/control-plane/down");
    let st = Command::new(&script)
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !st.success() {
        return Err(format!("{} failed", script.display()).into());
    }
    Ok(())
}

/// `tests/control-plane/up`; returns the kubeconfig path (its last stdout
/// line). With `CMK_TEST_KUBECONFIG`, that path, without running `up`.
pub fn control_plane_up() -> Res<PathBuf> {
    if let Some(k) = external() {
        if !k.is_file() {
            return Err(format!("{KUBECONFIG_ENV}={}: no such file", k.display()).into());
        }
        return Ok(k);
    }
    let script = repo_root()?.join("tests/control-plane/up");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed", script.display()).into());
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    ))
}

/// The control plane's kubectl: `up` puts it in `bin/` beside the kubeconfig.
pub fn kubectl(kubeconfig: &std::path::Path) -> Res<PathBuf> {
    let path = kubeconfig
        .parent()
        .map(|d| d.join("bin/kubectl"))
        .ok_or_else(|| format!("{}: no directory", kubeconfig.display()))?;
    if !path.is_file() {
        return Err(format!(
            "{} is missing (tests/control-plane/up installs it beside the kubeconfig)",
            path.display()
        )
        .into());
    }
    Ok(path)
}
