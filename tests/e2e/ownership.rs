//! Accounts the operator does not own: a second resource on the same account,
//! an account that vanished, someone else's CMK account. The simulator's ledger
//! proves what was (not) written.

use std::time::Duration;

use cmk_operator::api::KeyType;
use cmk_operator::azure::AzurePort;
use cmk_operator::reconcile::binding::KeyFacts;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::support::*;

/// Account writes (create, update, delete) the simulator saw.
fn account_writes(env: &Env) -> u64 {
    [
        "DatabaseAccounts_CreateOrUpdate",
        "DatabaseAccounts_Update",
        "DatabaseAccounts_Delete",
    ]
    .iter()
    .map(|op| env.calls(op))
    .sum()
}

#[tokio::test]
async fn a_second_resource_never_writes_to_or_deletes_the_first_ones_account() {
    let env = Env::start("twin").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    env.account_reason("orders", "Ready").await;
    let before = account_writes(&env);

    env.apply_example(
        "10-account-first-party.yaml",
        json!({"metadata": {"name": "orders-twin"}, "spec": {"deletionPolicy": "Delete"}}),
    )
    .await;
    let twin = env
        .account_reason("orders-twin", "OwnedByAnotherResource")
        .await;
    let msg = cmk_operator::api::conditions::find(&twin.status.unwrap().conditions, "Ready")
        .unwrap()
        .message
        .clone();
    assert!(
        msg.contains(&format!("{}/orders", env.ns)),
        "names the owner: {msg}"
    );

    env.accounts()
        .delete("orders-twin", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("orders-twin").await;
    assert!(
        env.event_reasons("orders-twin")
            .await
            .contains(&"AccountNotDeleted".to_owned())
    );
    assert!(
        env.account_exists("cmk-demo-orders").await,
        "the account survived"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        account_writes(&env),
        before,
        "no account write after the first was Ready: {:?}",
        env.writes()
    );
    env.account_reason("orders", "Ready").await;
}

#[tokio::test]
async fn a_vanished_account_is_reported_and_recreated_only_when_asked() {
    let env = Env::start("vanished").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    env.account_reason("orders", "Ready").await;
    let (status, _) = env
        .arm(
            azure_core::Method::Delete,
            &Env::account_path("cmk-demo-orders"),
            None,
        )
        .await;
    assert!(
        status == 200 || status == 202,
        "deleted behind the operator's back"
    );

    env.account_reason("orders", "AccountMissing").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.calls("DatabaseAccounts_CreateOrUpdate"),
        1,
        "not silently re-created"
    );
    assert!(
        env.event_reasons("orders")
            .await
            .contains(&"AccountMissing".to_owned())
    );

    env.accounts()
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"cosmoscmk.io/recreate-account": "1"}}}),
            ),
        )
        .await
        .unwrap();
    env.wait(&env.accounts(), "orders", "re-created and Ready", |a| {
        ready_reason(a).as_deref() == Some("Ready")
            && a.status.as_ref().and_then(|s| s.recreate_token.as_deref()) == Some("1")
    })
    .await;
    assert_eq!(env.calls("DatabaseAccounts_CreateOrUpdate"), 2);
}

#[tokio::test]
async fn someone_elses_cmk_account_is_left_alone_until_adopted_with_consent() {
    let env = Env::start("foreign").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    let binding = env.binding_reason("orders-key", "KeyReady").await;
    let key_uri = binding.status.unwrap().key_uri.unwrap();
    let vault_uri = format!("{}/", key_uri.rsplit_once("/keys/").unwrap().0);
    let vault_id = binding.spec.vault_resource_id.clone();

    // Someone else's account: CMK on their own key, made outside the operator.
    let azure = env.backdoor();
    let KeyFacts::Present {
        version: theirs, ..
    } = azure
        .create_key(&vault_uri, "someone-elses-key", KeyType::Rsa, 3072)
        .await
        .unwrap()
    else {
        panic!("key created")
    };
    let fp = env.settings.first_party_principal.clone();
    azure
        .grant(
            &vault_id,
            cmk_operator::api::PermissionModel::AccessPolicy,
            &fp,
        )
        .await
        .unwrap();
    env.create_foreign_account(
        "cmk-demo-theirs",
        &format!("{vault_uri}keys/someone-elses-key"),
        [("team".to_owned(), "payments".to_owned())].into(),
    )
    .await;
    let writes = account_writes(&env);

    // Naming it is not adopting it; adopting it does not consent to a key swap.
    let theirs_spec = json!({"metadata": {"name": "theirs"}, "spec": {"accountName": "cmk-demo-theirs", "deletionPolicy": "Delete"}});
    env.apply_example("10-account-first-party.yaml", theirs_spec.clone())
        .await;
    env.account_reason("theirs", "AccountNotOwned").await;
    let mut adopt = theirs_spec.clone();
    adopt["spec"]["adoptExistingAccount"] = json!(true);
    env.apply_example("10-account-first-party.yaml", adopt.clone())
        .await;
    env.account_reason("theirs", "AdoptionNeedsConsent").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(account_writes(&env), writes, "{:?}", env.writes());

    // With consent: tagged, moved, and the old key's version kept for its backups.
    adopt["spec"]["adoptionConsent"] = json!({"replaceKey": true});
    env.apply_example("10-account-first-party.yaml", adopt)
        .await;
    let a = env.account_reason("theirs", "Ready").await;
    let s = a.status.unwrap();
    assert!(
        s.retained_key_versions
            .iter()
            .any(|r| r.key_uri.ends_with("/keys/someone-elses-key") && r.version == theirs),
        "{:?}",
        s.retained_key_versions
    );
    let (_, body) = env
        .arm(
            azure_core::Method::Get,
            &Env::account_path("cmk-demo-theirs"),
            None,
        )
        .await;
    assert_eq!(body["tags"]["team"], "payments", "their tags are kept");
    assert_eq!(body["tags"]["cosmoscmk.io-name"], "theirs");
    assert_eq!(body["tags"]["cosmoscmk.io-namespace"], env.ns.as_str());
}

/// A deletion that cannot reach Azure (its credential Secret is gone) says what
/// blocks it and is released by switching to Retain.
#[tokio::test]
async fn a_blocked_deletion_says_why_and_retain_releases_it() {
    let env = Env::start("stuck-delete").await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    let spec = json!({"spec": {"deletionPolicy": "Delete"}});
    env.apply_example("10-account-first-party.yaml", spec).await;
    env.account_reason("orders", "Ready").await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": "Delete", "credentialRef": {"secretName": "gone"}}}),
    )
    .await;
    env.accounts()
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    let stuck = env.account_reason("orders", "DeletionBlocked").await;
    let msg = cmk_operator::api::conditions::find(&stuck.status.unwrap().conditions, "Ready")
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("gone") && msg.contains("Retain"), "{msg}");
    env.accounts()
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deletionPolicy": "Retain"}})),
        )
        .await
        .unwrap();
    env.wait_gone("orders").await;
    assert!(env.account_exists("cmk-demo-orders").await);
    assert_eq!(env.calls("DatabaseAccounts_Delete"), 0);
}
