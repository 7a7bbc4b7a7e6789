//! `exp` of a rotated key version from its rotation policy's `expiryTime`
//! (an ISO 8601 duration). Recorded: a key rotated under a `P30D` policy got
//! `exp` = its `created` + 30 days (azure-cli test_keyvault_key_rotation.yaml,
//! 2023; tests/fixtures/recordings/keyvault_key_rotation.yaml). Learn
//! ("Configure cryptographic key auto-rotation"): the expiry time is set on
//! newly rotated versions and does not affect the current one, so a key
//! created directly keeps the `exp` it was asked for.

use serde_json::Value;

const DAY: i64 = 86_400;

/// Seconds in a duration of years, months, weeks and days (`P1Y`, `P3M`,
/// `P30D`, `P2Y6M`); a year is 365 days and a month 30. None when the text
/// is not such a duration.
pub fn duration_seconds(iso: &str) -> Option<i64> {
    let rest = iso.strip_prefix('P').or_else(|| iso.strip_prefix('p'))?;
    if rest.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in rest.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        let unit = match c.to_ascii_uppercase() {
            'Y' => 365 * DAY,
            'M' => 30 * DAY,
            'W' => 7 * DAY,
            'D' => DAY,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    digits.is_empty().then_some(total)
}

/// The `exp` a version created at `created` gets under `policy`, if any.
pub fn rotated_exp(policy: Option<&Value>, created: i64) -> Option<i64> {
    let iso = policy?.pointer("/attributes/expiryTime")?.as_str()?;
    created.checked_add(duration_seconds(iso)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(duration_seconds("P30D"), Some(30 * DAY));
        assert_eq!(duration_seconds("P1Y"), Some(365 * DAY));
        assert_eq!(duration_seconds("P2Y6M"), Some((730 + 180) * DAY));
        assert_eq!(duration_seconds("P4W"), Some(28 * DAY));
        assert_eq!(duration_seconds("P"), None);
        assert_eq!(duration_seconds("30D"), None);
        assert_eq!(duration_seconds("P30"), None);
        assert_eq!(duration_seconds("PT30M"), None);
    }

    #[test]
    fn the_recorded_rotation() {
        let p = json!({"attributes": {"expiryTime": "P30D"}});
        assert_eq!(rotated_exp(Some(&p), 1_699_275_450), Some(1_701_867_450));
        assert_eq!(rotated_exp(Some(&json!({"attributes": {}})), 1), None);
        assert_eq!(rotated_exp(None, 1), None);
    }
}
