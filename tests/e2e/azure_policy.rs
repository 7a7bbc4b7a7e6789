//! Azure Policy (docs/azure-policy.md): with the built-in deny assignments
//! "disable public network access", "local authentication disabled" and
//! "require a tag" in place, an example whose spec sets the matching fields
//! becomes Ready, one that does not is `DisallowedByPolicy` naming the policy
//! and the field, and becomes Ready once the spec is fixed. The settings
//! converge on drift; adoption leaves the fields the spec does not set; the
//! CMK Request Unit overhead is told once per account.

use std::time::Duration;

use azure_core::Method;
use serde_json::{Value, json};

use cmk_operator::reconcile::policy::{DENY_LOCAL_AUTH, DENY_PUBLIC_NETWORK, REQUIRE_TAG};

use crate::common;
use crate::support::*;

const RU_EVENT: &str = "CmkRequestUnitOverhead";

/// The CRDs of this checkout (the API server is shared with other checkouts,
/// whose CRDs may lack the fields tested here).
async fn start(prefix: &str) -> Env {
    let env = Env::start(prefix).await;
    common::apply_crds(&env.client, &common::repo_root().join("crds")).await;
    env
}

/// A built-in policy definition's id.
fn builtin(guid: &str) -> String {
    format!("/providers/Microsoft.Authorization/policyDefinitions/{guid}")
}

/// What an organisation with the three built-ins set to Deny has.
fn deny_all(env: &Env) {
    let scope = format!("/subscriptions/{SUB}");
    for (name, body) in [
        (
            "deny-public-cosmos",
            json!({"scope": scope, "policyDefinitionId": builtin(DENY_PUBLIC_NETWORK), "effect": "Deny", "displayName": "No public Cosmos DB"}),
        ),
        (
            "deny-local-auth",
            json!({"scope": scope, "policyDefinitionId": builtin(DENY_LOCAL_AUTH), "effect": "Deny"}),
        ),
        (
            "require-cost-center",
            json!({"scope": scope, "policyDefinitionId": builtin(REQUIRE_TAG), "parameters": {"tagName": {"value": "costCenter"}}}),
        ),
    ] {
        env.sim
            .assign_policy(name, body)
            .expect("assignment accepted");
    }
}

async fn azure_account(env: &Env, name: &str) -> Value {
    let (status, a) = env.arm(Method::Get, &Env::account_path(name), None).await;
    assert_eq!(status, 200, "{a}");
    a
}

fn ready_message(a: &cmk_operator::api::CosmosAccountCMK) -> String {
    a.status
        .as_ref()
        .and_then(|s| cmk_operator::api::conditions::find(&s.conditions, "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Events with `reason` about `name`, each counted as often as it was told.
async fn told(env: &Env, name: &str, reason: &str) -> i32 {
    env.events_about(name)
        .await
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count.max(1)))
        .sum()
}

#[tokio::test]
async fn examples_pass_deny_assignments_once_their_spec_says_so() {
    let env = start("policy-examples").await;
    deny_all(&env);
    env.apply_example("01-binding-rbac.yaml", json!({})).await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;

    // The example without its settings: refused, and told why and what to set.
    env.apply_example(
        "12-account-user-assigned.yaml",
        json!({"spec": {"publicNetworkAccess": null, "disableLocalAuth": null, "tags": null}}),
    )
    .await;
    let a = env.account_reason("billing", "DisallowedByPolicy").await;
    let msg = ready_message(&a);
    for part in [
        "policy 'Azure Cosmos DB should disable public network access'",
        "assignment 'No public Cosmos DB'",
        "set spec.publicNetworkAccess to Disabled",
        "policy 'Cosmos DB database accounts should have local authentication methods disabled'",
        "set spec.disableLocalAuth to true",
        "policy 'Require a tag on resources'",
        "add the tag 'costCenter' to spec.tags",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    let last = a.status.unwrap().last_azure_error.expect("lastAzureError");
    assert_eq!(
        (last.http_status, last.code.as_deref()),
        (403, Some("DisallowedByPolicy"))
    );
    assert!(!env.account_exists("cmk-demo-billing").await);

    // The example as shipped complies.
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    env.account_reason("billing", "Ready").await;
    let azure = azure_account(&env, "cmk-demo-billing").await;
    assert_eq!(azure["properties"]["publicNetworkAccess"], "Disabled");
    assert_eq!(azure["properties"]["disableLocalAuth"], true);
    assert_eq!(azure["tags"]["costCenter"], "cmk-demo");
    assert_eq!(
        azure["tags"]["cosmoscmk.io-name"], "billing",
        "owner tags kept"
    );

    // Cassandra: the local-auth policy leaves API accounts alone, and the
    // example leaves disableLocalAuth unset.
    env.apply_example("16-account-cassandra.yaml", json!({}))
        .await;
    env.account_reason("telemetry", "Ready").await;
}

#[tokio::test]
async fn settings_drift_converges_and_unset_fields_stay_azures() {
    let env = start("policy-drift").await;
    env.apply_example("01-binding-rbac.yaml", json!({})).await;
    env.apply_example(
        "12-account-user-assigned.yaml",
        json!({"spec": {"minimalTlsVersion": "Tls12", "ipRules": [{"ipAddressOrRange": "23.43.230.120"}]}}),
    )
    .await;
    env.account_reason("billing", "Ready").await;

    // Changed behind the operator's back (tags: ARM replaces the set).
    let before = azure_account(&env, "cmk-demo-billing").await;
    let mut tags = before["tags"].clone();
    tags["costCenter"] = json!("someone-else");
    tags["team"] = json!("payments");
    let (status, b) = env
        .arm(
            Method::Patch,
            &Env::account_path("cmk-demo-billing"),
            Some(json!({"tags": tags, "properties": {
                "publicNetworkAccess": "Enabled", "disableLocalAuth": false,
                "minimalTlsVersion": "Tls", "ipRules": [],
                "networkAclBypass": "AzureServices"}})),
        )
        .await;
    assert_eq!(status, 200, "{b}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let after = loop {
        let a = azure_account(&env, "cmk-demo-billing").await;
        if a["properties"]["publicNetworkAccess"] == "Disabled"
            && a["properties"]["provisioningState"] == "Succeeded"
        {
            break a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never converged: {a}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let p = &after["properties"];
    assert_eq!(p["disableLocalAuth"], true);
    assert_eq!(p["minimalTlsVersion"], "Tls12");
    assert_eq!(p["ipRules"], json!([{"ipAddressOrRange": "23.43.230.120"}]));
    assert_eq!(after["tags"]["costCenter"], "cmk-demo");
    // What the spec does not set is Azure's (or whoever set it).
    assert_eq!(p["networkAclBypass"], "AzureServices");
    assert_eq!(after["tags"]["team"], "payments");
    assert_eq!(after["tags"]["cosmoscmk.io-name"], "billing");
    env.account_reason("billing", "Ready").await;
    assert!(
        env.event_reasons("billing")
            .await
            .contains(&"UpdatingAccountSettings".to_owned())
    );
}

#[tokio::test]
async fn adoption_leaves_the_settings_the_spec_does_not_set() {
    let env = start("policy-adopt").await;
    let body = json!({
        "location": "eastus",
        "kind": "GlobalDocumentDB",
        "tags": {"team": "legacy-owners"},
        "properties": {"databaseAccountOfferType": "Standard",
            "locations": [{"locationName": "eastus", "failoverPriority": 0}],
            "ipRules": [{"ipAddressOrRange": "10.1.2.3"}], "minimalTlsVersion": "Tls11"}
    });
    let (status, b) = env
        .arm(
            Method::Put,
            &Env::account_path("cmk-demo-legacy"),
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("15-account-existing.yaml", json!({}))
        .await;
    env.account_reason("legacy", "Ready").await;
    let a = azure_account(&env, "cmk-demo-legacy").await;
    let p = &a["properties"];
    assert_eq!(p["ipRules"], json!([{"ipAddressOrRange": "10.1.2.3"}]));
    assert_eq!(p["minimalTlsVersion"], "Tls11");
    assert_eq!(p["publicNetworkAccess"], "Enabled");
    assert_eq!(a["tags"]["team"], "legacy-owners");
    assert_eq!(
        told(&env, "legacy", RU_EVENT).await,
        0,
        "an adopted account was not created here"
    );
}

#[tokio::test]
async fn an_account_made_before_the_assignment_is_adopted_in_one_compliant_write() {
    let env = start("policy-adopt-deny").await;
    let body = json!({
        "location": "eastus",
        "kind": "GlobalDocumentDB",
        "properties": {"databaseAccountOfferType": "Standard",
            "locations": [{"locationName": "eastus", "failoverPriority": 0}]}
    });
    let (status, b) = env
        .arm(
            Method::Put,
            &Env::account_path("cmk-demo-legacy"),
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    // Assigned afterwards: the account does not comply, so Azure refuses any
    // write that leaves it so, a tag write included.
    deny_all(&env);
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "15-account-existing.yaml",
        json!({"spec": {"publicNetworkAccess": "Disabled", "disableLocalAuth": true, "tags": {"costCenter": "legacy"}}}),
    )
    .await;
    env.account_reason("legacy", "Ready").await;
    let a = azure_account(&env, "cmk-demo-legacy").await;
    assert_eq!(a["properties"]["publicNetworkAccess"], "Disabled");
    assert_eq!(a["tags"]["cosmoscmk.io-name"], "legacy");
    assert!(
        a["properties"]["keyVaultKeyUri"]
            .as_str()
            .is_some_and(|k| k.ends_with("/keys/cosmos-orders")),
        "{a}"
    );
}

#[tokio::test]
async fn the_request_unit_overhead_is_told_once_per_created_account() {
    let mut env = start("policy-ru").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    env.account_reason("orders", "Ready").await;
    assert_eq!(told(&env, "orders", RU_EVENT).await, 1);
    let note = env
        .events_about("orders")
        .await
        .into_iter()
        .find(|e| e.reason.as_deref() == Some(RU_EVENT))
        .and_then(|e| e.note)
        .unwrap_or_default();
    assert!(note.contains("+6% per write"), "{note}");
    assert!(note.contains("0.06 RU per indexed property"), "{note}");

    // A restart, then a change the restarted operator must converge: it has
    // reconciled the account since, and tells nothing again.
    env.kill_operator();
    env.start_operator();
    let generation = env
        .accounts()
        .patch(
            "orders",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"tags": {"env": "prod"}}})),
        )
        .await
        .expect("patched")
        .metadata
        .generation;
    env.wait(
        &env.accounts(),
        "orders",
        "Ready at the new generation",
        |a| {
            a.status.as_ref().and_then(|s| s.observed_generation) == generation
                && ready_reason(a).as_deref() == Some("Ready")
        },
    )
    .await;
    assert_eq!(
        azure_account(&env, "cmk-demo-orders").await["tags"]["env"],
        "prod"
    );
    assert_eq!(told(&env, "orders", RU_EVENT).await, 1);
}
