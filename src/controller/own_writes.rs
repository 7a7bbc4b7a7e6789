//! The operator's own status writes, remembered until the shared cache shows them.
//!
//! Status-only watch events are filtered out (a write of ours must not cost a
//! reconcile), so the next reconcile is our own requeue, and it can fire before
//! the watch has delivered the write. Reconciling that older copy would decide
//! from a status without, say, the pending operation just started, and write
//! it back without it. So a reconcile first checks that the cached status is
//! the one we last wrote; if not, it waits a moment without calling Azure.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// After this long the cache is taken as it is: someone else changed the
/// status (only the operator should), or the watch lost the event.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct OwnWrites {
    /// Object uid -> fingerprint of the status we wrote, and when.
    pending: Mutex<HashMap<String, (u64, Instant)>>,
}

/// Serialized form, so a status read back from the API server (timestamps at
/// second precision) matches the value we wrote.
fn fingerprint<S: Serialize>(status: Option<&S>) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_vec(&status).unwrap_or_default().hash(&mut h);
    h.finish()
}

impl OwnWrites {
    /// Remembers that `status` was just written for `uid`.
    pub fn wrote<S: Serialize>(&self, uid: &str, status: &S) {
        let now = Instant::now();
        let mut pending = self.lock();
        // Objects deleted meanwhile leave entries behind; sweep the stale ones
        // when the map has doubled, not on every write (at 10,000 accounts a
        // sweep per write was a third of the operator's CPU).
        if pending.len() >= 64 && pending.len().is_power_of_two() {
            pending.retain(|_, (_, at)| now.duration_since(*at) < PATIENCE);
        }
        pending.insert(uid.to_owned(), (fingerprint(Some(status)), now));
    }

    /// Whether the cached object already shows our last write (or there is none
    /// to wait for). Forgets the write once seen, or once waited for too long.
    pub fn caught_up<S: Serialize>(&self, uid: &str, cached: Option<&S>) -> bool {
        let mut pending = self.lock();
        let Some((want, at)) = pending.get(uid).copied() else {
            return true;
        };
        if fingerprint(cached) == want || at.elapsed() >= PATIENCE {
            pending.remove(uid);
            return true;
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconcile_waits_until_the_cache_shows_our_write() {
        let own = OwnWrites::default();
        assert!(own.caught_up::<String>("a", None), "nothing written yet");
        own.wrote("a", &"new".to_owned());
        assert!(!own.caught_up("a", Some(&"old".to_owned())));
        assert!(!own.caught_up::<String>("a", None));
        assert!(own.caught_up("a", Some(&"new".to_owned())));
        // Seen once, forgotten: a later status change by anyone is not waited for.
        assert!(own.caught_up("a", Some(&"other".to_owned())));
        assert!(own.caught_up("b", Some(&"x".to_owned())));
    }
}
