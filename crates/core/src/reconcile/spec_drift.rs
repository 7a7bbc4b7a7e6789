//! What differs between the spec and the account in Azure beyond the key and
//! the identity: kind, capabilities, backup policy and regions. Each
//! difference is either a change Azure accepts, made one per operation in a
//! fixed order, or one Azure refuses, reported with Azure's rule and the fix.
//!
//! Azure's rules followed here (Cosmos DB docs, "Manage database accounts",
//! "Migrate from periodic to continuous backup", and the seed procedure):
//! - a region is added or removed in its own update, one at a time, and
//!   the write region (failover priority 0) only changes through the
//!   `failoverPriorityChange` operation;
//! - a region's zone redundancy is fixed once the region exists;
//! - periodic -> continuous is a one-way migration; the continuous tier and
//!   the periodic interval and retention can change;
//! - the first-party identity is not supported on a continuous account;
//! - an account's API (kind, API capability) never changes.

use crate::api::{
    BackupPolicy, BackupPolicyType, ContinuousTier, CosmosAccountCMKSpec, IdentityType, Location,
};

use super::account::Action;
use super::reasons as r;

/// The account's backup policy as Azure reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFacts {
    pub type_: BackupPolicyType,
    pub continuous_tier: Option<ContinuousTier>,
    pub periodic_interval_minutes: Option<i32>,
    pub periodic_retention_hours: Option<i32>,
    /// Azure is migrating the account to continuous backup (`migrationState.status`
    /// `InProgress`); `type` still reads `Periodic` meanwhile.
    pub migrating: bool,
}

/// How a difference is settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fix {
    /// A change Azure accepts, with the condition reason that shows it.
    Change(Action, &'static str),
    /// The change is refused (by Azure's rule, or because the operator never
    /// removes what it did not make): why, and what the user can do.
    Refused(String),
}

/// One difference between the spec and the account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// What differs, in words.
    pub what: String,
    pub fix: Fix,
}

impl Difference {
    fn change(what: String, action: Action, reason: &'static str) -> Self {
        Difference {
            what,
            fix: Fix::Change(action, reason),
        }
    }

    fn refused(what: String, rule: String) -> Self {
        Difference {
            what,
            fix: Fix::Refused(rule),
        }
    }
}

/// Azure spells regions both ways ("West Europe", "westeurope"); they compare
/// case- and space-insensitively.
pub fn region_key(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The account as Azure reports it, for the fields this module compares.
/// `None` (or an empty region list) means Azure did not report the field: it
/// is then left alone, never "corrected" from a read that lacks it.
#[derive(Clone, Copy, Debug)]
pub struct Reported<'a> {
    pub kind: Option<&'a str>,
    pub capabilities: Option<&'a [String]>,
    pub backup: Option<&'a BackupFacts>,
    pub locations: &'a [Location],
}

/// Every difference, in the order they are corrected.
/// `managed` names the regions this resource made (see `status.managedRegions`):
/// only those are removed.
pub fn differences(
    have: Reported<'_>,
    spec: &CosmosAccountCMKSpec,
    managed: &[String],
) -> Vec<Difference> {
    let mut out = Vec::new();
    api_differences(have, spec, &mut out);
    backup_differences(have.backup, spec, &mut out);
    region_differences(have.locations, &spec.locations, managed, &mut out);
    out
}

fn api_differences(have: Reported<'_>, spec: &CosmosAccountCMKSpec, out: &mut Vec<Difference>) {
    let want_kind = spec.kind.as_str();
    if let Some(kind) = have.kind
        && !kind.eq_ignore_ascii_case(want_kind)
    {
        out.push(Difference::refused(
            format!("kind is {kind} in Azure, the spec says {want_kind}"),
            "an account's API never changes: set spec.kind to the account's kind, or create a new account".into(),
        ));
    }
    if let Some(caps) = have.capabilities {
        let lower = |v: &[String]| {
            let mut v: Vec<String> = v.iter().map(|c| c.to_ascii_lowercase()).collect();
            v.sort();
            v.dedup();
            v
        };
        if lower(caps) != lower(&spec.capabilities) {
            out.push(Difference::refused(
                format!(
                    "capabilities are [{}] in Azure, the spec says [{}]",
                    caps.join(", "),
                    spec.capabilities.join(", ")
                ),
                "the operator does not change an account's capabilities after creation (they select its API and features): set spec.capabilities to the account's".into(),
            ));
        }
    }
}

fn backup_differences(
    have: Option<&BackupFacts>,
    spec: &CosmosAccountCMKSpec,
    out: &mut Vec<Difference>,
) {
    let Some(have) = have else { return };
    let want = &spec.backup_policy;
    let continuous = have.type_ == BackupPolicyType::Continuous || have.migrating;
    if continuous && spec.identity.type_ == IdentityType::FirstParty {
        out.push(Difference::refused(
            "the account has continuous backup and the spec names the first-party identity".into(),
            "Azure does not support the first-party identity on accounts with continuous backup: set spec.identity.type to SystemAssigned or UserAssigned".into(),
        ));
    }
    match (want.type_, have.type_) {
        (BackupPolicyType::Periodic, BackupPolicyType::Continuous) => {
            out.push(Difference::refused(
                "backup is Continuous in Azure, the spec says Periodic".into(),
                "migrating to continuous backup is one-way: Azure cannot go back to periodic; set spec.backupPolicy.type to Continuous".into(),
            ));
        }
        // Already on its way: the migration is waited for, not asked again.
        (BackupPolicyType::Continuous, BackupPolicyType::Periodic) if have.migrating => {}
        (BackupPolicyType::Continuous, BackupPolicyType::Periodic) => {
            out.push(Difference::change(
                "backup is Periodic, the spec says Continuous (a one-way migration)".into(),
                Action::SetBackupPolicy(want.clone()),
                r::MIGRATING_TO_CONTINUOUS_BACKUP,
            ));
        }
        (BackupPolicyType::Continuous, BackupPolicyType::Continuous) => {
            if let (Some(w), Some(h)) = (want.continuous_tier, have.continuous_tier)
                && w != h
            {
                out.push(Difference::change(
                    format!("continuous backup tier is {h:?}, the spec says {w:?}"),
                    Action::SetBackupPolicy(want.clone()),
                    r::UPDATING_BACKUP_POLICY,
                ));
            }
        }
        (BackupPolicyType::Periodic, BackupPolicyType::Periodic) => {
            let differs = |w: Option<i32>, h: Option<i32>| w.is_some() && h.is_some() && w != h;
            let interval = differs(
                want.periodic_interval_minutes,
                have.periodic_interval_minutes,
            );
            let retention = differs(want.periodic_retention_hours, have.periodic_retention_hours);
            if interval || retention {
                // Unset fields keep Azure's value; only what the spec sets is managed.
                let next = BackupPolicy {
                    type_: BackupPolicyType::Periodic,
                    continuous_tier: None,
                    periodic_interval_minutes: want
                        .periodic_interval_minutes
                        .or(have.periodic_interval_minutes),
                    periodic_retention_hours: want
                        .periodic_retention_hours
                        .or(have.periodic_retention_hours),
                };
                out.push(Difference::change(
                    format!(
                        "periodic backup is every {} min kept {} h, the spec says every {} min kept {} h",
                        show(have.periodic_interval_minutes),
                        show(have.periodic_retention_hours),
                        show(next.periodic_interval_minutes),
                        show(next.periodic_retention_hours),
                    ),
                    Action::SetBackupPolicy(next),
                    r::UPDATING_BACKUP_POLICY,
                ));
            }
        }
    }
}

fn show(v: Option<i32>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

/// Regions: zone-redundancy conflicts (refused), then additions, the failover
/// order, and removals (of regions this resource made); each step is one
/// Azure operation.
fn region_differences(
    have: &[Location],
    want: &[Location],
    managed: &[String],
    out: &mut Vec<Difference>,
) {
    if have.is_empty() {
        return;
    }
    let mut have = have.to_vec();
    have.sort_by_key(|l| l.failover_priority);
    let mut want = want.to_vec();
    want.sort_by_key(|l| l.failover_priority);
    let find = |list: &[Location], name: &str| {
        list.iter()
            .find(|l| region_key(&l.location_name) == region_key(name))
            .cloned()
    };

    for w in &want {
        if let Some(h) = find(&have, &w.location_name)
            && h.is_zone_redundant != w.is_zone_redundant
        {
            out.push(Difference::refused(
                format!(
                    "region {} has isZoneRedundant {} in Azure, the spec says {}",
                    h.location_name, h.is_zone_redundant, w.is_zone_redundant
                ),
                "Azure fixes a region's zone redundancy when the region is added: remove the region from spec.locations, wait for Ready, then add it back with the new setting".into(),
            ));
        }
    }

    for w in want
        .iter()
        .filter(|w| find(&have, &w.location_name).is_none())
    {
        let mut next = have.clone();
        next.push(Location {
            location_name: w.location_name.clone(),
            failover_priority: i32::try_from(have.len()).unwrap_or(i32::MAX),
            is_zone_redundant: w.is_zone_redundant,
        });
        out.push(Difference::change(
            format!("region {} is not on the account", w.location_name),
            Action::SetLocations(next),
            r::ADDING_REGION,
        ));
    }

    // The failover order the spec wants, regions it drops after the rest.
    // Only needed when the wanted regions are out of order, or the write
    // region is one to drop (a region is never removed while it is the write
    // region); removing the others renumbers the rest by itself.
    let extra: Vec<&Location> = have
        .iter()
        .filter(|h| find(&want, &h.location_name).is_none())
        .collect();
    let order: Vec<String> = want
        .iter()
        .map(|w| w.location_name.clone())
        .chain(extra.iter().map(|h| h.location_name.clone()))
        .collect();
    let present = |list: &[Location]| -> Vec<String> {
        list.iter()
            .map(|l| region_key(&l.location_name))
            .filter(|k| {
                find(&want, k).is_some() && have.iter().any(|h| region_key(&h.location_name) == *k)
            })
            .collect()
    };
    let write_dropped = find(&want, &have[0].location_name).is_none();
    if write_dropped || present(&have) != present(&want) {
        let next = order
            .iter()
            .filter_map(|name| find(&have, name))
            .enumerate()
            .map(|(i, l)| Location {
                failover_priority: i32::try_from(i).unwrap_or(i32::MAX),
                ..l
            })
            .collect();
        let names = |v: &[Location]| {
            v.iter()
                .map(|l| l.location_name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(Difference::change(
            format!(
                "failover order is [{}], the spec says [{}]",
                names(&have),
                names(&want)
            ),
            Action::ChangeFailoverPriorities(next),
            r::CHANGING_FAILOVER_PRIORITIES,
        ));
    }

    for x in extra {
        let key = region_key(&x.location_name);
        if !managed.iter().any(|m| region_key(m) == key) {
            out.push(Difference::refused(
                format!("region {} is on the account but not in the spec", x.location_name),
                "this resource did not add that region (the account had it when adopted, or it was added outside the operator), and the operator never removes what it did not make: add it to spec.locations to keep it, or remove it in Azure yourself".into(),
            ));
            continue;
        }
        let next = have
            .iter()
            .filter(|h| region_key(&h.location_name) != region_key(&x.location_name))
            .enumerate()
            .map(|(i, l)| Location {
                failover_priority: i32::try_from(i).unwrap_or(i32::MAX),
                ..l.clone()
            })
            .collect();
        out.push(Difference::change(
            format!("region {} is not in the spec", x.location_name),
            Action::SetLocations(next),
            r::REMOVING_REGION,
        ));
    }
}
