//! Key Vault's rotation policy at work: scheduled rotation, the policy's
//! `expiryTime` on every rotated version, and expired versions refused for
//! wrapping.
//!
//! Sources: keys.json 7.4 (`KeyRotationPolicy`, `LifetimeActionsTrigger`,
//! `KeyRotationPolicyAttributes.expiryTime`: "will be applied on the new key
//! version"; Azure/azure-rest-api-specs commit
//! 204cfa94e4ab94cc209c58984554411d6ab0e9e5); learn.microsoft.com "Configure
//! cryptographic key auto-rotation in Azure Key Vault" (rotate a given time
//! after creation or before expiry); "About keys" (`exp`: the key "MUST NOT
//! be used for cryptographic operation, except for decrypt, release, unwrap,
//! and verify").
//!
//! Time: a policy's days last `App::key_day_ms` (a real day unless a test
//! shortens it, `SimConfig::key_day`, `_admin/config` `keyDayMs`); years are
//! 365 of them, months 30. Key Vault counts `created`/`exp` in seconds, so a
//! simulated day shorter than a few seconds schedules coarsely. The schedule
//! is applied whenever the vault or an account using it is read, as if Key
//! Vault had rotated on time; several missed periods make one new version.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::state::{Key, KeyVersion, State, Vault};

/// An ISO-8601 duration (`P[nY][nM][nD][TnH]`) in milliseconds of simulated time.
pub fn duration_ms(text: &str, day_ms: i64) -> Option<i64> {
    let upper = text.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in date.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let days = match c {
            'Y' => 365,
            'M' => 30,
            'W' => 7,
            'D' => 1,
            _ => return None,
        };
        let n: i64 = number.parse().ok()?;
        number.clear();
        total = total.checked_add(n.checked_mul(days)?.checked_mul(day_ms)?)?;
        any = true;
    }
    if !number.is_empty() {
        return None;
    }
    if let Some(t) = time {
        for part in t.split_inclusive(['H', 'M', 'S']) {
            let (digits, unit) = part.split_at(part.len().checked_sub(1)?);
            let n: i64 = digits.parse().ok()?;
            let per_day = match unit {
                "H" => 24,
                "M" => 24 * 60,
                "S" => 24 * 3600,
                _ => return None,
            };
            total = total.checked_add(n.checked_mul(day_ms)? / per_day)?;
            any = true;
        }
    }
    any.then_some(total)
}

/// The policy's Rotate trigger: (`timeAfterCreate`, `timeBeforeExpiry`).
fn rotate_trigger(policy: &Value) -> Option<(Option<String>, Option<String>)> {
    policy
        .get("lifetimeActions")?
        .as_array()?
        .iter()
        .find(|a| {
            a.pointer("/action/type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("rotate"))
        })
        .map(|a| {
            let s = |p: &str| a.pointer(p).and_then(Value::as_str).map(str::to_owned);
            (
                s("/trigger/timeAfterCreate"),
                s("/trigger/timeBeforeExpiry"),
            )
        })
}

/// When (Unix ms) the policy rotates `latest`; `None` when it never does.
fn due_ms(policy: &Value, latest: &KeyVersion, day_ms: i64) -> Option<i64> {
    let (after, before) = rotate_trigger(policy)?;
    if let Some(after) = after {
        return Some(latest.created.checked_mul(1000)? + duration_ms(&after, day_ms)?);
    }
    let before = duration_ms(&before?, day_ms)?;
    Some(latest.exp?.checked_mul(1000)? - before)
}

/// The `exp` (Unix seconds) the policy gives a version made at `now_ms`.
/// Recorded: a key rotated under a `P30D` policy got `exp` = its `created` +
/// 30 days (azure-cli test_keyvault_key_rotation.yaml, 2023;
/// tests/fixtures/recordings/keyvault_key_rotation.yaml). Learn ("Configure
/// cryptographic key auto-rotation"): the expiry time is set on newly rotated
/// versions only, so a key created directly keeps the `exp` it was asked for.
pub fn policy_exp(key: &Key, now_ms: i64, day_ms: i64) -> Option<i64> {
    let expiry = key
        .rotation_policy
        .as_ref()?
        .pointer("/attributes/expiryTime")?
        .as_str()?;
    Some((now_ms + duration_ms(expiry, day_ms)?) / 1000)
}

/// A new version like the latest one, with the policy's expiry; `None` when
/// the key has no version.
pub fn rotate(
    state: &mut State,
    vault: &Vault,
    name: &str,
    now_ms: i64,
    day_ms: i64,
) -> Result<Option<(Key, KeyVersion)>, ApiError> {
    let Some(key) = state
        .keys
        .get(&vault.name.to_ascii_lowercase())
        .and_then(|ks| ks.get(&name.to_ascii_lowercase()))
        .cloned()
    else {
        return Ok(None);
    };
    let Some(last) = key.versions.last() else {
        return Ok(None);
    };
    let mut body = json!({"kty": last.kty, "key_size": last.key_size, "key_ops": last.key_ops, "tags": last.tags});
    if let Some(exp) = policy_exp(&key, now_ms, day_ms) {
        body["attributes"] = json!({"exp": exp});
    }
    super::keys::create_version(state, vault, &key.name, &body).map(Some)
}

/// Rotates every key of `vault` whose policy says it is due.
pub fn apply_schedule(state: &mut State, vault: &Vault, now_ms: i64, day_ms: i64) {
    let due: Vec<String> = state
        .keys
        .get(&vault.name.to_ascii_lowercase())
        .map(|ks| {
            ks.values()
                .filter(|k| {
                    let (Some(p), Some(latest)) = (&k.rotation_policy, k.versions.last()) else {
                        return false;
                    };
                    due_ms(p, latest, day_ms).is_some_and(|d| d <= now_ms)
                })
                .map(|k| k.name.clone())
                .collect()
        })
        .unwrap_or_default();
    for name in due {
        // A refusal (a bad policy) leaves the key as it is.
        let _ = rotate(state, vault, &name, now_ms, day_ms);
    }
}

/// Applies the schedule of every vault (before Cosmos DB reads its keys).
pub fn apply_all(state: &mut State, now_ms: i64, day_ms: i64) {
    let vaults: Vec<Vault> = state
        .keys
        .keys()
        .filter_map(|v| state.vault_by_name(v).cloned())
        .collect();
    for v in &vaults {
        apply_schedule(state, v, now_ms, day_ms);
    }
}

/// Whether a version is past its `exp`.
pub fn expired(kv: &KeyVersion, now_ms: i64) -> bool {
    kv.exp.is_some_and(|e| e.saturating_mul(1000) <= now_ms)
}

/// Key Vault's refusal of an operation an expired key may not do, shaped as
/// its refusal for an expired secret (403 `Forbidden`, inner `SecretExpired`:
/// Azure/AzureKeyVault issue 19).
pub fn expired_refusal(op: &str) -> ApiError {
    ApiError::kv(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!("Operation {op} is not allowed on an expired key."),
    )
    .inner("KeyExpired")
}

/// Refuses wrapping (or encrypting) with an expired version; unwrapping stays allowed.
pub fn refuse_expired(
    state: &State,
    vault: &Vault,
    op: &str,
    rest: &[String],
    now_ms: i64,
) -> Result<(), ApiError> {
    let Some(key) = rest.get(1).and_then(|name| {
        state
            .keys
            .get(&vault.name.to_ascii_lowercase())?
            .get(&name.to_ascii_lowercase())
    }) else {
        return Ok(());
    };
    let version = rest.get(2).filter(|v| {
        !v.is_empty() && !v.eq_ignore_ascii_case("wrapkey") && !v.eq_ignore_ascii_case("encrypt")
    });
    let kv = match version {
        Some(v) => key
            .versions
            .iter()
            .find(|kv| kv.version.eq_ignore_ascii_case(v)),
        None => key.versions.last(),
    };
    match kv {
        Some(kv) if expired(kv, now_ms) => Err(expired_refusal(if op == "KeyVault_WrapKey" {
            "wrapKey"
        } else {
            "encrypt"
        })),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn durations_count_simulated_days() {
        assert_eq!(duration_ms("P90D", DAY), Some(90 * DAY));
        assert_eq!(duration_ms("P1Y10D", 1000), Some(375_000));
        assert_eq!(duration_ms("P3M", 1000), Some(90_000));
        assert_eq!(duration_ms("PT48H", DAY), Some(2 * DAY));
        assert_eq!(duration_ms("90D", DAY), None);
        assert_eq!(duration_ms("P", DAY), None);
    }

    fn version(created: i64, exp: Option<i64>) -> KeyVersion {
        KeyVersion {
            version: "v".into(),
            kty: "RSA".into(),
            key_size: 2048,
            key_ops: vec![],
            enabled: true,
            nbf: None,
            exp,
            created,
            updated: created,
            n: String::new(),
            tags: Value::Null,
        }
    }

    #[test]
    fn a_rotation_falls_due_after_creation_or_before_expiry() {
        let after = json!({"lifetimeActions": [{"trigger": {"timeAfterCreate": "P7D"}, "action": {"type": "Rotate"}}]});
        assert_eq!(due_ms(&after, &version(100, None), 1000), Some(107_000));
        let before = json!({"lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P7D"}, "action": {"type": "rotate"}}]});
        assert_eq!(
            due_ms(&before, &version(100, Some(200)), 1000),
            Some(193_000)
        );
        assert_eq!(
            due_ms(&before, &version(100, None), 1000),
            None,
            "no expiry"
        );
        let notify = json!({"lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}]});
        assert_eq!(due_ms(&notify, &version(100, Some(200)), 1000), None);
    }

    #[test]
    fn expiry_is_on_or_after_exp() {
        assert!(expired(&version(0, Some(10)), 10_000));
        assert!(!expired(&version(0, Some(10)), 9_999));
        assert!(!expired(&version(0, None), i64::MAX));
    }
}
