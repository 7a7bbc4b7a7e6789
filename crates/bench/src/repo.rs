//! The checkout the bench belongs to: it runs `tests/control-plane/up`, reads
//! `crds/` and writes under `target/` of the repository root, found at run
//! time (the binary is not always started from the root, and the crate's own
//! directory, `crates/bench`, is not the root).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Names the repository root explicitly (a copied binary, an unusual layout).
pub const ROOT_ENV: &str = "CMK_REPO_ROOT";

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{ROOT_ENV}={} is not the repository root: no Cargo.toml with [workspace] there", .0.display())]
    NotARoot(PathBuf),
    #[error(
        "the repository root was not found: no Cargo.toml with [workspace] in {} or any directory above; run from the checkout or set {ROOT_ENV}",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" nor in ")
    )]
    NotFound { searched: Vec<PathBuf> },
}

/// The repository root: `CMK_REPO_ROOT`, else the nearest directory holding
/// the workspace's `Cargo.toml` above the current directory, else above the
/// executable (`target/release/cmk-bench` lies inside the checkout).
pub fn repo_root() -> Result<&'static Path, RootError> {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    if let Some(root) = ROOT.get() {
        return Ok(root);
    }
    let found = find_root()?;
    Ok(ROOT.get_or_init(|| found))
}

fn find_root() -> Result<PathBuf, RootError> {
    if let Some(dir) = std::env::var_os(ROOT_ENV) {
        let dir = PathBuf::from(dir);
        return if is_workspace_root(&dir) {
            Ok(dir)
        } else {
            Err(RootError::NotARoot(dir))
        };
    }
    let mut starts: Vec<PathBuf> = [
        std::env::current_dir().ok(),
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf)),
    ]
    .into_iter()
    .flatten()
    .collect();
    starts.dedup();
    starts
        .iter()
        .find_map(|start| start.ancestors().find(|d| is_workspace_root(d)))
        .map(Path::to_path_buf)
        .ok_or(RootError::NotFound { searched: starts })
}

/// `dir/Cargo.toml` declares a `[workspace]` (a member's manifest does not).
fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_manifest_marks_the_root_and_a_member_does_not() {
        let member = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(!is_workspace_root(member));
        let root = member
            .ancestors()
            .find(|d| is_workspace_root(d))
            .expect("the workspace root above crates/bench");
        assert!(root.join("crds").is_dir());
        assert!(root.join("tests/control-plane/up").is_file());
    }
}
