//! Regions, backup policy and API: each difference converges one Azure
//! operation at a time, or is refused with Azure's rule.

use super::account::Action;
use super::reasons as r;
use super::spec_drift::*;
use crate::api::*;

fn loc(name: &str, p: i32, zr: bool) -> Location {
    Location {
        location_name: name.into(),
        failover_priority: p,
        is_zone_redundant: zr,
    }
}

fn spec(locations: Vec<Location>) -> CosmosAccountCMKSpec {
    let example = include_str!("../../../../deploy/examples/12-account-user-assigned.yaml");
    let obj: CosmosAccountCMK = serde_saphyr::from_str(example).expect("example parses");
    let mut spec = obj.spec;
    spec.locations = locations;
    spec
}

fn periodic(interval: Option<i32>, retention: Option<i32>) -> BackupFacts {
    BackupFacts {
        type_: BackupPolicyType::Periodic,
        continuous_tier: None,
        periodic_interval_minutes: interval,
        periodic_retention_hours: retention,
        migrating: false,
    }
}

fn continuous(tier: ContinuousTier) -> BackupFacts {
    BackupFacts {
        type_: BackupPolicyType::Continuous,
        continuous_tier: Some(tier),
        periodic_interval_minutes: None,
        periodic_retention_hours: None,
        migrating: false,
    }
}

fn diffs(
    have: &[Location],
    backup: Option<&BackupFacts>,
    spec: &CosmosAccountCMKSpec,
) -> Vec<Difference> {
    let managed: Vec<String> = have.iter().map(|l| l.location_name.clone()).collect();
    differences(
        Reported {
            kind: Some("GlobalDocumentDB"),
            capabilities: Some(&spec.capabilities),
            backup,
            locations: have,
        },
        spec,
        &managed,
    )
}

fn first_change(d: &[Difference]) -> Option<(Action, &'static str)> {
    d.iter().find_map(|d| match &d.fix {
        Fix::Change(a, r) => Some((a.clone(), *r)),
        Fix::Refused(_) => None,
    })
}

#[test]
fn a_matching_account_has_no_difference() {
    let s = spec(vec![loc("East US", 0, false), loc("westus", 1, true)]);
    let have = [loc("eastus", 0, false), loc("West US", 1, true)];
    assert_eq!(
        diffs(&have, Some(&periodic(Some(240), Some(8))), &s),
        vec![]
    );
}

#[test]
fn regions_are_added_one_at_a_time_after_the_existing_ones() {
    let s = spec(vec![
        loc("eastus", 0, false),
        loc("northeurope", 2, false),
        loc("westus", 1, true),
    ]);
    let have = [loc("East US", 0, false)];
    let d = diffs(&have, None, &s);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(
        first_change(&d),
        Some((
            Action::SetLocations(vec![loc("East US", 0, false), loc("westus", 1, true)]),
            r::ADDING_REGION
        )),
        "the next region by the spec's priority, appended; the others wait"
    );
}

#[test]
fn the_failover_order_changes_through_its_own_operation() {
    let s = spec(vec![loc("westus", 0, false), loc("eastus", 1, false)]);
    let have = [loc("East US", 0, false), loc("West US", 1, false)];
    assert_eq!(
        first_change(&diffs(&have, None, &s)),
        Some((
            Action::ChangeFailoverPriorities(vec![
                loc("West US", 0, false),
                loc("East US", 1, false)
            ]),
            r::CHANGING_FAILOVER_PRIORITIES
        ))
    );
}

#[test]
fn removing_the_write_region_fails_over_first_then_removes() {
    let s = spec(vec![loc("westus", 0, false)]);
    let have = [loc("East US", 0, false), loc("West US", 1, false)];
    let d = diffs(&have, None, &s);
    assert_eq!(
        first_change(&d),
        Some((
            Action::ChangeFailoverPriorities(vec![
                loc("West US", 0, false),
                loc("East US", 1, false)
            ]),
            r::CHANGING_FAILOVER_PRIORITIES
        ))
    );
    // Azure after the failover: the region goes next.
    let have = [loc("West US", 0, false), loc("East US", 1, false)];
    assert_eq!(
        first_change(&diffs(&have, None, &s)),
        Some((
            Action::SetLocations(vec![loc("West US", 0, false)]),
            r::REMOVING_REGION
        ))
    );
}

#[test]
fn a_removed_read_region_leaves_the_rest_renumbered() {
    let s = spec(vec![loc("eastus", 0, false), loc("northeurope", 1, false)]);
    let have = [
        loc("East US", 0, false),
        loc("West US", 1, false),
        loc("North Europe", 2, false),
    ];
    assert_eq!(
        first_change(&diffs(&have, None, &s)),
        Some((
            Action::SetLocations(vec![
                loc("East US", 0, false),
                loc("North Europe", 1, false)
            ]),
            r::REMOVING_REGION
        ))
    );
}

#[test]
fn zone_redundancy_of_an_existing_region_is_refused() {
    let s = spec(vec![loc("eastus", 0, true)]);
    let have = [loc("East US", 0, false)];
    let d = diffs(&have, None, &s);
    assert!(
        matches!(&d[..], [Difference { fix: Fix::Refused(rule), .. }] if rule.contains("remove the region")),
        "{d:?}"
    );
}

#[test]
fn an_account_read_without_regions_or_backup_is_left_alone() {
    let s = spec(vec![loc("eastus", 0, false), loc("westus", 1, false)]);
    assert_eq!(
        diffs(&[], None, &s),
        vec![],
        "a read that lacks a field never becomes a write"
    );
}

#[test]
fn periodic_migrates_to_continuous_and_never_back() {
    let mut s = spec(vec![loc("eastus", 0, false)]);
    let have = [loc("eastus", 0, false)];
    s.backup_policy = BackupPolicy {
        type_: BackupPolicyType::Continuous,
        continuous_tier: Some(ContinuousTier::Continuous7Days),
        ..Default::default()
    };
    assert_eq!(
        first_change(&diffs(&have, Some(&periodic(Some(240), Some(8))), &s)),
        Some((
            Action::SetBackupPolicy(s.backup_policy.clone()),
            r::MIGRATING_TO_CONTINUOUS_BACKUP
        ))
    );
    let mut migrating = periodic(Some(240), Some(8));
    migrating.migrating = true;
    assert_eq!(
        diffs(&have, Some(&migrating), &s),
        vec![],
        "the migration is waited for, not asked again"
    );

    s.backup_policy = BackupPolicy::default();
    let d = diffs(
        &have,
        Some(&continuous(ContinuousTier::Continuous30Days)),
        &s,
    );
    assert!(
        matches!(&d[..], [Difference { fix: Fix::Refused(rule), .. }] if rule.contains("one-way")),
        "{d:?}"
    );
}

#[test]
fn the_continuous_tier_converges() {
    let mut s = spec(vec![loc("eastus", 0, false)]);
    s.backup_policy = BackupPolicy {
        type_: BackupPolicyType::Continuous,
        continuous_tier: Some(ContinuousTier::Continuous7Days),
        ..Default::default()
    };
    let have = [loc("eastus", 0, false)];
    assert_eq!(
        first_change(&diffs(
            &have,
            Some(&continuous(ContinuousTier::Continuous30Days)),
            &s
        )),
        Some((
            Action::SetBackupPolicy(s.backup_policy.clone()),
            r::UPDATING_BACKUP_POLICY
        ))
    );
    s.backup_policy.continuous_tier = None;
    assert_eq!(
        diffs(
            &have,
            Some(&continuous(ContinuousTier::Continuous30Days)),
            &s
        ),
        vec![],
        "an unset tier leaves Azure's"
    );
}

#[test]
fn periodic_interval_and_retention_converge_keeping_unset_values() {
    let mut s = spec(vec![loc("eastus", 0, false)]);
    s.backup_policy.periodic_retention_hours = Some(48);
    let have = [loc("eastus", 0, false)];
    let want = BackupPolicy {
        type_: BackupPolicyType::Periodic,
        continuous_tier: None,
        periodic_interval_minutes: Some(60),
        periodic_retention_hours: Some(48),
    };
    assert_eq!(
        first_change(&diffs(&have, Some(&periodic(Some(60), Some(8))), &s)),
        Some((Action::SetBackupPolicy(want), r::UPDATING_BACKUP_POLICY))
    );
}

#[test]
fn the_first_party_identity_on_a_continuous_account_is_refused() {
    let mut s = spec(vec![loc("eastus", 0, false)]);
    s.identity.type_ = IdentityType::FirstParty;
    s.identity.user_assigned_identity_id = None;
    s.backup_policy.type_ = BackupPolicyType::Continuous;
    let have = [loc("eastus", 0, false)];
    let d = diffs(
        &have,
        Some(&continuous(ContinuousTier::Continuous30Days)),
        &s,
    );
    assert!(
        matches!(&d[..], [Difference { fix: Fix::Refused(rule), .. }] if rule.contains("first-party")),
        "{d:?}"
    );
}

#[test]
fn kind_and_capabilities_are_refused() {
    let s = spec(vec![loc("eastus", 0, false)]);
    let caps = vec!["EnableServerless".to_owned()];
    let d = differences(
        Reported {
            kind: Some("MongoDB"),
            capabilities: Some(&caps),
            backup: None,
            locations: &[loc("eastus", 0, false)],
        },
        &s,
        &[],
    );
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().all(|d| matches!(d.fix, Fix::Refused(_))));
}

#[test]
fn a_region_this_resource_did_not_add_is_never_removed() {
    let s = spec(vec![loc("eastus", 0, false)]);
    let have = [loc("East US", 0, false), loc("West US", 1, false)];
    let d = differences(
        Reported {
            kind: None,
            capabilities: None,
            backup: None,
            locations: &have,
        },
        &s,
        &["eastus".to_owned()],
    );
    assert!(
        matches!(&d[..], [Difference { fix: Fix::Refused(rule), .. }] if rule.contains("never removes what it did not make")),
        "{d:?}"
    );
}
