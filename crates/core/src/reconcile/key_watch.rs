//! Revocation seen from the key's side, pure. Many accounts share one key
//! version, so one Key Vault read of that version per interval tells all of
//! them whether it is still usable; only the accounts whose reported state
//! disagrees with what the key side now says are woken (each then spends one
//! account read, where something changed). Account resyncs stretch with N to
//! stay within ARM's read budget; this check does not: its cost is one read
//! per version in use per interval, per vault, whatever N is.
//!
//! What is polled when (`plan`, `KeyWatch::due`) and whom to wake
//! (`to_wake`) are decided here; the poll loop is `src/controller/key_watch.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// One key version, by its versionless key URI (compared ignoring case and a
/// trailing slash) and version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionRef {
    pub key_uri: String,
    pub version: String,
}

impl VersionRef {
    pub fn new(key_uri: &str, version: &str) -> Self {
        VersionRef {
            key_uri: key_uri.trim_end_matches('/').to_ascii_lowercase(),
            version: version.to_ascii_lowercase(),
        }
    }

    /// The vault the version lives in (`https://host`): Key Vault's limits are per vault.
    pub fn vault(&self) -> &str {
        let after_scheme = self.key_uri.find("://").map_or(0, |i| i + 3);
        let end = self.key_uri[after_scheme..]
            .find('/')
            .map_or(self.key_uri.len(), |i| after_scheme + i);
        &self.key_uri[..end]
    }
}

/// What a read of a version said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySide {
    /// Enabled: Cosmos DB can wrap and unwrap with it (as far as the key says).
    Usable,
    /// `attributes.enabled` is false.
    Disabled,
    /// No such version (deleted, or the key is gone).
    Deleted,
}

impl KeySide {
    pub fn usable(self) -> bool {
        self == KeySide::Usable
    }
}

/// An account using a version, and whether its status already reports the
/// key revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InUse<Id> {
    pub account: Id,
    pub version: VersionRef,
    pub reports_revoked: bool,
}

/// The versions in use, by vault, with each vault's poll interval: `interval`,
/// stretched so the vault sees at most `reads_per_second` of these reads
/// (`versions / reads_per_second` when that is longer).
pub fn plan<Id>(
    in_use: &[InUse<Id>],
    interval: Duration,
    reads_per_second: f64,
) -> BTreeMap<String, (Duration, BTreeSet<VersionRef>)> {
    let mut by_vault: BTreeMap<String, BTreeSet<VersionRef>> = BTreeMap::new();
    for u in in_use {
        by_vault
            .entry(u.version.vault().to_owned())
            .or_default()
            .insert(u.version.clone());
    }
    by_vault
        .into_iter()
        .map(|(vault, versions)| {
            let budgeted =
                Duration::from_secs_f64(versions.len() as f64 / reads_per_second.max(0.001));
            (vault, (interval.max(budgeted), versions))
        })
        .collect()
}

/// Accounts to wake after a read of `version` said `now`, given what the last
/// read said (`None`: never read, e.g. after a restart):
/// * unchanged: nobody (the accounts were woken when it changed);
/// * not usable: the accounts on it that do not report the key revoked yet;
/// * usable again after it was not: the accounts on it that report it revoked,
///   so they recover without waiting for their resync.
///
/// A first read that finds it usable wakes nobody: that is the normal case.
pub fn to_wake<'a, Id>(
    version: &VersionRef,
    previous: Option<KeySide>,
    now: KeySide,
    in_use: &'a [InUse<Id>],
) -> Vec<&'a Id> {
    // Wake the accounts whose `reports_revoked` is this.
    let reporting_revoked = match (previous, now.usable()) {
        (Some(p), _) if p == now => return Vec::new(),
        (_, false) => false,
        (Some(p), true) if !p.usable() => true,
        (_, true) => return Vec::new(),
    };
    in_use
        .iter()
        .filter(|u| u.version == *version && u.reports_revoked == reporting_revoked)
        .map(|u| &u.account)
        .collect()
}

/// What the watch remembers between polls: each version's last answer and
/// when it was last read.
#[derive(Debug, Default)]
pub struct KeyWatch {
    seen: HashMap<VersionRef, KeySide>,
    read_at: HashMap<VersionRef, Instant>,
}

impl KeyWatch {
    /// The versions whose vault interval has passed since their last read (or
    /// never read), oldest first.
    pub fn due(
        &self,
        plan: &BTreeMap<String, (Duration, BTreeSet<VersionRef>)>,
        now: Instant,
    ) -> Vec<VersionRef> {
        let mut due: Vec<(Option<Instant>, VersionRef)> = plan
            .values()
            .flat_map(|(every, versions)| versions.iter().map(move |v| (every, v)))
            .filter_map(|(every, v)| {
                let last = self.read_at.get(v).copied();
                let is_due = last.is_none_or(|t| now.saturating_duration_since(t) >= *every);
                is_due.then(|| (last, v.clone()))
            })
            .collect();
        due.sort();
        due.into_iter().map(|(_, v)| v).collect()
    }

    /// When the next version falls due (`None`: nothing is in use).
    pub fn next_due(
        &self,
        plan: &BTreeMap<String, (Duration, BTreeSet<VersionRef>)>,
        now: Instant,
    ) -> Option<Instant> {
        plan.values()
            .flat_map(|(every, versions)| versions.iter().map(move |v| (every, v)))
            .map(|(every, v)| self.read_at.get(v).map_or(now, |t| *t + *every))
            .min()
    }

    /// A read was attempted at `at` (answered or not: a failed read waits its
    /// interval too, so a vault that refuses is not hammered).
    pub fn read(&mut self, version: &VersionRef, at: Instant) {
        self.read_at.insert(version.clone(), at);
    }

    /// Records what a read said; returns what the previous one said.
    pub fn observe(&mut self, version: &VersionRef, side: KeySide) -> Option<KeySide> {
        self.seen.insert(version.clone(), side)
    }

    /// Forgets versions no longer in use (an account rotated away, or deleted).
    pub fn retain(&mut self, plan: &BTreeMap<String, (Duration, BTreeSet<VersionRef>)>) {
        let keep = |v: &VersionRef| plan.get(v.vault()).is_some_and(|(_, vs)| vs.contains(v));
        self.seen.retain(|v, _| keep(v));
        self.read_at.retain(|v, _| keep(v));
    }
}
