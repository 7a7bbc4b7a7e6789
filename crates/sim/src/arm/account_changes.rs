//! Cosmos DB's rules for changing an existing account's regions and backup
//! policy, and the failover-priority change operation.
//!
//! Sources: Microsoft Learn "Manage an Azure Cosmos DB account" (adding or
//! removing a region is an asynchronous operation during which no other update
//! is allowed; regions are added or removed apart from other property changes;
//! the write region changes through a failover-priority change), the
//! `failoverPriorityChange` operation of cosmos-db.json (2025-10-15: every
//! region listed, priority 0 is the write region, priorities unique), the
//! `Location.isZoneRedundant` field (set when a region is added), and
//! "Migrate an Azure Cosmos DB account from periodic to continuous backup
//! mode" (one-way; with customer-managed keys the default identity must be a
//! managed identity), plus the seed procedure's FAQ (the first-party identity is
//! not supported on continuous-backup accounts).

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::errors::ApiError;
use crate::state::{Account, now_ms};

use super::lro::normalize_location;

/// A migration to continuous backup: Azure keeps reporting the old policy with
/// `migrationState.status` `InProgress` until it is done.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    pub start_time: String,
    pub done_ms: i64,
    /// The periodic policy reported while the migration runs.
    pub from: Value,
}

impl Migration {
    pub fn in_progress(&self) -> bool {
        now_ms() < self.done_ms
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// `(normalised name, failoverPriority, isZoneRedundant)` of each region.
fn regions(v: Option<&Value>) -> Vec<(String, i64, bool)> {
    v.and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|l| {
                    (
                        normalize_location(
                            l.get("locationName").and_then(Value::as_str).unwrap_or(""),
                        ),
                        l.get("failoverPriority")
                            .and_then(Value::as_i64)
                            .unwrap_or(0),
                        l.get("isZoneRedundant")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Priorities must be 0..n-1, each once.
fn check_priorities(list: &[(String, i64, bool)]) -> Result<(), ApiError> {
    let mut p: Vec<i64> = list.iter().map(|r| r.1).collect();
    p.sort_unstable();
    if p.iter().enumerate().any(|(i, v)| *v != i as i64) {
        return Err(bad(
            "Failover priorities must be unique and run from 0 (the write region) to the number of regions minus 1.",
        ));
    }
    Ok(())
}

/// A change of `locations` in an update: one region added or removed, nothing
/// else changed with it, the write region and zone redundancy kept.
pub fn check_locations(
    cur: &Account,
    new: &Value,
    other_changes: &[String],
) -> Result<(), ApiError> {
    let before = regions(cur.properties.get("locations"));
    let after = regions(Some(new));
    if after.is_empty() {
        return Err(bad("An account needs at least one location."));
    }
    if !other_changes.is_empty() {
        return Err(bad(format!(
            "Updating locations cannot be combined with updates to other properties ({}). Add or remove regions in their own request.",
            other_changes.join(", ")
        )));
    }
    check_priorities(&after)?;
    let find =
        |list: &[(String, i64, bool)], name: &str| list.iter().find(|r| r.0 == name).cloned();
    let added = after
        .iter()
        .filter(|r| find(&before, &r.0).is_none())
        .count();
    let removed = before
        .iter()
        .filter(|r| find(&after, &r.0).is_none())
        .count();
    if added + removed > 1 {
        return Err(bad(
            "Only one region can be added or removed in one update of locations; add or remove the others in later requests.",
        ));
    }
    for b in &before {
        let Some(a) = find(&after, &b.0) else {
            if b.1 == 0 {
                return Err(bad(format!(
                    "The write region '{}' cannot be removed; make another region the write region with a failover priority change first.",
                    b.0
                )));
            }
            continue;
        };
        if a.2 != b.2 {
            return Err(bad(format!(
                "Zone redundancy of the existing region '{}' cannot be changed; remove the region and add it again.",
                b.0
            )));
        }
        if (a.1 == 0) != (b.1 == 0) {
            return Err(bad(
                "The write region (failover priority 0) cannot be changed by an account update; use the failoverPriorityChange operation.",
            ));
        }
    }
    // Kept regions keep their relative order; the new one goes after them.
    let order = |list: &[(String, i64, bool)]| {
        let mut kept: Vec<(i64, String)> = list
            .iter()
            .filter(|r| find(&before, &r.0).is_some() && find(&after, &r.0).is_some())
            .map(|r| (r.1, r.0.clone()))
            .collect();
        kept.sort();
        kept.into_iter().map(|k| k.1).collect::<Vec<_>>()
    };
    if order(&before) != order(&after) {
        return Err(bad(
            "Failover priorities of existing regions cannot be changed while regions are added or removed; use the failoverPriorityChange operation.",
        ));
    }
    Ok(())
}

/// A change of `backupPolicy`: continuous is one-way, and with a customer-managed
/// key the migration needs a managed identity as the default identity. Returns
/// the migration to start, if this is one.
pub fn check_backup(
    cur: &Account,
    new: &Value,
    default_identity: &str,
    other_changes: &[String],
    migration_ms: i64,
) -> Result<Option<Migration>, ApiError> {
    let new_type = new.get("type").and_then(Value::as_str).unwrap_or("");
    let continuous = |t: &str| t.eq_ignore_ascii_case("Continuous");
    if !continuous(new_type) && !new_type.eq_ignore_ascii_case("Periodic") {
        return Err(bad(format!(
            "Invalid backup policy type '{new_type}'. Valid values are 'Periodic' and 'Continuous'."
        )));
    }
    let old_type = cur.backup_type().to_owned();
    if continuous(&old_type) && !continuous(new_type) {
        return Err(bad(
            "The backup policy of an account with continuous backup cannot be changed to Periodic: migration to continuous mode is one-way.",
        ));
    }
    if continuous(new_type) && !continuous(&old_type) {
        if !other_changes.is_empty() {
            return Err(bad(format!(
                "Migrating to continuous backup cannot be combined with updates to other properties ({}).",
                other_changes.join(", ")
            )));
        }
        if cur.key_uri().is_some() && default_identity.eq_ignore_ascii_case("FirstPartyIdentity") {
            return Err(bad(
                "The account uses a customer-managed key with the first-party identity: to migrate to continuous backup, grant a system-assigned or user-assigned identity access to the key and set it as the account's default identity first.",
            ));
        }
        let from = cur
            .properties
            .get("backupPolicy")
            .cloned()
            .unwrap_or_else(|| json!({"type": "Periodic"}));
        return Ok(Some(Migration {
            start_time: crate::state::now_rfc3339(),
            done_ms: now_ms() + migration_ms,
            from,
        }));
    }
    Ok(None)
}

/// The first-party identity cannot be the default identity of a continuous account
/// with a customer-managed key (seed FAQ).
pub fn check_default_identity(cur: &Account, default_identity: &str) -> Result<(), ApiError> {
    let continuous =
        cur.backup_type().eq_ignore_ascii_case("Continuous") || cur.migration.as_ref().is_some();
    if continuous
        && cur.key_uri().is_some()
        && default_identity.eq_ignore_ascii_case("FirstPartyIdentity")
    {
        return Err(bad(
            "The first-party identity is not supported on accounts with continuous backup and customer-managed keys; use 'SystemAssignedIdentity' or 'UserAssignedIdentity=<identity resource id>'.",
        ));
    }
    Ok(())
}

/// `POST .../databaseAccounts/{name}/failoverPriorityChange`: every region once,
/// priorities 0..n-1. Returns the new `locations` value.
pub fn failover_priority_change(cur: &Account, body: &Value) -> Result<Value, ApiError> {
    let policies = body
        .get("failoverPolicies")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("The request must carry 'failoverPolicies'."))?;
    let before = cur
        .properties
        .get("locations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted = regions(Some(&Value::Array(policies.clone())));
    if wanted.len() != before.len()
        || before.iter().any(|l| {
            let n = normalize_location(l.get("locationName").and_then(Value::as_str).unwrap_or(""));
            !wanted.iter().any(|w| w.0 == n)
        })
    {
        return Err(bad(
            "The failover policies must list exactly the account's current regions; add or remove regions with an account update.",
        ));
    }
    check_priorities(&wanted)?;
    let next: Vec<Value> = before
        .iter()
        .map(|l| {
            let n = normalize_location(l.get("locationName").and_then(Value::as_str).unwrap_or(""));
            let p = wanted.iter().find(|w| w.0 == n).map_or(0, |w| w.1);
            let mut l: Map<String, Value> = l.as_object().cloned().unwrap_or_default();
            l.insert("failoverPriority".into(), json!(p));
            Value::Object(l)
        })
        .collect();
    Ok(Value::Array(next))
}

/// What `backupPolicy` reads as, with the migration state Azure reports.
pub fn reported_backup(a: &Account, current: Value) -> Value {
    let Some(m) = &a.migration else {
        return current;
    };
    if m.in_progress() {
        let mut from = m.from.clone();
        from["migrationState"] =
            json!({"status": "InProgress", "targetType": "Continuous", "startTime": m.start_time});
        return from;
    }
    let mut done = current;
    done["migrationState"] =
        json!({"status": "Completed", "targetType": "Continuous", "startTime": m.start_time});
    done
}

/// Whether an update must wait: the account is migrating its backup.
pub fn migrating(a: &Account) -> bool {
    a.migration.as_ref().is_some_and(Migration::in_progress)
}

/// Azure's answer to an update while another operation holds the account.
pub fn busy(name: &str) -> ApiError {
    ApiError::arm(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
        format!(
            "There is already an operation in progress which requires exclusive lock on this service {name}. Please retry the operation after sometime."
        ),
    )
}
