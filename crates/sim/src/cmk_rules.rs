//! The customer-managed-key rules of the seed document, and Key Vault
//! permission evaluation under the vault's active model (access policies or RBAC).

use axum::http::StatusCode;

use super::errors::ApiError;
use super::faults::FaultConfig;
use super::server::App;
use super::state::{AccountIdentity, State, Vault};

/// The Key Vault data action behind an access-policy key permission
/// (Key Vault RBAC guide; the built-in roles' `dataActions`).
pub fn rbac_data_action(perm: &str) -> &'static str {
    match perm.to_ascii_lowercase().as_str() {
        "create" => "Microsoft.KeyVault/vaults/keys/create/action",
        "rotate" => "Microsoft.KeyVault/vaults/keys/rotate/action",
        "update" => "Microsoft.KeyVault/vaults/keys/update/action",
        "wrapkey" => "Microsoft.KeyVault/vaults/keys/wrap/action",
        "unwrapkey" => "Microsoft.KeyVault/vaults/keys/unwrap/action",
        "encrypt" => "Microsoft.KeyVault/vaults/keys/encrypt/action",
        "decrypt" => "Microsoft.KeyVault/vaults/keys/decrypt/action",
        "setrotationpolicy" => "Microsoft.KeyVault/vaults/keyrotationpolicies/write",
        "getrotationpolicy" => "Microsoft.KeyVault/vaults/keyrotationpolicies/read",
        _ => "Microsoft.KeyVault/vaults/keys/read",
    }
}

/// Whether `principal` holds key permission `perm` on `vault` under its active model.
pub fn permitted(state: &State, vault: &Vault, principal: &str, perm: &str) -> bool {
    let perm = perm.to_ascii_lowercase();
    if vault.rbac() {
        // Role assignments at the vault or above whose roles' dataActions
        // (less notDataActions) cover the operation.
        let action = rbac_data_action(&perm);
        state.principal_may(principal, &vault.id(), |p| {
            crate::roles::allows_data_action(p, action)
        })
    } else {
        vault.access_policies().iter().any(|p| {
            p.get("objectId")
                .and_then(|o| o.as_str())
                .is_some_and(|o| o.eq_ignore_ascii_case(principal))
                && p.pointer("/permissions/keys")
                    .and_then(|k| k.as_array())
                    .is_some_and(|ks| {
                        ks.iter()
                            .filter_map(|k| k.as_str())
                            .any(|k| k.eq_ignore_ascii_case(&perm) || k.eq_ignore_ascii_case("all"))
                    })
        })
    }
}

/// A parsed key identifier.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRef {
    pub vault: String,
    pub key: String,
    pub version: Option<String>,
}

/// Parses a key URI as Cosmos DB takes it: `https://{vault}.{Key Vault DNS
/// suffix}/keys/{key}[/{version}]` of any cloud (the port is ignored).
pub fn parse_key_uri(uri: &str) -> Option<KeyRef> {
    let url = url::Url::parse(uri).ok()?;
    let vault = super::hosts::vault_of_url(&url)?;
    let segs: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["keys", key] => Some(KeyRef {
            vault,
            key: (*key).to_owned(),
            version: None,
        }),
        ["keys", key, version] => Some(KeyRef {
            vault,
            key: (*key).to_owned(),
            version: Some((*version).to_owned()),
        }),
        _ => None,
    }
}

fn cmk_err(status: StatusCode, code: &str, substatus: Option<u32>, message: String) -> ApiError {
    let message = match substatus {
        Some(s) => format!("{message} (Status: {}, Substatus: {s})", status.as_u16()),
        None => message,
    };
    let e = ApiError::arm(status, code, message);
    match substatus {
        Some(s) => e.substatus(s),
        None => e,
    }
}

/// The object id Cosmos DB uses to reach the vault for `default_identity`.
pub fn principal_for(
    app: &App,
    state: &State,
    identity: &AccountIdentity,
    default_identity: &str,
) -> Result<String, ApiError> {
    if default_identity == crate::arm::cosmos::UNDEFINED_IDENTITY {
        return Err(ApiError::bad_request(
            "The account has no default identity (its identity was removed): assign an identity and set defaultIdentity.",
        ));
    }
    if default_identity.eq_ignore_ascii_case("FirstPartyIdentity") {
        return Ok(app.config.cosmos_first_party_object_id.clone());
    }
    if default_identity.eq_ignore_ascii_case("SystemAssignedIdentity") {
        return identity.system_principal_id.clone().ok_or_else(|| {
            ApiError::bad_request("The default identity 'SystemAssignedIdentity' requires the account's identity type to include 'SystemAssigned'.")
        });
    }
    if let Some(id) = default_identity
        .strip_prefix("UserAssignedIdentity=")
        .or_else(|| default_identity.strip_prefix("userAssignedIdentity="))
    {
        if !identity
            .user_assigned
            .iter()
            .any(|u| u.eq_ignore_ascii_case(id))
        {
            return Err(ApiError::bad_request(format!(
                "The default identity '{default_identity}' is not among the user-assigned identities of the account."
            )));
        }
        return state
            .identity_by_id(id)
            .map(|i| i.principal_id.clone())
            .ok_or_else(|| {
                ApiError::bad_request(format!("User-assigned identity '{id}' was not found."))
            });
    }
    Err(ApiError::bad_request(format!(
        "Invalid defaultIdentity '{default_identity}'. Valid values are 'FirstPartyIdentity', 'SystemAssignedIdentity' and 'UserAssignedIdentity=<identity resource id>'."
    )))
}

/// The key and version an account can use.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub vault: String,
    pub key: String,
    pub version_in_use: String,
}

/// Checks every CMK rule for `principal` using `key_uri`: vault found and
/// reachable, soft delete and purge protection, network open to trusted Azure
/// services, Get/WrapKey/UnwrapKey granted, key present and enabled.
pub fn check_access(
    state: &State,
    faults: &FaultConfig,
    key_uri: &str,
    principal: &str,
) -> Result<Resolved, ApiError> {
    let kref = parse_key_uri(key_uri).ok_or_else(|| {
        cmk_err(StatusCode::BAD_REQUEST, "BadRequest", Some(4006), format!("The Key Vault key URI '{key_uri}' is invalid. Expected 'https://<vault>.vault.azure.net/keys/<key>[/<version>]'."))
    })?;
    let vault = state.vault_by_name(&kref.vault).ok_or_else(|| {
        cmk_err(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            Some(4009),
            format!(
                "The Key Vault DNS name for '{}' could not be resolved.",
                kref.vault
            ),
        )
    })?;
    if faults.vault_unreachable(&vault.name) {
        return Err(cmk_err(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            Some(4004),
            format!(
                "The Key Vault '{}' is unavailable. Please retry later.",
                vault.name
            ),
        ));
    }
    if !vault.soft_delete() || !vault.purge_protection() {
        return Err(cmk_err(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            None,
            format!(
                "The Key Vault '{}' must have soft delete and purge protection enabled to be used for customer-managed keys (enableSoftDelete={}, enablePurgeProtection={}).",
                vault.name,
                vault.soft_delete(),
                vault.purge_protection()
            ),
        ));
    }
    if !vault.azure_services_allowed() {
        return Err(cmk_err(
            StatusCode::FORBIDDEN,
            "Forbidden",
            Some(4002),
            format!(
                "Azure Cosmos DB could not access the Key Vault '{}': ForbiddenByFirewall. The vault must allow public network access or let trusted Microsoft services bypass its firewall.",
                vault.name
            ),
        ));
    }
    let missing: Vec<&str> = ["get", "wrapKey", "unwrapKey"]
        .into_iter()
        .filter(|p| !permitted(state, vault, principal, p))
        .collect();
    if !missing.is_empty() {
        let model = if vault.rbac() {
            "role-based access control"
        } else {
            "access policies"
        };
        return Err(cmk_err(
            StatusCode::FORBIDDEN,
            "Forbidden",
            Some(4002),
            format!(
                "The identity '{principal}' does not have the key permissions [{}] on Key Vault '{}' (permission model: {model}).",
                missing.join(", "),
                vault.name
            ),
        ));
    }
    let key = state
        .keys
        .get(&vault.name.to_ascii_lowercase())
        .and_then(|ks| ks.get(&kref.key.to_ascii_lowercase()))
        .ok_or_else(|| {
            cmk_err(
                StatusCode::NOT_FOUND,
                "NotFound",
                Some(4003),
                format!(
                    "The key '{}' was not found in Key Vault '{}'.",
                    kref.key, vault.name
                ),
            )
        })?;
    let version = match &kref.version {
        Some(v) => key
            .versions
            .iter()
            .find(|kv| kv.version.eq_ignore_ascii_case(v))
            .ok_or_else(|| {
                cmk_err(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    Some(4003),
                    format!(
                        "The key version '{}/{v}' was not found in Key Vault '{}'.",
                        kref.key, vault.name
                    ),
                )
            })?,
        None => key.versions.last().ok_or_else(|| {
            cmk_err(
                StatusCode::NOT_FOUND,
                "NotFound",
                Some(4003),
                format!("The key '{}' has no versions.", kref.key),
            )
        })?,
    };
    if crate::keyvault::rotation::expired(version, super::state::now_ms()) {
        // Cosmos DB wraps with the key; Key Vault refuses wrapKey on an
        // expired version ("About keys", `exp`), which revokes the account.
        return Err(cmk_err(
            StatusCode::FORBIDDEN,
            "Forbidden",
            Some(4002),
            format!(
                "The key '{}' version '{}' in Key Vault '{}' is expired.",
                kref.key, version.version, vault.name
            ),
        ));
    }
    if !version.enabled {
        return Err(cmk_err(
            StatusCode::FORBIDDEN,
            "Forbidden",
            Some(4002),
            format!(
                "The key '{}' version '{}' in Key Vault '{}' is disabled.",
                kref.key, version.version, vault.name
            ),
        ));
    }
    Ok(Resolved {
        vault: vault.name.clone(),
        key: key.name.clone(),
        version_in_use: version.version.clone(),
    })
}

/// `customerManagedKeyStatus` of an account with key access, trailing space
/// included (every answer of azure-cli test_cosmosdb_system_identity_restore.yaml,
/// 2023; replayed).
pub const STATUS_OK: &str = "Access to the configured customer managed key confirmed. ";

/// The `customerManagedKeyStatus` text for a revoked account.
pub fn revoked_status(substatus: u32) -> String {
    format!(
        "Access to your account is currently revoked because the Azure Cosmos DB service is unable to access the customer managed key; for more details about this error and how to restore access to your account please visit https://learn.microsoft.com/en-us/azure/cosmos-db/cmk-troubleshooting-guide#{substatus}"
    )
}
