//! A binding's key over time, pure: whether the key's rotation policy needs
//! writing, whether a `cosmoscmk.io/rotate` request needs a rotation, when
//! the key rotates next and whether the version in use nears its expiry.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::reasons as r;
use crate::api::conditions::{self, FALSE, KEY_EXPIRING, TRUE};
use crate::api::{KeyRotation, KeyVaultBindingStatus, RotateRequest};
use crate::iso_duration::{IsoDuration, human, same};

/// How long before expiry the operator warns when the spec names no window:
/// Key Vault's own default notification time (keys.json 7.4, `KeyRotationPolicy`:
/// "Notification time would be default to 30 days before expiry").
pub const DEFAULT_NOTIFY: &str = "P30D";

/// What to do about the key's rotation policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyStep {
    /// The spec sets none, or Key Vault already holds the spec's.
    Nothing,
    /// Write the spec's policy.
    Write(KeyRotation),
    /// Key Vault holds a policy set outside this binding: it stays.
    KeepForeign,
}

/// Whether the spec's rotation policy may be written over Key Vault's. A key
/// is shared (Terraform, another cluster's binding, another service may own
/// its schedule), so the binding takes over only Key Vault's default (no
/// rotation, no expiry); a policy it finds already set is someone else's and
/// stays (reported), or two owners would overwrite each other on every
/// resync. Once the binding has applied its policy (`last_seen`), a change
/// in Key Vault is drift and the spec's comes back. Without a spec'd policy
/// nothing is read or written.
pub fn policy_step(
    spec: Option<&KeyRotation>,
    in_vault: &KeyRotation,
    last_seen: Option<&KeyRotation>,
) -> PolicyStep {
    let Some(want) = spec else {
        return PolicyStep::Nothing;
    };
    if same_policy(want, in_vault) {
        return PolicyStep::Nothing;
    }
    let default = in_vault.rotate_after.is_none()
        && in_vault.rotate_before_expiry.is_none()
        && in_vault.expires_after.is_none();
    if default || last_seen.is_some() {
        PolicyStep::Write(want.clone())
    } else {
        PolicyStep::KeepForeign
    }
}

fn same_policy(a: &KeyRotation, b: &KeyRotation) -> bool {
    same(a.rotate_after.as_deref(), b.rotate_after.as_deref())
        && same(
            a.rotate_before_expiry.as_deref(),
            b.rotate_before_expiry.as_deref(),
        )
        && same(a.expires_after.as_deref(), b.expires_after.as_deref())
        && same(
            a.notify_before_expiry.as_deref(),
            b.notify_before_expiry.as_deref(),
        )
}

/// What to do about the `cosmoscmk.io/rotate` annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateStep {
    /// No request, or the request was carried out.
    Nothing,
    /// A new value: record it (in flight) first, then rotate.
    Start(RotateRequest),
    /// The recorded request is in flight and Key Vault shows no version made
    /// since: rotate (the earlier attempt failed before Key Vault acted).
    Rotate,
    /// The recorded request is in flight but Key Vault already made a version
    /// since it was taken up (the rotate succeeded, the status write did not):
    /// record that version, rotate nothing.
    Done(String),
}

/// Decides the rotate request. `current` is the key's current version and
/// when Key Vault created it.
pub fn rotate_step(
    annotation: Option<&str>,
    record: Option<&RotateRequest>,
    current: Option<(&str, Option<Timestamp>)>,
    now: Timestamp,
) -> RotateStep {
    let Some(value) = annotation.map(str::trim).filter(|v| !v.is_empty()) else {
        return RotateStep::Nothing;
    };
    match record {
        Some(rec) if rec.value == value => {
            if rec.version.is_some() {
                return RotateStep::Nothing;
            }
            let requested: Option<Timestamp> = rec.requested_at.parse().ok();
            match (current, requested) {
                (Some((version, Some(created))), Some(at)) if created >= at => {
                    RotateStep::Done(version.to_owned())
                }
                _ => RotateStep::Rotate,
            }
        }
        _ => {
            // Whole seconds: Key Vault's `created` counts in seconds, and a
            // version made in the same second as the request is its answer.
            let at = Timestamp::from_second(now.as_second()).unwrap_or(now);
            RotateStep::Start(RotateRequest {
                value: value.to_owned(),
                requested_at: at.to_string(),
                version: None,
            })
        }
    }
}

/// When the policy rotates a version created at `created` expiring at `expires`.
pub fn next_rotation(
    policy: &KeyRotation,
    created: Option<Timestamp>,
    expires: Option<Timestamp>,
) -> Option<Timestamp> {
    if let Some(after) = policy.rotate_after.as_deref().and_then(IsoDuration::parse) {
        return after.after(created?);
    }
    let before = policy
        .rotate_before_expiry
        .as_deref()
        .and_then(IsoDuration::parse)?;
    before.before(expires?)
}

/// The key's expiry and rotation times in the status, and the `KeyExpiring`
/// condition; returns the condition's message when it turned True (for a
/// Warning event). Without an expiry there is no `KeyExpiring` condition.
/// `policy` is the key's rotation policy when the operator read it (only
/// when the spec sets one); a key expiring with no rotation first is flagged
/// only then, since an unread policy may well rotate it.
pub fn report_expiry(
    status: &mut KeyVaultBindingStatus,
    policy: Option<&KeyRotation>,
    created: Option<Timestamp>,
    expires: Option<Timestamp>,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<String> {
    status.key_expires_on = expires.map(|t| t.to_string());
    let next = policy.and_then(|p| next_rotation(p, created, expires));
    status.next_rotation_on = next.map(|t| t.to_string());
    let was_true =
        conditions::find(&status.conditions, KEY_EXPIRING).is_some_and(|c| c.status == TRUE);
    let Some(exp) = expires else {
        status.conditions.retain(|c| c.type_ != KEY_EXPIRING);
        return None;
    };
    let window_text = policy
        .and_then(|p| p.notify_before_expiry.clone())
        .unwrap_or_else(|| DEFAULT_NOTIFY.to_owned());
    let window = IsoDuration::parse(&window_text).unwrap_or_default();
    let left = exp.duration_since(now);
    let rotates_first = next.is_some_and(|n| n < exp);
    let in_window = window.before(exp).is_none_or(|start| now >= start);
    let (state, reason, message) = if left <= SignedDuration::ZERO {
        (
            TRUE,
            r::KEY_EXPIRED,
            format!(
                "the key's current version expired at {exp}: Cosmos DB loses access to it; rotate the key (annotate cosmoscmk.io/rotate) or extend its expiry"
            ),
        )
    } else if in_window {
        let plan = match next {
            Some(n) if rotates_first => format!("Key Vault rotates it at {n}"),
            _ => "no rotation is scheduled before then: rotate it (annotate cosmoscmk.io/rotate) or set spec.key.rotation".to_owned(),
        };
        (
            TRUE,
            r::WITHIN_NOTIFY_WINDOW,
            format!(
                "the key's current version expires at {exp}, in {} (within the {window_text} notify window); {plan}",
                human(left)
            ),
        )
    } else if policy.is_some() && !rotates_first {
        (
            TRUE,
            r::NO_ROTATION_BEFORE_EXPIRY,
            format!(
                "the key's current version expires at {exp}, in {}, and no rotation is scheduled before then: set spec.key.rotation or rotate it by hand",
                human(left)
            ),
        )
    } else {
        (
            FALSE,
            r::EXPIRY_FAR,
            format!(
                "the key's current version expires at {exp}, in {}{}",
                human(left),
                if rotates_first {
                    "; Key Vault rotates it before then"
                } else {
                    ""
                }
            ),
        )
    };
    conditions::set_condition(
        &mut status.conditions,
        conditions::condition(
            KEY_EXPIRING,
            state,
            reason,
            message.clone(),
            generation,
            Time(now),
        ),
    );
    (state == TRUE && !was_true).then_some(message)
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod tests;
