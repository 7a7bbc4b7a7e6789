//! The tenancy policy as the reconcilers see it: loaded from the file of
//! `--tenancy-config`, followed for changes while the operator runs, and
//! swapped whole (a reconcile reads one policy, never half of two). Every
//! change is announced so the controllers reconcile everything again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;

use crate::tenancy::PolicyInForce;

/// How often the file is read again. A ConfigMap volume takes up to a minute
/// to show an edit anyway; reading a small file this often costs nothing.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(5);

/// The policy in force, shared by the reconcilers and the follower.
#[derive(Clone, Debug)]
pub struct LiveTenancy {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    current: RwLock<Arc<PolicyInForce>>,
    /// Bumped at every swap; the controllers' reconcile-all trigger.
    swaps: watch::Sender<u64>,
}

impl Default for LiveTenancy {
    fn default() -> Self {
        LiveTenancy::new(PolicyInForce::default())
    }
}

impl From<crate::tenancy::TenancyPolicy> for LiveTenancy {
    /// A policy that stays as it is (tests, and runs without a file).
    fn from(policy: crate::tenancy::TenancyPolicy) -> Self {
        LiveTenancy::new(PolicyInForce::Valid(policy))
    }
}

impl LiveTenancy {
    pub fn new(policy: PolicyInForce) -> Self {
        LiveTenancy {
            shared: Arc::new(Shared {
                current: RwLock::new(Arc::new(policy)),
                swaps: watch::channel(0).0,
            }),
        }
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<PolicyInForce> {
        self.shared
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts `policy` in force; returns whether it differs from the one it replaces
    /// (only then are the controllers told).
    pub fn replace(&self, policy: PolicyInForce) -> bool {
        {
            let mut current = self
                .shared
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if **current == policy {
                return false;
            }
            *current = Arc::new(policy);
        }
        self.shared.swaps.send_modify(|n| *n = n.wrapping_add(1));
        true
    }

    /// One item per swap from now on (a burst of swaps may yield one).
    pub fn changes(&self) -> impl Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(self.shared.swaps.subscribe(), |mut rx| async move {
            rx.changed().await.ok().map(|()| ((), rx))
        })
    }
}

/// What the file makes the policy now.
pub async fn read(path: &Path) -> PolicyInForce {
    let content = tokio::fs::read_to_string(path).await;
    PolicyInForce::from_file(
        &path.display().to_string(),
        content.as_deref().map_err(ToString::to_string),
    )
}

/// Reads `path` every `every` and puts what it says in force, forever. A file
/// that cannot be read or parsed puts `Unusable` in force (everything refused)
/// until it is valid again.
pub async fn follow(path: PathBuf, live: LiveTenancy, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let policy = read(&path).await;
        let shown = describe(&policy);
        if live.replace(policy) {
            match shown {
                Ok(namespaces) => tracing::info!(
                    path = %path.display(),
                    ?namespaces,
                    "tenancy policy changed; reconciling every resource against it"
                ),
                Err(problem) => tracing::error!(
                    path = %path.display(),
                    %problem,
                    "tenancy policy file unusable; every resource is refused (nothing done in Azure) until it is valid again"
                ),
            }
        }
    }
}

/// The namespaces a policy names, or why there is none, for the log.
pub fn describe(policy: &PolicyInForce) -> Result<Vec<String>, String> {
    match policy {
        PolicyInForce::Valid(p) => Ok(p.namespaces.iter().map(|e| e.namespace.clone()).collect()),
        PolicyInForce::Unusable { problem, .. } => Err(problem.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{Refusal, Request};
    use futures::StreamExt;

    const SCOPE: &str = "/subscriptions/00000000-0000-0000-0000-00000000c0de/resourceGroups/team-a";

    fn allowing(namespace: &str) -> String {
        format!(
            "namespaces:\n  - namespace: {namespace}\n    operatorIdentity: true\n    scopes: [{SCOPE}]\n"
        )
    }

    /// A fresh file under the temp dir, holding `content`.
    pub(crate) fn policy_file(name: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cmk-tenancy-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tenancy.yaml");
        std::fs::write(&path, content).expect("write the policy");
        path
    }

    fn refusal(live: &LiveTenancy) -> Option<Refusal> {
        let targets = [SCOPE.to_owned()];
        live.current()
            .check(&Request {
                namespace: "team-a",
                credential_ref: false,
                targets: &targets,
            })
            .err()
    }

    /// Polls until `done` holds (generous: only load delays the follower).
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{what}: not within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_changed_file_is_followed_and_an_unusable_one_refuses_everything() {
        let path = policy_file("follow", &allowing("team-a"));
        let live = LiveTenancy::new(read(&path).await);
        assert_eq!(refusal(&live), None);
        let mut changes = Box::pin(live.changes());
        let follower = tokio::spawn(follow(
            path.clone(),
            live.clone(),
            Duration::from_millis(20),
        ));

        std::fs::write(&path, "namespaces: [oops").expect("break the file");
        until("a broken file refuses", || {
            matches!(refusal(&live), Some(Refusal::PolicyUnusable { .. }))
        })
        .await;
        let message = refusal(&live).map(|r| r.to_string()).unwrap_or_default();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("not valid YAML"), "{message}");
        tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("the swap is announced");

        std::fs::write(&path, allowing("team-b")).expect("narrow the policy");
        until("team-a no longer listed", || {
            matches!(refusal(&live), Some(Refusal::NamespaceNotListed { .. }))
        })
        .await;

        std::fs::remove_file(&path).expect("remove the file");
        until("a missing file refuses", || {
            matches!(refusal(&live), Some(Refusal::PolicyUnusable { .. }))
        })
        .await;

        std::fs::write(&path, allowing("team-a")).expect("restore the policy");
        until("allowed again", || refusal(&live).is_none()).await;
        follower.abort();
    }

    #[test]
    fn only_a_different_policy_is_a_swap() {
        let live = LiveTenancy::default();
        assert!(!live.replace(PolicyInForce::default()));
        let broken = PolicyInForce::from_file("f", Err("gone".into()));
        assert!(live.replace(broken.clone()));
        assert!(!live.replace(broken));
    }
}
