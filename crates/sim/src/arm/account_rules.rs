//! Refusals of `Microsoft.DocumentDB/databaseAccounts` writes that Azure
//! documents, shared by the create and update paths.

use axum::http::StatusCode;
use serde_json::Value;

use super::regions;
use crate::errors::ApiError;
use crate::state::{State, new_guid};

const TYPE: &str = "Microsoft.DocumentDB/databaseAccounts";

/// Whether a key URI names a key version (`…/keys/{name}/{version}`).
pub fn is_versioned(uri: &str) -> bool {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    let Some((_, after)) = path.rsplit_once("/keys/") else {
        return false;
    };
    after.split('/').filter(|s| !s.is_empty()).count() >= 2
}

/// A versioned `keyVaultKeyUri` is refused on create and on update.
///
/// Azure (Cosmos DB resource provider): `400 {"code":"BadRequest","message":
/// "Please provide KeyVault Key Uri without version. We will use latest
/// version of the key\r\nActivityId: …, Microsoft.Azure.Documents.Common/2.11.0"}`
/// — quoted from Azure in MicrosoftDocs/azure-docs#70179 (a deployment of
/// `az keyvault key show … --query key` output into `keyVaultKeyUri`).
pub fn versionless_key_uri(uri: &str) -> Result<(), ApiError> {
    if is_versioned(uri) {
        return Err(ApiError::bad_request(format!(
            "Please provide KeyVault Key Uri without version. We will use latest version of the key\r\nActivityId: {}, Microsoft.Azure.Documents.Common/2.14.0",
            new_guid()
        )));
    }
    Ok(())
}

/// Account names are DNS names under `documents.azure.com`: one account of a
/// name in the whole cloud, whatever its subscription or resource group.
///
/// Docs ("Create an Azure Cosmos DB account", how-to-manage-database-account):
/// "Because documents.azure.com is appended to the name that you provide to
/// create your URI, use a unique name." Azure's answer to a taken name:
/// `{"code":"BadRequest","message":"Dns record for {name} under zone Document
/// is already taken. Please use a different name for the account."}` — quoted
/// from Azure in OfficeDev/microsoft-teams-apps-callrecord-insights#26.
/// `key` is the (lower-case) id of the account being created.
pub fn name_free(state: &State, key: &str, name: &str) -> Result<(), ApiError> {
    let taken = state
        .accounts
        .iter()
        .any(|(k, a)| k != key && a.name.eq_ignore_ascii_case(name));
    if taken {
        return Err(ApiError::bad_request(format!(
            "Dns record for {name} under zone Document is already taken. Please use a different name for the account."
        )));
    }
    Ok(())
}

/// Whether any account in the cloud has this name (CheckNameExists).
pub fn name_exists(state: &State, name: &str) -> bool {
    state
        .accounts
        .values()
        .any(|a| a.name.eq_ignore_ascii_case(name))
}

/// The account's `location` and every `locations[].locationName` must be
/// Azure regions (see [`regions`]). Azure documents ARM's answer for the
/// top-level `location` (`LocationNotAvailableForResourceType`); for an entry
/// of `locations` the resource provider's own wording is not documented, and
/// the simulator answers the same way.
pub fn locations_known(location: &str, locations: &[Value]) -> Result<(), ApiError> {
    regions::check(location, TYPE)?;
    for l in locations {
        if let Some(name) = l.get("locationName").and_then(Value::as_str) {
            regions::check(name, TYPE)?;
        }
    }
    Ok(())
}

/// `HEAD /providers/Microsoft.DocumentDB/databaseAccountNames/{name}`
/// (`DatabaseAccounts_CheckNameExists` in cosmos-db.json): 200 when the name
/// is taken, 404 when it is free, no body either way.
pub fn name_exists_status(state: &State, name: &str) -> StatusCode {
    if name_exists(state, name) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

/// The enumerated account settings take only the values of Cosmos DB's REST
/// spec (2025-10-15: `PublicNetworkAccess`, `NetworkAclBypass`,
/// `MinimalTlsVersion`); the wording of the refusal is the simulator's (no
/// recording of it).
pub fn settings_valid(props: &Value) -> Result<(), ApiError> {
    const ENUMS: [(&str, &[&str]); 3] = [
        (
            "publicNetworkAccess",
            &["Enabled", "Disabled", "SecuredByPerimeter"],
        ),
        ("networkAclBypass", &["None", "AzureServices"]),
        ("minimalTlsVersion", &["Tls", "Tls11", "Tls12"]),
    ];
    for (field, allowed) in ENUMS {
        let Some(v) = props.get(field) else { continue };
        let ok = v
            .as_str()
            .is_some_and(|s| allowed.iter().any(|a| a.eq_ignore_ascii_case(s)));
        if !ok {
            return Err(ApiError::bad_request(format!(
                "The value {v} of '{field}' is not valid: the allowed values are {}.",
                allowed.join(", ")
            )));
        }
    }
    for field in ["disableLocalAuth", "isVirtualNetworkFilterEnabled"] {
        if props.get(field).is_some_and(|v| !v.is_boolean()) {
            return Err(ApiError::bad_request(format!(
                "The value of '{field}' must be a boolean."
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_uris() {
        for u in [
            "https://kv.vault.azure.net/keys/cmk/0123456789abcdef0123456789abcdef",
            "https://kv.vault.azure.net/keys/cmk/0123456789abcdef0123456789abcdef/",
            "https://kv.vault.azure.cn:8443/keys/cmk/abc",
        ] {
            assert!(is_versioned(u), "{u}");
            let e = versionless_key_uri(u).unwrap_err();
            assert_eq!(
                (e.status, e.code.as_str()),
                (StatusCode::BAD_REQUEST, "BadRequest")
            );
            assert!(
                e.message
                    .starts_with("Please provide KeyVault Key Uri without version. We will use latest version of the key\r\nActivityId: ")
            );
        }
        for u in [
            "https://kv.vault.azure.net/keys/cmk",
            "https://kv.vault.azure.net/keys/cmk/",
            "https://kv.vault.azure.cn:8443/keys/cmk",
            "",
        ] {
            assert!(!is_versioned(u), "{u}");
            versionless_key_uri(u).unwrap();
        }
    }
}
