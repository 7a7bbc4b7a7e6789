//! This installation's name in account owner tags. Two clusters that share
//! one must never both own an account (decommissioning either would delete
//! what the other still serves), so the default is derived from something
//! unique to the cluster — the `kube-system` namespace's uid — and the old
//! shared default is refused against real Azure.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

/// Ids that many installations would share: never an owner against real Azure.
const SHARED_DEFAULTS: [&str; 2] = ["default", "cluster"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterIdError {
    #[error(
        "--cluster-id {0:?} is a default many clusters share, and two clusters with one id both own the same accounts (deleting a resource in either deletes the account the other serves): unset it to derive the id from this cluster's kube-system namespace uid, or give this cluster a unique name; to move accounts tagged with it, pass it as --previous-cluster-id"
    )]
    SharedDefault(String),
    #[error(
        "--cluster-id {0:?} cannot be an Azure tag value (1-256 characters, none of < > % & \\ ? /)"
    )]
    NotATagValue(String),
    #[error(
        "no --cluster-id given and the kube-system namespace's uid cannot be read ({0}): grant the operator get on namespaces/kube-system (the chart does when operator.clusterId is empty), or set --cluster-id to a name unique to this cluster"
    )]
    Underivable(String),
}

/// The id `given` names, or the one derived from `kube_system_uid`.
pub fn decide(
    given: Option<&str>,
    kube_system_uid: Result<String, String>,
    real_azure: bool,
) -> Result<String, ClusterIdError> {
    match given.map(str::trim).filter(|g| !g.is_empty()) {
        Some(g) if real_azure && SHARED_DEFAULTS.iter().any(|d| d.eq_ignore_ascii_case(g)) => {
            Err(ClusterIdError::SharedDefault(g.to_owned()))
        }
        Some(g) if g.len() > 256 || g.contains(['<', '>', '%', '&', '\\', '?', '/']) => {
            Err(ClusterIdError::NotATagValue(g.to_owned()))
        }
        Some(g) => Ok(g.to_owned()),
        None => kube_system_uid
            .map(|uid| format!("k8s-{uid}"))
            .map_err(ClusterIdError::Underivable),
    }
}

/// Resolves the id, reading the `kube-system` namespace only when none is given.
pub async fn resolve(
    client: &kube::Client,
    given: Option<&str>,
    real_azure: bool,
) -> Result<String, ClusterIdError> {
    let needs_uid = given.is_none_or(|g| g.trim().is_empty());
    let uid = match needs_uid {
        false => Err(String::new()),
        true => Api::<Namespace>::all(client.clone())
            .get("kube-system")
            .await
            .map_err(|e| e.to_string())
            .and_then(|ns| ns.metadata.uid.ok_or_else(|| "it has no uid".to_owned())),
    };
    decide(given, uid, real_azure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_id_comes_from_the_cluster_and_shared_defaults_are_refused() {
        let uid = || Ok("6f1c".to_owned());
        assert_eq!(decide(None, uid(), true), Ok("k8s-6f1c".into()));
        assert_eq!(decide(Some("  "), uid(), true), Ok("k8s-6f1c".into()));
        assert_eq!(
            decide(Some("prod-east"), uid(), true),
            Ok("prod-east".into())
        );
        assert!(matches!(
            decide(Some("Default"), uid(), true),
            Err(ClusterIdError::SharedDefault(_))
        ));
        assert_eq!(
            decide(Some("default"), uid(), false),
            Ok("default".into()),
            "the simulator owns nothing real"
        );
        assert!(matches!(
            decide(Some("a/b"), uid(), true),
            Err(ClusterIdError::NotATagValue(_))
        ));
        assert!(matches!(
            decide(None, Err("forbidden".into()), true),
            Err(ClusterIdError::Underivable(_))
        ));
    }
}
