//! The Azure permissions the README asks for are sufficient and minimal.
//!
//! The simulator authorizes every ARM call by role assignments and role
//! definitions (crates/sim/src/arm/authz.rs). Here the operator's principal holds
//! nothing but the custom role shipped in deploy/azure/operator-role.json,
//! assigned at the subscription, plus the Key Vault data access the README
//! names (an access policy with key permissions on the access-policy vault,
//! Key Vault Crypto Officer on the RBAC vault; both seeded by the example
//! world). (a) With it, every seed path reaches Ready and deletes; (b) with
//! any one action taken out of it, some path fails with Azure's 403 and the
//! operator's condition names the action, the scope and the fix.

use cmk_operator::azure::cloud::Cloud;
use cmk_operator::sim::{Seed, SeedRoleAssignment, SeedRoleDefinition, SimConfig};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::*;

/// The custom role's id in these tests (any GUID).
const ROLE: &str = "5c0ffee0-0000-4000-8000-00000000c0de";

fn shipped_actions() -> Vec<String> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/azure/operator-role.json"),
    )
    .expect("deploy/azure/operator-role.json");
    let role: Value = serde_json::from_str(&text).expect("role JSON");
    assert_eq!(role["IsCustom"], true);
    for empty in ["NotActions", "DataActions", "NotDataActions"] {
        assert_eq!(role[empty], json!([]), "{empty}");
    }
    role["Actions"]
        .as_array()
        .expect("Actions")
        .iter()
        .map(|a| a.as_str().expect("action").to_owned())
        .collect()
}

/// The role as `az role definition create` would create it, with `actions`.
fn role_seed(actions: &[String]) -> Seed {
    let sub = format!("/subscriptions/{SUB}");
    Seed {
        role_definitions: vec![SeedRoleDefinition {
            scope: sub.clone(),
            name: ROLE.into(),
            properties: json!({
                "roleName": "Cosmos CMK Operator",
                "type": "CustomRole",
                "permissions": [{"actions": actions, "notActions": [], "dataActions": [], "notDataActions": []}],
                "assignableScopes": [sub],
            }),
        }],
        ..Default::default()
    }
}

/// An Env whose operator holds only the shipped role (less `without`).
async fn restricted(prefix: &str, without: Option<&str>) -> Env {
    restricted_in(prefix, without, None).await
}

/// The same with the operator addressing the simulator as `cloud`: the role
/// file names no cloud, so the same file is assigned there.
pub(crate) async fn restricted_in(
    prefix: &str,
    without: Option<&str>,
    cloud: Option<Cloud>,
) -> Env {
    restricted_assignment(prefix, without, cloud, None).await
}

/// The ABAC condition shipped for the role's assignment
/// (deploy/azure/operator-role-assignment-condition.txt).
pub(crate) fn shipped_condition() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/azure/operator-role-assignment-condition.txt"),
    )
    .expect("deploy/azure/operator-role-assignment-condition.txt")
}

/// An Env whose operator holds only the shipped role (less `without`),
/// assigned at the subscription with `condition` (ABAC) when given.
pub(crate) async fn restricted_assignment(
    prefix: &str,
    without: Option<&str>,
    cloud: Option<Cloud>,
    condition: Option<String>,
) -> Env {
    let config = SimConfig {
        operator_role_assignments: Vec::new(),
        ..SimConfig::for_tests()
    };
    let env = Env::start_in(prefix, config, cloud).await;
    let actions: Vec<String> = shipped_actions()
        .into_iter()
        .filter(|a| Some(a.as_str()) != without)
        .collect();
    let (_, _, operator) = env.sim.operator_credentials();
    let mut seed = role_seed(&actions);
    seed.role_assignments = vec![SeedRoleAssignment {
        scope: format!("/subscriptions/{SUB}"),
        role_definition_id: format!(
            "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE}"
        ),
        principal_id: operator,
        principal_type: Some("ServicePrincipal".into()),
        condition,
        ..Default::default()
    }];
    env.sim.seed(&seed).expect("role seeded");
    env
}

/// Takes `action` out of the role from now on.
fn revoke(env: &Env, action: &str) {
    let actions: Vec<String> = shipped_actions()
        .into_iter()
        .filter(|a| a != action)
        .collect();
    env.sim.seed(&role_seed(&actions)).expect("role replaced");
}

/// Waits until the named object's status reports the missing `action`:
/// Ready reason `AuthorizationFailed` (or `DeletionBlocked` while deleting),
/// a message naming the action, a scope and the role file, and
/// `lastAzureError` with HTTP 403.
async fn reports_missing(env: &Env, kind: &str, name: &str, action: &str) -> String {
    let matches = |status: Option<Value>| -> Option<String> {
        let s = status?;
        let ready = s["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        let reason = ready["reason"].as_str()?;
        let message = ready["message"].as_str()?.to_owned();
        (["AuthorizationFailed", "DeletionBlocked"].contains(&reason)
            && message.contains(&format!("'{action}'"))
            && message.contains("scope '/")
            && message.contains("deploy/azure/operator-role.json")
            && s["lastAzureError"]["httpStatus"] == 403)
            .then_some(message)
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = if kind == "binding" {
            env.bindings()
                .get_opt(name)
                .await
                .expect("get")
                .and_then(|b| serde_json::to_value(b.status).ok())
        } else {
            env.accounts()
                .get_opt(name)
                .await
                .expect("get")
                .and_then(|a| serde_json::to_value(a.status).ok())
        };
        if let Some(message) = matches(status.clone()) {
            return message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind} {name}: no clear report of the missing '{action}'; last status:\n{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn first_party(env: &Env) {
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
}

pub(crate) async fn user_assigned(env: &Env) {
    // Opted in to removing its grants, so deletion exercises roleAssignments/delete.
    env.apply_example(
        "01-binding-rbac.yaml",
        json!({"spec": {"grantRemoval": "RemoveWhenUnused"}}),
    )
    .await;
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
}

async fn ledger_restorable(env: &Env) -> String {
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("13-account-continuous-backup.yaml", json!({}))
        .await;
    env.account_reason("ledger", "Ready").await;
    let (status, source) = env
        .arm(
            azure_core::Method::Get,
            &Env::account_path("cmk-demo-ledger"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let instance = source["properties"]["instanceId"]
        .as_str()
        .expect("instanceId")
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    format!(
        "/subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/eastus/restorableDatabaseAccounts/{instance}"
    )
}

async fn restore(env: &Env, restorable: &str) {
    let when = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    env.apply_example(
        "14-account-restore.yaml",
        json!({"spec": {"restore": {"sourceAccountId": restorable, "timestamp": when}}}),
    )
    .await;
}

async fn move_write_region(env: &Env) {
    let api = env.accounts();
    let locations = |l: Value| json!({"spec": {"locations": l}});
    api.patch(
        "orders",
        &PatchParams::default(),
        &Patch::Merge(locations(json!([
            {"locationName": "eastus", "failoverPriority": 0},
            {"locationName": "westus", "failoverPriority": 1},
        ]))),
    )
    .await
    .expect("region added");
    env.wait(&api, "orders", "two regions", |a| {
        ready_reason(a).as_deref() == Some("Ready")
            && a.status
                .as_ref()
                .is_some_and(|s| s.observed_generation == a.metadata.generation)
    })
    .await;
    api.patch(
        "orders",
        &PatchParams::default(),
        &Patch::Merge(locations(json!([
            {"locationName": "westus", "failoverPriority": 0},
            {"locationName": "eastus", "failoverPriority": 1},
        ]))),
    )
    .await
    .expect("priorities swapped");
}

async fn delete(env: &Env, name: &str) {
    env.accounts()
        .delete(name, &DeleteParams::default())
        .await
        .expect("deleted");
}

/// (a) Sufficient: with the shipped role alone, every seed path goes through.
#[tokio::test]
async fn the_shipped_role_is_enough_for_every_path() {
    let env = restricted("perm-enough", None).await;
    first_party(&env).await;
    user_assigned(&env).await;
    env.apply_example("11-account-system-assigned.yaml", json!({}))
        .await;
    for name in ["orders", "billing", "inventory"] {
        env.account_reason(name, "Ready").await;
    }
    // Continuous backup, then a restore of it.
    let restorable = ledger_restorable(&env).await;
    restore(&env, &restorable).await;
    env.account_reason("ledger-restored", "Ready").await;
    // Rotation: a new key in the binding moves the account to it.
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"key": {"name": "cosmos-orders-2"}}}),
    )
    .await;
    env.wait(&env.accounts(), "orders", "the new key", |a| {
        a.status
            .as_ref()
            .and_then(|s| s.key_vault_key_uri.clone())
            .is_some_and(|u| u.ends_with("/keys/cosmos-orders-2"))
            && ready_reason(a).as_deref() == Some("Ready")
    })
    .await;
    // Regions: add one, then make it the write region (failoverPriorityChange).
    move_write_region(&env).await;
    env.wait(&env.accounts(), "orders", "westus writes", |a| {
        ready_reason(a).as_deref() == Some("Ready")
            && a.status
                .as_ref()
                .is_some_and(|s| s.observed_generation == a.metadata.generation)
    })
    .await;
    assert_eq!(env.calls("DatabaseAccounts_FailoverPriorityChange"), 1);
    // Deletion, with the grant the operator made on the RBAC vault.
    delete(&env, "billing").await;
    env.wait_gone("billing").await;
    assert_eq!(env.calls("DatabaseAccounts_Delete"), 1);
    assert_eq!(env.calls("RoleAssignments_Delete"), 1);
    // The role holds no `roleAssignments/read`, yet the operator read its
    // role assignment on the RBAC vault before removing it: the Key Vault
    // Crypto Officer assignment the README asks for there carries
    // `Microsoft.Authorization/*/read` at the vault.
    assert!(
        !shipped_actions()
            .iter()
            .any(|a| a.eq_ignore_ascii_case("Microsoft.Authorization/roleAssignments/read"))
    );
    assert!(env.calls("RoleAssignments_Get") >= 1);
    // Nothing the operator asked for was refused along the way.
    for op in [
        "DatabaseAccounts_CreateOrUpdate",
        "DatabaseAccounts_Get",
        "OperationsStatus_Get",
        "Vaults_Get",
        "RoleAssignments_Create",
        "RoleAssignments_Get",
        "RoleAssignments_ListForScope",
        "RoleAssignments_Delete",
    ] {
        assert_eq!(env.sim.count_status(op, 403), 0, "{op} refused");
    }
}

/// (b) Minimal: without any one action of the role, a path fails, reported
/// with the action, the scope and the fix (on the deletion paths too, where
/// the finalizer holds the object: reason `DeletionBlocked`, the same
/// message, `lastAzureError` with 403). One test that iterates: each action
/// gets its own simulator and operator, on the shared control plane.
#[tokio::test]
async fn each_action_of_the_shipped_role_is_needed() {
    let started = std::time::Instant::now();
    let mut tried = Vec::new();
    for action in shipped_actions() {
        let prefix = format!("perm-{}", tried.len());
        let message = match action.as_str() {
            "Microsoft.KeyVault/vaults/read" => {
                let env = restricted(&prefix, Some(&action)).await;
                env.apply_example("00-binding-access-policy.yaml", json!({}))
                    .await;
                reports_missing(&env, "binding", "orders-key", &action).await
            }
            "Microsoft.Resources/subscriptions/providers/read"
            | "Microsoft.KeyVault/vaults/accessPolicies/write"
            | "Microsoft.DocumentDB/databaseAccounts/read"
            | "Microsoft.DocumentDB/databaseAccounts/write"
            | "Microsoft.DocumentDB/locations/operationsStatus/read" => {
                let env = restricted(&prefix, Some(&action)).await;
                first_party(&env).await;
                reports_missing(&env, "account", "orders", &action).await
            }
            "Microsoft.Authorization/roleAssignments/write"
            | "Microsoft.ManagedIdentity/userAssignedIdentities/read"
            | "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action" => {
                let env = restricted(&prefix, Some(&action)).await;
                user_assigned(&env).await;
                reports_missing(&env, "account", "billing", &action).await
            }
            // Deletion: the operator removes its role assignment on the RBAC
            // vault (roleAssignments/delete) and deletes the account it owns
            // (databaseAccounts/delete).
            "Microsoft.Authorization/roleAssignments/delete"
            | "Microsoft.DocumentDB/databaseAccounts/delete" => {
                let env = restricted(&prefix, None).await;
                user_assigned(&env).await;
                env.account_reason("billing", "Ready").await;
                revoke(&env, &action);
                delete(&env, "billing").await;
                reports_missing(&env, "account", "billing", &action).await
            }
            "Microsoft.DocumentDB/databaseAccounts/failoverPriorityChange/action" => {
                let env = restricted(&prefix, None).await;
                first_party(&env).await;
                env.account_reason("orders", "Ready").await;
                revoke(&env, &action);
                move_write_region(&env).await;
                reports_missing(&env, "account", "orders", &action).await
            }
            "Microsoft.DocumentDB/locations/restorableDatabaseAccounts/read"
            | "Microsoft.DocumentDB/locations/restorableDatabaseAccounts/restore/action" => {
                let env = restricted(&prefix, None).await;
                let restorable = ledger_restorable(&env).await;
                revoke(&env, &action);
                restore(&env, &restorable).await;
                reports_missing(&env, "account", "ledger-restored", &action).await
            }
            other => {
                panic!("no path in this test needs '{other}': add one, or drop it from the role")
            }
        };
        println!("without {action}: {message}");
        tried.push(action);
    }
    assert_eq!(tried.len(), shipped_actions().len());
    println!(
        "{} actions, each proven needed, in {:.0?}",
        tried.len(),
        started.elapsed()
    );
}
