//! What happens before an account can exist: a vault that fails the preflight,
//! a binding that is not there yet, an existing account, the Cassandra note.

use cmk_operator::sim::{Seed, SeedVault};
use serde_json::json;

use crate::support::*;

fn seed_vault(env: &Env, name: &str, properties: serde_json::Value) -> String {
    env.sim
        .seed(&Seed {
            vaults: vec![SeedVault {
                subscription_id: SUB.into(),
                resource_group: RG.into(),
                name: name.into(),
                location: Some("eastus".into()),
                properties: properties.as_object().cloned().unwrap(),
            }],
            ..Default::default()
        })
        .unwrap();
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{name}")
}

#[tokio::test]
async fn vaults_failing_the_preflight_are_reported_and_block_the_account() {
    let env = Env::start("preflight").await;
    let no_purge = seed_vault(
        &env,
        "cmk-nopurge",
        json!({"enableSoftDelete": true, "enablePurgeProtection": false}),
    );
    let private = seed_vault(
        &env,
        "cmk-private",
        json!({"enableSoftDelete": true, "enablePurgeProtection": true, "publicNetworkAccess": "Disabled"}),
    );
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"vaultResourceId": no_purge}}),
    )
    .await;
    let b = env
        .binding_reason("orders-key", "PurgeProtectionDisabled")
        .await;
    assert!(
        b.status
            .unwrap()
            .preflight
            .unwrap()
            .failure
            .unwrap()
            .contains("purge protection")
    );
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    env.account_reason("orders", "BindingNotReady").await;

    env.apply_example(
        "01-binding-rbac.yaml",
        json!({"spec": {"vaultResourceId": private}}),
    )
    .await;
    let b = env
        .binding_reason("billing-key", "VaultNetworkClosed")
        .await;
    assert!(
        b.status
            .unwrap()
            .preflight
            .unwrap()
            .failure
            .unwrap()
            .contains("private endpoints")
    );
    assert_eq!(env.calls("DatabaseAccounts_CreateOrUpdate"), 0);
    assert_eq!(
        env.calls("KeyVault_CreateKey"),
        0,
        "no key is created in a vault that failed the preflight"
    );
}

#[tokio::test]
async fn an_account_waits_for_its_binding_then_proceeds() {
    let env = Env::start("waits").await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    env.account_reason("orders", "BindingNotFound").await;
    assert!(
        env.event_reasons("orders")
            .await
            .contains(&"BindingNotFound".to_owned())
    );
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.account_reason("orders", "Ready").await;
}

#[tokio::test]
async fn cmk_is_enabled_on_an_existing_account_only_when_asked() {
    let env = Env::start("existing").await;
    let body = json!({
        "location": "eastus",
        "kind": "GlobalDocumentDB",
        "properties": {"databaseAccountOfferType": "Standard", "locations": [{"locationName": "eastus", "failoverPriority": 0}]}
    });
    let (status, _) = env
        .arm(
            azure_core::Method::Put,
            &Env::account_path("cmk-demo-legacy"),
            Some(body),
        )
        .await;
    assert_eq!(status, 200);
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "15-account-existing.yaml",
        json!({"spec": {"adoptExistingAccount": false}}),
    )
    .await;
    env.account_reason("legacy", "AccountExistsWithoutCmk")
        .await;
    assert_eq!(
        env.calls("DatabaseAccounts_Update"),
        0,
        "nothing irreversible without consent"
    );

    env.apply_example(
        "15-account-existing.yaml",
        json!({"spec": {"adoptExistingAccount": true}}),
    )
    .await;
    let a = env.account_reason("legacy", "Ready").await;
    assert!(
        a.status
            .unwrap()
            .key_vault_key_uri
            .unwrap()
            .ends_with("/keys/cosmos-orders")
    );
    assert_eq!(
        env.calls("DatabaseAccounts_CreateOrUpdate"),
        1,
        "only the test's own create"
    );
    assert!(
        env.calls("DatabaseAccounts_Update") >= 1,
        "CMK enabled with a PATCH"
    );
}

#[tokio::test]
async fn cassandra_accounts_get_the_reserved_field_warning() {
    let env = Env::start("cassandra").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("16-account-cassandra.yaml", json!({}))
        .await;
    env.account_reason("telemetry", "Ready").await;
    assert!(
        env.event_reasons("telemetry")
            .await
            .contains(&"CassandraReservedFields".to_owned())
    );
}
