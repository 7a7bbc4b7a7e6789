//! The simulator changes an existing account's regions and backup policy the
//! way Cosmos DB does: one region per update, the write region only through
//! `failoverPriorityChange`, zone redundancy fixed, continuous one-way (with a
//! migration Azure reports in progress), and no first-party identity on a
//! continuous account with a customer-managed key.

use crate::sim_support;

use azure_core::Method;
use serde_json::{Value, json};
use sim_support::*;

const API: &str = "2025-10-15";

fn url(sim: &cmk_operator::sim::SimHandle, name: &str, suffix: &str) -> String {
    format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/{name}{suffix}?api-version={API}",
        endpoint(sim)
    )
}

pub(crate) async fn call(
    sim: &cmk_operator::sim::SimHandle,
    method: Method,
    name: &str,
    suffix: &str,
    body: Option<Value>,
) -> (u16, Value) {
    send(
        sim,
        &credential(sim),
        ARM_SCOPE,
        method,
        &url(sim, name, suffix),
        body,
    )
    .await
}

/// Waits until the account is no longer updating; returns it.
pub(crate) async fn settled(sim: &cmk_operator::sim::SimHandle, name: &str) -> Value {
    for _ in 0..400 {
        let (status, a) = call(sim, Method::Get, name, "", None).await;
        assert_eq!(status, 200, "{a}");
        let migrating = a["properties"]["backupPolicy"]["migrationState"]["status"] == "InProgress";
        if a["properties"]["provisioningState"] == "Succeeded" && !migrating {
            return a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("account {name} never settled");
}

async fn create(sim: &cmk_operator::sim::SimHandle, name: &str, locations: Value) {
    let body = json!({"location": "westus", "kind": "GlobalDocumentDB", "properties": {
        "databaseAccountOfferType": "Standard", "locations": locations}});
    let (status, b) = call(sim, Method::Put, name, "", Some(body)).await;
    assert_eq!(status, 200, "{b}");
    settled(sim, name).await;
}

fn regions(a: &Value) -> Vec<(String, i64, bool)> {
    let mut v: Vec<_> = a["properties"]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["locationName"].as_str().unwrap().to_owned(),
                l["failoverPriority"].as_i64().unwrap(),
                l["isZoneRedundant"].as_bool().unwrap(),
            )
        })
        .collect();
    v.sort_by_key(|r| r.1);
    v
}

/// Azure's 400 whose message holds `text`.
fn refused((status, e): (u16, Value), text: &str) {
    assert_eq!(status, 400, "{e}");
    let message = e["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(text), "{e}");
}

fn loc(name: &str, p: i64, zr: bool) -> Value {
    json!({"locationName": name, "failoverPriority": p, "isZoneRedundant": zr})
}

async fn patch(sim: &cmk_operator::sim::SimHandle, name: &str, props: Value) -> (u16, Value) {
    call(
        sim,
        Method::Patch,
        name,
        "",
        Some(json!({"properties": props})),
    )
    .await
}

#[tokio::test]
async fn regions_change_one_at_a_time_and_the_write_region_only_by_failover() {
    let sim = start().await;
    sim.set_lro_duration(std::time::Duration::from_millis(60));
    create(&sim, "regions", json!([loc("westus", 0, false)])).await;

    // Two regions at once: refused.
    let two = json!({"locations": [loc("westus", 0, false), loc("eastus", 1, false), loc("northeurope", 2, false)]});
    refused(patch(&sim, "regions", two).await, "Only one region");

    // A region Azure does not have: refused as on creation.
    let (status, e) = patch(
        &sim,
        "regions",
        json!({"locations": [loc("westus", 0, false), loc("moonbase1", 1, false)]}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("LocationNotAvailableForResourceType")),
        "{e}"
    );

    // Locations with another property: refused.
    let mixed = json!({"locations": [loc("westus", 0, false), loc("eastus", 1, false)], "enableFreeTier": true});
    refused(patch(&sim, "regions", mixed).await, "cannot be combined");

    // One region: accepted, a long-running operation.
    let one = json!({"locations": [loc("westus", 0, false), loc("eastus", 1, true)]});
    let (status, e) = patch(&sim, "regions", one).await;
    assert_eq!(status, 200, "{e}");
    // Exclusive while it runs (unless it already ended: a loaded machine is slow).
    let (status, e) = patch(
        &sim,
        "regions",
        json!({"locations": [loc("westus", 0, false)]}),
    )
    .await;
    assert!(status == 412 || status == 200, "{e}");
    let a = settled(&sim, "regions").await;
    assert_eq!(
        regions(&a),
        vec![("West US".into(), 0, false), ("East US".into(), 1, true)]
    );

    // Zone redundancy of an existing region: refused.
    let zr = json!({"locations": [loc("westus", 0, false), loc("eastus", 1, false)]});
    refused(patch(&sim, "regions", zr).await, "Zone redundancy");

    // The write region through an update: refused; removing it: refused.
    let swap = json!({"locations": [loc("westus", 1, false), loc("eastus", 0, true)]});
    refused(patch(&sim, "regions", swap).await, "failoverPriorityChange");
    let drop_write = json!({"locations": [loc("eastus", 0, true)]});
    refused(patch(&sim, "regions", drop_write).await, "write region");

    // failoverPriorityChange: every region listed, then it swaps.
    let failover = |policies: Value| {
        let sim = &sim;
        async move {
            let body = json!({ "failoverPolicies": policies });
            call(
                sim,
                Method::Post,
                "regions",
                "/failoverPriorityChange",
                Some(body),
            )
            .await
        }
    };
    let partial = json!([{"locationName": "eastus", "failoverPriority": 0}]);
    refused(
        failover(partial).await,
        "exactly the account's current regions",
    );
    let both = json!([{"locationName": "East US", "failoverPriority": 0}, {"locationName": "westus", "failoverPriority": 1}]);
    let (status, e) = failover(both).await;
    assert_eq!(status, 202, "{e}");
    let a = settled(&sim, "regions").await;
    assert_eq!(
        regions(&a),
        vec![("East US".into(), 0, true), ("West US".into(), 1, false)]
    );
    assert_eq!(
        a["properties"]["writeLocations"][0]["locationName"],
        "East US"
    );

    // Now the old write region can go.
    let (status, e) = patch(
        &sim,
        "regions",
        json!({"locations": [loc("eastus", 0, true)]}),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    let a = settled(&sim, "regions").await;
    assert_eq!(regions(&a), vec![("East US".into(), 0, true)]);
}

#[tokio::test]
async fn continuous_backup_is_a_one_way_migration_reported_in_progress() {
    let sim = start().await;
    sim.set_lro_duration(std::time::Duration::from_millis(300));
    create(&sim, "backup", json!([loc("westus", 0, false)])).await;

    let (status, e) = patch(&sim, "backup", json!({"backupPolicy": {"type": "Periodic",
        "periodicModeProperties": {"backupIntervalInMinutes": 60, "backupRetentionIntervalInHours": 48}}})).await;
    assert_eq!(status, 200, "{e}");
    let a = settled(&sim, "backup").await;
    assert_eq!(
        a["properties"]["backupPolicy"]["periodicModeProperties"]["backupIntervalInMinutes"],
        60
    );

    let (status, e) = patch(
        &sim,
        "backup",
        json!({"backupPolicy": {"type": "Continuous",
        "continuousModeProperties": {"tier": "Continuous7Days"}}}),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    // Azure reports the old policy with the migration in progress first.
    let mut saw_in_progress = false;
    for _ in 0..200 {
        let (_, a) = call(&sim, Method::Get, "backup", "", None).await;
        let b = &a["properties"]["backupPolicy"];
        if b["migrationState"]["status"] == "InProgress" {
            assert_eq!(b["type"], "Periodic", "{b}");
            assert_eq!(b["migrationState"]["targetType"], "Continuous");
            saw_in_progress = true;
            // No other update meanwhile (unless it just ended: a loaded machine is slow).
            let (status, _) = patch(&sim, "backup", json!({"enableFreeTier": true})).await;
            let (_, now) = call(&sim, Method::Get, "backup", "", None).await;
            let ended = now["properties"]["backupPolicy"]["type"] == "Continuous";
            assert!(status == 412 || (status == 200 && ended), "{status}");
        }
        if b["type"] == "Continuous" {
            assert_eq!(b["migrationState"]["status"], "Completed", "{b}");
            assert_eq!(b["continuousModeProperties"]["tier"], "Continuous7Days");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(saw_in_progress, "the migration is visible while it runs");
    settled(&sim, "backup").await;

    // Tier change: accepted. Back to periodic: refused.
    let (status, e) = patch(
        &sim,
        "backup",
        json!({"backupPolicy": {"type": "Continuous",
        "continuousModeProperties": {"tier": "Continuous30Days"}}}),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    settled(&sim, "backup").await;
    refused(
        patch(
            &sim,
            "backup",
            json!({"backupPolicy": {"type": "Periodic"}}),
        )
        .await,
        "one-way",
    );
}

/// The migration ends with its operation: the first read that shows the
/// update done shows the new tier, and the next write is accepted (recorded:
/// azure-cli test_cosmosdb_sql_migrate_periodic_to_continuous7days.yaml,
/// 2024-12-30, commit 0b41c1ed0b17b5cd24f6e35fb68f5a88945ea299; the PATCH
/// answer there is the old periodic policy, `Updating`).
#[tokio::test]
async fn a_migration_ends_when_its_operation_does() {
    let sim = start().await;
    sim.set_lro_duration(std::time::Duration::from_millis(300));
    create(&sim, "migrate", json!([loc("westus", 0, false)])).await;
    let (status, answer) = patch(
        &sim,
        "migrate",
        json!({"backupPolicy": {"type": "Continuous",
        "continuousModeProperties": {"tier": "Continuous7Days"}}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["properties"]["provisioningState"], "Updating");
    assert_eq!(
        answer["properties"]["backupPolicy"]["periodicModeProperties"]["backupStorageRedundancy"],
        "Geo",
        "the answer is the account as it stood: {answer}"
    );
    for _ in 0..400 {
        let (_, a) = call(&sim, Method::Get, "migrate", "", None).await;
        if a["properties"]["provisioningState"] == "Succeeded" {
            let b = &a["properties"]["backupPolicy"];
            assert_eq!(b["type"], "Continuous", "{b}");
            assert_eq!(b["continuousModeProperties"]["tier"], "Continuous7Days");
            let (status, e) = patch(&sim, "migrate", json!({"enableFreeTier": true})).await;
            assert_eq!(status, 200, "no 412 after the operation ended: {e}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the update never ended");
}
