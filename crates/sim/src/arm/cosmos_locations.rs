//! Cosmos DB's region list (`Locations_List`, `Locations_Get`,
//! cosmos-db.json `LocationGetResult`): each region's availability-zone
//! support, residency restriction and backup storage redundancies as Azure
//! answered them on 2024-02-20 (azure-cli test_cosmosdb_locations.yaml @
//! 05efc032, tests/fixtures/recordings/cosmosdb_locations.yaml), in the order
//! it listed them. Whether a subscription may use a region
//! (`isSubscriptionRegionAccessAllowedFor*`) is the subscription's: here every
//! region is allowed. Regions of `regions.rs` the recording does not list
//! (opened since, or of the other clouds) answer no zones, no residency
//! restriction, Geo and Local.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::regions::{self, Cloud, REGIONS};
use crate::errors::ApiError;
use crate::server::json_resp;

/// (name, supportsAvailabilityZone, isResidencyRestricted, backupStorageRedundancies).
const RECORDED: &[(&str, bool, bool, &[&str])] = &[
    ("brazilsoutheast", false, false, &["Geo", "Local"]),
    ("centralus", true, false, &["Geo", "Zone", "Local"]),
    ("australiasoutheast", false, false, &["Geo", "Local"]),
    ("canadacentral", true, false, &["Geo", "Local", "Zone"]),
    ("centralindia", true, false, &["Geo", "Local", "Zone"]),
    ("southeastasia", true, true, &["Geo", "Local", "Zone"]),
    ("switzerlandnorth", true, false, &["Geo", "Local", "Zone"]),
    ("uaenorth", true, false, &["Geo", "Local", "Zone"]),
    ("eastasia", true, false, &["Geo", "Local", "Zone"]),
    ("ukwest", false, false, &["Geo", "Local"]),
    ("switzerlandwest", false, false, &["Geo", "Local"]),
    ("westeurope", true, false, &["Geo", "Zone", "Local"]),
    ("eastus2", true, false, &["Geo", "Zone", "Local"]),
    ("westus", false, false, &["Geo", "Local"]),
    ("eastus", true, false, &["Geo", "Zone", "Local"]),
    ("westus3", true, false, &["Geo", "Local", "Zone"]),
    ("australiaeast", true, false, &["Geo", "Zone", "Local"]),
    ("brazilsouth", true, true, &["Geo", "Local", "Zone"]),
    ("germanywestcentral", true, false, &["Geo", "Local", "Zone"]),
    ("francecentral", true, false, &["Geo", "Zone", "Local"]),
    ("japaneast", true, false, &["Geo", "Zone", "Local"]),
    ("japanwest", false, false, &["Geo", "Local"]),
    ("koreasouth", false, false, &["Geo", "Local"]),
    ("germanynorth", false, false, &["Geo", "Local"]),
    ("francesouth", false, false, &["Geo", "Local"]),
    ("australiacentral", false, false, &["Geo", "Local"]),
    ("southcentralus", true, false, &["Geo", "Local", "Zone"]),
    ("southafricanorth", true, false, &["Geo", "Zone", "Local"]),
    ("koreacentral", true, false, &["Geo", "Local", "Zone"]),
    ("southindia", false, false, &["Geo", "Local"]),
    ("norwayeast", true, false, &["Geo", "Local", "Zone"]),
    ("canadaeast", false, false, &["Geo", "Local"]),
    ("northcentralus", false, false, &["Geo", "Local"]),
    ("norwaywest", false, false, &["Geo", "Local"]),
    ("northeurope", true, false, &["Geo", "Zone", "Local"]),
    ("southafricawest", false, false, &["Geo", "Local"]),
    ("australiacentral2", false, false, &["Geo", "Local"]),
    ("uaecentral", false, false, &["Geo", "Local"]),
    ("uksouth", true, false, &["Geo", "Zone", "Local"]),
    ("westcentralus", false, false, &["Geo", "Local"]),
    ("westindia", false, false, &["Geo", "Local"]),
    ("westus2", true, false, &["Geo", "Zone", "Local"]),
    ("jioindiawest", false, false, &["Geo", "Local"]),
    ("jioindiacentral", false, false, &["Geo", "Local"]),
    ("swedencentral", true, false, &["Geo", "Local", "Zone"]),
    ("swedensouth", false, false, &["Geo", "Local"]),
    ("qatarcentral", true, true, &["Local", "Zone"]),
    ("polandcentral", true, true, &["Local", "Zone"]),
    ("malaysiasouth", false, false, &["Geo", "Local"]),
    ("italynorth", true, true, &["Local", "Zone"]),
    ("israelcentral", true, true, &["Local", "Zone"]),
    ("spaincentral", true, true, &["Local", "Zone"]),
    ("mexicocentral", true, true, &["Local", "Zone"]),
    ("taiwannorth", false, false, &["Geo", "Local"]),
    ("taiwannorthwest", false, false, &["Geo", "Local"]),
];

fn item(sub: &str, name: &str, display: &str) -> Value {
    let (az, residency, redundancies) = RECORDED
        .iter()
        .find(|r| r.0 == name)
        .map_or((false, false, &["Geo", "Local"][..]), |r| (r.1, r.2, r.3));
    json!({
        "id": format!("/subscriptions/{sub}/providers/Microsoft.DocumentDB/locations/{name}"),
        "type": "Microsoft.DocumentDB/locations",
        "name": display,
        "properties": {
            "supportsAvailabilityZone": az,
            "isResidencyRestricted": residency,
            "isSubscriptionRegionAccessAllowedForAz": az,
            "isSubscriptionRegionAccessAllowedForRegular": true,
            "status": "Online",
            "backupStorageRedundancies": redundancies,
        },
    })
}

/// The regions of `cloud`: the recorded ones in the recorded order, then the others.
fn of_cloud(cloud: Cloud) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = RECORDED
        .iter()
        .filter_map(|r| regions::find(r.0))
        .filter(|r| r.2 == cloud)
        .map(|r| (r.0, r.1))
        .collect();
    out.extend(
        REGIONS
            .iter()
            .filter(|r| r.2 == cloud && !RECORDED.iter().any(|x| x.0 == r.0))
            .map(|r| (r.0, r.1)),
    );
    out
}

/// `GET /subscriptions/{s}/providers/Microsoft.DocumentDB/locations[/{loc}]`.
pub fn handle(sub: &str, loc: Option<&str>, cloud: Cloud) -> Result<Response, ApiError> {
    let all = of_cloud(cloud);
    match loc {
        None => {
            let value: Vec<Value> = all.iter().map(|(n, d)| item(sub, n, d)).collect();
            Ok(json_resp(StatusCode::OK, json!({ "value": value })))
        }
        Some(l) => {
            let n = regions::normalize(l);
            let (name, display) = all.iter().find(|(x, _)| *x == n).ok_or_else(|| {
                ApiError::arm(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("Location '{l}' is not a Cosmos DB location of this cloud."),
                )
            })?;
            Ok(json_resp(StatusCode::OK, item(sub, name, display)))
        }
    }
}
