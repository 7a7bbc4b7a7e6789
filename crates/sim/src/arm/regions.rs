//! Azure regions: the names ARM accepts in `location` and Cosmos DB in
//! `locations[].locationName`, with their display names.
//!
//! Source: the physical regions that `GET /subscriptions/{s}/locations`
//! (`az account list-locations`, Microsoft.Resources "Subscriptions - List
//! Locations") returns, as a snapshot; the sovereign clouds' regions as
//! Azure.Core's `AzureLocation` names them. Logical locations ("global",
//! "unitedstates", "europe", …) are not regions a resource can live in and are
//! not listed. A region Azure opens after this snapshot is refused until it is
//! added here.
//!
//! Spellings are normalised as ARM does: case-insensitive, spaces ignored, so
//! "West US 2", "westus2" and "WestUS2" are one region.

use axum::http::StatusCode;

use crate::errors::ApiError;

/// Which cloud a region belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    Public,
    China,
    UsGovernment,
}

/// `(name, display name, cloud)`.
pub const REGIONS: &[(&str, &str, Cloud)] = &[
    ("eastus", "East US", Cloud::Public),
    ("eastus2", "East US 2", Cloud::Public),
    ("southcentralus", "South Central US", Cloud::Public),
    ("westus2", "West US 2", Cloud::Public),
    ("westus3", "West US 3", Cloud::Public),
    ("australiaeast", "Australia East", Cloud::Public),
    ("southeastasia", "Southeast Asia", Cloud::Public),
    ("northeurope", "North Europe", Cloud::Public),
    ("swedencentral", "Sweden Central", Cloud::Public),
    ("uksouth", "UK South", Cloud::Public),
    ("westeurope", "West Europe", Cloud::Public),
    ("centralus", "Central US", Cloud::Public),
    ("southafricanorth", "South Africa North", Cloud::Public),
    ("centralindia", "Central India", Cloud::Public),
    ("eastasia", "East Asia", Cloud::Public),
    ("indonesiacentral", "Indonesia Central", Cloud::Public),
    ("japaneast", "Japan East", Cloud::Public),
    ("japanwest", "Japan West", Cloud::Public),
    ("koreacentral", "Korea Central", Cloud::Public),
    ("malaysiawest", "Malaysia West", Cloud::Public),
    ("newzealandnorth", "New Zealand North", Cloud::Public),
    ("canadacentral", "Canada Central", Cloud::Public),
    ("chilecentral", "Chile Central", Cloud::Public),
    ("francecentral", "France Central", Cloud::Public),
    ("germanywestcentral", "Germany West Central", Cloud::Public),
    ("italynorth", "Italy North", Cloud::Public),
    ("mexicocentral", "Mexico Central", Cloud::Public),
    ("norwayeast", "Norway East", Cloud::Public),
    ("polandcentral", "Poland Central", Cloud::Public),
    ("spaincentral", "Spain Central", Cloud::Public),
    ("switzerlandnorth", "Switzerland North", Cloud::Public),
    ("uaenorth", "UAE North", Cloud::Public),
    ("brazilsouth", "Brazil South", Cloud::Public),
    ("israelcentral", "Israel Central", Cloud::Public),
    ("qatarcentral", "Qatar Central", Cloud::Public),
    ("northcentralus", "North Central US", Cloud::Public),
    ("westus", "West US", Cloud::Public),
    ("westcentralus", "West Central US", Cloud::Public),
    ("australiacentral", "Australia Central", Cloud::Public),
    ("australiacentral2", "Australia Central 2", Cloud::Public),
    ("australiasoutheast", "Australia Southeast", Cloud::Public),
    ("southindia", "South India", Cloud::Public),
    ("westindia", "West India", Cloud::Public),
    ("jioindiawest", "Jio India West", Cloud::Public),
    ("jioindiacentral", "Jio India Central", Cloud::Public),
    ("koreasouth", "Korea South", Cloud::Public),
    ("canadaeast", "Canada East", Cloud::Public),
    ("francesouth", "France South", Cloud::Public),
    ("germanynorth", "Germany North", Cloud::Public),
    ("norwaywest", "Norway West", Cloud::Public),
    ("switzerlandwest", "Switzerland West", Cloud::Public),
    ("ukwest", "UK West", Cloud::Public),
    ("uaecentral", "UAE Central", Cloud::Public),
    ("southafricawest", "South Africa West", Cloud::Public),
    ("brazilsoutheast", "Brazil Southeast", Cloud::Public),
    // Listed to Cosmos DB on 2024-02-20 (azure-cli test_cosmosdb_locations.yaml).
    ("malaysiasouth", "Malaysia South", Cloud::Public),
    ("taiwannorth", "Taiwan North", Cloud::Public),
    ("taiwannorthwest", "Taiwan Northwest", Cloud::Public),
    ("swedensouth", "Sweden South", Cloud::Public),
    ("centraluseuap", "Central US EUAP", Cloud::Public),
    ("eastus2euap", "East US 2 EUAP", Cloud::Public),
    ("chinanorth", "China North", Cloud::China),
    ("chinaeast", "China East", Cloud::China),
    ("chinanorth2", "China North 2", Cloud::China),
    ("chinaeast2", "China East 2", Cloud::China),
    ("chinanorth3", "China North 3", Cloud::China),
    ("chinaeast3", "China East 3", Cloud::China),
    ("usgovvirginia", "US Gov Virginia", Cloud::UsGovernment),
    ("usgovarizona", "US Gov Arizona", Cloud::UsGovernment),
    ("usgovtexas", "US Gov Texas", Cloud::UsGovernment),
    ("usdodcentral", "US DoD Central", Cloud::UsGovernment),
    ("usdodeast", "US DoD East", Cloud::UsGovernment),
];

/// ARM's normal form of a location: lower case, no spaces.
pub fn normalize(loc: &str) -> String {
    loc.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The region a spelling names, if it names one.
pub fn find(loc: &str) -> Option<&'static (&'static str, &'static str, Cloud)> {
    let n = normalize(loc);
    REGIONS.iter().find(|(name, _, _)| *name == n)
}

/// The display name ("West US 2") of a known region; unknown input unchanged.
pub fn display(loc: &str) -> String {
    find(loc).map_or_else(|| loc.to_owned(), |(_, d, _)| (*d).to_owned())
}

/// The region names a resource type is offered in, as ARM lists them in its
/// errors: normal form, comma-separated.
fn available(separator: &str) -> String {
    REGIONS
        .iter()
        .map(|(name, _, _)| *name)
        .collect::<Vec<_>>()
        .join(separator)
}

/// Names for the "supported locations" part of `NoRegisteredProviderFound`.
pub fn available_for_messages() -> String {
    available(", ")
}

/// ARM's 400 for a location the resource type is not offered in.
///
/// Azure (ARM, before the request reaches the resource provider):
/// `{"error":{"code":"LocationNotAvailableForResourceType","message":"The
/// provided location 'WUS' is not available for resource type
/// 'Microsoft.DataBoxEdge/DataBoxEdgeDevices'. List of available regions for
/// the resource type is 'eastus,westeurope,southeastasia'."}}` — as quoted in
/// Azure/azure-rest-api-specs#8347 and #8577 and Azure/pcs-cli#522 (the
/// wording is ARM's, the same for every resource type).
pub fn not_available(loc: &str, resource_type: &str) -> ApiError {
    ApiError::arm(
        StatusCode::BAD_REQUEST,
        "LocationNotAvailableForResourceType",
        format!(
            "The provided location '{loc}' is not available for resource type '{resource_type}'. List of available regions for the resource type is '{}'.",
            available(",")
        ),
    )
}

/// `Ok` when `loc` names a region, else [`not_available`].
pub fn check(loc: &str, resource_type: &str) -> Result<(), ApiError> {
    match find(loc) {
        Some(_) => Ok(()),
        None => Err(not_available(loc, resource_type)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_normalise() {
        for s in [
            "West US 2",
            "westus2",
            "WestUS2",
            "WEST US 2",
            " west us 2 ",
        ] {
            assert_eq!(find(s).map(|r| r.0), Some("westus2"), "{s}");
        }
        assert_eq!(display("eastus"), "East US");
        assert_eq!(display("nowhere"), "nowhere");
        assert!(find("global").is_none());
        assert!(find("westus9").is_none());
    }

    #[test]
    fn names_are_unique_and_in_normal_form() {
        let mut seen = std::collections::HashSet::new();
        for (name, display, _) in REGIONS {
            assert!(seen.insert(*name), "duplicate {name}");
            assert_eq!(normalize(name), *name);
            assert_eq!(normalize(display), *name, "{display}");
        }
    }

    #[test]
    fn refusal_has_arms_shape() {
        let e = check("West Moon", "Microsoft.DocumentDB/databaseAccounts").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, "LocationNotAvailableForResourceType");
        assert!(e.message.starts_with(
            "The provided location 'West Moon' is not available for resource type 'Microsoft.DocumentDB/databaseAccounts'. List of available regions for the resource type is 'eastus,eastus2,"
        ));
    }
}
