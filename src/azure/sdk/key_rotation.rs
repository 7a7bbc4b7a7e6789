//! Key Vault's key rotation policy and on-demand rotation (keys.json 7.4:
//! `GetKeyRotationPolicy`, `UpdateKeyRotationPolicy`, `RotateKey`;
//! Azure/azure-rest-api-specs commit 204cfa94e4ab94cc209c58984554411d6ab0e9e5).
//! The policy travels as `lifetimeActions` (a trigger and an action type,
//! compared case-insensitively) and `attributes.expiryTime`.

use azure_core::Method;
use serde_json::{Value, json};

use super::SdkAzure;
use super::keys::bundle_facts;
use crate::api::KeyRotation;
use crate::azure::errors::AzureError;
use crate::azure::rate_limit::CallKind;
use crate::reconcile::binding::KeyFacts;

impl SdkAzure {
    pub(super) async fn read_rotation_policy(
        &self,
        vault_uri: &str,
        name: &str,
    ) -> Result<KeyRotation, AzureError> {
        const OP: &str = "GetKeyRotationPolicy";
        let key = self.key_ref(OP, vault_uri, name)?;
        let path = ["keys", name, "rotationpolicy"];
        match self
            .kv(OP, &key, CallKind::Read, Method::Get, &path, None)
            .await?
        {
            Ok(a) => Ok(policy_from_wire(&a.body)),
            Err(f) => Err(f.into_error(OP)),
        }
    }

    pub(super) async fn write_rotation_policy(
        &self,
        vault_uri: &str,
        name: &str,
        policy: &KeyRotation,
    ) -> Result<KeyRotation, AzureError> {
        const OP: &str = "UpdateKeyRotationPolicy";
        let key = self.key_ref(OP, vault_uri, name)?;
        let path = ["keys", name, "rotationpolicy"];
        let body = policy_to_wire(policy);
        match self
            .kv(OP, &key, CallKind::Write, Method::Put, &path, Some(body))
            .await?
        {
            Ok(a) => Ok(policy_from_wire(&a.body)),
            Err(f) => Err(f.into_error(OP)),
        }
    }

    pub(super) async fn new_version(
        &self,
        vault_uri: &str,
        name: &str,
    ) -> Result<KeyFacts, AzureError> {
        const OP: &str = "RotateKey";
        let key = self.key_ref(OP, vault_uri, name)?;
        let path = ["keys", name, "rotate"];
        match self
            .kv(OP, &key, CallKind::Write, Method::Post, &path, None)
            .await?
        {
            Ok(a) => bundle_facts(OP, &a),
            Err(f) => Err(f.into_error(OP)),
        }
    }
}

fn action(trigger: &str, duration: &str, kind: &str) -> Value {
    json!({"trigger": {trigger: duration}, "action": {"type": kind}})
}

/// The spec's policy as Key Vault's body: one Rotate action, one Notify
/// action at most (keys.json: "one for rotate, one for notify").
pub fn policy_to_wire(p: &KeyRotation) -> Value {
    let mut actions = Vec::new();
    if let Some(d) = &p.rotate_after {
        actions.push(action("timeAfterCreate", d, "Rotate"));
    } else if let Some(d) = &p.rotate_before_expiry {
        actions.push(action("timeBeforeExpiry", d, "Rotate"));
    }
    if let Some(d) = &p.notify_before_expiry {
        actions.push(action("timeBeforeExpiry", d, "Notify"));
    }
    let mut attributes = json!({});
    if let Some(e) = &p.expires_after {
        attributes["expiryTime"] = json!(e);
    }
    json!({"lifetimeActions": actions, "attributes": attributes})
}

/// Key Vault's policy in the spec's terms; actions of other types are ignored.
pub fn policy_from_wire(body: &Value) -> KeyRotation {
    let mut out = KeyRotation {
        expires_after: body
            .pointer("/attributes/expiryTime")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..KeyRotation::default()
    };
    let actions = body
        .get("lifetimeActions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for a in &actions {
        let kind = a
            .pointer("/action/type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let after = a
            .pointer("/trigger/timeAfterCreate")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let before = a
            .pointer("/trigger/timeBeforeExpiry")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match kind.as_str() {
            "rotate" => {
                out.rotate_after = after;
                out.rotate_before_expiry = before;
            }
            "notify" => out.notify_before_expiry = before,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_round_trips_through_key_vaults_shape() {
        let p = KeyRotation {
            rotate_after: Some("P90D".into()),
            rotate_before_expiry: None,
            expires_after: Some("P1Y".into()),
            notify_before_expiry: Some("P30D".into()),
        };
        let wire = policy_to_wire(&p);
        assert_eq!(
            wire["lifetimeActions"][0],
            json!({"trigger": {"timeAfterCreate": "P90D"}, "action": {"type": "Rotate"}})
        );
        assert_eq!(wire["attributes"]["expiryTime"], "P1Y");
        assert_eq!(policy_from_wire(&wire), p);
    }

    #[test]
    fn key_vaults_default_policy_reads_as_notify_only() {
        // What Key Vault answers for a key nobody gave a policy.
        let body = json!({"id": "https://kv.vault.azure.net/keys/k/rotationpolicy",
            "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}],
            "attributes": {}});
        let p = policy_from_wire(&body);
        assert_eq!(p.notify_before_expiry.as_deref(), Some("P30D"));
        assert_eq!((p.rotate_after, p.expires_after), (None, None));
    }
}
