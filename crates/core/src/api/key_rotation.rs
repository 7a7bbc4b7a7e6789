//! `spec.key.rotation`: Key Vault's key rotation policy in its own vocabulary
//! (keys.json 7.4 `KeyRotationPolicy`, Azure/azure-rest-api-specs commit
//! 204cfa94e4ab94cc209c58984554411d6ab0e9e5), and the annotations that act on
//! a key by hand.
//!
//! Key Vault's documented bounds, enforced at admission:
//! - `expiryTime` "should be at least 28 days" (keys.json `KeyRotationPolicyAttributes`);
//! - rotation time: "the minimum value is seven days from creation and seven
//!   days from expiration time"; rotating before expiry and notifications
//!   need an expiry time (learn.microsoft.com, "Configure cryptographic key
//!   auto-rotation in Azure Key Vault", Key rotation policy settings).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A new value rotates the binding's key once (`POST /keys/{name}/rotate`).
pub const ROTATE_ANNOTATION: &str = "cosmoscmk.io/rotate";
/// A new value makes the operator reconcile that one resource at once.
pub const RECONCILE_ANNOTATION: &str = "cosmoscmk.io/reconcile";

/// `P[nY][nM][nD][TnH]`: what a rotation policy counts in.
const DURATION: &str = "^P([0-9]{1,4}Y)?([0-9]{1,4}M)?([0-9]{1,5}D)?(T[0-9]{1,6}H)?$";

/// The CEL expression for a duration field's length in hours, with 365-day
/// years and 30-day months (`core::iso_duration::IsoDuration::hours`).
fn hours(field: &str) -> String {
    let part = |unit: char, factor: u32| {
        format!(
            "({field}.contains('{unit}') ? int({field}.find('[0-9]+{unit}').replace('{unit}', '')) * {factor} : 0)"
        )
    };
    format!(
        "({} + {} + {} + {})",
        part('Y', 8760),
        part('M', 720),
        part('D', 24),
        part('H', 1)
    )
}

fn duration_rule(name: &str) -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches('{DURATION}') && self != 'P'")).message(kube::core::Message::Message(format!(
        "{name} must be an ISO-8601 duration in years, months, days or hours, such as P90D, P3M, P1Y or PT48H (no minutes or seconds)"
    )))
}

fn at_least(field: &str, days: u32, message: &str) -> kube::core::Rule {
    kube::core::Rule::new(format!(
        "!has(self.{field}) || !self.{field}.matches('{DURATION}') || {} >= {}",
        hours(&format!("self.{field}")),
        days * 24
    ))
    .message(kube::core::Message::Message(message.to_owned()))
}

fn shorter_than_expiry(field: &str, margin_days: u32, message: &str) -> kube::core::Rule {
    kube::core::Rule::new(format!(
        "!has(self.{field}) || !has(self.expiresAfter) || !self.{field}.matches('{DURATION}') || !self.expiresAfter.matches('{DURATION}') || {} + {} <= {}",
        hours(&format!("self.{field}")),
        margin_days * 24,
        hours("self.expiresAfter")
    ))
    .message(kube::core::Message::Message(message.to_owned()))
}

/// When Key Vault rotates the key and when new versions expire. Set exactly
/// one of `rotateAfter` or `rotateBeforeExpiry`. The operator writes it as the
/// key's rotation policy and restores it when it drifts; without this field
/// the operator leaves whatever policy the key has alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.rotateAfter) != has(self.rotateBeforeExpiry)")
        .message("set exactly one of rotation.rotateAfter (rotate a given time after a version is created) or rotation.rotateBeforeExpiry (rotate a given time before it expires, with expiresAfter)"),
    validation = Rule::new("!has(self.rotateBeforeExpiry) || has(self.expiresAfter)")
        .message("rotation.rotateBeforeExpiry needs rotation.expiresAfter: Key Vault can rotate before an expiry only when new versions get one"),
    validation = Rule::new("!has(self.notifyBeforeExpiry) || has(self.expiresAfter)")
        .message("rotation.notifyBeforeExpiry needs rotation.expiresAfter: Key Vault notifies before an expiry only when new versions get one"),
    validation = at_least("expiresAfter", 28, "rotation.expiresAfter must be at least 28 days (P28D): Key Vault refuses a shorter expiry time"),
    validation = at_least("rotateAfter", 7, "rotation.rotateAfter must be at least 7 days (P7D): Key Vault rotates no sooner than seven days after creation"),
    validation = at_least("rotateBeforeExpiry", 7, "rotation.rotateBeforeExpiry must be at least 7 days (P7D): Key Vault rotates no later than seven days before expiry"),
    validation = shorter_than_expiry("rotateAfter", 7, "rotation.rotateAfter must be at least 7 days shorter than rotation.expiresAfter (a version must rotate no later than seven days before it expires): shorten rotateAfter or lengthen expiresAfter"),
    validation = shorter_than_expiry("rotateBeforeExpiry", 7, "rotation.rotateBeforeExpiry must be at least 7 days shorter than rotation.expiresAfter (a version must live seven days before it rotates): shorten rotateBeforeExpiry or lengthen expiresAfter"),
    validation = shorter_than_expiry("notifyBeforeExpiry", 0, "rotation.notifyBeforeExpiry must not be longer than rotation.expiresAfter: shorten notifyBeforeExpiry")
)]
pub struct KeyRotation {
    /// Rotate this long after a version was created (Key Vault's `timeAfterCreate`), e.g. `P90D`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 24))]
    #[x_kube(validation = duration_rule("rotation.rotateAfter"))]
    pub rotate_after: Option<String>,

    /// Rotate this long before a version expires (Key Vault's `timeBeforeExpiry`
    /// on the Rotate action), e.g. `P30D`; needs `expiresAfter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 24))]
    #[x_kube(validation = duration_rule("rotation.rotateBeforeExpiry"))]
    pub rotate_before_expiry: Option<String>,

    /// New versions expire this long after they are created (the policy's
    /// `expiryTime`, at least 28 days), e.g. `P1Y`. The version in use when the
    /// policy is first written keeps its own expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 24))]
    #[x_kube(validation = duration_rule("rotation.expiresAfter"))]
    pub expires_after: Option<String>,

    /// Key Vault's near-expiry notification (the Notify action's
    /// `timeBeforeExpiry`), e.g. `P30D`; the operator also raises its
    /// `KeyExpiring` condition this long before the version in use expires
    /// (30 days when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 24))]
    #[x_kube(validation = duration_rule("rotation.notifyBeforeExpiry"))]
    pub notify_before_expiry: Option<String>,
}

/// The last `cosmoscmk.io/rotate` value acted on. Written before the rotate
/// call, so a restart between the call and the next status write finds a
/// version created after `requestedAt` and does not rotate again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateRequest {
    /// The annotation's value.
    pub value: String,
    /// When the operator took it up (RFC 3339, whole seconds as Key Vault counts).
    pub requested_at: String,
    /// The version the rotation made; absent while it is in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hours_expression_names_each_unit() {
        let h = hours("self.x");
        for unit in ["Y", "M", "D", "H"] {
            assert!(h.contains(&format!("self.x.find('[0-9]+{unit}')")), "{h}");
        }
    }
}
