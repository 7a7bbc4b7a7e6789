//! How many accounts each subscription has in the cache, for the resync
//! budget. Counted by one scan of the cache at most every few seconds instead
//! of on every reconcile (an O(N) scan per reconcile is O(N²) per
//! convergence); a count a few seconds old moves a resync by as little.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::reflector::Store;

use crate::api::CosmosAccountCMK;

/// How long a count is used before the cache is scanned again.
const FRESH_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct SubscriptionSizes {
    counted: Mutex<Option<(Instant, HashMap<String, usize>)>>,
}

impl SubscriptionSizes {
    /// Accounts in the cache in `subscription` (case-insensitive, as Azure's ids).
    pub fn of(&self, accounts: &Store<CosmosAccountCMK>, subscription: &str) -> usize {
        let mut counted = self
            .counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale = counted
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= FRESH_FOR);
        if stale {
            let mut sizes: HashMap<String, usize> = HashMap::new();
            for a in accounts.state() {
                *sizes
                    .entry(a.spec.subscription_id.to_ascii_lowercase())
                    .or_default() += 1;
            }
            *counted = Some((Instant::now(), sizes));
        }
        counted
            .as_ref()
            .and_then(|(_, sizes)| sizes.get(&subscription.to_ascii_lowercase()).copied())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher;

    fn account(name: &str, sub: &str) -> CosmosAccountCMK {
        let mut a: CosmosAccountCMK = serde_saphyr::from_str(include_str!(
            "../../deploy/examples/10-account-first-party.yaml"
        ))
        .expect("example parses");
        a.metadata.name = Some(name.into());
        a.metadata.namespace = Some("ns".into());
        a.spec.subscription_id = sub.into();
        a
    }

    #[test]
    fn counts_per_subscription_case_insensitively_and_reuses_the_count() {
        let (reader, mut writer) = reflector::store();
        for (n, s) in [("a", "SUB-1"), ("b", "sub-1"), ("c", "sub-2")] {
            writer.apply_watcher_event(&watcher::Event::Apply(account(n, s)));
        }
        let sizes = SubscriptionSizes::default();
        assert_eq!(sizes.of(&reader, "sub-1"), 2);
        assert_eq!(sizes.of(&reader, "Sub-2"), 1);
        assert_eq!(sizes.of(&reader, "sub-3"), 0);
        // Within FRESH_FOR a new account is not counted yet: no rescan.
        writer.apply_watcher_event(&watcher::Event::Apply(account("d", "sub-2")));
        assert_eq!(sizes.of(&reader, "sub-2"), 1);
    }
}
