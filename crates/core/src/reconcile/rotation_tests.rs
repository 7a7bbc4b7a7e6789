use super::*;
use crate::api::KeyVaultBindingStatus;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn policy(
    after: Option<&str>,
    before: Option<&str>,
    exp: Option<&str>,
    notify: Option<&str>,
) -> KeyRotation {
    KeyRotation {
        rotate_after: after.map(Into::into),
        rotate_before_expiry: before.map(Into::into),
        expires_after: exp.map(Into::into),
        notify_before_expiry: notify.map(Into::into),
    }
}

#[test]
fn a_policy_is_written_only_when_the_spec_sets_one_and_it_differs() {
    let want = policy(Some("P90D"), None, Some("P1Y"), None);
    let default = policy(None, None, None, Some("P30D"));
    assert_eq!(
        policy_step(None, &want, None),
        PolicyStep::Nothing,
        "without a spec'd policy nothing is written"
    );
    assert_eq!(
        policy_step(Some(&want), &default, None),
        PolicyStep::Write(want.clone()),
        "Key Vault's default is replaced"
    );
    let same_in_vault = policy(Some("p90d"), None, Some("P1Y"), None);
    assert_eq!(
        policy_step(Some(&want), &same_in_vault, None),
        PolicyStep::Nothing
    );
    // The binding's own earlier policy (it saw it last) gives way to a new spec.
    let earlier = policy(Some("P30D"), None, Some("P1Y"), None);
    assert_eq!(
        policy_step(Some(&want), &earlier, Some(&earlier)),
        PolicyStep::Write(want.clone())
    );
}

#[test]
fn a_policy_found_on_the_key_is_never_taken_over() {
    let want = policy(Some("P90D"), None, Some("P1Y"), None);
    let ours = policy(Some("P30D"), None, Some("P1Y"), None);
    let theirs = policy(Some("P60D"), None, Some("P2Y"), None);
    // Found on a key this binding never applied a policy to: someone else's
    // schedule (Terraform, another cluster's binding) stays.
    assert_eq!(
        policy_step(Some(&want), &theirs, None),
        PolicyStep::KeepForeign
    );
    // A second binding naming the same key with another schedule does not
    // fight the first: the first's policy is foreign to it.
    assert_eq!(
        policy_step(Some(&ours), &want, None),
        PolicyStep::KeepForeign
    );
    // Once this binding applied its own, a change in Key Vault is drift.
    assert_eq!(
        policy_step(Some(&want), &theirs, Some(&want)),
        PolicyStep::Write(want.clone())
    );
}

#[test]
fn a_new_rotate_value_is_recorded_before_it_rotates() {
    let now = at("2026-03-01T10:00:00.750Z");
    let step = rotate_step(
        Some("incident-7"),
        None,
        Some(("v1", Some(at("2026-01-01T00:00:00Z")))),
        now,
    );
    let RotateStep::Start(rec) = step else {
        panic!("{step:?}")
    };
    assert_eq!(rec.value, "incident-7");
    assert_eq!(rec.requested_at, "2026-03-01T10:00:00Z", "whole seconds");
    assert_eq!(rec.version, None);
}

#[test]
fn a_handled_value_rotates_nothing_again() {
    let rec = RotateRequest {
        value: "a".into(),
        requested_at: "2026-03-01T10:00:00Z".into(),
        version: Some("v2".into()),
    };
    let now = at("2026-03-02T00:00:00Z");
    assert_eq!(
        rotate_step(Some("a"), Some(&rec), Some(("v2", None)), now),
        RotateStep::Nothing
    );
    assert_eq!(
        rotate_step(None, Some(&rec), None, now),
        RotateStep::Nothing
    );
    assert_eq!(
        rotate_step(Some(" "), Some(&rec), None, now),
        RotateStep::Nothing
    );
    assert!(matches!(
        rotate_step(Some("b"), Some(&rec), None, now),
        RotateStep::Start(_)
    ));
}

#[test]
fn an_in_flight_request_checks_key_vault_before_rotating_again() {
    let rec = RotateRequest {
        value: "a".into(),
        requested_at: "2026-03-01T10:00:00Z".into(),
        version: None,
    };
    let now = at("2026-03-01T10:05:00Z");
    // Key Vault made a version since the request: the rotate went through.
    let made = Some(("v2", Some(at("2026-03-01T10:00:00Z"))));
    assert_eq!(
        rotate_step(Some("a"), Some(&rec), made, now),
        RotateStep::Done("v2".into())
    );
    // The current version is older: the rotate never happened.
    let old = Some(("v1", Some(at("2026-02-01T00:00:00Z"))));
    assert_eq!(
        rotate_step(Some("a"), Some(&rec), old, now),
        RotateStep::Rotate
    );
    // Key Vault does not say when: rotate (a request is never dropped silently).
    assert_eq!(
        rotate_step(Some("a"), Some(&rec), Some(("v1", None)), now),
        RotateStep::Rotate
    );
}

#[test]
fn the_next_rotation_follows_the_trigger() {
    let created = at("2026-01-01T00:00:00Z");
    let exp = at("2027-01-01T00:00:00Z");
    let after = policy(Some("P90D"), None, Some("P1Y"), None);
    assert_eq!(
        next_rotation(&after, Some(created), Some(exp)),
        Some(at("2026-04-01T00:00:00Z"))
    );
    let before = policy(None, Some("P30D"), Some("P1Y"), None);
    assert_eq!(
        next_rotation(&before, Some(created), Some(exp)),
        Some(at("2026-12-02T00:00:00Z"))
    );
    assert_eq!(
        next_rotation(&before, Some(created), None),
        None,
        "no expiry, nothing to rotate before"
    );
}

fn expiring(status: &KeyVaultBindingStatus) -> (String, String, String) {
    let c = conditions::find(&status.conditions, KEY_EXPIRING).expect("KeyExpiring set");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[test]
fn within_the_notify_window_the_key_is_expiring_with_the_time_left() {
    let mut s = KeyVaultBindingStatus::default();
    let p = policy(None, Some("P7D"), Some("P60D"), Some("P30D"));
    let now = at("2026-03-01T00:00:00Z");
    let exp = at("2026-03-21T06:00:00Z");
    let warned = report_expiry(
        &mut s,
        Some(&p),
        Some(at("2026-01-20T06:00:00Z")),
        Some(exp),
        Some(1),
        now,
    );
    let (state, reason, message) = expiring(&s);
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("True", "WithinNotifyWindow")
    );
    assert!(message.contains("in 20d 6h"), "{message}");
    assert!(
        message.contains("Key Vault rotates it at 2026-03-14T06:00:00Z"),
        "{message}"
    );
    assert_eq!(
        warned.as_deref(),
        Some(message.as_str()),
        "a Warning on the transition"
    );
    assert_eq!(s.key_expires_on.as_deref(), Some("2026-03-21T06:00:00Z"));
    assert_eq!(s.next_rotation_on.as_deref(), Some("2026-03-14T06:00:00Z"));
    // The same again: no second Warning.
    let again = report_expiry(&mut s, Some(&p), None, Some(exp), Some(1), now);
    assert_eq!(again, None);
}

#[test]
fn a_far_expiry_with_a_rotation_first_is_not_expiring() {
    let mut s = KeyVaultBindingStatus::default();
    let p = policy(Some("P90D"), None, Some("P1Y"), None);
    let created = at("2026-01-01T00:00:00Z");
    let warned = report_expiry(
        &mut s,
        Some(&p),
        Some(created),
        Some(at("2027-01-01T00:00:00Z")),
        None,
        at("2026-01-02T00:00:00Z"),
    );
    assert_eq!(warned, None);
    assert_eq!(expiring(&s).0, "False");
}

#[test]
fn an_expiry_with_no_rotation_first_is_flagged_when_the_policy_is_known() {
    let mut s = KeyVaultBindingStatus::default();
    let p = policy(Some("P2Y"), None, None, None);
    let now = at("2026-01-02T00:00:00Z");
    let exp = at("2027-01-01T00:00:00Z");
    report_expiry(
        &mut s,
        Some(&p),
        Some(at("2026-01-01T00:00:00Z")),
        Some(exp),
        None,
        now,
    );
    assert_eq!(expiring(&s).1, "NoRotationBeforeExpiry");
    // An unread policy may rotate it: only the window counts.
    let mut s = KeyVaultBindingStatus::default();
    report_expiry(&mut s, None, None, Some(exp), None, now);
    assert_eq!(expiring(&s).0, "False");
}

#[test]
fn an_expired_version_says_so_and_no_expiry_means_no_condition() {
    let mut s = KeyVaultBindingStatus::default();
    let now = at("2026-03-01T00:00:00Z");
    report_expiry(
        &mut s,
        None,
        None,
        Some(at("2026-02-28T00:00:00Z")),
        None,
        now,
    );
    assert_eq!(expiring(&s).1, "KeyExpired");
    report_expiry(&mut s, None, None, None, None, now);
    assert!(conditions::find(&s.conditions, KEY_EXPIRING).is_none());
    assert_eq!(s.key_expires_on, None);
}
