//! Key Vault's rotation policy in the simulator: a schedule rotates under the
//! key-day knob, rotated versions get the policy's `exp`, an expired version
//! wraps nothing (unwrap stays allowed, "About keys") and the Cosmos DB
//! account on it reports the loss through its substatus.

use crate::sim_support;

use std::time::Duration;

use azure_core::Method;
use cosmosdb::models::DatabaseAccountCreateUpdateParameters;
use serde_json::{Value, json};
use sim_support::*;

/// `POST {key}/rotate` as a person would.
async fn rotate_now(
    sim: &cmk_operator::sim::SimHandle,
    cred: &std::sync::Arc<dyn azure_core::auth::TokenCredential>,
    scope: &str,
    key_uri: &str,
) -> (u16, Value) {
    let url = format!("{key_uri}/rotate?api-version=7.4");
    send(sim, cred, scope, Method::Post, &url, None).await
}

/// The account's `customerManagedKeyStatus`.
async fn cmk_status(client: &cosmosdb::Client, name: &str) -> String {
    let a = client.database_accounts_client().get(SUB, RG, name).await;
    a.unwrap()
        .properties
        .and_then(|p| p.customer_managed_key_status)
        .expect("a CMK account reports its key status")
}

fn account_on(key_uri: &str) -> DatabaseAccountCreateUpdateParameters {
    serde_json::from_value(json!({
        "location": "westus",
        "kind": "GlobalDocumentDB",
        "properties": {
            "databaseAccountOfferType": "Standard",
            "locations": [{"locationName": "westus", "failoverPriority": 0}],
            "keyVaultKeyUri": key_uri,
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_policy_rotates_on_schedule_and_sets_the_expiry_of_new_versions() {
    let sim = start().await;
    let uri = seed_vault_and_key(&sim, good_vault(&sim, "kv-rot", &[]), "cmk");
    let (cred, scope) = (credential(&sim), kv_scope(&sim, "kv-rot"));
    let get = |uri: String| {
        let (sim, cred, scope) = (&sim, cred.clone(), scope.clone());
        async move { send(sim, &cred, &scope, Method::Get, &uri, None).await.1 }
    };
    let v1 = get(format!("{uri}?api-version=7.4")).await["key"]["kid"].clone();
    let policy = json!({
        "lifetimeActions": [{"trigger": {"timeAfterCreate": "P7D"}, "action": {"type": "Rotate"}}],
        "attributes": {"expiryTime": "P28D"}
    });
    let (status, _) = send(
        &sim,
        &cred,
        &scope,
        Method::Put,
        &format!("{uri}/rotationpolicy?api-version=7.4"),
        Some(policy),
    )
    .await;
    assert_eq!(status, 200);
    // A real day: nothing is due yet.
    assert_eq!(
        get(format!("{uri}?api-version=7.4")).await["key"]["kid"],
        v1
    );

    // A day of a second: seven seconds after creation the key rotates.
    sim.set_key_day(Duration::from_secs(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let rotated: Value = loop {
        let k = get(format!("{uri}?api-version=7.4")).await;
        if k["key"]["kid"] != v1 {
            break k;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduled rotation"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    sim.set_key_day(Duration::from_secs(24 * 60 * 60));
    let created = rotated["attributes"]["created"].as_i64().unwrap();
    let exp = rotated["attributes"]["exp"]
        .as_i64()
        .expect("the policy's expiry");
    // 28 simulated days of a second each (Key Vault counts in whole seconds).
    assert!((27..=29).contains(&(exp - created)), "{exp} - {created}");

    // An on-demand rotation under the policy gets the expiry as well.
    let (status, manual) = rotate_now(&sim, &cred, &scope, &uri).await;
    assert_eq!(status, 200);
    let made = manual["attributes"]["created"].as_i64().unwrap();
    assert_eq!(
        manual["attributes"]["exp"].as_i64(),
        Some(made + 28 * 24 * 3600)
    );
}

#[tokio::test]
async fn an_expired_version_wraps_nothing_and_revokes_the_account_on_it() {
    let sim = start().await;
    let uri = seed_vault_and_key(
        &sim,
        good_vault(&sim, "kv-exp", &[&first_party(&sim)]),
        "cmk",
    );
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();
    accounts
        .create_or_update(SUB, RG, "acct-exp", account_on(&uri))
        .await
        .unwrap();
    wait_account(&client, RG, "acct-exp").await;

    let (cred, scope) = (credential(&sim), kv_scope(&sim, "kv-exp"));
    let (_, k) = send(
        &sim,
        &cred,
        &scope,
        Method::Get,
        &format!("{uri}?api-version=7.4"),
        None,
    )
    .await;
    let kid = k["key"]["kid"].as_str().unwrap().to_owned();
    let wrap = |kid: String| {
        let (sim, cred, scope) = (&sim, cred.clone(), scope.clone());
        async move {
            send(
                sim,
                &cred,
                &scope,
                Method::Post,
                &format!("{kid}/wrapkey?api-version=7.4"),
                Some(json!({"alg": "RSA-OAEP", "value": "AAEC"})),
            )
            .await
        }
    };
    let (status, wrapped) = wrap(kid.clone()).await;
    assert_eq!(status, 200, "{wrapped}");

    // The version expires (an exp in the past, as a person could set it).
    let past = jiff::Timestamp::now().as_second() - 60;
    let (status, _) = send(
        &sim,
        &cred,
        &scope,
        Method::Patch,
        &format!("{kid}?api-version=7.4"),
        Some(json!({"attributes": {"exp": past}})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, err) = wrap(kid.clone()).await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["innererror"]["code"], "KeyExpired", "{err}");
    // Unwrapping what it wrapped stays possible.
    let (status, unwrapped) = send(
        &sim,
        &cred,
        &scope,
        Method::Post,
        &format!("{kid}/unwrapkey?api-version=7.4"),
        Some(json!({"alg": "RSA-OAEP", "value": wrapped["value"]})),
    )
    .await;
    assert_eq!(status, 200, "{unwrapped}");

    let status = cmk_status(&client, "acct-exp").await;
    assert!(
        status.contains("revoked") && status.contains("4002"),
        "{status}"
    );

    // A new version (no expiry) gives access back.
    rotate_now(&sim, &cred, &scope, &uri).await;
    let status = cmk_status(&client, "acct-exp").await;
    assert!(!status.contains("revoked"), "{status}");
}
