//! `CosmosAccountCMK`: "this Cosmos DB account exists, encrypted with that key".

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::account_settings::{
    AccountSettings, IpRule, MinimalTlsVersion, NetworkAclBypass, PublicNetworkAccess,
    VirtualNetworkRule,
};
use super::common::{AzureErrorRecord, CredentialRef, LocalObjectRef, Phase};
use super::key_vault_binding::PermissionModel;
use super::patterns;

/// A Cosmos DB account encrypted with a customer-managed key from a `KeyVaultBinding`.
/// The operator walks vault-ready -> identity-granted -> account-created -> rotation-tracked
/// and reports each stage as a condition.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cosmoscmk.io",
    version = "v1alpha1",
    kind = "CosmosAccountCMK",
    plural = "cosmosaccountcmks",
    singular = "cosmosaccountcmk",
    namespaced,
    status = "CosmosAccountCMKStatus",
    shortname = "cacmk",
    category = "cosmoscmk",
    doc = "An Azure Cosmos DB account encrypted with a customer-managed key held in Azure Key Vault.",
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name": "Account", "type": "string", "jsonPath": ".spec.accountName"}"#,
    printcolumn = r#"{"name": "Key Version", "type": "string", "jsonPath": ".status.keyVersionInUse"}"#,
    printcolumn = r#"{"name": "Identity", "type": "string", "jsonPath": ".spec.identity.type", "priority": 1}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("oldSelf.hasValue() || self.backupPolicy.type != 'Continuous' || self.identity.type == 'UserAssigned'")
        .optional_old_self(true)
        .message("continuous backup with a customer-managed key needs a UserAssigned identity when the account is created: set identity.type to UserAssigned with userAssignedIdentityId, or create with Periodic backup and switch later")
        .field_path(".identity.type"),
    validation = Rule::new("oldSelf.hasValue() || !has(self.restore) || self.identity.type == 'UserAssigned'")
        .optional_old_self(true)
        .message("a restore needs a UserAssigned identity (the source account's identities are not carried over): set identity.type to UserAssigned with userAssignedIdentityId")
        .field_path(".identity.type"),
    validation = Rule::new("has(self.restore) == has(oldSelf.restore) && (!has(self.restore) || self.restore == oldSelf.restore)")
        .message("restore can only be set when the resource is created: it cannot be added, changed or removed later; create a new CosmosAccountCMK to restore again")
        .field_path(".restore")
        .reason(kube::core::Reason::FieldValueForbidden),
    validation = Rule::new("oldSelf.backupPolicy.type != 'Continuous' || self.backupPolicy.type == 'Continuous'")
        .message("backupPolicy cannot go from Continuous back to Periodic: Azure's migration to continuous backup is one-way")
        .field_path(".backupPolicy.type")
        .reason(kube::core::Reason::FieldValueForbidden),
    validation = Rule::new("self.backupPolicy.type != 'Continuous' || self.identity.type != 'FirstParty'")
        .message("Azure does not support the first-party identity on accounts with continuous backup: use identity.type SystemAssigned or UserAssigned (at creation, continuous backup needs UserAssigned)")
        .field_path(".identity.type")
        .reason(kube::core::Reason::FieldValueForbidden),
    validation = Rule::new("(has(self.capabilities) && size(self.capabilities) > 0) == (has(oldSelf.capabilities) && size(oldSelf.capabilities) > 0) && (!has(self.capabilities) || !has(oldSelf.capabilities) || self.capabilities == oldSelf.capabilities)")
        .message("capabilities are immutable: they select the account's API and features, which the operator does not change after creation; create a new account")
        .field_path(".capabilities")
        .reason(kube::core::Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.restore) || !self.adoptExistingAccount")
        .message("restore creates a new account, adoptExistingAccount takes over an existing one: set only one of them")
        .field_path(".adoptExistingAccount")
        .reason(kube::core::Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.capabilities) || self.capabilities.filter(c, c in ['EnableCassandra', 'EnableTable', 'EnableGremlin', 'EnableMongo']).size() <= 1")
        .message("an account has one API: at most one of EnableCassandra, EnableTable, EnableGremlin and EnableMongo")
        .field_path(".capabilities"),
    validation = Rule::new("!has(self.capabilities) || self.kind == 'MongoDB' || !self.capabilities.exists(c, c == 'EnableMongo')")
        .message("EnableMongo needs kind MongoDB")
        .field_path(".capabilities"),
    validation = Rule::new("!has(self.capabilities) || self.kind != 'MongoDB' || !self.capabilities.exists(c, c in ['EnableCassandra', 'EnableTable', 'EnableGremlin'])")
        .message("kind MongoDB is the API for MongoDB: it cannot also have EnableCassandra, EnableTable or EnableGremlin; use kind GlobalDocumentDB for those")
        .field_path(".capabilities"),
)]
#[serde(rename_all = "camelCase")]
pub struct CosmosAccountCMKSpec {
    /// Azure subscription id (a GUID) of the account. Immutable.
    #[schemars(length(min = 36, max = 36), regex(pattern = patterns::SUBSCRIPTION_ID))]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("subscriptionId is immutable: an account cannot move between subscriptions here; create a new CosmosAccountCMK instead"))]
    pub subscription_id: String,

    /// Resource group of the account (1-90 letters, digits, `-_.()`, not ending in a period). Immutable.
    #[schemars(length(min = 1, max = 90), regex(pattern = patterns::RESOURCE_GROUP))]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("resourceGroup is immutable: create a new CosmosAccountCMK for an account in another resource group"))]
    pub resource_group: String,

    /// Cosmos DB account name: 3-44 lowercase letters, digits and hyphens, globally unique,
    /// not starting or ending with a hyphen. Immutable.
    #[schemars(length(min = 3, max = 44), regex(pattern = patterns::ACCOUNT_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("accountName is immutable: Azure cannot rename an account; create a new CosmosAccountCMK with the new name"))]
    pub account_name: String,

    /// Account regions. Required with customer-managed keys: at least one, exactly one with
    /// failoverPriority 0 (the write region), no region twice. Changes converge one Azure
    /// operation at a time: regions added, the failover order changed, regions removed.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(
        validation = Rule::new("self.exists_one(l, l.failoverPriority == 0)")
            .message("exactly one location must have failoverPriority 0 (the write region); give the others 1, 2, ..."),
        validation = Rule::new("self.all(a, self.exists_one(b, b.locationName.lowerAscii().replace(' ', '') == a.locationName.lowerAscii().replace(' ', '')))")
            .message("each location may appear only once (names are compared ignoring case and spaces, so 'East US' equals 'eastus'); remove the duplicate"),
        validation = Rule::new("self.all(a, self.exists_one(b, b.failoverPriority == a.failoverPriority))")
            .message("failoverPriority values must be unique across locations; number them 0, 1, 2, ..."),
        validation = Rule::new("self.all(l, l.failoverPriority < size(self))")
            .message("failoverPriority values must run 0, 1, ... without gaps: Azure allows at most the number of regions minus 1"),
        validation = Rule::new("self.all(l, oldSelf.all(o, o.locationName.lowerAscii().replace(' ', '') != l.locationName.lowerAscii().replace(' ', '') || o.isZoneRedundant == l.isZoneRedundant))")
            .message("isZoneRedundant of an existing region cannot change (Azure sets it when the region is added): remove the region, wait for Ready, then add it back with the new setting"),
    )]
    pub locations: Vec<Location>,

    /// Account kind (API): `GlobalDocumentDB` (NoSQL, Cassandra, Gremlin, Table) or `MongoDB`. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("kind is immutable: Azure cannot change an account's API; create a new account"))]
    pub kind: AccountKind,

    /// Account capabilities, e.g. `EnableCassandra`, `EnableTable`, `EnableGremlin`, `EnableServerless`.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 64), regex(pattern = patterns::CAPABILITY)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub capabilities: Vec<String>,

    /// The `KeyVaultBinding` (same namespace) whose key encrypts this account.
    pub key_vault_binding_ref: LocalObjectRef,

    /// The identity Cosmos DB uses to reach the key. Defaults to the Cosmos DB first-party identity.
    #[serde(default)]
    pub identity: AccountIdentity,

    /// Backup policy. Continuous backup with CMK needs a UserAssigned identity at creation;
    /// Periodic -> Continuous later is a one-way migration (SystemAssigned or UserAssigned).
    #[serde(default)]
    pub backup_policy: BackupPolicy,

    /// Create the account by restoring a continuous-backup account to a point in time.
    /// Only at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSource>,

    /// Take over an account with this name that exists in Azure but was not created by
    /// this resource (it carries no owner tags): the operator tags it as this resource's
    /// and then manages it. An account without CMK gets CMK enabled, which is irreversible.
    /// An account owned by another resource is never taken over.
    #[serde(default)]
    pub adopt_existing_account: bool,

    /// What adopting an existing account may change. An account that already has CMK
    /// on another key, or another default identity, is only moved when allowed here;
    /// otherwise adoption stops with `AdoptionNeedsConsent` and writes nothing.
    #[serde(default, skip_serializing_if = "AdoptionConsent::is_empty")]
    pub adoption_consent: AdoptionConsent,

    /// What happens in Azure when this object is deleted: `Retain` (default) leaves the
    /// account and the grants; `Delete` deletes the account and the grants the operator made.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Manage` corrects drift made in Azure; `ObserveOnly` only reports it and never writes.
    #[serde(default)]
    pub reconcile_policy: ReconcilePolicy,

    /// Key rotation behaviour.
    #[serde(default)]
    pub rotation: RotationSettings,

    /// Azure credentials for the account's subscription; omit to use the operator's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_ref: Option<CredentialRef>,

    /// Azure tags for the account, besides the operator's owner tags (which always
    /// win and cannot be set here). Written at creation and kept at these values;
    /// a tag removed from this list is left on the account (docs/azure-policy.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 11))]
    #[x_kube(
        validation = Rule::new("self.all(k, !k.lowerAscii().startsWith('cosmoscmk.io-'))")
            .message("tag names starting with cosmoscmk.io- are the operator's owner tags and cannot be set in spec.tags: rename the tag"),
        validation = Rule::new("self.all(k, size(k) <= 128 && size(self[k]) <= 256)")
            .message("Azure tag names are at most 128 characters and values at most 256: shorten the tag"),
    )]
    pub tags: BTreeMap<String, String>,

    /// `Enabled`, `Disabled` (private endpoints only) or `SecuredByPerimeter`. Unset
    /// leaves Azure's value (`Enabled` for a new account). The built-in policy
    /// "Azure Cosmos DB should disable public network access" wants `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_network_access: Option<PublicNetworkAccess>,

    /// IP firewall rules (the whole list; unset leaves Azure's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub ip_rules: Option<Vec<IpRule>>,

    /// Virtual network (subnet) rules (the whole list; unset leaves Azure's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub virtual_network_rules: Option<Vec<VirtualNetworkRule>>,

    /// Whether the virtual network rules are enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_virtual_network_filter_enabled: Option<bool>,

    /// `None` or `AzureServices` (the services in `networkAclBypassResourceIds` bypass the firewall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_acl_bypass: Option<NetworkAclBypass>,

    /// ARM ids of the Azure services allowed through with `networkAclBypass: AzureServices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 1024)))]
    pub network_acl_bypass_resource_ids: Option<Vec<String>>,

    /// `true` allows only Microsoft Entra ID (no account keys). The built-in policy
    /// "Cosmos DB database accounts should have local authentication methods
    /// disabled" wants `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_local_auth: Option<bool>,

    /// Lowest TLS version clients may use: `Tls`, `Tls11` or `Tls12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimal_tls_version: Option<MinimalTlsVersion>,
}

impl CosmosAccountCMKSpec {
    /// The account settings the spec sets (the rest left to Azure).
    pub fn settings(&self) -> AccountSettings {
        AccountSettings {
            public_network_access: self.public_network_access,
            ip_rules: self.ip_rules.clone(),
            virtual_network_rules: self.virtual_network_rules.clone(),
            is_virtual_network_filter_enabled: self.is_virtual_network_filter_enabled,
            network_acl_bypass: self.network_acl_bypass,
            network_acl_bypass_resource_ids: self.network_acl_bypass_resource_ids.clone(),
            disable_local_auth: self.disable_local_auth,
            minimal_tls_version: self.minimal_tls_version,
        }
    }
}

/// Changes to an adopted account the user agrees to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdoptionConsent {
    /// Move an account that uses CMK on another key to this resource's key. The key
    /// version it used before stays recorded as needed by its backups.
    #[serde(default)]
    pub replace_key: bool,
    /// Change the account's default identity (and add the identity this resource names).
    #[serde(default)]
    pub replace_identity: bool,
}

impl AdoptionConsent {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One region of the account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Azure region, e.g. `eastus` or `East US`.
    #[schemars(length(min = 2, max = 50), regex(pattern = patterns::LOCATION))]
    pub location_name: String,
    /// 0 for the write region, 1.. for failover order.
    #[schemars(range(min = 0, max = 99))]
    pub failover_priority: i32,
    /// Spread the region's replicas across availability zones.
    #[serde(default)]
    pub is_zone_redundant: bool,
}

/// Cosmos DB account kinds (`DatabaseAccountKind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AccountKind {
    /// NoSQL, and Cassandra, Gremlin or Table with the matching capability.
    #[default]
    GlobalDocumentDB,
    /// API for MongoDB.
    MongoDB,
}

impl AccountKind {
    /// ARM's `kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GlobalDocumentDB => "GlobalDocumentDB",
            Self::MongoDB => "MongoDB",
        }
    }
}

/// Which identity Cosmos DB uses to reach the key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type != 'UserAssigned' || has(self.userAssignedIdentityId)")
        .message("identity type UserAssigned needs userAssignedIdentityId: set it to /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>")
        .field_path(".userAssignedIdentityId")
        .reason(kube::core::Reason::FieldValueRequired),
    validation = Rule::new("self.type == 'UserAssigned' || !has(self.userAssignedIdentityId)")
        .message("userAssignedIdentityId is only allowed with identity type UserAssigned: remove it, or set type to UserAssigned")
        .field_path(".userAssignedIdentityId")
        .reason(kube::core::Reason::FieldValueForbidden),
)]
pub struct AccountIdentity {
    /// `FirstParty` (the Cosmos DB service principal), `SystemAssigned` (the account's own
    /// identity, switched to after creation), or `UserAssigned`.
    #[serde(default, rename = "type")]
    pub type_: IdentityType,
    /// ARM id of the user-assigned managed identity; required with `UserAssigned`, forbidden otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), regex(pattern = patterns::USER_ASSIGNED_IDENTITY_ID))]
    pub user_assigned_identity_id: Option<String>,
    /// With `SystemAssigned` or `UserAssigned`: remove the first-party identity's grant on
    /// the vault once the account has switched away from it (only a grant this operator made).
    #[serde(default)]
    pub remove_first_party_grant: bool,
}

/// Identity kinds (`defaultIdentity` values in Azure).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IdentityType {
    /// `FirstPartyIdentity`: the Azure Cosmos DB service principal.
    #[default]
    FirstParty,
    /// `SystemAssignedIdentity`: the account's own identity, enabled after creation.
    SystemAssigned,
    /// `UserAssignedIdentity=<id>`: a user-assigned managed identity.
    UserAssigned,
}

/// Backup policy of the account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'Continuous' || !has(self.continuousTier)")
        .message("continuousTier only applies to Continuous backup: remove it, or set type to Continuous")
        .field_path(".continuousTier")
        .reason(kube::core::Reason::FieldValueForbidden),
    validation = Rule::new("self.type == 'Periodic' || (!has(self.periodicIntervalMinutes) && !has(self.periodicRetentionHours))")
        .message("periodicIntervalMinutes and periodicRetentionHours only apply to Periodic backup: remove them, or set type to Periodic")
        .field_path(".periodicIntervalMinutes")
        .reason(kube::core::Reason::FieldValueForbidden),
)]
pub struct BackupPolicy {
    /// `Periodic` (default) or `Continuous` (point-in-time restore).
    #[serde(default, rename = "type")]
    pub type_: BackupPolicyType,
    /// Retention tier of continuous backup (Azure's default: `Continuous30Days`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous_tier: Option<ContinuousTier>,
    /// Periodic backup: minutes between backups, 60-1440 (Azure's default: 240).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 1440))]
    pub periodic_interval_minutes: Option<i32>,
    /// Periodic backup: hours each backup is kept, 8-720 (Azure's default: 8). Key
    /// versions stay enabled at least this long after a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 8, max = 720))]
    pub periodic_retention_hours: Option<i32>,
}

/// Azure's default periodic backup interval and retention.
pub const DEFAULT_PERIODIC_INTERVAL_MINUTES: i32 = 240;
pub const DEFAULT_PERIODIC_RETENTION_HOURS: i32 = 8;

impl BackupPolicy {
    /// How long a backup taken now can still be restored: the continuous tier's
    /// window, or the periodic retention.
    pub fn restore_window_hours(&self) -> i64 {
        match (self.type_, self.continuous_tier) {
            (BackupPolicyType::Continuous, Some(ContinuousTier::Continuous7Days)) => 7 * 24,
            (BackupPolicyType::Continuous, _) => 30 * 24,
            (BackupPolicyType::Periodic, _) => i64::from(
                self.periodic_retention_hours
                    .unwrap_or(DEFAULT_PERIODIC_RETENTION_HOURS),
            ),
        }
    }
}

/// Backup modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupPolicyType {
    /// Periodic backups.
    #[default]
    Periodic,
    /// Continuous backup with point-in-time restore.
    Continuous,
}

/// Continuous backup tiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ContinuousTier {
    /// Seven days of point-in-time restore.
    Continuous7Days,
    /// Thirty days of point-in-time restore.
    Continuous30Days,
}

/// Point-in-time restore source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.sourceAccountId) && has(self.timestamp)")
    .message("restore needs both sourceAccountId (the restorable account id) and timestamp (UTC, e.g. 2026-01-31T12:00:00Z)"))]
pub struct RestoreSource {
    /// ARM id of the restorable source account:
    /// `/subscriptions/<id>/providers/Microsoft.DocumentDB/locations/<region>/restorableDatabaseAccounts/<instance guid>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), regex(pattern = patterns::RESTORABLE_ACCOUNT_ID))]
    pub source_account_id: Option<String>,
    /// Point in time to restore to, in UTC with a `Z` suffix, e.g. `2026-01-31T12:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40), regex(pattern = patterns::UTC_TIMESTAMP))]
    #[schemars(extend("format" = "date-time"))]
    pub timestamp: Option<String>,
}

/// What deleting the Kubernetes object does in Azure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the account and every grant in Azure.
    #[default]
    Retain,
    /// Delete the account and the grants this operator made (nothing else).
    Delete,
}

/// Whether the operator writes to Azure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReconcilePolicy {
    /// Create the account and correct drift.
    #[default]
    Manage,
    /// Report what Azure holds and any drift; make no Azure writes.
    ObserveOnly,
}

/// Key rotation behaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationSettings {
    /// Disable the previous key version once the grace period after a rotation has passed.
    /// Off by default: a disabled version the account still needs revokes access.
    #[serde(default)]
    pub disable_previous_version: bool,
    /// Hours after a rotation before the previous version counts as safe to disable.
    /// Azure stops using it within 24 hours, so 24 is the minimum.
    #[serde(default = "default_grace_hours")]
    #[schemars(range(min = 24, max = 8760))]
    pub previous_version_grace_hours: i32,
}

fn default_grace_hours() -> i32 {
    24
}

impl Default for RotationSettings {
    fn default() -> Self {
        Self {
            disable_previous_version: false,
            previous_version_grace_hours: default_grace_hours(),
        }
    }
}

/// What the operator observed about the account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CosmosAccountCMKStatus {
    /// Coarse phase for `kubectl get`; the conditions carry the detail.
    #[serde(default)]
    pub phase: Phase,
    /// VaultReady, IdentityGranted, AccountCreated, RotationTracked and the aggregate Ready.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// ARM resource id of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The account's document endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_endpoint: Option<String>,
    /// `keyVaultKeyUri` as Azure reports it (versionless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault_key_uri: Option<String>,
    /// Key version the account uses now (`keyVaultKeyUriVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version_in_use: Option<String>,
    /// Key version used before the last rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_version: Option<String>,
    /// Versionless URI of the key the previous version belongs to (differs from
    /// `keyVaultKeyUri` after a rotation to another key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_uri: Option<String>,
    /// When the operator saw the last rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
    /// When the previous version becomes safe to disable (rotation + grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version_safe_to_disable_after: Option<Time>,
    /// Whether the operator disabled the previous version (only with rotation.disablePreviousVersion).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub previous_version_disabled: bool,
    /// `defaultIdentity` as Azure reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_identity: Option<String>,
    /// Principal (object) id of the identity that holds the key grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_principal_id: Option<String>,
    /// `customerManagedKeyStatus` as Azure reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_managed_key_status: Option<String>,
    /// Every earlier key version the account's backups may still need, oldest first,
    /// each with when it becomes safe to disable and whether the operator disabled it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained_key_versions: Vec<RetainedKeyVersion>,
    /// Whether the operator created the account in Azure (a record: ownership is
    /// decided by the account's owner tags in Azure).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created_by_operator: bool,
    /// Regions this resource created the account with or added to it (compared
    /// ignoring case and spaces). Only these are ever removed: a region the
    /// account had when adopted, or one added outside the operator, is reported
    /// instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_regions: Vec<String>,
    /// The value of the `cosmoscmk.io/recreate-account` annotation last acted on, so
    /// one annotation value re-creates a missing account once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recreate_token: Option<String>,
    /// Grants this operator made (and so may remove); it never removes others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// The Azure long-running operation in flight, so a restarted operator resumes polling it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_operation: Option<PendingOperation>,
    /// The last error Azure returned for this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_azure_error: Option<AzureErrorRecord>,
}

/// A key grant made by the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// `AccessPolicy` or `RBAC`.
    pub model: PermissionModel,
    /// Object id of the principal granted Get/WrapKey/UnwrapKey.
    pub principal_id: String,
    /// ARM id of the vault the grant is on (so it can be removed after the binding is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_id: Option<String>,
    /// The role assignment's full ARM id (RBAC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_assignment_id: Option<String>,
    /// The principal already had an access-policy entry the operator added to: that
    /// entry belongs to someone else and is never removed or narrowed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub entry_found: bool,
}

impl Grant {
    /// Whether this record is about `principal` on `vault` (ids compare case-insensitively).
    pub fn is_for(&self, vault_id: &str, principal: &str) -> bool {
        self.principal_id.eq_ignore_ascii_case(principal)
            && self
                .vault_id
                .as_deref()
                .is_some_and(|v| super::common::same_id(v, vault_id))
    }
}

/// A key version the account no longer uses but its backups may still need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetainedKeyVersion {
    /// Versionless URI of the key the version belongs to.
    pub key_uri: String,
    /// The key version.
    pub version: String,
    /// Why it is kept, in words.
    pub reason: String,
    /// When the account stopped using it (a restore to an earlier time needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<Time>,
    /// The earliest time it may be disabled: max(grace period, the backup restore window)
    /// after the account stopped using it.
    pub safe_to_disable_after: Time,
    /// Whether the operator disabled it (only with rotation.disablePreviousVersion).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Why it was left enabled when it came due (Azure still showed it in use, or
    /// it is the key's latest version); looked at again an hour later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_because: Option<String>,
}

/// An Azure long-running operation the operator started and must finish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperation {
    /// What the operation does, e.g. `CreateAccount`, `SetDefaultIdentity`, `DeleteAccount`.
    pub kind: OperationKind,
    /// The `Azure-AsyncOperation` (or `Location`) URL to poll.
    pub poll_url: String,
    /// When it started.
    pub started_at: Time,
    /// Milliseconds Azure asked the client to wait between polls (`Retry-After`
    /// of the answer that started it); the operator polls no sooner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The long-running operations the operator starts on an account. Persisted
/// in status: a value a newer operator wrote reads back as `Unknown` (and is
/// polled like any other) rather than making the whole object unreadable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OperationKind {
    CreateAccount,
    EnableSystemIdentity,
    AddUserAssignedIdentity,
    SetDefaultIdentity,
    SetKeyUri,
    SetOwner,
    SetLocations,
    ChangeFailoverPriorities,
    SetBackupPolicy,
    SetAccountSettings,
    DeleteAccount,
    #[serde(other)]
    Unknown,
}

impl OperationKind {
    /// The name as written in status, events and the `operation` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateAccount => "CreateAccount",
            Self::EnableSystemIdentity => "EnableSystemIdentity",
            Self::AddUserAssignedIdentity => "AddUserAssignedIdentity",
            Self::SetDefaultIdentity => "SetDefaultIdentity",
            Self::SetKeyUri => "SetKeyUri",
            Self::SetOwner => "SetOwner",
            Self::SetLocations => "SetLocations",
            Self::ChangeFailoverPriorities => "ChangeFailoverPriorities",
            Self::SetBackupPolicy => "SetBackupPolicy",
            Self::SetAccountSettings => "SetAccountSettings",
            Self::DeleteAccount => "DeleteAccount",
            Self::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Annotation that asks for a missing account to be created again (empty). Each new
/// value re-creates once: the value acted on is kept in `status.recreateToken`.
pub const RECREATE_ANNOTATION: &str = "cosmoscmk.io/recreate-account";

/// Annotation that confirms a resource owns the account its tags name under
/// another uid (a resource re-created or restored by a backup tool): its value
/// must be the uid the tags name (the status message shows it). Then the
/// owner tags move to this resource's uid and a `Delete` policy is honoured.
pub const CONFIRM_OWNER_ANNOTATION: &str = "cosmoscmk.io/confirm-owner";
