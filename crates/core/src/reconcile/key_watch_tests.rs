//! The key watch's decisions: what is read when, and whom a change wakes.

use std::time::{Duration, Instant};

use super::key_watch::{InUse, KeySide, KeyWatch, VersionRef, plan, to_wake};

const A: &str = "https://kv-a.vault.azure.net/keys/k1";
const B: &str = "https://kv-b.vault.azure.net/keys/k2";

fn on(account: &'static str, key: &str, version: &str, revoked: bool) -> InUse<&'static str> {
    InUse {
        account,
        version: VersionRef::new(key, version),
        reports_revoked: revoked,
    }
}

#[test]
fn a_version_is_named_ignoring_case_and_a_trailing_slash_and_knows_its_vault() {
    let v = VersionRef::new("https://KV-A.vault.azure.net/keys/K1/", "ABC");
    assert_eq!(v, VersionRef::new(A, "abc"));
    assert_eq!(v.vault(), "https://kv-a.vault.azure.net");
}

#[test]
fn one_read_per_version_in_use_however_many_accounts_use_it() {
    let in_use: Vec<_> = (0..1000)
        .map(|i| on("x", if i % 2 == 0 { A } else { B }, "v1", false))
        .collect();
    let p = plan(&in_use, Duration::from_secs(30), 2.0);
    assert_eq!(p.len(), 2, "two vaults");
    for (every, versions) in p.values() {
        assert_eq!(versions.len(), 1);
        assert_eq!(*every, Duration::from_secs(30));
    }
    let w = KeyWatch::default();
    assert_eq!(w.due(&p, Instant::now()).len(), 2);
}

#[test]
fn a_vault_with_many_versions_in_use_is_read_no_faster_than_its_budget() {
    let in_use: Vec<_> = (0..120)
        .map(|i| InUse {
            account: i,
            version: VersionRef::new(A, &format!("v{i}")),
            reports_revoked: false,
        })
        .chain([InUse {
            account: 999,
            version: VersionRef::new(B, "v1"),
            reports_revoked: false,
        }])
        .collect();
    let p = plan(&in_use, Duration::from_secs(30), 2.0);
    assert_eq!(p["https://kv-a.vault.azure.net"].0, Duration::from_secs(60));
    assert_eq!(
        p["https://kv-b.vault.azure.net"].0,
        Duration::from_secs(30),
        "another vault keeps its own interval"
    );
}

#[test]
fn a_version_falls_due_again_after_its_interval_and_not_before() {
    let in_use = [on("a1", A, "v1", false)];
    let p = plan(&in_use, Duration::from_secs(30), 2.0);
    let mut w = KeyWatch::default();
    let t0 = Instant::now();
    let v = VersionRef::new(A, "v1");
    assert_eq!(w.due(&p, t0), vec![v.clone()]);
    w.read(&v, t0);
    assert!(w.due(&p, t0 + Duration::from_secs(29)).is_empty());
    assert_eq!(w.next_due(&p, t0), Some(t0 + Duration::from_secs(30)));
    assert_eq!(w.due(&p, t0 + Duration::from_secs(30)), vec![v]);
}

#[test]
fn a_disabled_version_wakes_exactly_the_accounts_on_it_that_do_not_report_it_yet() {
    let in_use = [
        on("a1", A, "v1", false),
        on("a2", A, "v1", true),
        on("a3", A, "v2", false),
        on("b1", B, "v1", false),
    ];
    let v = VersionRef::new(A, "v1");
    assert_eq!(
        to_wake(&v, Some(KeySide::Usable), KeySide::Disabled, &in_use),
        vec![&"a1"]
    );
    assert_eq!(
        to_wake(&v, Some(KeySide::Usable), KeySide::Deleted, &in_use),
        vec![&"a1"]
    );
    // Found unusable at the first read (e.g. after a restart): the same.
    assert_eq!(to_wake(&v, None, KeySide::Disabled, &in_use), vec![&"a1"]);
}

#[test]
fn an_unchanged_answer_wakes_nobody() {
    let in_use = [on("a1", A, "v1", false), on("a2", A, "v1", true)];
    let v = VersionRef::new(A, "v1");
    for side in [KeySide::Usable, KeySide::Disabled, KeySide::Deleted] {
        assert!(
            to_wake(&v, Some(side), side, &in_use).is_empty(),
            "{side:?}"
        );
    }
    // The normal first read: usable, nothing to say.
    assert!(to_wake(&v, None, KeySide::Usable, &in_use).is_empty());
}

#[test]
fn a_version_usable_again_wakes_the_accounts_that_report_it_revoked() {
    let in_use = [on("a1", A, "v1", false), on("a2", A, "v1", true)];
    let v = VersionRef::new(A, "v1");
    assert_eq!(
        to_wake(&v, Some(KeySide::Disabled), KeySide::Usable, &in_use),
        vec![&"a2"]
    );
    // Disabled → deleted is still not usable: the accounts not reporting it yet.
    assert_eq!(
        to_wake(&v, Some(KeySide::Disabled), KeySide::Deleted, &in_use),
        vec![&"a1"]
    );
}

#[test]
fn the_watch_remembers_answers_and_forgets_versions_no_longer_in_use() {
    let mut w = KeyWatch::default();
    let t0 = Instant::now();
    let (v1, v2) = (VersionRef::new(A, "v1"), VersionRef::new(A, "v2"));
    assert_eq!(w.observe(&v1, KeySide::Usable), None);
    assert_eq!(w.observe(&v1, KeySide::Disabled), Some(KeySide::Usable));
    w.read(&v1, t0);
    w.observe(&v2, KeySide::Usable);
    w.read(&v2, t0);
    // Every account moved to v2.
    let p = plan(&[on("a1", A, "v2", false)], Duration::from_secs(30), 2.0);
    w.retain(&p);
    assert_eq!(w.observe(&v1, KeySide::Usable), None, "v1 was forgotten");
    assert_eq!(w.observe(&v2, KeySide::Usable), Some(KeySide::Usable));
    assert!(w.due(&p, t0 + Duration::from_secs(1)).is_empty());
}
