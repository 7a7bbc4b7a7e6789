//! Every field of `CosmosAccountCMK.spec`, changed on a Ready account: the
//! API server refuses it with Azure's rule, or the operator converges Azure
//! (the simulator) to it one operation at a time and Ready returns.
//! README "Which spec fields converge" lists the same two groups.

use cmk_operator::api::{BackupPolicyType, CosmosAccountCMK};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::*;

const NAME: &str = "billing";
const ACCOUNT: &str = "cmk-demo-billing";

/// A merge patch of the spec, as `kubectl patch --type merge` sends it.
async fn edit(env: &Env, spec: Value) -> Result<CosmosAccountCMK, String> {
    env.accounts()
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
        .map_err(|e| e.to_string())
}

/// The edit is refused at admission with `rule` in the message, and nothing changes.
async fn refused(env: &Env, spec: Value, rule: &str) {
    let before = env.accounts().get(NAME).await.expect("get");
    match edit(env, spec.clone()).await {
        Err(e) => assert!(
            e.contains(rule),
            "{spec}: refused, but without {rule:?}: {e}"
        ),
        Ok(_) => panic!("{spec}: accepted, expected a refusal naming {rule:?}"),
    }
    let after = env.accounts().get(NAME).await.expect("get");
    assert_eq!(before.metadata.generation, after.metadata.generation);
}

/// The edit is accepted; waits for the operator to observe it and be Ready again.
async fn converges(env: &Env, spec: Value) -> Value {
    let generation = edit(env, spec.clone())
        .await
        .unwrap_or_else(|e| panic!("{spec}: refused: {e}"))
        .metadata
        .generation;
    env.wait(&env.accounts(), NAME, "Ready at the new generation", |a| {
        let s = a.status.as_ref();
        s.and_then(|s| s.observed_generation) == generation
            && ready_reason(a).as_deref() == Some("Ready")
    })
    .await;
    let (status, account) = env
        .arm(azure_core::Method::Get, &Env::account_path(ACCOUNT), None)
        .await;
    assert_eq!(status, 200, "{account}");
    account
}

fn regions(a: &Value) -> Vec<(String, i64, bool)> {
    let mut v: Vec<_> = a["properties"]["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|l| {
            (
                l["locationName"].as_str().unwrap_or_default().to_owned(),
                l["failoverPriority"].as_i64().unwrap_or(-1),
                l["isZoneRedundant"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    v.sort_by_key(|r| r.1);
    v
}

/// Converges the spec's regions; Azure then holds exactly `expected`.
async fn regions_become(env: &Env, locations: Value, expected: Vec<(&str, i64, bool)>) {
    let a = converges(env, json!({ "locations": locations })).await;
    let expected: Vec<(String, i64, bool)> = expected
        .into_iter()
        .map(|(n, p, z)| (n.to_owned(), p, z))
        .collect();
    assert_eq!(regions(&a), expected);
}

fn loc(name: &str, p: i64, zr: bool) -> Value {
    json!({"locationName": name, "failoverPriority": p, "isZoneRedundant": zr})
}

#[tokio::test]
async fn every_spec_field_converges_or_is_refused() {
    let env = Env::start("spec-fields").await;
    env.apply_example("01-binding-rbac.yaml", json!({})).await;
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    env.account_reason(NAME, "Ready").await;

    // Immutable in Azure, refused with the rule.
    let id = "/subscriptions/00000000-0000-0000-0000-00000000c0de/providers/Microsoft.DocumentDB/locations/eastus/restorableDatabaseAccounts/6f7c8e4a-1d2b-4c3d-9e8f-0a1b2c3d4e5f";
    refused(
        &env,
        json!({"subscriptionId": "00000000-0000-0000-0000-00000000beef"}),
        "subscriptionId is immutable",
    )
    .await;
    refused(
        &env,
        json!({"resourceGroup": "elsewhere"}),
        "resourceGroup is immutable",
    )
    .await;
    refused(
        &env,
        json!({"accountName": "cmk-demo-billing-2"}),
        "accountName is immutable",
    )
    .await;
    refused(&env, json!({"kind": "MongoDB"}), "kind is immutable").await;
    refused(
        &env,
        json!({"capabilities": ["EnableServerless"]}),
        "capabilities are immutable",
    )
    .await;
    refused(
        &env,
        json!({"restore": {"sourceAccountId": id, "timestamp": "2026-11-01T12:00:00Z"}}),
        "restore can only be set when the resource is created",
    )
    .await;
    refused(&env, json!({"locations": [{"locationName": "eastus2", "failoverPriority": 0, "isZoneRedundant": true}]}), "isZoneRedundant of an existing region cannot change").await;

    // Regions: added (zone-redundant), made the write region, the old one removed.
    regions_become(
        &env,
        json!([loc("eastus2", 0, false), loc("westus3", 1, true)]),
        vec![("East US 2", 0, false), ("West US 3", 1, true)],
    )
    .await;
    regions_become(
        &env,
        json!([loc("westus3", 0, true), loc("eastus2", 1, false)]),
        vec![("West US 3", 0, true), ("East US 2", 1, false)],
    )
    .await;
    assert!(env.calls("DatabaseAccounts_FailoverPriorityChange") >= 1);
    // Two at once in the spec: Azure takes them one per operation.
    let a = converges(&env, json!({"locations": [loc("westus3", 0, true), loc("northeurope", 1, false), loc("eastus", 2, false)]})).await;
    assert_eq!(
        regions(&a),
        vec![
            ("West US 3".into(), 0, true),
            ("North Europe".into(), 1, false),
            ("East US".into(), 2, false)
        ]
    );
    let a = converges(&env, json!({"locations": [loc("westus3", 0, true)]})).await;
    assert_eq!(regions(&a), vec![("West US 3".into(), 0, true)]);

    // Periodic interval and retention.
    let a = converges(
        &env,
        json!({"backupPolicy": {"periodicIntervalMinutes": 60, "periodicRetentionHours": 48}}),
    )
    .await;
    let p = &a["properties"]["backupPolicy"]["periodicModeProperties"];
    assert_eq!(
        (
            p["backupIntervalInMinutes"].as_i64(),
            p["backupRetentionIntervalInHours"].as_i64()
        ),
        (Some(60), Some(48))
    );

    // Periodic -> Continuous: a one-way migration, then the tier.
    let a = converges(&env, json!({"backupPolicy": {"type": "Continuous", "continuousTier": "Continuous7Days", "periodicIntervalMinutes": null, "periodicRetentionHours": null}})).await;
    assert_eq!(a["properties"]["backupPolicy"]["type"], "Continuous");
    assert_eq!(
        a["properties"]["backupPolicy"]["migrationState"]["status"],
        "Completed"
    );
    let reasons = env.event_reasons(NAME).await;
    assert!(
        reasons.iter().any(|r| r == "UpdatingBackupPolicy"),
        "{reasons:?}"
    );
    let a = converges(
        &env,
        json!({"backupPolicy": {"continuousTier": "Continuous30Days"}}),
    )
    .await;
    assert_eq!(
        a["properties"]["backupPolicy"]["continuousModeProperties"]["tier"],
        "Continuous30Days"
    );
    refused(
        &env,
        json!({"backupPolicy": {"type": "Periodic", "continuousTier": null}}),
        "cannot go from Continuous back to Periodic",
    )
    .await;
    refused(
        &env,
        json!({"identity": {"type": "FirstParty", "userAssignedIdentityId": null}}),
        "first-party identity on accounts with continuous backup",
    )
    .await;

    // The identity: to system-assigned (allowed on a continuous account).
    let a = converges(
        &env,
        json!({"identity": {"type": "SystemAssigned", "userAssignedIdentityId": null}}),
    )
    .await;
    assert_eq!(a["properties"]["defaultIdentity"], "SystemAssignedIdentity");
    // Each grant is its own event (the user-assigned identity's, then the system one's),
    // not one event folded under the first principal.
    let grants = env
        .event_reasons(NAME)
        .await
        .into_iter()
        .filter(|r| r == "GrantedKeyAccess")
        .count();
    assert!(grants >= 2, "{grants} GrantedKeyAccess event(s)");

    // The settings Azure Policy looks at, and tags: all in one write.
    let a = converges(
        &env,
        json!({"publicNetworkAccess": "Enabled", "disableLocalAuth": false, "minimalTlsVersion": "Tls11",
            "ipRules": [{"ipAddressOrRange": "23.43.230.120"}], "isVirtualNetworkFilterEnabled": true,
            "virtualNetworkRules": [{"id": "/subscriptions/00000000-0000-0000-0000-00000000c0de/resourceGroups/cmk-demo/providers/Microsoft.Network/virtualNetworks/v/subnets/s"}],
            "networkAclBypass": "AzureServices", "networkAclBypassResourceIds": ["/subscriptions/00000000-0000-0000-0000-00000000c0de/resourceGroups/cmk-demo/providers/Microsoft.Synapse/workspaces/w"],
            "tags": {"costCenter": "cc-2"}}),
    )
    .await;
    let p = &a["properties"];
    assert_eq!(
        (
            &p["publicNetworkAccess"],
            &p["disableLocalAuth"],
            &p["minimalTlsVersion"],
            &p["isVirtualNetworkFilterEnabled"],
            &p["networkAclBypass"]
        ),
        (
            &json!("Enabled"),
            &json!(false),
            &json!("Tls11"),
            &json!(true),
            &json!("AzureServices")
        )
    );
    assert_eq!(p["ipRules"], json!([{"ipAddressOrRange": "23.43.230.120"}]));
    assert_eq!(p["virtualNetworkRules"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        p["networkAclBypassResourceIds"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(a["tags"]["costCenter"], "cc-2");
    assert!(
        env.event_reasons(NAME)
            .await
            .iter()
            .any(|r| r == "UpdatingAccountSettings")
    );

    // Behaviour fields: accepted, nothing written to the account.
    let writes = env.calls("DatabaseAccounts_Update");
    for spec in [
        json!({"rotation": {"disablePreviousVersion": false, "previousVersionGraceHours": 72}}),
        json!({"deletionPolicy": "Retain"}),
        json!({"adoptExistingAccount": true}),
        json!({"adoptionConsent": {"replaceKey": true}}),
        json!({"reconcilePolicy": "ObserveOnly"}),
        json!({"reconcilePolicy": "Manage"}),
    ] {
        converges(&env, spec).await;
    }
    assert_eq!(
        env.calls("DatabaseAccounts_Update"),
        writes,
        "behaviour fields write nothing to Azure"
    );

    let a = env.accounts().get(NAME).await.expect("get");
    assert_eq!(a.spec.backup_policy.type_, BackupPolicyType::Continuous);

    // Every Cosmos DB write went out with the GA api-version, never a preview.
    let cosmos: Vec<_> = env
        .sim
        .ledger()
        .into_iter()
        .filter(|l| l.operation.starts_with("DatabaseAccounts_"))
        .collect();
    assert!(cosmos.len() > 5);
    for l in cosmos {
        assert_eq!(l.api_version.as_deref(), Some("2025-10-15"), "{l:?}");
    }
}

#[tokio::test]
async fn observe_only_names_every_difference_and_writes_nothing() {
    let env = Env::start("spec-observe").await;
    env.apply_example("01-binding-rbac.yaml", json!({})).await;
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    env.account_reason(NAME, "Ready").await;
    let writes = env.writes().len();
    edit(
        &env,
        json!({
            "reconcilePolicy": "ObserveOnly",
            "locations": [loc("eastus2", 0, false), loc("westus3", 1, false)],
            "backupPolicy": {"periodicRetentionHours": 24},
        }),
    )
    .await
    .expect("accepted");
    let a = env.account_reason(NAME, "DriftDetected").await;
    let msg = a
        .status
        .as_ref()
        .and_then(|s| cmk_operator::api::conditions::find(&s.conditions, "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        msg.contains("region westus3 is not on the account"),
        "{msg}"
    );
    assert!(msg.contains("periodic backup"), "{msg}");
    assert_eq!(env.writes().len(), writes, "observe-only writes nothing");
}

#[tokio::test]
async fn a_region_added_outside_the_operator_is_reported_never_removed() {
    let env = Env::start("spec-foreign-region").await;
    env.apply_example("01-binding-rbac.yaml", json!({})).await;
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    env.account_reason(NAME, "Ready").await;
    // Someone adds a region in the portal.
    let body =
        json!({"properties": {"locations": [loc("eastus2", 0, false), loc("westus", 1, false)]}});
    let (status, e) = env
        .arm(
            azure_core::Method::Patch,
            &Env::account_path(ACCOUNT),
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{e}");
    let a = env.account_reason(NAME, "ChangeRefused").await;
    let msg = a
        .status
        .as_ref()
        .and_then(|s| cmk_operator::api::conditions::find(&s.conditions, "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(msg.contains("never removes what it did not make"), "{msg}");
    // Naming it in the spec makes the account Ready again, and nothing was removed.
    let a = converges(
        &env,
        json!({"locations": [loc("eastus2", 0, false), loc("westus", 1, false)]}),
    )
    .await;
    assert_eq!(regions(&a).len(), 2);
    // Once the spec named it, dropping it from the spec does not make it the operator's.
    edit(&env, json!({"locations": [loc("eastus2", 0, false)]}))
        .await
        .expect("accepted");
    env.account_reason(NAME, "ChangeRefused").await;
    let (_, a) = env
        .arm(azure_core::Method::Get, &Env::account_path(ACCOUNT), None)
        .await;
    assert_eq!(regions(&a).len(), 2, "the region someone else added stays");
}

/// An Azure refusal on the very first reconcile, and one after Ready, each
/// leave a phase, the generation judged and every condition (GitOps health
/// checks read them): never a bare `Pending` with only Ready.
#[tokio::test]
async fn an_azure_failure_sets_phase_generation_and_every_condition() {
    use cmk_operator::api::Phase;
    use cmk_operator::sim::{ErrorFault, FaultConfig};
    let env = Env::start("spec-failure").await;
    let forbid = |op: &str| FaultConfig {
        errors: vec![ErrorFault {
            operation: op.to_owned(),
            rate: 1.0,
            status: 403,
            code: "AuthorizationFailed".to_owned(),
            count: None,
        }],
        ..Default::default()
    };
    let check = |a: &CosmosAccountCMK| {
        let s = a.status.as_ref().expect("status");
        assert_eq!(s.phase, Phase::Failed, "{s:?}");
        assert_eq!(s.observed_generation, a.metadata.generation);
        for t in [
            "VaultReady",
            "IdentityGranted",
            "AccountCreated",
            "RotationTracked",
            "Ready",
        ] {
            assert!(
                cmk_operator::api::conditions::find(&s.conditions, t).is_some(),
                "{t} missing: {s:?}"
            );
        }
    };
    env.apply_example("01-binding-rbac.yaml", json!({})).await;
    env.binding_reason("billing-key", "KeyReady").await;
    env.sim.set_faults(forbid("DatabaseAccounts_Get"));
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    check(&env.account_reason(NAME, "AzureForbidden").await);

    env.sim.set_faults(FaultConfig::default());
    env.account_reason(NAME, "Ready").await;
    env.sim.set_faults(forbid("DatabaseAccounts_Get"));
    check(&env.account_reason(NAME, "AzureForbidden").await);
}
