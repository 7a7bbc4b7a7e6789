//! Restorable accounts (restorable.json 2025-10-15): deleted continuous
//! accounts stay listed with `deletionTime` and restorable for their tier's
//! window, the subscription-wide list, persistence of the deleted records.

use crate::sim_support;

use std::time::Duration;

use azure_core::Method;
use cmk_operator::sim::{SeedRoleAssignment, SimConfig, Simulator, roles};
use serde_json::{Value, json};
use sim_support::*;

const API: &str = "api-version=2025-10-15";

fn account_url(sim: &cmk_operator::sim::SimHandle, name: &str) -> String {
    format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/{name}?{API}",
        sim.arm_endpoint()
    )
}

fn by_location_url(sim: &cmk_operator::sim::SimHandle, loc: &str) -> String {
    format!(
        "{}subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/{loc}/restorableDatabaseAccounts?{API}",
        sim.arm_endpoint()
    )
}

fn subscription_url(sim: &cmk_operator::sim::SimHandle) -> String {
    format!(
        "{}subscriptions/{SUB}/providers/Microsoft.DocumentDB/restorableDatabaseAccounts?{API}",
        sim.arm_endpoint()
    )
}

fn body(location: &str, backup: Value) -> Value {
    json!({
        "location": location,
        "kind": "GlobalDocumentDB",
        "properties": {
            "databaseAccountOfferType": "Standard",
            "locations": [{"locationName": location, "failoverPriority": 0}],
            "backupPolicy": backup,
        },
    })
}

fn continuous(tier: &str) -> Value {
    json!({"type": "Continuous", "continuousModeProperties": {"tier": tier}})
}

/// Creates an account and waits for it; answers its instance id.
async fn create(sim: &cmk_operator::sim::SimHandle, name: &str, body: Value) -> String {
    let cred = credential(sim);
    let (status, acct) = send(
        sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &account_url(sim, name),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{acct}");
    wait_account(&cosmos(sim), RG, name).await;
    acct["properties"]["instanceId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Deletes an account and waits until it is gone.
async fn delete(sim: &cmk_operator::sim::SimHandle, name: &str) {
    let cred = credential(sim);
    let url = account_url(sim, name);
    let (status, _) = send(sim, &cred, ARM_SCOPE, Method::Delete, &url, None).await;
    assert_eq!(status, 202);
    for _ in 0..200 {
        if send(sim, &cred, ARM_SCOPE, Method::Get, &url, None).await.0 == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    panic!("account {name} never went away");
}

async fn get(sim: &cmk_operator::sim::SimHandle, url: &str) -> (u16, Value) {
    send(sim, &credential(sim), ARM_SCOPE, Method::Get, url, None).await
}

fn find<'a>(list: &'a Value, instance: &str) -> Option<&'a Value> {
    list["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == instance)
}

fn restore_body(instance: &str, ts: &str) -> Value {
    let mut b = body("westus", continuous("Continuous7Days"));
    b["properties"]["createMode"] = json!("Restore");
    b["properties"]["restoreParameters"] = json!({
        "restoreMode": "PointInTime",
        "restoreSource": format!("/subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/westus/restorableDatabaseAccounts/{instance}"),
        "restoreTimestampInUtc": ts,
    });
    b
}

#[tokio::test]
async fn a_deleted_continuous_account_stays_listed_and_restorable() {
    let sim = start().await;
    let gone = create(
        &sim,
        "acct-gone",
        body("westus", continuous("Continuous7Days")),
    )
    .await;
    let east = create(
        &sim,
        "acct-east",
        body("eastus", continuous("Continuous30Days")),
    )
    .await;
    let periodic = create(
        &sim,
        "acct-periodic",
        body("westus", json!({"type": "Periodic"})),
    )
    .await;
    let mid = jiff::Timestamp::now().to_string();

    // Live: oldestRestorableTime is the creation (younger than its window), no deletionTime.
    let (status, list) = get(&sim, &by_location_url(&sim, "westus")).await;
    assert_eq!(status, 200, "{list}");
    let live = find(&list, &gone).expect("live account listed");
    assert_eq!(
        live["properties"]["oldestRestorableTime"],
        live["properties"]["creationTime"]
    );
    assert!(live["properties"].get("deletionTime").is_none(), "{live}");
    assert!(
        find(&list, &periodic).is_none(),
        "periodic accounts are not restorable"
    );

    delete(&sim, "acct-gone").await;
    let (_, list) = get(&sim, &by_location_url(&sim, "westus")).await;
    let item = find(&list, &gone).expect("deleted account still listed");
    let props = &item["properties"];
    assert_eq!(props["accountName"], "acct-gone");
    assert_eq!(props["apiType"], "Sql");
    assert_eq!(item["location"], "West US");
    assert_eq!(
        item["type"],
        "Microsoft.DocumentDB/locations/restorableDatabaseAccounts"
    );
    let deleted_at = props["deletionTime"].as_str().expect("deletionTime");
    assert!(props["oldestRestorableTime"].as_str().unwrap() <= deleted_at);
    assert_eq!(
        props["restorableLocations"][0]["deletionTime"],
        props["deletionTime"]
    );
    assert_shape(
        item,
        &fixture("restorable_database_account.json"),
        "restorable",
    );
    let (status, one) = get(
        &sim,
        &format!(
            "{}subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/westus/restorableDatabaseAccounts/{gone}?{API}",
            sim.arm_endpoint()
        ),
    )
    .await;
    assert_eq!(
        (status, &one["properties"]["deletionTime"]),
        (200, &props["deletionTime"])
    );

    // Subscription-wide: live and deleted, every location.
    let (status, all) = get(&sim, &subscription_url(&sim)).await;
    assert_eq!(status, 200, "{all}");
    assert!(
        find(&all, &gone).is_some() && find(&all, &east).is_some(),
        "{all}"
    );
    assert!(find(&all, &periodic).is_none());
    assert_eq!(find(&all, &east).unwrap()["location"], "East US");
    assert_eq!(sim.count_status("RestorableDatabaseAccounts_List", 200), 1);

    // A restore from the deleted source inside its life works; after its deletion it does not.
    let cred = credential(&sim);
    let late = restore_body(&gone, "2999-01-01T00:00:00Z");
    let (status, err) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &account_url(&sim, "acct-late"),
        Some(late),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    let (status, acct) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &account_url(&sim, "acct-gone"),
        Some(restore_body(&gone, &mid)),
    )
    .await;
    assert_eq!(status, 200, "{acct}");
    assert_ne!(acct["properties"]["instanceId"], gone.as_str());
    let restored = wait_account(&cosmos(&sim), RG, "acct-gone").await;
    assert_eq!(
        restored.properties.unwrap().provisioning_state.as_deref(),
        Some("Succeeded")
    );

    // Once its window has passed the record is dropped: no longer listed nor restorable.
    sim.set_retention_day(Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, all) = get(&sim, &subscription_url(&sim)).await;
    assert!(find(&all, &gone).is_none(), "{all}");
    let (status, err) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &account_url(&sim, "acct-too-late"),
        Some(restore_body(&gone, &mid)),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("NotFound"))
    );
}

/// Continuous7Days keeps a deleted account for 7 retention days, Continuous30Days
/// for 30; a live account's oldest restorable time moves with its window.
#[tokio::test]
async fn the_tier_sets_how_long_a_deleted_account_stays_restorable() {
    let sim = start().await;
    let seven = create(
        &sim,
        "acct-seven",
        body("westus", continuous("Continuous7Days")),
    )
    .await;
    let thirty = create(
        &sim,
        "acct-thirty",
        body("westus", continuous("Continuous30Days")),
    )
    .await;
    let live = create(
        &sim,
        "acct-live",
        body("westus", continuous("Continuous7Days")),
    )
    .await;
    delete(&sim, "acct-seven").await;
    delete(&sim, "acct-thirty").await;
    // A retention day of 200 ms: 1.4 s for the first, 6 s for the second.
    sim.set_retention_day(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_, list) = get(&sim, &by_location_url(&sim, "westus")).await;
    assert!(find(&list, &seven).is_none(), "{list}");
    assert!(find(&list, &thirty).is_some(), "{list}");
    let live = find(&list, &live).unwrap();
    assert!(
        live["properties"]["oldestRestorableTime"].as_str().unwrap()
            > live["properties"]["creationTime"].as_str().unwrap(),
        "{live}"
    );
}

#[tokio::test]
async fn deleted_accounts_survive_save_and_load() {
    let dir = std::env::temp_dir().join(format!("sim-restorable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let _ = std::fs::remove_file(&file);
    let sim = Simulator::start_with_state_file(SimConfig::for_tests(), Some(file.clone()))
        .await
        .unwrap();
    let gone = create(
        &sim,
        "acct-kept",
        body("westus", continuous("Continuous30Days")),
    )
    .await;
    delete(&sim, "acct-kept").await;
    sim.shutdown().await.unwrap();

    let sim = Simulator::start_with_state_file(SimConfig::for_tests(), Some(file.clone()))
        .await
        .unwrap();
    let (_, list) = get(&sim, &by_location_url(&sim, "westus")).await;
    let item = find(&list, &gone).expect("deleted account kept across a restart");
    assert!(item["properties"]["deletionTime"].is_string(), "{item}");
    sim.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The subscription-wide list is authorized like the by-location one.
#[tokio::test]
async fn the_subscription_list_needs_restorable_read() {
    let sim = start().await;
    let out = sim
        .seed(&cmk_operator::sim::Seed {
            identities: vec![uai("restorable-reader")],
            ..Default::default()
        })
        .unwrap();
    let oid = out["identities"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let oid = oid.as_str();
    let as_oid = |sim: &cmk_operator::sim::SimHandle| -> std::sync::Arc<dyn azure_core::auth::TokenCredential> {
        std::sync::Arc::new(StaticToken(sim.issue_token(oid, "https://management.azure.com", 600)))
    };
    let url = subscription_url(&sim);
    let (status, err) = send(&sim, &as_oid(&sim), ARM_SCOPE, Method::Get, &url, None).await;
    assert_eq!(status, 403, "{err}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("'Microsoft.DocumentDB/locations/restorableDatabaseAccounts/read'")
            && msg.contains(&format!(
                "'/subscriptions/{SUB}/providers/Microsoft.DocumentDB/restorableDatabaseAccounts'"
            )),
        "{msg}"
    );
    sim.seed(&cmk_operator::sim::Seed {
        role_assignments: vec![SeedRoleAssignment {
            scope: format!("/subscriptions/{SUB}"),
            role_definition_id: roles::READER.into(),
            principal_id: oid.into(),
            principal_type: Some("ServicePrincipal".into()),
            name: None,
            ..Default::default()
        }],
        ..Default::default()
    })
    .unwrap();
    let (status, list) = send(&sim, &as_oid(&sim), ARM_SCOPE, Method::Get, &url, None).await;
    assert_eq!(
        (status, list["value"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}

/// A restored account reports what azure-cli's
/// test_cosmosdb_system_identity_restore.yaml recorded (2023-12-13, commit
/// 1cf56a00157d315e1f58b7c57af5bd04b2978c90): the source's continuous tier
/// (not Periodic) when the request names no backup policy, and
/// `restoreParameters` with `sourceBackupLocation` (the source's region),
/// `restoreWithTTLDisabled: false` and `databasesToRestore: []`.
#[tokio::test]
async fn a_restored_account_reports_the_source_tier_and_region() {
    let sim = start().await;
    let source = create(
        &sim,
        "acct-rsrc",
        body("eastus2", continuous("Continuous7Days")),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut req = restore_body(&source, &jiff::Timestamp::now().to_string());
    let props = req["properties"].as_object_mut().unwrap();
    props.remove("backupPolicy");
    let (status, acct) = send(
        &sim,
        &credential(&sim),
        ARM_SCOPE,
        Method::Put,
        &account_url(&sim, "acct-rdst"),
        Some(req),
    )
    .await;
    assert_eq!(status, 200, "{acct}");
    wait_account(&cosmos(&sim), RG, "acct-rdst").await;
    let (_, acct) = get(&sim, &account_url(&sim, "acct-rdst")).await;
    let p = &acct["properties"];
    assert_eq!(
        p["backupPolicy"],
        json!({"type": "Continuous", "continuousModeProperties": {"tier": "Continuous7Days"}}),
        "{acct}"
    );
    assert_eq!(p["createMode"], "Restore");
    let rp = &p["restoreParameters"];
    assert_eq!(rp["sourceBackupLocation"], "East US 2", "{acct}");
    assert_eq!(rp["restoreWithTTLDisabled"], false);
    assert_eq!(rp["databasesToRestore"], json!([]));
    assert_eq!(rp["restoreMode"], "PointInTime");
}
