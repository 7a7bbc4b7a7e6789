//! The simulated world: tenant principals, identities, vaults, keys, role
//! assignments, Cosmos DB accounts and operations. Serializable so a demo
//! survives a restart (`--state-file`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A service principal that can obtain tokens (client secret and/or federated credentials).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRegistration {
    pub client_id: String,
    pub object_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Trust for a workload-identity assertion: its `iss`, `sub` and `aud` claims.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    /// Resource name when created through ARM (`federatedIdentityCredentials/{name}`).
    #[serde(default)]
    pub name: Option<String>,
    /// Accepted assertion audiences; empty means `api://AzureADTokenExchange`.
    #[serde(default)]
    pub audiences: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAssignedIdentity {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub client_id: String,
    pub principal_id: String,
    #[serde(default)]
    pub tags: Value,
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
}

impl UserAssignedIdentity {
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vault {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    #[serde(default)]
    pub tags: Value,
    /// ARM `properties` as last written (without `vaultUri`, which is computed).
    pub properties: Value,
    pub created_at: String,
}

impl Vault {
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
    fn flag(&self, name: &str) -> Option<bool> {
        self.properties.get(name).and_then(Value::as_bool)
    }
    /// Soft delete is on unless explicitly disabled (Azure's default since 2020).
    pub fn soft_delete(&self) -> bool {
        self.flag("enableSoftDelete").unwrap_or(true)
    }
    pub fn purge_protection(&self) -> bool {
        self.flag("enablePurgeProtection").unwrap_or(false)
    }
    pub fn rbac(&self) -> bool {
        self.flag("enableRbacAuthorization").unwrap_or(false)
    }
    pub fn access_policies(&self) -> Vec<Value> {
        self.properties
            .get("accessPolicies")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
    pub fn public_network_disabled(&self) -> bool {
        self.properties
            .get("publicNetworkAccess")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("Disabled"))
    }
    fn acls(&self) -> Option<&Value> {
        self.properties.get("networkAcls")
    }
    pub fn default_deny(&self) -> bool {
        self.acls()
            .and_then(|a| a.get("defaultAction"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("Deny"))
    }
    /// Whether trusted Azure services (Cosmos DB among them) get through the firewall.
    pub fn azure_services_allowed(&self) -> bool {
        if self.public_network_disabled() {
            return false;
        }
        if !self.default_deny() {
            return true;
        }
        self.acls()
            .and_then(|a| a.get("bypass"))
            .and_then(Value::as_str)
            .unwrap_or("AzureServices")
            .eq_ignore_ascii_case("AzureServices")
    }
    /// Whether a loopback client (the operator) gets through the firewall.
    pub fn loopback_allowed(&self) -> bool {
        if self.public_network_disabled() {
            return false;
        }
        if !self.default_deny() {
            return true;
        }
        self.acls()
            .and_then(|a| a.get("ipRules"))
            .and_then(Value::as_array)
            .is_some_and(|rules| {
                rules.iter().any(|r| {
                    matches!(
                        r.get("value").and_then(Value::as_str),
                        Some("127.0.0.1" | "127.0.0.1/32" | "127.0.0.0/8")
                    )
                })
            })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyVersion {
    pub version: String,
    pub kty: String,
    pub key_size: u32,
    pub key_ops: Vec<String>,
    pub enabled: bool,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
    /// Modulus: random bytes of the key size, base64url (not a real RSA key).
    pub n: String,
    #[serde(default)]
    pub tags: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Key {
    pub name: String,
    /// Oldest first; the last one is the current version.
    pub versions: Vec<KeyVersion>,
    #[serde(default)]
    pub rotation_policy: Option<Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    pub name: String,
    pub scope: String,
    pub role_definition_id: String,
    pub principal_id: String,
    #[serde(default)]
    pub principal_type: Option<String>,
    pub created_at: String,
    /// An ABAC condition (`crate::conditions`) limiting what the assignment
    /// grants; `None`: unconditional.
    #[serde(default)]
    pub condition: Option<String>,
    /// The condition's syntax version ("2.0").
    #[serde(default)]
    pub condition_version: Option<String>,
}

impl RoleAssignment {
    pub fn id(&self) -> String {
        format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{}",
            self.scope.trim_end_matches('/'),
            self.name
        )
    }
    /// The attributes ABAC conditions name (`@Request`/`@Resource`).
    pub fn condition_attributes(&self) -> crate::conditions::AssignmentAttributes {
        crate::conditions::AssignmentAttributes {
            role_definition_id: Some(self.role_guid()),
            principal_id: Some(self.principal_id.clone()),
            principal_type: self.principal_type.clone(),
        }
    }
    /// Whether the assignment grants `action` to a request with `attrs`:
    /// unconditional, or its condition holds (an unparseable one never does).
    pub fn condition_allows(&self, action: &str, attrs: &crate::conditions::Attributes) -> bool {
        self.condition
            .as_deref()
            .is_none_or(|c| crate::conditions::holds(c, action, attrs).unwrap_or(false))
    }
    /// The role definition GUID, whatever form the id was written in.
    pub fn role_guid(&self) -> String {
        self.role_definition_id
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

/// A custom role definition (`Microsoft.Authorization/roleDefinitions`),
/// created at a subscription scope.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomRole {
    pub name: String,
    /// The scope it was created at (`/subscriptions/{s}`).
    pub scope: String,
    pub role_name: String,
    #[serde(default)]
    pub description: String,
    pub permission: super::roles::Permission,
    pub assignable_scopes: Vec<String>,
    pub created_at: String,
}

impl CustomRole {
    pub fn id(&self) -> String {
        format!(
            "{}/providers/Microsoft.Authorization/roleDefinitions/{}",
            self.scope.trim_end_matches('/'),
            self.name
        )
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountIdentity {
    /// "None", "SystemAssigned", "UserAssigned" or "SystemAssigned,UserAssigned".
    pub type_: String,
    #[serde(default)]
    pub system_principal_id: Option<String>,
    /// Identity resource ids as the client wrote them.
    #[serde(default)]
    pub user_assigned: Vec<String>,
}

impl AccountIdentity {
    pub fn has_system(&self) -> bool {
        self.type_.contains("SystemAssigned")
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CmkRuntime {
    /// Substatus of the revocation, when the account is revoked.
    #[serde(default)]
    pub revoked: Option<u32>,
    #[serde(default)]
    pub status_message: Option<String>,
    /// Unix ms when access to the key came back (recovery clock).
    #[serde(default)]
    pub access_back_ms: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub tags: Value,
    pub identity: AccountIdentity,
    /// Client-writable `properties` as accepted (read-only fields are computed).
    pub properties: Value,
    pub provisioning_state: String,
    pub instance_id: String,
    pub created_at: String,
    pub created_ms: i64,
    #[serde(default)]
    pub key_version_in_use: Option<String>,
    #[serde(default)]
    pub cmk: CmkRuntime,
    #[serde(default)]
    pub pending_op: Option<String>,
    /// A migration to continuous backup, once asked for.
    #[serde(default)]
    pub migration: Option<crate::arm::account_changes::Migration>,
    /// A restored account: the source account (its key in `State::accounts`)
    /// and the requested user-assigned identities the source also had, whose
    /// metadata stays bound to the source (seed FAQ, "Assign a new
    /// managed-identity to the restored database account"); not listed
    /// beyond the request's (recorded restores list only the requested one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<RestoredFrom>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoredFrom {
    pub source: String,
    pub carried_identities: Vec<String>,
    /// The source's instance id: a later account of the same name (a deleted
    /// source restored under its own name) is not the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_instance_id: Option<String>,
}

/// A deleted account with continuous backup, restorable for its tier's
/// window after deletion (`restorableDatabaseAccounts` with `deletionTime`).
/// The account is kept as it stood when deleted: a restore from it needs its
/// key URI and user-assigned identities as much as its name, instance id,
/// location, API type, creation time, subscription and tier.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedAccount {
    pub account: Account,
    pub deleted_at: String,
    pub deleted_ms: i64,
}

impl Account {
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DocumentDB/databaseAccounts/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
    pub fn prop_str(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }
    pub fn key_uri(&self) -> Option<&str> {
        self.prop_str("keyVaultKeyUri").filter(|s| !s.is_empty())
    }
    pub fn default_identity(&self) -> &str {
        self.prop_str("defaultIdentity")
            .unwrap_or("FirstPartyIdentity")
    }
    pub fn backup_type(&self) -> &str {
        self.properties
            .get("backupPolicy")
            .and_then(|b| b.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("Periodic")
    }
    pub fn continuous(&self) -> bool {
        self.backup_type().eq_ignore_ascii_case("Continuous")
    }
    /// The continuous backup tier (cosmos-db.json `ContinuousTier`); without
    /// one, Continuous30Days, the tier `account_json` reports.
    pub fn backup_tier(&self) -> &str {
        self.properties
            .pointer("/backupPolicy/continuousModeProperties/tier")
            .and_then(Value::as_str)
            .unwrap_or("Continuous30Days")
    }
    /// The restorable account's `apiType` (restorable.json `ApiType`), from
    /// the account's kind and capabilities.
    pub fn api_type(&self) -> &'static str {
        if self
            .kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("MongoDB"))
        {
            return "MongoDB";
        }
        let has = |cap: &str| has_capability(&self.properties, cap);
        if has("EnableCassandra") {
            "Cassandra"
        } else if has("EnableTable") {
            "Table"
        } else if has("EnableGremlin") {
            "Gremlin"
        } else {
            "Sql"
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum OpKind {
    Create,
    Update,
    Delete,
    Register,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum OpOutcome {
    Succeed,
    Fail { code: String, message: String },
    Stall,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub id: String,
    pub kind: OpKind,
    /// Lower-cased account id (or provider key for registrations).
    pub target: String,
    pub subscription_id: String,
    pub location: String,
    pub started_ms: i64,
    pub duration_ms: i64,
    pub outcome: OpOutcome,
    pub done: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRegistration {
    pub state: String,
    #[serde(default)]
    pub since_ms: i64,
}

/// The whole simulated world. Map keys are lower-cased resource ids or names
/// because ARM and Key Vault names are case-insensitive.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Random key that makes tokens checkable (kept so tokens survive a restart).
    pub token_key: u64,
    pub apps: BTreeMap<String, AppRegistration>,
    pub identities: BTreeMap<String, UserAssignedIdentity>,
    pub vaults: BTreeMap<String, Vault>,
    /// vault name -> key name -> key
    pub keys: BTreeMap<String, BTreeMap<String, Key>>,
    pub role_assignments: BTreeMap<String, RoleAssignment>,
    pub accounts: BTreeMap<String, Account>,
    pub operations: BTreeMap<String, Operation>,
    /// "{subscription}/{namespace}" lower-cased -> registration
    pub providers: BTreeMap<String, ProviderRegistration>,
    /// Custom role definitions, by lower-cased GUID (built-in roles are in
    /// `sim::roles`).
    #[serde(default)]
    pub role_definitions: BTreeMap<String, CustomRole>,
    /// Deleted continuous-backup accounts still restorable, by lower-cased
    /// instance id.
    #[serde(default)]
    pub deleted_accounts: BTreeMap<String, DeletedAccount>,
    /// Azure Policy assignments, by lower-cased assignment id.
    #[serde(default)]
    pub policy_assignments: BTreeMap<String, super::arm::policy::Assignment>,
    /// The TLS certificate authority (kept so a client's trusted CA file
    /// stays valid across restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<super::tls::SavedCa>,
}

impl State {
    /// The permissions of a role definition (built-in or custom) by GUID.
    pub fn role_permission(&self, guid: &str) -> Option<super::roles::Permission> {
        if let Some(b) = super::roles::built_in(guid) {
            return Some(b.permission());
        }
        self.role_definitions
            .get(&guid.to_ascii_lowercase())
            .map(|c| c.permission.clone())
    }
    /// Whether `principal` holds a role assignment at `scope` or above it
    /// whose role allows `allowed` (a control- or data-plane test).
    pub fn principal_may(
        &self,
        principal: &str,
        scope: &str,
        allowed: impl Fn(&super::roles::Permission) -> bool,
    ) -> bool {
        self.assignments_allowing(principal, scope, allowed)
            .next()
            .is_some()
    }
    /// `principal`'s role assignments at `scope` or above whose role allows `allowed`.
    fn assignments_allowing<'a>(
        &'a self,
        principal: &'a str,
        scope: &str,
        allowed: impl Fn(&super::roles::Permission) -> bool + 'a,
    ) -> impl Iterator<Item = &'a RoleAssignment> + 'a {
        let target = scope.trim_end_matches('/').to_ascii_lowercase();
        self.role_assignments.values().filter(move |ra| {
            ra.principal_id.eq_ignore_ascii_case(principal)
                && scope_covers(&ra.scope, &target)
                && self
                    .role_permission(&ra.role_guid())
                    .is_some_and(|p| allowed(&p))
        })
    }
    /// Like [`Self::principal_may`] for one ARM `action`, honouring the
    /// assignments' ABAC conditions (`crate::conditions`) with `attrs`.
    pub fn principal_may_act(
        &self,
        principal: &str,
        scope: &str,
        action: &str,
        attrs: &crate::conditions::Attributes,
    ) -> bool {
        self.assignments_allowing(principal, scope, |p| super::roles::allows_action(p, action))
            .any(|ra| ra.condition_allows(action, attrs))
    }
    pub fn vault_by_name(&self, name: &str) -> Option<&Vault> {
        let lower = name.to_ascii_lowercase();
        self.vaults
            .values()
            .find(|v| v.name.to_ascii_lowercase() == lower)
    }
    pub fn identity_by_id(&self, id: &str) -> Option<&UserAssignedIdentity> {
        self.identities.get(&id.to_ascii_lowercase())
    }
    /// Whether `principal_id` is a known object in the tenant directory.
    pub fn principal_exists(&self, principal_id: &str, first_party: &str) -> bool {
        let p = principal_id.to_ascii_lowercase();
        p == first_party.to_ascii_lowercase()
            || self
                .apps
                .values()
                .any(|a| a.object_id.to_ascii_lowercase() == p)
            || self
                .identities
                .values()
                .any(|i| i.principal_id.to_ascii_lowercase() == p)
            || self.accounts.values().any(|a| {
                a.identity
                    .system_principal_id
                    .as_deref()
                    .is_some_and(|s| s.to_ascii_lowercase() == p)
            })
    }
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

pub fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Key Vault style version id: 32 lower-case hex digits.
pub fn new_version() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether an assignment at `assigned` applies at `target` (equal, or an
/// ancestor at a `/` boundary; `/` is the root scope). Case-insensitive.
/// Whether account `properties` list the capability `cap` (names compare
/// case-insensitively).
pub fn has_capability(properties: &Value, cap: &str) -> bool {
    properties
        .get("capabilities")
        .and_then(Value::as_array)
        .is_some_and(|caps| {
            caps.iter().any(|c| {
                c.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(cap))
            })
        })
}

pub fn scope_covers(assigned: &str, target: &str) -> bool {
    let a = assigned.trim_end_matches('/').to_ascii_lowercase();
    let t = target.trim_end_matches('/').to_ascii_lowercase();
    a.is_empty() || a == t || t.starts_with(&format!("{a}/"))
}
