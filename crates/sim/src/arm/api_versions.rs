//! api-versions Azure serves per resource type, and Azure's answers to others.
//!
//! Each list is the set of version folders (stable and preview) in
//! Azure/azure-rest-api-specs that define the type, read from each service's
//! `readme.md` tags, plus — marked — versions that Microsoft's current Python
//! SDKs send by default where these are newer than the specs' folders: Azure
//! serves them (the SDKs are generated from specs Azure has deployed), the
//! specs snapshot is just older.

use axum::http::StatusCode;

use super::regions;
use crate::errors::ApiError;

/// `Microsoft.DocumentDB/databaseAccounts` (and its `locations/*` proxies):
/// `specification/cosmos-db/resource-manager/Microsoft.DocumentDB/DocumentDB/`
/// `{stable,preview}/*/cosmos-db.json`.
pub const COSMOS: &[&str] = &[
    "2014-04-01",
    "2015-04-08",
    "2015-11-06",
    "2016-03-19",
    "2016-03-31",
    "2019-08-01",
    "2019-12-12",
    "2020-03-01",
    "2020-04-01",
    "2020-06-01-preview",
    "2020-09-01",
    "2021-01-15",
    "2021-03-01-preview",
    "2021-03-15",
    "2021-04-01-preview",
    "2021-04-15",
    "2021-05-15",
    "2021-06-15",
    "2021-07-01-preview",
    "2021-10-15",
    "2021-10-15-preview",
    "2021-11-15-preview",
    "2022-02-15-preview",
    "2022-05-15",
    "2022-05-15-preview",
    "2022-08-15",
    "2022-08-15-preview",
    "2022-11-15",
    "2022-11-15-preview",
    "2023-03-01-preview",
    "2023-03-15",
    "2023-03-15-preview",
    "2023-04-15",
    "2023-09-15",
    "2023-09-15-preview",
    "2023-11-15",
    "2023-11-15-preview",
    "2024-02-15-preview",
    "2024-05-15",
    "2024-05-15-preview",
    "2024-08-15",
    "2024-09-01-preview",
    "2024-11-15",
    "2024-12-01-preview",
    "2025-04-15",
    "2025-05-01-preview",
    "2025-10-15",
    "2025-11-01-preview",
    // Not in the specs snapshot: the default of azure-mgmt-cosmosdb 10.0.0.
    "2026-03-15",
];

/// `Microsoft.KeyVault/vaults`:
/// `specification/keyvault/resource-manager/Microsoft.KeyVault/KeyVault/{stable,preview}/*`.
pub const KEYVAULT_MGMT: &[&str] = &[
    "2015-06-01",
    "2016-10-01",
    "2018-02-14",
    "2018-02-14-preview",
    "2019-09-01",
    "2020-04-01-preview",
    "2021-04-01-preview",
    "2021-06-01-preview",
    "2021-10-01",
    "2021-11-01-preview",
    "2022-02-01-preview",
    "2022-07-01",
    "2022-11-01",
    "2023-02-01",
    "2023-07-01",
    "2024-04-01-preview",
    "2024-11-01",
    "2024-12-01-preview",
    "2025-05-01",
    "2026-02-01",
    "2026-03-01-preview",
    // Not in the specs snapshot: the default of azure-mgmt-keyvault 14.1.0.
    "2026-05-15",
];

/// `Microsoft.Authorization/roleDefinitions`: the folders holding
/// `authorization-RoleDefinitionsCalls.json` (2015-07-01, 2018-01-01-preview,
/// 2022-04-01, 2022-05-01-preview; azure-mgmt-authorization 4.0.0 sends 2022-04-01).
pub const ROLE_DEFINITIONS: &[&str] = &[
    "2015-07-01",
    "2018-01-01-preview",
    "2022-04-01",
    "2022-05-01-preview",
];

/// `Microsoft.Authorization/roleAssignments`:
/// `specification/authorization/resource-manager/Microsoft.Authorization/Authorization/`
/// `{stable,preview}/*/authorization-RoleAssignmentsCalls.json`
/// (azure-mgmt-authorization 4.0.0 sends 2022-04-01).
pub const ROLE_ASSIGNMENTS: &[&str] = &[
    "2015-07-01",
    "2017-10-01-preview",
    "2018-01-01-preview",
    "2018-09-01-preview",
    "2020-03-01-preview",
    "2020-04-01-preview",
    "2020-08-01-preview",
    "2020-10-01-preview",
    "2022-01-01-preview",
    "2022-04-01",
];

/// `Microsoft.ManagedIdentity/userAssignedIdentities` (and federated credentials):
/// `specification/msi/resource-manager/Microsoft.ManagedIdentity/ManagedIdentity/`
/// `{stable,preview}/*/ManagedIdentity.json` (azure-mgmt-msi 7.1.0 sends 2024-11-30).
pub const MANAGED_IDENTITY: &[&str] = &[
    "2015-08-31-preview",
    "2018-11-30",
    "2021-09-30-preview",
    "2022-01-31-preview",
    "2023-01-31",
    "2023-07-31-preview",
    "2024-11-30",
    "2025-01-31-preview",
    "2025-05-31-preview",
    "2026-05-31",
];

/// Microsoft.Resources (`/subscriptions/{s}/providers/{ns}`):
/// `specification/resources/resource-manager/Microsoft.Resources/{resources/,}stable/*/resources.json`
/// (azure-mgmt-resource 26.0.0 sends 2025-04-01).
pub const PROVIDERS: &[&str] = &[
    "2015-01-01",
    "2015-11-01",
    "2016-02-01",
    "2016-07-01",
    "2016-09-01",
    "2017-05-10",
    "2018-02-01",
    "2018-05-01",
    "2019-03-01",
    "2019-05-01",
    "2019-05-10",
    "2019-07-01",
    "2019-08-01",
    "2019-10-01",
    "2020-06-01",
    "2020-08-01",
    "2020-10-01",
    "2021-01-01",
    "2021-04-01",
    "2022-09-01",
    "2023-07-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-03-01",
    "2025-04-01",
];

/// Microsoft.Resources subscriptions (`GET /subscriptions`, `Subscriptions_List`):
/// the stable folders of
/// `specification/resources/resource-manager/Microsoft.Resources/subscriptions/stable/*/subscriptions.json`.
pub const SUBSCRIPTIONS: &[&str] = &[
    "2015-11-01",
    "2016-06-01",
    "2018-06-01",
    "2019-06-01",
    "2019-11-01",
    "2020-01-01",
    "2021-01-01",
    "2022-12-01",
];

/// Key Vault data plane, keys:
/// `specification/keyvault/data-plane/Microsoft.KeyVault/{stable,preview}/*/keys.json`
/// (and the older single `keyvault.json`) and `specification/keyvault/data-plane/Keys/`.
/// The 0.21 Key Vault crate sends 7.0, the adapter 7.4; azure-keyvault-keys
/// 4.11.3 sends 2025-07-01.
pub const KEYVAULT_DATA: &[&str] = &[
    "2015-06-01",
    "2016-10-01",
    "7.0",
    "7.0-preview",
    "7.1",
    "7.1-preview",
    "7.2",
    "7.2-preview",
    "7.3",
    "7.3-preview",
    "7.4",
    "7.4-preview.1",
    "7.5",
    "7.5-preview.1",
    "7.6",
    "7.6-preview.1",
    "7.6-preview.2",
    "2025-06-01-preview",
    "2025-07-01",
    "2026-01-01-preview",
    "2026-03-01-preview",
];

/// The newest GA version of a list (lists are oldest first; previews skipped).
pub fn latest_stable(list: &[&'static str]) -> &'static str {
    list.iter()
        .rev()
        .find(|v| !v.contains("preview"))
        .copied()
        .unwrap_or_default()
}

/// What ARM answers for a resource provider's type at an api-version the
/// provider does not register:
/// `400 NoRegisteredProviderFound` "No registered resource provider found for
/// location '{location}' and API version '{v}' for type '{type}'. The
/// supported api-versions are '{a, b, …}'. The supported locations are
/// '{x, y, …}'." — the shape quoted from Azure in Azure/azure-cli#26639 and
/// #28496 (databaseAccounts, networkInterfaces) and #18483 (Key Vault
/// `vaults`). `location` is the request's location where it has one; global
/// types name `'global'` and carry no location list.
pub fn refuse_arm(v: &str, allowed: &[&str], type_name: &str, location: Option<&str>) -> ApiError {
    let loc = location.map_or_else(|| "global".to_owned(), regions::normalize);
    let mut message = format!(
        "No registered resource provider found for location '{loc}' and API version '{v}' for type '{type_name}'. The supported api-versions are '{}'.",
        allowed.join(", ")
    );
    if location.is_some() {
        message.push_str(&format!(
            " The supported locations are '{}'.",
            regions::available_for_messages()
        ));
    }
    ApiError::arm(
        StatusCode::BAD_REQUEST,
        "NoRegisteredProviderFound",
        message,
    )
}

/// What Microsoft.Resources answers on its own endpoints (providers,
/// resource groups) at an api-version it does not serve:
/// `400 InvalidApiVersionParameter` "The api-version '{v}' is invalid. The
/// supported versions are '{newest,…,oldest}'." — as quoted from Azure in
/// Azure/azure-cli#27109 and #28038.
pub fn refuse_resources(v: &str, allowed: &[&str]) -> ApiError {
    let newest_first: Vec<&str> = allowed.iter().rev().copied().collect();
    ApiError::arm(
        StatusCode::BAD_REQUEST,
        "InvalidApiVersionParameter",
        format!(
            "The api-version '{v}' is invalid. The supported versions are '{}'.",
            newest_first.join(",")
        ),
    )
}

/// What the Key Vault data plane answers at an api-version it does not know:
/// `400 {"error":{"code":"BadParameter","message":"The specified version (7.3)
/// is not recognized. Consider using the latest supported version (7.1)."}}` —
/// as quoted from Key Vault in Azure/azure-sdk-for-python#28595 and
/// Azure/azure-sdk-for-net#14789.
pub fn refuse_keyvault(v: &str) -> ApiError {
    ApiError::kv(
        StatusCode::BAD_REQUEST,
        "BadParameter",
        format!(
            "The specified version ({v}) is not recognized. Consider using the latest supported version ({}).",
            latest_stable(KEYVAULT_DATA)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_sdk_defaults_are_served() {
        // azure-mgmt-cosmosdb 10.0.0, azure-mgmt-keyvault 14.1.0,
        // azure-keyvault-keys 4.11.3, azure-mgmt-authorization 4.0.0,
        // azure-mgmt-msi 7.1.0, azure-mgmt-resource 26.0.0.
        assert!(COSMOS.contains(&"2026-03-15"));
        assert!(KEYVAULT_MGMT.contains(&"2026-05-15"));
        assert!(KEYVAULT_DATA.contains(&"2025-07-01"));
        assert!(ROLE_ASSIGNMENTS.contains(&"2022-04-01"));
        assert!(MANAGED_IDENTITY.contains(&"2024-11-30"));
        assert!(PROVIDERS.contains(&"2025-04-01"));
    }

    #[test]
    fn lists_are_sorted_and_unique() {
        for list in [
            COSMOS,
            KEYVAULT_MGMT,
            ROLE_ASSIGNMENTS,
            MANAGED_IDENTITY,
            PROVIDERS,
        ] {
            let mut sorted = list.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted, list.to_vec());
        }
        assert_eq!(latest_stable(COSMOS), "2026-03-15");
        assert_eq!(latest_stable(KEYVAULT_DATA), "2025-07-01");
    }

    #[test]
    fn refusals_have_azures_shapes() {
        let e = refuse_arm(
            "2099-01-01",
            &["a", "b"],
            "databaseAccounts",
            Some("West US"),
        );
        assert_eq!(e.code, "NoRegisteredProviderFound");
        assert!(e.message.starts_with("No registered resource provider found for location 'westus' and API version '2099-01-01' for type 'databaseAccounts'. The supported api-versions are 'a, b'. The supported locations are 'eastus, "));
        let e = refuse_resources("1999-01-01", &["a", "b"]);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            (
                "InvalidApiVersionParameter",
                "The api-version '1999-01-01' is invalid. The supported versions are 'b,a'."
            )
        );
        let e = refuse_keyvault("9.9");
        assert_eq!(
            e.message,
            "The specified version (9.9) is not recognized. Consider using the latest supported version (2025-07-01)."
        );
    }
}
