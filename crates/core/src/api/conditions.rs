//! Condition types and a pure helper that keeps `lastTransitionTime` honest.
//!
//! Conditions follow Kubernetes API conventions: one per state-machine stage plus
//! an aggregate `Ready`, so `kubectl wait --for=condition=Ready` and Argo CD both work.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Stage conditions of `CosmosAccountCMK`, in the order the state machine walks them.
pub const VAULT_READY: &str = "VaultReady";
pub const IDENTITY_GRANTED: &str = "IdentityGranted";
pub const ACCOUNT_CREATED: &str = "AccountCreated";
pub const ROTATION_TRACKED: &str = "RotationTracked";
/// `KeyVaultBinding`: the key version in use nears (or passed) its expiry.
pub const KEY_EXPIRING: &str = "KeyExpiring";
/// Aggregate condition of both kinds.
pub const READY: &str = "Ready";

/// Condition status values.
pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// Sets `new` in `conditions`, replacing the condition of the same type.
///
/// `lastTransitionTime` only moves when the status changes, as the conventions
/// require; returns whether anything (status, reason, message, generation) changed,
/// so callers can skip status writes that would change nothing.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let changed = existing.status != new.status
                || existing.reason != new.reason
                || existing.message != new.message
                || existing.observed_generation != new.observed_generation;
            if existing.status != new.status {
                existing.last_transition_time = new.last_transition_time;
            }
            existing.status = new.status;
            existing.reason = new.reason;
            existing.message = new.message;
            existing.observed_generation = new.observed_generation;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// Builds a condition; `now` is passed in so callers (and tests) control time.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now,
    }
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut cs = vec![];
        assert!(set_condition(
            &mut cs,
            condition(READY, FALSE, "Waiting", "m", Some(1), at(10))
        ));
        assert!(set_condition(
            &mut cs,
            condition(READY, FALSE, "Other", "m2", Some(1), at(20))
        ));
        assert_eq!(cs[0].last_transition_time, at(10));
        assert!(set_condition(
            &mut cs,
            condition(READY, TRUE, "Ready", "ok", Some(1), at(30))
        ));
        assert_eq!(cs[0].last_transition_time, at(30));
        assert_eq!(cs.len(), 1);
    }

    #[test]
    fn identical_condition_is_not_a_change() {
        let mut cs = vec![];
        set_condition(
            &mut cs,
            condition(READY, TRUE, "Ready", "ok", Some(2), at(1)),
        );
        assert!(!set_condition(
            &mut cs,
            condition(READY, TRUE, "Ready", "ok", Some(2), at(99))
        ));
        assert_eq!(cs[0].last_transition_time, at(1));
    }
}
