//! `KeyVaultBinding`: "this Key Vault key is fit to protect Cosmos DB accounts".

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{AzureErrorRecord, CredentialRef, Phase};
use super::key_rotation::{KeyRotation, RotateRequest};
use super::patterns;

/// A Key Vault key checked and prepared for Cosmos DB customer-managed keys: the vault
/// passes the preflight (soft delete, purge protection, reachable by Azure services),
/// its permission model is known, and the key exists.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cosmoscmk.io",
    version = "v1alpha1",
    kind = "KeyVaultBinding",
    namespaced,
    status = "KeyVaultBindingStatus",
    shortname = "kvb",
    category = "cosmoscmk",
    doc = "A Key Vault key prepared for Cosmos DB customer-managed keys (vault preflight, permission model, key).",
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name": "Key", "type": "string", "jsonPath": ".spec.key.name"}"#,
    printcolumn = r#"{"name": "Key Version", "type": "string", "jsonPath": ".status.keyVersion"}"#,
    printcolumn = r#"{"name": "Model", "type": "string", "jsonPath": ".status.permissionModel", "priority": 1}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultBindingSpec {
    /// ARM resource id of the Key Vault, e.g.
    /// `/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>`.
    /// The vault must have soft delete and purge protection enabled and be reachable by
    /// Azure services (public network access, or the trusted-services bypass); a vault
    /// reachable only through private endpoints cannot hold Cosmos DB keys.
    #[schemars(length(min = 1, max = 512), regex(pattern = patterns::VAULT_ID))]
    #[x_kube(validation = Rule::new("!self.split('/')[size(self.split('/')) - 1].contains('--')")
        .message("a Key Vault name cannot contain consecutive hyphens (Azure refuses it): fix the vault name in vaultResourceId"))]
    pub vault_resource_id: String,

    /// The key that encrypts the accounts bound to this vault.
    pub key: KeySpec,

    /// How grants to the key are made. `Auto` follows the vault's `enableRbacAuthorization`;
    /// `AccessPolicy` or `RBAC` insist on one model and fail when the vault uses the other
    /// (only one model is active on a vault at a time).
    #[serde(default)]
    pub permission_model: PermissionModel,

    /// Azure credentials to use for this vault; omit to use the operator's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_ref: Option<CredentialRef>,

    /// Whether the operator may remove the Get/WrapKey/UnwrapKey grants it made on this
    /// vault once no resource of the cluster needs them. `Keep` (the default) never
    /// removes one: a grant may serve accounts outside the cluster, in other
    /// subscriptions or other services' keys, and the first-party grant serves every
    /// first-party account of the tenant on the vault. `RemoveWhenUnused` removes a
    /// grant the operator made once Azure shows no Cosmos DB account in any subscription
    /// the operator can read using that principal with a key of this vault.
    #[serde(default)]
    pub grant_removal: GrantRemoval,
}

/// What happens to the grants the operator made on a vault once nothing in the
/// cluster needs them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GrantRemoval {
    /// Leave every grant in place (an event says which and why).
    #[default]
    Keep,
    /// Remove a grant the operator made when Azure shows nothing using it.
    RemoveWhenUnused,
}

/// The key in the vault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.name != oldSelf.name || (self.type == oldSelf.type && self.size == oldSelf.size)")
    .message("a key's type and size cannot change in Key Vault: to use another type or size, name a new key in key.name as well (the bound accounts move to it)"))]
pub struct KeySpec {
    /// Key name in the vault (1-127 letters, digits and hyphens). Changing it rotates every
    /// account bound to this binding to the new key.
    #[schemars(length(min = 1, max = 127), regex(pattern = patterns::KEY_NAME))]
    pub name: String,

    /// Create the key when the vault does not have it. When false, a missing key is an error.
    #[serde(default = "default_true")]
    pub create_if_missing: bool,

    /// Key type used when the operator creates the key: `RSA` (software-protected) or
    /// `RSA-HSM` (HSM-protected, Premium vaults).
    #[serde(default, rename = "type")]
    pub key_type: KeyType,

    /// RSA key size in bits used when the operator creates the key: 2048, 3072 or 4096.
    /// Azure recommends at least 3072; 2048 is accepted with a warning event.
    #[serde(default = "default_key_size")]
    #[schemars(range(min = 2048, max = 4096))]
    #[x_kube(validation = Rule::new("self in [2048, 3072, 4096]")
        .message("key size must be 2048, 3072 or 4096 bits; use 3072 (recommended) or 4096"))]
    pub size: i32,

    /// Key Vault's rotation policy for the key: rotate on a schedule, expire
    /// new versions, notify before expiry (docs/rotating-keys.md). Omit it to
    /// leave the key's policy as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<KeyRotation>,
}

fn default_true() -> bool {
    true
}

fn default_key_size() -> i32 {
    3072
}

/// Key types Cosmos DB accepts for customer-managed keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum KeyType {
    /// Software-protected RSA key.
    #[default]
    #[serde(rename = "RSA")]
    Rsa,
    /// HSM-protected RSA key (Premium vault or Managed HSM).
    #[serde(rename = "RSA-HSM")]
    RsaHsm,
}

/// Permission model used to grant identities access to the key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PermissionModel {
    /// Follow the vault: RBAC when `enableRbacAuthorization` is true, access policies otherwise.
    #[default]
    Auto,
    /// Vault access policies granting Get, WrapKey and UnwrapKey.
    AccessPolicy,
    /// Azure RBAC role "Key Vault Crypto Service Encryption User" on the vault.
    #[serde(rename = "RBAC")]
    Rbac,
}

/// What the operator observed about the vault and the key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultBindingStatus {
    /// Coarse phase for `kubectl get`; see the conditions for detail.
    #[serde(default)]
    pub phase: Phase,
    /// `Ready` with a reason and an actionable message.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The vault's data-plane URI, e.g. `https://myvault.vault.azure.net/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_uri: Option<String>,
    /// The permission model in force: `AccessPolicy` or `RBAC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_model: Option<PermissionModel>,
    /// Versionless key URI that accounts are created with, so they follow new key versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_uri: Option<String>,
    /// The key's current (latest enabled) version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<String>,
    /// When the key's current version expires (RFC 3339); absent when it has no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_expires_on: Option<String>,
    /// When Key Vault's rotation policy rotates the key next (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_on: Option<String>,
    /// The rotation policy this binding applied and last saw in Key Vault (only
    /// with `spec.key.rotation`); absent while the key holds a policy set
    /// outside the binding, which the operator leaves alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<KeyRotation>,
    /// The last `cosmoscmk.io/rotate` request acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_request: Option<RotateRequest>,
    /// Whether the operator created the key (it never deletes keys either way).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_created_by_operator: bool,
    /// What the vault preflight found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<VaultPreflight>,
    /// The last error Azure returned for this binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_azure_error: Option<AzureErrorRecord>,
}

/// Vault properties that decide whether Cosmos DB can use its keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultPreflight {
    /// `enableSoftDelete` on the vault (required).
    pub soft_delete_enabled: bool,
    /// `enablePurgeProtection` on the vault (required).
    pub purge_protection_enabled: bool,
    /// `publicNetworkAccess` on the vault (`Enabled` or `Disabled`).
    pub public_network_access: String,
    /// Whether the firewall lets trusted Azure services through (`networkAcls.bypass` = `AzureServices`).
    pub trusted_services_bypass: bool,
    /// Why the vault cannot be used, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}
