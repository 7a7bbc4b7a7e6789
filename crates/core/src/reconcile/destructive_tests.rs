//! One table per destructive rule: each row names the case it protects.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::*;
use crate::reconcile::ownership::{Owner, Ownership};

#[test]
fn another_namespaces_owner_is_not_named() {
    let me = owner("east");
    let theirs = Owner {
        namespace: "team-b".into(),
        name: "payroll".into(),
        ..owner("east")
    };
    let got = account_deletion(&DeletionFacts {
        account_name: "acct",
        me: &me,
        ownership: Some(Ownership::Other(theirs)),
        confirmed_uid: None,
    });
    let DeletionVerdict::NotOurs(why) = got else {
        panic!("not ours: {got:?}")
    };
    assert!(!why.contains("team-b") && !why.contains("payroll"), "{why}");
    assert!(why.contains("another namespace"), "{why}");
}

fn owner(cluster: &str) -> Owner {
    Owner {
        cluster: cluster.into(),
        namespace: "team-a".into(),
        name: "orders".into(),
        uid: "u1".into(),
    }
}

#[test]
fn an_account_is_deleted_only_when_its_tags_name_this_very_resource() {
    let unconfirmed = Ownership::MineUnconfirmed {
        tagged_uid: "u-old".into(),
    };
    let rows: [(&str, Option<Ownership>, Option<&str>, &str); 9] = [
        ("gone", None, None, "AlreadyGone"),
        ("mine", Some(Ownership::Mine), None, "Delete"),
        (
            "tagged by this uid under the previous cluster id",
            Some(Ownership::MineUnderPreviousId),
            None,
            "Delete",
        ),
        (
            "restored by a backup tool (new uid), not confirmed",
            Some(unconfirmed.clone()),
            None,
            "NeedsConfirmation",
        ),
        (
            "confirmed with another uid than the tags name",
            Some(unconfirmed.clone()),
            Some("u-wrong"),
            "NeedsConfirmation",
        ),
        (
            "confirmed with the tagged uid",
            Some(unconfirmed),
            Some("u-old"),
            "Delete",
        ),
        (
            "the same manifest in another cluster",
            Some(Ownership::OtherCluster(owner("west"))),
            None,
            "NotOurs",
        ),
        (
            "another resource of this cluster",
            Some(Ownership::Other(owner("east"))),
            Some("u1"),
            "NotOurs",
        ),
        (
            "made by hand or Terraform",
            Some(Ownership::Unowned),
            None,
            "NotOurs",
        ),
    ];
    let me = owner("east");
    for (case, ownership, confirmed_uid, want) in rows {
        let got = account_deletion(&DeletionFacts {
            account_name: "acct",
            me: &me,
            ownership,
            confirmed_uid,
        });
        let name = match &got {
            DeletionVerdict::AlreadyGone => "AlreadyGone",
            DeletionVerdict::Delete => "Delete",
            DeletionVerdict::NotOurs(_) => "NotOurs",
            DeletionVerdict::NeedsConfirmation(m) => {
                assert!(
                    m.contains(CONFIRM_OWNER_ANNOTATION),
                    "{case}: names the fix"
                );
                "NeedsConfirmation"
            }
        };
        assert_eq!(name, want, "{case}");
    }
}

#[test]
fn an_account_is_created_only_where_none_existed_or_when_asked() {
    let none: Result<Vec<String>, String> = Ok(vec![]);
    let deleted: Result<Vec<String>, String> = Ok(vec!["deleted 2026-12-01T00:00:00Z".into()]);
    let unreadable: Result<Vec<String>, String> = Err("403".into());
    let rows = [
        ("new name", None, none.clone(), false, true),
        (
            "status recorded an account",
            Some("/acct"),
            none.clone(),
            false,
            false,
        ),
        (
            "status lost, Azure remembers a restorable deleted account",
            None,
            deleted.clone(),
            false,
            false,
        ),
        (
            "Azure's memory unreadable",
            None,
            unreadable.clone(),
            false,
            false,
        ),
        ("asked, after a deletion", None, deleted, true, true),
        (
            "asked, status recorded",
            Some("/acct"),
            unreadable,
            true,
            true,
        ),
    ];
    for (case, recorded, restorable_deleted, recreate_asked, ok) in rows {
        let got = account_creation(&CreationFacts {
            account_name: "acct",
            recorded,
            restorable_deleted,
            recreate_asked,
        });
        assert_eq!(got.is_ok(), ok, "{case}: {got:?}");
        if let Err(m) = got {
            assert!(m.contains(RECREATE_ANNOTATION), "{case}: names the fix");
        }
    }
}

fn grant_facts() -> GrantRemovalFacts<'static> {
    GrantRemovalFacts {
        principal: "p",
        vault_id: "/v",
        first_party: false,
        vault_allowed: true,
        made_by_operator: true,
        opted_in: true,
        needed_in_cluster: false,
        used_in_azure: AzureUse::Unused,
    }
}

#[test]
fn a_grant_is_removed_only_with_consent_and_proof_that_nothing_uses_it() {
    type Mutate = fn(&mut GrantRemovalFacts<'static>);
    let rows: [(&str, Mutate, bool); 8] = [
        ("opted in, made, unused everywhere", |_| {}, true),
        (
            "binding keeps grants (the default)",
            |f| f.opted_in = false,
            false,
        ),
        (
            "first party without consent",
            |f| {
                f.first_party = true;
                f.opted_in = false;
            },
            false,
        ),
        (
            "vault outside the namespace's scopes (status points elsewhere)",
            |f| f.vault_allowed = false,
            false,
        ),
        ("found in place", |f| f.made_by_operator = false, false),
        (
            "another resource needs it",
            |f| f.needed_in_cluster = true,
            false,
        ),
        (
            "an account in a third subscription uses it",
            |f| f.used_in_azure = AzureUse::UsedBy("an account".into()),
            false,
        ),
        (
            "a subscription could not be read",
            |f| f.used_in_azure = AzureUse::Unknown("timeout".into()),
            false,
        ),
    ];
    for (case, mutate, ok) in rows {
        let mut f = grant_facts();
        mutate(&mut f);
        assert_eq!(grant_removal(&f).is_ok(), ok, "{case}");
    }
}

fn version_facts(now: Timestamp) -> VersionDisableFacts<'static> {
    VersionDisableFacts {
        key_uri: "https://kv.vault.azure.net/keys/k",
        version: "v1",
        managed: true,
        vault_allowed: true,
        latest: Some("v2"),
        used_in_azure: AzureUse::Unused,
        needed_in_cluster: false,
        retired_at: now - SignedDuration::from_hours(48),
        latest_created: Some(now - SignedDuration::from_hours(50)),
        grace_hours: 24,
        windows: Ok(vec![("the spec's backup policy".into(), 8)]),
        restorable_deleted: Ok(vec![]),
        now,
    }
}

#[test]
fn a_version_is_disabled_only_past_every_window_that_may_need_it() {
    type Mutate = fn(&mut VersionDisableFacts<'static>);
    let rows: [(&str, Mutate, &str); 12] = [
        ("past grace and window, unused", |_| {}, "Disable"),
        (
            "not a key a binding here names",
            |f| f.managed = false,
            "Keep",
        ),
        (
            "the key's vault outside the scopes",
            |f| f.vault_allowed = false,
            "Keep",
        ),
        ("the latest version", |f| f.latest = Some("V1"), "Keep"),
        ("latest unreadable", |f| f.latest = None, "Keep"),
        (
            "latest's creation unreadable",
            |f| f.latest_created = None,
            "Keep",
        ),
        (
            "an account outside the cluster uses it",
            |f| f.used_in_azure = AzureUse::UsedBy("an account".into()),
            "Keep",
        ),
        (
            "another resource keeps it",
            |f| f.needed_in_cluster = true,
            "Keep",
        ),
        (
            "Azure keeps backups 720 h (the spec says 8 h)",
            |f| {
                f.windows = Ok(vec![
                    ("the spec's backup policy".into(), 8),
                    ("Azure's backup policy of the account".into(), 720),
                ])
            },
            "KeepUntil",
        ),
        (
            "a window unreadable",
            |f| f.windows = Err("account unreadable".into()),
            "Keep",
        ),
        (
            "a deleted account Azure can still restore",
            |f| f.restorable_deleted = Ok(vec!["acct-old".into()]),
            "Keep",
        ),
        (
            "deleted accounts unreadable",
            |f| f.restorable_deleted = Err("403".into()),
            "Keep",
        ),
    ];
    let now = Timestamp::now();
    for (case, mutate, want) in rows {
        let mut f = version_facts(now);
        mutate(&mut f);
        let got = match version_disable(&f) {
            VersionVerdict::Disable => "Disable",
            VersionVerdict::KeepUntil(t, _) => {
                assert_eq!(t, f.retired_at + SignedDuration::from_hours(720), "{case}");
                "KeepUntil"
            }
            VersionVerdict::Keep(_) => "Keep",
        };
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn the_grace_period_counts_when_it_is_the_longest() {
    let now = Timestamp::now();
    let mut f = version_facts(now);
    f.grace_hours = 72;
    match version_disable(&f) {
        VersionVerdict::KeepUntil(t, why) => {
            assert_eq!(t, f.retired_at + SignedDuration::from_hours(72));
            assert!(why.contains("grace"), "{why}");
        }
        other => panic!("kept for the grace period, got {other:?}"),
    }
}

#[test]
fn a_kept_version_is_looked_at_again_when_its_window_ends_or_in_an_hour() {
    use crate::api::{CosmosAccountCMKStatus, RetainedKeyVersion};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let now = Timestamp::now();
    let uri = "https://kv.vault.azure.net/keys/k";
    let status = || CosmosAccountCMKStatus {
        previous_key_version: Some("v1".into()),
        previous_version_disabled: true,
        retained_key_versions: vec![RetainedKeyVersion {
            key_uri: uri.into(),
            version: "v1".into(),
            reason: String::new(),
            retired_at: None,
            safe_to_disable_after: Time(now),
            disabled: true,
            kept_because: None,
        }],
        ..Default::default()
    };
    let kept = || DisableOutcome::Kept("in use".into());
    let mut s = status();
    let e = settle_disable(&mut s, uri, "v1", kept(), None, now);
    assert!(e.warning && e.reason == "KeyVersionKept");
    let r = &s.retained_key_versions[0];
    assert!(!r.disabled && !s.previous_version_disabled);
    assert_eq!(
        r.safe_to_disable_after.0,
        now + SignedDuration::from_hours(1)
    );
    let window_end = now + SignedDuration::from_hours(720);
    let mut s = status();
    settle_disable(&mut s, uri, "v1", kept(), Some(window_end), now);
    assert_eq!(
        s.retained_key_versions[0].safe_to_disable_after.0,
        window_end
    );
    let mut s = status();
    let e = settle_disable(&mut s, uri, "v1", DisableOutcome::Disabled, None, now);
    assert!(!e.warning && s.retained_key_versions[0].disabled);
}

#[test]
fn a_kept_grant_is_a_warning_naming_why() {
    let e = settle_revoke(RevokeOutcome::Kept("in use".into()), "p", "/v");
    assert!(e.warning && e.reason == "GrantKept" && e.note.contains("in use"));
    assert!(!settle_revoke(RevokeOutcome::Removed, "p", "/v").warning);
}

#[test]
fn a_status_cannot_retire_a_version_before_key_vault_replaced_it() {
    let now = Timestamp::now();
    let mut f = version_facts(now);
    // A status edit says retired 10 days ago; Key Vault made the newer
    // version 2 hours ago, so the 24 h grace runs from then.
    f.retired_at = now - SignedDuration::from_hours(240);
    f.latest_created = Some(now - SignedDuration::from_hours(2));
    match version_disable(&f) {
        VersionVerdict::KeepUntil(t, _) => {
            assert_eq!(
                t,
                now - SignedDuration::from_hours(2) + SignedDuration::from_hours(24)
            );
        }
        other => panic!("kept: {other:?}"),
    }
}
