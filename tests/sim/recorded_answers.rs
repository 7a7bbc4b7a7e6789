//! Answers the simulator gives as recorded Azure transcripts show them, each
//! pinned on its own: azure-cli's test_cosmosdb_managed_service_identity.yaml
//! (2022-04-08, commit 0fea07053dc3265171e143da2f2ebdd8c60926e8; also
//! replayed whole, `replay::cosmosdb_managed_service_identity`), and the
//! periodic backup defaults every recorded read carries.

use crate::sim_support;

use azure_core::Method;
use cmk_operator::sim::SimHandle;
use serde_json::{Value, json};
use sim_support::*;

fn url(sim: &SimHandle, name: &str) -> String {
    format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/{name}?api-version=2021-10-15",
        sim.arm_endpoint()
    )
}

async fn call(sim: &SimHandle, method: Method, name: &str, body: Option<Value>) -> (u16, Value) {
    send(
        sim,
        &credential(sim),
        ARM_SCOPE,
        method,
        &url(sim, name),
        body,
    )
    .await
}

async fn settled(sim: &SimHandle, name: &str) -> Value {
    for _ in 0..200 {
        let (_, a) = call(sim, Method::Get, name, None).await;
        if a["properties"]["provisioningState"] == "Succeeded" {
            return a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{name} never settled");
}

/// A CMK account on the system-assigned identity, created the recorded way.
async fn system_identity_account(sim: &SimHandle, name: &str) -> Value {
    let key_uri = seed_vault_and_key(sim, good_vault(sim, "kv-rec", &[&first_party(sim)]), "cmk");
    let (status, created) = call(
        sim,
        Method::Put,
        name,
        Some(json!({"location": "westus", "kind": "GlobalDocumentDB", "identity": {"type": "SystemAssigned"},
            "properties": {"locations": [{"locationName": "eastus2", "failoverPriority": 0}],
                "databaseAccountOfferType": "Standard", "keyVaultKeyUri": key_uri}})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["properties"]["provisioningState"], "Creating");
    // Transient: the create answer echoes the default identity asked for (none).
    assert_eq!(created["properties"]["defaultIdentity"], "");
    let settled = settled(sim, name).await;
    assert_eq!(
        settled["properties"]["defaultIdentity"],
        "FirstPartyIdentity"
    );
    settled
}

#[tokio::test]
async fn a_patch_answers_the_account_as_it_stood_marked_updating() {
    let sim = start().await;
    system_identity_account(&sim, "acct-rec-patch").await;
    let (status, answer) = call(
        &sim,
        Method::Patch,
        "acct-rec-patch",
        Some(json!({"identity": {"type": "None"}})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["properties"]["provisioningState"], "Updating");
    assert_eq!(
        answer["identity"]["type"], "SystemAssigned",
        "the old state: {answer}"
    );
    assert_eq!(
        answer["properties"]["locations"][0]["provisioningState"],
        "Updating"
    );
    let after = settled(&sim, "acct-rec-patch").await;
    assert_eq!(after["identity"]["type"], "None");
}

#[tokio::test]
async fn removing_the_system_identity_that_is_the_default_leaves_it_undefined() {
    let sim = start().await;
    let created = system_identity_account(&sim, "acct-rec-undef").await;
    let principal = created["identity"]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let kv = keyvault_mgmt(&sim);
    let add: keyvault::models::VaultAccessPolicyParameters = serde_json::from_value(json!({
        "properties": {"accessPolicies": [{"tenantId": sim.tenant_id(), "objectId": principal, "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}}]}
    }))
    .unwrap();
    kv.vaults_client()
        .update_access_policy(RG, "kv-rec", "add", add, SUB)
        .await
        .unwrap();
    let (status, answer) = call(
        &sim,
        Method::Patch,
        "acct-rec-undef",
        Some(json!({"properties": {"defaultIdentity": "SystemAssignedIdentity"}})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["properties"]["defaultIdentity"],
        "FirstPartyIdentity"
    );
    settled(&sim, "acct-rec-undef").await;

    let (status, answer) = call(
        &sim,
        Method::Patch,
        "acct-rec-undef",
        Some(json!({"identity": {"type": "None"}})),
    )
    .await;
    assert_eq!(status, 200, "accepted as Azure does: {answer}");
    let after = settled(&sim, "acct-rec-undef").await;
    assert_eq!(after["identity"]["type"], "None");
    assert_eq!(after["properties"]["defaultIdentity"], "Undefined");

    // The way back starts with assigning an identity again (recorded next).
    let (status, answer) = call(
        &sim,
        Method::Patch,
        "acct-rec-undef",
        Some(json!({"identity": {"type": "SystemAssigned"}})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["properties"]["defaultIdentity"], "Undefined");
}

/// Every recorded read of a periodic account carries
/// `backupStorageRedundancy`; a client that sends its own interval and
/// retention gets Azure's default redundancy beside them (issue 21, 8).
#[tokio::test]
async fn own_periodic_settings_are_answered_with_the_default_redundancy() {
    let sim = start().await;
    let (status, created) = call(
        &sim,
        Method::Put,
        "acct-rec-periodic",
        Some(json!({"location": "westus", "kind": "GlobalDocumentDB",
            "properties": {"locations": [{"locationName": "westus", "failoverPriority": 0}],
                "databaseAccountOfferType": "Standard",
                "backupPolicy": {"type": "Periodic", "periodicModeProperties": {"backupIntervalInMinutes": 480, "backupRetentionIntervalInHours": 24}}}})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let after = settled(&sim, "acct-rec-periodic").await;
    assert_eq!(
        after["properties"]["backupPolicy"],
        json!({"type": "Periodic", "periodicModeProperties": {"backupIntervalInMinutes": 480, "backupRetentionIntervalInHours": 24, "backupStorageRedundancy": "Geo"}}),
        "{after}"
    );
}
