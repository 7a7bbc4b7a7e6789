//! A grant belongs to a key vault and a principal, and every account of that
//! principal on that vault shares it (the Cosmos DB first party, a shared
//! user-assigned identity). Accounts reconciled together would each check the
//! grant, each find it missing and each write it. The gate lets one account at
//! a time check (and grant) per vault, and lets the accounts behind it use
//! what was confirmed moments before instead of asking ARM again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// How long a confirmed grant is taken as read. Long enough for a burst of
/// creations over one vault to share one check; short, because a grant
/// removed behind the operator's back is only seen by the next check (and a
/// create that Azure refuses for it makes the gate forget it at once).
pub const FRESH_FOR: Duration = Duration::from_secs(60);

pub struct GrantGate {
    vaults: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
    confirmed: Mutex<HashMap<(String, String), Instant>>,
    fresh_for: Duration,
}

/// Held while one account checks and, if need be, writes a vault's grants.
pub type Turn = OwnedMutexGuard<()>;

fn key(vault_id: &str, principal: &str) -> (String, String) {
    (
        vault_id.to_ascii_lowercase(),
        principal.to_ascii_lowercase(),
    )
}

impl GrantGate {
    pub fn new(fresh_for: Duration) -> Self {
        GrantGate {
            vaults: Mutex::default(),
            confirmed: Mutex::default(),
            fresh_for,
        }
    }

    /// Waits for this vault's turn.
    pub async fn enter(&self, vault_id: &str) -> Turn {
        let lock = {
            let mut vaults = self.vaults.lock().unwrap_or_else(|p| p.into_inner());
            vaults
                .entry(vault_id.to_ascii_lowercase())
                .or_default()
                .clone()
        };
        lock.lock_owned().await
    }

    /// Splits `principals` into those confirmed within `fresh_for` and the rest.
    pub fn split(&self, vault_id: &str, principals: &[String]) -> (Vec<String>, Vec<String>) {
        let confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        principals.iter().cloned().partition(|p| {
            confirmed
                .get(&key(vault_id, p))
                .is_some_and(|at| at.elapsed() < self.fresh_for)
        })
    }

    /// Records that these principals hold their grant on the vault now.
    pub fn confirm(&self, vault_id: &str, principals: &[String]) {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        confirmed.retain(|_, at| at.elapsed() < self.fresh_for);
        for p in principals {
            confirmed.insert(key(vault_id, p), now);
        }
    }

    /// Forgets what was confirmed (a grant removed, or a create Azure refused).
    pub fn forget(&self, vault_id: &str, principals: &[String]) {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        for p in principals {
            confirmed.remove(&key(vault_id, p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ps(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn confirmed_principals_are_known_until_stale_or_forgotten() {
        let gate = GrantGate::new(Duration::from_millis(200));
        gate.confirm("/V/kv", &ps(&["A"]));
        // Ids compare without case, as Azure's do.
        assert_eq!(
            gate.split("/v/KV", &ps(&["a", "b"])),
            (ps(&["a"]), ps(&["b"]))
        );
        assert_eq!(gate.split("/v/other", &ps(&["a"])), (vec![], ps(&["a"])));
        gate.forget("/v/kv", &ps(&["a"]));
        assert_eq!(gate.split("/v/kv", &ps(&["a"])), (vec![], ps(&["a"])));
        gate.confirm("/v/kv", &ps(&["a"]));
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(gate.split("/v/kv", &ps(&["a"])), (vec![], ps(&["a"])));
    }

    #[tokio::test]
    async fn one_turn_per_vault_at_a_time() {
        let gate = Arc::new(GrantGate::new(FRESH_FOR));
        let first = gate.enter("/v/kv").await;
        // Another vault is not held up...
        drop(gate.enter("/v/other").await);
        // ...the same vault (in any case) waits for the first turn to end.
        let g = gate.clone();
        let second = tokio::spawn(async move { drop(g.enter("/V/KV").await) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished());
        drop(first);
        second.await.unwrap();
    }
}
