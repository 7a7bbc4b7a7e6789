//! The port: exactly what the state machines ask of Azure, in the operator's
//! own terms. The SDK-backed adapter implements it; nothing else in the
//! operator sees HTTP or SDK types.

use std::future::Future;

use k8s_openapi::jiff::Timestamp;

use super::errors::AzureError;
use crate::api::{
    AccountSettings, BackupPolicy, Grant, KeyRotation, KeyType, Location, PendingOperation,
    PermissionModel, RestoreSource,
};
use crate::reconcile::account::{AccountFacts, OperationState};
use crate::reconcile::binding::{KeyFacts, VaultFacts};
use crate::reconcile::destructive::RestorableAccount;
use std::collections::BTreeMap;

/// Where an account lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountRef {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
}

impl AccountRef {
    /// ARM resource id of the account.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DocumentDB/databaseAccounts/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

/// Everything an account is created with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    pub account: AccountRef,
    pub kind: String,
    pub locations: Vec<Location>,
    pub capabilities: Vec<String>,
    /// Versionless key URI.
    pub key_uri: String,
    /// `FirstPartyIdentity` or `UserAssignedIdentity=<id>`.
    pub default_identity: String,
    pub user_assigned_identity: Option<String>,
    pub backup: BackupPolicy,
    pub restore: Option<RestoreSource>,
    /// The user's tags and the owner tags (which win).
    pub tags: BTreeMap<String, String>,
    /// The settings the spec sets; the rest are left to Azure's defaults.
    pub settings: AccountSettings,
}

// The values the port answers with live in the core, beside the rules that
// read them.
pub use crate::reconcile::outcomes::{AccountChange, DisableOutcome, RevokeOutcome};

/// What the operator asks of Azure. Every call is bounded by a timeout and the
/// per-subscription rate limiter inside the implementation.
pub trait AzurePort: Send + Sync + 'static {
    /// The vault's CMK-relevant properties; `None` when it does not exist.
    fn get_vault(
        &self,
        vault_id: &str,
    ) -> impl Future<Output = Result<Option<VaultFacts>, AzureError>> + Send;

    /// The key's latest version; `KeyFacts::Missing` when absent.
    fn get_key(
        &self,
        vault_uri: &str,
        name: &str,
    ) -> impl Future<Output = Result<KeyFacts, AzureError>> + Send;

    fn create_key(
        &self,
        vault_uri: &str,
        name: &str,
        key_type: KeyType,
        size: i32,
    ) -> impl Future<Output = Result<KeyFacts, AzureError>> + Send;

    /// The key's rotation policy as Key Vault reports it (`GET /keys/{name}/rotationpolicy`).
    fn get_rotation_policy(
        &self,
        vault_uri: &str,
        name: &str,
    ) -> impl Future<Output = Result<KeyRotation, AzureError>> + Send;

    /// Writes the key's rotation policy (`PUT /keys/{name}/rotationpolicy`);
    /// returns it as Key Vault stored it.
    fn set_rotation_policy(
        &self,
        vault_uri: &str,
        name: &str,
        policy: &KeyRotation,
    ) -> impl Future<Output = Result<KeyRotation, AzureError>> + Send;

    /// Makes a new version of the key now (`POST /keys/{name}/rotate`).
    fn rotate_key(
        &self,
        vault_uri: &str,
        name: &str,
    ) -> impl Future<Output = Result<KeyFacts, AzureError>> + Send;

    /// Disables one version of a key that is not the key's latest version (checked
    /// in Key Vault at the moment of the call).
    fn disable_key_version(
        &self,
        key_uri: &str,
        version: &str,
    ) -> impl Future<Output = Result<DisableOutcome, AzureError>> + Send;

    /// Whether a key version is enabled; `None` when it does not exist.
    fn key_version_enabled(
        &self,
        key_uri: &str,
        version: &str,
    ) -> impl Future<Output = Result<Option<bool>, AzureError>> + Send;

    /// When Key Vault created a key version (`attributes.created`); `None`
    /// when there is no such version or Key Vault does not say.
    fn key_version_created(
        &self,
        key_uri: &str,
        version: &str,
    ) -> impl Future<Output = Result<Option<Timestamp>, AzureError>> + Send;

    /// The name of the account a restorable source (`.../restorableDatabaseAccounts/<id>`)
    /// belongs to; `None` when Azure has no such restorable account.
    fn restorable_account_name(
        &self,
        source_id: &str,
    ) -> impl Future<Output = Result<Option<String>, AzureError>> + Send;

    /// Whether `Microsoft.DocumentDB` is registered in the subscription.
    fn provider_registered(
        &self,
        subscription_id: &str,
    ) -> impl Future<Output = Result<bool, AzureError>> + Send;

    /// Principal id of a user-assigned identity; `None` when it does not exist.
    fn user_assigned_principal(
        &self,
        identity_id: &str,
    ) -> impl Future<Output = Result<Option<String>, AzureError>> + Send;

    /// Of `principals`, those holding Get/WrapKey/UnwrapKey on the vault under `model`.
    fn granted_principals(
        &self,
        vault_id: &str,
        model: PermissionModel,
        principals: &[String],
    ) -> impl Future<Output = Result<Vec<String>, AzureError>> + Send;

    /// Grants Get/WrapKey/UnwrapKey (an access-policy entry, or the Crypto Service
    /// Encryption User role); returns the grant as made (with the role assignment id).
    fn grant(
        &self,
        vault_id: &str,
        model: PermissionModel,
        principal_id: &str,
    ) -> impl Future<Output = Result<Grant, AzureError>> + Send;

    /// Removes exactly a grant the operator made, after re-reading it: a role
    /// assignment only when it has the operator's derived name, the vault's scope,
    /// the principal and the role; an access-policy entry only when it holds
    /// nothing but get/wrapKey/unwrapKey on keys. Never a whole policy list.
    fn revoke_grant(
        &self,
        vault_id: &str,
        grant: &Grant,
    ) -> impl Future<Output = Result<RevokeOutcome, AzureError>> + Send;

    /// The account as Azure reports it; `None` when it does not exist.
    fn get_account(
        &self,
        account: &AccountRef,
    ) -> impl Future<Output = Result<Option<AccountFacts>, AzureError>> + Send;

    /// Every account in a subscription (`DatabaseAccounts_List`, all pages).
    fn accounts_in_subscription(
        &self,
        subscription_id: &str,
    ) -> impl Future<Output = Result<Vec<AccountFacts>, AzureError>> + Send;

    /// Every account of a subscription Azure can restore, live or deleted
    /// (`RestorableDatabaseAccounts_List`, all pages).
    fn restorable_accounts(
        &self,
        subscription_id: &str,
    ) -> impl Future<Output = Result<Vec<RestorableAccount>, AzureError>> + Send;

    /// The subscriptions the caller can read (`Subscriptions_List`, all pages).
    fn subscriptions(&self) -> impl Future<Output = Result<Vec<String>, AzureError>> + Send;

    /// Starts creating the account; returns the operation to persist and poll.
    fn create_account(
        &self,
        new: &NewAccount,
    ) -> impl Future<Output = Result<PendingOperation, AzureError>> + Send;

    /// Starts one staged change; returns the operation to persist and poll.
    fn update_account(
        &self,
        account: &AccountRef,
        change: &AccountChange,
    ) -> impl Future<Output = Result<PendingOperation, AzureError>> + Send;

    /// Starts deleting the account; `None` when it was already gone.
    fn delete_account(
        &self,
        account: &AccountRef,
    ) -> impl Future<Output = Result<Option<PendingOperation>, AzureError>> + Send;

    /// Polls a persisted operation (also after an operator restart).
    fn poll(
        &self,
        operation: &PendingOperation,
    ) -> impl Future<Output = Result<OperationState, AzureError>> + Send;
}
