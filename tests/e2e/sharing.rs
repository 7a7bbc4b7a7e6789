//! Grants and key versions several resources share: removal and disabling only
//! when nothing else in the cluster (or in Azure) still needs them, in any
//! order of creation and deletion.

use std::time::Duration;

use cmk_operator::api::PermissionModel;
use cmk_operator::azure::AzurePort;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::support::*;

/// A binding patch opting in to removing the grants nothing uses.
fn opt_in() -> serde_json::Value {
    json!({"spec": {"grantRemoval": "RemoveWhenUnused"}})
}

async fn vault_of(env: &Env, binding: &str) -> String {
    env.bindings()
        .get(binding)
        .await
        .unwrap()
        .spec
        .vault_resource_id
}

/// Judged by the simulator's own rule, not by the adapter under test.
async fn holds_access(env: &Env, vault: &str, _model: PermissionModel, principal: &str) -> bool {
    env.sim.holds_key_access(vault, principal)
}

async fn a_key_uri(env: &Env) -> String {
    let b = env.bindings().get("orders-key-b").await.unwrap();
    b.status.unwrap().key_uri.unwrap()
}

async fn delete_account(env: &Env, name: &str) {
    env.accounts()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone(name).await;
}

/// Seed finding: 00, then 11 (removeFirstPartyGrant), then 10 revoked `orders`.
/// Both orders of creation, then both orders of deletion.
#[tokio::test]
async fn the_shared_first_party_grant_stays_while_any_account_needs_it() {
    for (first, second) in [("11", "10"), ("10", "11")] {
        let env = Env::start("fp-share").await;
        let fp = env.settings.first_party_principal.clone();
        env.apply_example("00-binding-access-policy.yaml", opt_in())
            .await;
        let file = |n: &str| match n {
            "10" => "10-account-first-party.yaml",
            _ => "11-account-system-assigned.yaml",
        };
        let delete = json!({"spec": {"deletionPolicy": "Delete"}});
        env.apply_example(file(first), delete.clone()).await;
        let first_name = if first == "10" { "orders" } else { "inventory" };
        env.account_reason(first_name, "Ready").await;
        env.apply_example(file(second), delete.clone()).await;
        env.account_reason("orders", "Ready").await;
        env.account_reason("inventory", "Ready").await;
        // Several resyncs: nothing revokes the first party under `orders`.
        tokio::time::sleep(Duration::from_secs(5)).await;
        env.account_reason("orders", "Ready").await;
        let vault = vault_of(&env, "orders-key").await;
        assert!(
            holds_access(&env, &vault, PermissionModel::AccessPolicy, &fp).await,
            "created {first} then {second}: the first party keeps its grant"
        );

        // Deleting `orders` first lets `inventory` drop the grant it no longer needs;
        // deleting `inventory` first leaves it to `orders`. Either way none leaks.
        let (a, b) = if first == "10" {
            ("orders", "inventory")
        } else {
            ("inventory", "orders")
        };
        delete_account(&env, a).await;
        if b == "orders" {
            env.account_reason("orders", "Ready").await;
            assert!(holds_access(&env, &vault, PermissionModel::AccessPolicy, &fp).await);
        }
        delete_account(&env, b).await;
        assert!(
            !holds_access(&env, &vault, PermissionModel::AccessPolicy, &fp).await,
            "deleted {a} then {b}: no grant leaked: {:?}",
            env.writes()
        );
    }
}

#[tokio::test]
async fn a_key_version_another_account_uses_is_never_disabled() {
    let mut env = Env::start("shared-version").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"metadata": {"name": "orders-key-b"}}),
    )
    .await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"rotation": {"disablePreviousVersion": true}, "deletionPolicy": "Delete"}}),
    )
    .await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"metadata": {"name": "orders-b"}, "spec": {"accountName": "cmk-demo-orders-b", "keyVaultBindingRef": {"name": "orders-key-b"}, "deletionPolicy": "Delete"}}),
    )
    .await;
    let a = env.account_reason("orders", "Ready").await;
    env.account_reason("orders-b", "Ready").await;
    let v1 = a.status.unwrap().key_version_in_use.unwrap();

    // `orders` moves to another key; `orders-b` stays on v1.
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"key": {"name": "cosmos-orders-2"}}}),
    )
    .await;
    env.wait(&env.accounts(), "orders", "moved and v1 retained", |a| {
        a.status.as_ref().is_some_and(|s| {
            s.retained_key_versions.iter().any(|r| r.version == v1)
                && s.key_vault_key_uri
                    .as_deref()
                    .is_some_and(|u| u.ends_with("cosmos-orders-2"))
        })
    })
    .await;
    env.settings.clock.advance(Duration::from_secs(25 * 3600));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        env.calls("KeyVault_UpdateKey"),
        0,
        "v1 is in use by orders-b: {:?}",
        env.writes()
    );

    // Status is no authority: with orders-b's record of v1 erased, Azure is read.
    env.stop_operator().await;
    env.accounts()
        .patch_status(
            "orders-b",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"keyVersionInUse": null, "keyVaultKeyUri": null}})),
        )
        .await
        .unwrap();
    env.start_operator();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(env.calls("KeyVault_UpdateKey"), 0, "{:?}", env.writes());
    env.account_reason("orders-b", "Ready").await;

    // With orders-b and its account gone, v1 is still the key's latest version
    // (Key Vault says so), so it stays enabled.
    delete_account(&env, "orders-b").await;
    env.settings.clock.advance(Duration::from_secs(2 * 3600));
    env.wait(
        &env.accounts(),
        "orders",
        "v1 kept as the latest version",
        |a| {
            a.status.as_ref().is_some_and(|s| {
                s.retained_key_versions.iter().any(|r| {
                    r.version == v1
                        && r.kept_because
                            .as_deref()
                            .is_some_and(|k| k.contains("the key's latest version"))
                })
            })
        },
    )
    .await;
    assert_eq!(env.calls("KeyVault_UpdateKey"), 0);
    // Once the key has a newer version, v1 is disabled at the next look.
    let key_uri = a_key_uri(&env).await;
    env.backdoor()
        .create_key(
            &format!("{}/", key_uri.rsplit_once("/keys/").unwrap().0),
            "cosmos-orders",
            cmk_operator::api::KeyType::Rsa,
            3072,
        )
        .await
        .unwrap();
    env.settings.clock.advance(Duration::from_secs(2 * 3600));
    env.wait(&env.accounts(), "orders", "v1 disabled", |a| {
        a.status.as_ref().is_some_and(|s| {
            s.retained_key_versions
                .iter()
                .any(|r| r.version == v1 && r.disabled)
        })
    })
    .await;
    assert_eq!(env.calls("KeyVault_UpdateKey"), 1);
    env.account_reason("orders", "Ready").await;
}

#[tokio::test]
async fn deleting_the_binding_first_keeps_the_grant_its_consent_went_with() {
    let env = Env::start("binding-first").await;
    env.apply_example("01-binding-rbac.yaml", opt_in()).await;
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    let a = env.account_reason("billing", "Ready").await;
    let principal = a.status.unwrap().identity_principal_id.unwrap();
    let vault = vault_of(&env, "billing-key").await;
    env.bindings()
        .delete("billing-key", &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..300 {
        if env
            .bindings()
            .get_opt("billing-key")
            .await
            .unwrap()
            .is_none()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delete_account(&env, "billing").await;
    // The opt-in is read from the binding at the moment of removal: with the
    // binding gone it cannot be, so the grant stays (and an event says so).
    assert_eq!(env.calls("RoleAssignments_Delete"), 0, "{:?}", env.writes());
    assert!(holds_access(&env, &vault, PermissionModel::Rbac, &principal).await);
    assert!(
        env.event_reasons("billing")
            .await
            .contains(&"GrantKept".to_owned())
    );
}

#[tokio::test]
async fn an_edited_status_cannot_aim_removal_at_someone_elses_role_assignment() {
    let env = Env::start("status-edit").await;
    env.apply_example("01-binding-rbac.yaml", opt_in()).await;
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    let a = env.account_reason("billing", "Ready").await;
    let vault = vault_of(&env, "billing-key").await;

    // Someone else's assignment of the same role to another principal.
    let other = env.settings.first_party_principal.clone();
    let theirs = format!(
        "{vault}/providers/Microsoft.Authorization/roleAssignments/0b7e4a55-9d0c-4a71-8a43-5b8f3f0e6c11"
    );
    let (status, _) = env
        .arm(
            azure_core::Method::Put,
            &format!("{theirs}?api-version=2022-04-01"),
            Some(json!({"properties": {
                "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/e147488a-f6f5-4113-8e2d-b22465e65bf6"),
                "principalId": other,
                "principalType": "ServicePrincipal",
            }})),
        )
        .await;
    assert_eq!(status, 201);

    // A status edit claims it as the operator's.
    let mut grants = serde_json::to_value(&a.status.unwrap().grants).unwrap();
    grants.as_array_mut().unwrap().push(json!({
        "model": "RBAC", "principalId": other, "vaultId": vault, "roleAssignmentId": theirs,
    }));
    env.accounts()
        .patch_status(
            "billing",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"grants": grants}})),
        )
        .await
        .unwrap();
    delete_account(&env, "billing").await;
    assert_eq!(
        env.calls("RoleAssignments_Delete"),
        1,
        "only the operator's own assignment: {:?}",
        env.writes()
    );
    let (status, _) = env
        .arm(
            azure_core::Method::Get,
            &format!("{theirs}?api-version=2022-04-01"),
            None,
        )
        .await;
    assert_eq!(status, 200, "someone else's assignment survives");
    assert!(
        env.event_reasons("billing")
            .await
            .contains(&"GrantKept".to_owned())
    );
}

#[tokio::test]
async fn switching_to_system_assigned_never_grants_the_first_party() {
    let env = Env::start("widen").await;
    let fp = env.settings.first_party_principal.clone();
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    let ua = json!({"spec": {"keyVaultBindingRef": {"name": "orders-key"}}});
    env.apply_example("12-account-user-assigned.yaml", ua).await;
    env.account_reason("billing", "Ready").await;
    let vault = vault_of(&env, "orders-key").await;
    assert!(!holds_access(&env, &vault, PermissionModel::AccessPolicy, &fp).await);

    env.apply_example(
        "12-account-user-assigned.yaml",
        json!({"spec": {"keyVaultBindingRef": {"name": "orders-key"}, "identity": {"type": "SystemAssigned", "userAssignedIdentityId": null}}}),
    )
    .await;
    env.wait(&env.accounts(), "billing", "switched", |a| {
        ready_reason(a).as_deref() == Some("Ready")
            && a.status
                .as_ref()
                .and_then(|s| s.default_identity.as_deref())
                == Some("SystemAssignedIdentity")
    })
    .await;
    assert!(
        !holds_access(&env, &vault, PermissionModel::AccessPolicy, &fp).await,
        "the first party was never granted for the switch: {:?}",
        env.writes()
    );
}

#[tokio::test]
async fn an_edited_status_cannot_aim_disabling_at_someone_elses_key() {
    let env = Env::start("status-edit-key").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"rotation": {"disablePreviousVersion": true}}}),
    )
    .await;
    let a = env.account_reason("orders", "Ready").await;
    let key_uri = a.status.unwrap().key_vault_key_uri.unwrap();
    let vault_uri = format!("{}/", key_uri.rsplit_once("/keys/").unwrap().0);
    // Someone else's key in the same vault, with an older version.
    let azure = env.backdoor();
    let cmk_operator::reconcile::binding::KeyFacts::Present { version: old, .. } = azure
        .create_key(
            &vault_uri,
            "someone-elses",
            cmk_operator::api::KeyType::Rsa,
            3072,
        )
        .await
        .unwrap()
    else {
        panic!("key created")
    };
    azure
        .create_key(
            &vault_uri,
            "someone-elses",
            cmk_operator::api::KeyType::Rsa,
            3072,
        )
        .await
        .unwrap();
    // A status edit claims that version as one this account retired long ago.
    env.accounts()
        .patch_status(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"retainedKeyVersions": [{
                "keyUri": format!("{vault_uri}keys/someone-elses"),
                "version": old,
                "reason": "edited",
                "safeToDisableAfter": "2020-01-01T00:00:00Z",
            }]}})),
        )
        .await
        .unwrap();
    env.wait(&env.accounts(), "orders", "the edited version kept", |a| {
        a.status.as_ref().is_some_and(|s| {
            s.retained_key_versions
                .iter()
                .any(|r| r.version == old && r.kept_because.is_some())
        })
    })
    .await;
    assert_eq!(env.calls("KeyVault_UpdateKey"), 0, "{:?}", env.writes());
    assert!(
        env.event_reasons("orders")
            .await
            .contains(&"KeyVersionKept".to_owned())
    );
}

const EXAMPLES: [(&str, &str, &str); 5] = [
    ("10-account-first-party.yaml", "orders", "cmk-demo-orders"),
    (
        "11-account-system-assigned.yaml",
        "inventory",
        "cmk-demo-inventory",
    ),
    (
        "12-account-user-assigned.yaml",
        "billing",
        "cmk-demo-billing",
    ),
    (
        "13-account-continuous-backup.yaml",
        "ledger",
        "cmk-demo-ledger",
    ),
    (
        "16-account-cassandra.yaml",
        "telemetry",
        "cmk-demo-telemetry",
    ),
];

/// Access-policy entries and role assignments on the example vaults, beyond
/// what the simulator's seed holds.
async fn grants_left(env: &Env) -> Vec<String> {
    let mut left = Vec::new();
    let vault = |name: &str| {
        format!(
            "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{name}"
        )
    };
    let (_, v) = env
        .arm(
            azure_core::Method::Get,
            &format!("{}?api-version=2023-07-01", vault("cmk-demo-policies")),
            None,
        )
        .await;
    let operator = env.sim.operator_credentials().2;
    for e in v["properties"]["accessPolicies"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let who = e["objectId"].as_str().unwrap_or_default().to_owned();
        if !who.eq_ignore_ascii_case(&operator) {
            left.push(format!("access policy for {who}"));
        }
    }
    let (_, list) = env
        .arm(
            azure_core::Method::Get,
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01",
                vault("cmk-demo-rbac")
            ),
            None,
        )
        .await;
    for ra in list["value"].as_array().cloned().unwrap_or_default() {
        let who = ra["properties"]["principalId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !who.eq_ignore_ascii_case(&operator) {
            left.push(format!("role assignment for {who}"));
        }
    }
    left
}

/// Whether the account reports its key revoked; a missing account is a
/// failure of the test, never "not revoked".
async fn revoked(env: &Env, account: &str) -> bool {
    let (status, body) = env
        .arm(azure_core::Method::Get, &Env::account_path(account), None)
        .await;
    assert_eq!(status, 200, "account {account} exists");
    body["properties"]["customerManagedKeyStatus"]
        .as_str()
        .is_some_and(|s| s.contains("revoked"))
}

/// The examples applied together and deleted in two orders (bindings first and
/// accounts in apply order; accounts in reverse and bindings last): no account
/// is ever revoked and no grant the operator made is left behind.
#[tokio::test]
async fn the_examples_deleted_in_any_order_revoke_nothing_and_leak_no_grant() {
    for bindings_first in [true, false] {
        let env = Env::start("examples-order").await;
        let delete = json!({"spec": {"deletionPolicy": "Delete"}});
        env.apply_example("00-binding-access-policy.yaml", opt_in())
            .await;
        env.apply_example("01-binding-rbac.yaml", opt_in()).await;
        for (file, _, _) in EXAMPLES {
            env.apply_example(file, delete.clone()).await;
        }
        for (_, name, _) in EXAMPLES {
            env.account_reason(name, "Ready").await;
        }
        // The first party, inventory's system identity, ledger's identity (access
        // policies) and billing's identity (a role assignment).
        let made = grants_left(&env).await;
        assert_eq!(made.len(), 4, "{made:?}");
        if bindings_first {
            for b in ["orders-key", "billing-key"] {
                env.bindings()
                    .delete(b, &DeleteParams::default())
                    .await
                    .unwrap();
            }
        }
        let mut order: Vec<_> = EXAMPLES.to_vec();
        if !bindings_first {
            order.reverse();
        }
        for (i, (_, name, _)) in order.iter().enumerate() {
            delete_account(&env, name).await;
            for (_, other, account) in &order[i + 1..] {
                assert!(
                    !revoked(&env, account).await,
                    "deleting {name} revoked {other} (bindings first: {bindings_first})"
                );
            }
        }
        // Bindings deleted first take their consent with them: every grant
        // stays. Accounts first: none is left behind.
        let left = grants_left(&env).await;
        let want = if bindings_first { made } else { Vec::new() };
        assert_eq!(
            left,
            want,
            "bindings first: {bindings_first}: {:?}",
            env.writes()
        );
    }
}

/// Another cluster's account (or one made by hand) on the same vault and
/// principal is seen only in Azure: its grant stays when ours goes.
#[tokio::test]
async fn a_grant_an_account_outside_the_cluster_uses_is_never_removed() {
    let env = Env::start("other-cluster").await;
    let fp = env.settings.first_party_principal.clone();
    // Opted in: only Azure's answer keeps the grant.
    env.apply_example("00-binding-access-policy.yaml", opt_in())
        .await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": "Delete"}}),
    )
    .await;
    let a = env.account_reason("orders", "Ready").await;
    let key_uri = a.status.unwrap().key_vault_key_uri.unwrap();
    let vault = vault_of(&env, "orders-key").await;

    env.create_foreign_account(
        "cmk-demo-elsewhere",
        &key_uri,
        [(
            "cosmoscmk.io-cluster".to_owned(),
            "another-cluster".to_owned(),
        )]
        .into(),
    )
    .await;

    delete_account(&env, "orders").await;
    assert!(
        holds_access(&env, &vault, PermissionModel::AccessPolicy, &fp).await,
        "{:?}",
        env.writes()
    );
    assert!(!revoked(&env, "cmk-demo-elsewhere").await);
    assert!(
        env.event_reasons("orders")
            .await
            .contains(&"GrantKept".to_owned())
    );
}
