//! A decorator that counts and times every call through the port, by
//! operation and outcome, without the adapter knowing about metrics.

use std::future::Future;
use std::sync::Arc;

use super::errors::AzureError;
use super::port::{
    AccountChange, AccountRef, AzurePort, DisableOutcome, NewAccount, RevokeOutcome,
};
use crate::api::{Grant, KeyRotation, KeyType, PendingOperation, PermissionModel};
use crate::reconcile::account::{AccountFacts, OperationState};
use crate::reconcile::binding::{KeyFacts, VaultFacts};
use crate::reconcile::destructive::RestorableAccount;
use crate::telemetry::Metrics;

/// Wraps an `AzurePort` with metrics.
pub struct Instrumented<A> {
    inner: A,
    metrics: Arc<Metrics>,
}

impl<A> Instrumented<A> {
    pub fn new(inner: A, metrics: Arc<Metrics>) -> Self {
        Instrumented { inner, metrics }
    }

    pub fn inner(&self) -> &A {
        &self.inner
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    async fn observe<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, AzureError>>,
    ) -> Result<T, AzureError> {
        let start = tokio::time::Instant::now();
        let result = call.await;
        let status = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e
                .http_status()
                .map_or_else(|| e.reason().to_owned(), |s| s.to_string()),
        };
        self.metrics.azure_call(operation, &status, start.elapsed());
        result
    }
}

impl<A: AzurePort> AzurePort for Instrumented<A> {
    async fn get_vault(&self, vault_id: &str) -> Result<Option<VaultFacts>, AzureError> {
        self.observe("GetVault", self.inner.get_vault(vault_id))
            .await
    }
    async fn get_key(&self, vault_uri: &str, name: &str) -> Result<KeyFacts, AzureError> {
        self.observe("GetKey", self.inner.get_key(vault_uri, name))
            .await
    }
    async fn create_key(
        &self,
        vault_uri: &str,
        name: &str,
        key_type: KeyType,
        size: i32,
    ) -> Result<KeyFacts, AzureError> {
        self.observe(
            "CreateKey",
            self.inner.create_key(vault_uri, name, key_type, size),
        )
        .await
    }
    async fn get_rotation_policy(
        &self,
        vault_uri: &str,
        name: &str,
    ) -> Result<KeyRotation, AzureError> {
        self.observe(
            "GetKeyRotationPolicy",
            self.inner.get_rotation_policy(vault_uri, name),
        )
        .await
    }
    async fn set_rotation_policy(
        &self,
        vault_uri: &str,
        name: &str,
        policy: &KeyRotation,
    ) -> Result<KeyRotation, AzureError> {
        self.observe(
            "UpdateKeyRotationPolicy",
            self.inner.set_rotation_policy(vault_uri, name, policy),
        )
        .await
    }
    async fn rotate_key(&self, vault_uri: &str, name: &str) -> Result<KeyFacts, AzureError> {
        self.observe("RotateKey", self.inner.rotate_key(vault_uri, name))
            .await
    }
    async fn disable_key_version(
        &self,
        key_uri: &str,
        version: &str,
    ) -> Result<DisableOutcome, AzureError> {
        self.observe(
            "DisableKeyVersion",
            self.inner.disable_key_version(key_uri, version),
        )
        .await
    }
    async fn key_version_enabled(
        &self,
        key_uri: &str,
        version: &str,
    ) -> Result<Option<bool>, AzureError> {
        self.observe(
            "GetKeyVersion",
            self.inner.key_version_enabled(key_uri, version),
        )
        .await
    }
    async fn key_version_created(
        &self,
        key_uri: &str,
        version: &str,
    ) -> Result<Option<k8s_openapi::jiff::Timestamp>, AzureError> {
        self.observe(
            "GetKeyVersion",
            self.inner.key_version_created(key_uri, version),
        )
        .await
    }
    async fn restorable_account_name(&self, source_id: &str) -> Result<Option<String>, AzureError> {
        self.observe(
            "GetRestorableAccount",
            self.inner.restorable_account_name(source_id),
        )
        .await
    }
    async fn provider_registered(&self, subscription_id: &str) -> Result<bool, AzureError> {
        self.observe(
            "GetProvider",
            self.inner.provider_registered(subscription_id),
        )
        .await
    }
    async fn user_assigned_principal(
        &self,
        identity_id: &str,
    ) -> Result<Option<String>, AzureError> {
        self.observe(
            "GetIdentity",
            self.inner.user_assigned_principal(identity_id),
        )
        .await
    }
    async fn granted_principals(
        &self,
        vault_id: &str,
        model: PermissionModel,
        principals: &[String],
    ) -> Result<Vec<String>, AzureError> {
        self.observe(
            "GetGrants",
            self.inner.granted_principals(vault_id, model, principals),
        )
        .await
    }
    async fn grant(
        &self,
        vault_id: &str,
        model: PermissionModel,
        principal_id: &str,
    ) -> Result<Grant, AzureError> {
        self.observe("Grant", self.inner.grant(vault_id, model, principal_id))
            .await
    }
    async fn revoke_grant(
        &self,
        vault_id: &str,
        grant: &Grant,
    ) -> Result<RevokeOutcome, AzureError> {
        self.observe("RevokeGrant", self.inner.revoke_grant(vault_id, grant))
            .await
    }
    async fn get_account(&self, account: &AccountRef) -> Result<Option<AccountFacts>, AzureError> {
        self.observe("GetAccount", self.inner.get_account(account))
            .await
    }
    async fn accounts_in_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<AccountFacts>, AzureError> {
        self.observe(
            "ListAccounts",
            self.inner.accounts_in_subscription(subscription_id),
        )
        .await
    }
    async fn restorable_accounts(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<RestorableAccount>, AzureError> {
        self.observe(
            "ListRestorableAccounts",
            self.inner.restorable_accounts(subscription_id),
        )
        .await
    }
    async fn subscriptions(&self) -> Result<Vec<String>, AzureError> {
        self.observe("ListSubscriptions", self.inner.subscriptions())
            .await
    }
    async fn create_account(&self, new: &NewAccount) -> Result<PendingOperation, AzureError> {
        self.observe("CreateAccount", self.inner.create_account(new))
            .await
    }
    async fn update_account(
        &self,
        account: &AccountRef,
        change: &AccountChange,
    ) -> Result<PendingOperation, AzureError> {
        self.observe("UpdateAccount", self.inner.update_account(account, change))
            .await
    }
    async fn delete_account(
        &self,
        account: &AccountRef,
    ) -> Result<Option<PendingOperation>, AzureError> {
        self.observe("DeleteAccount", self.inner.delete_account(account))
            .await
    }
    async fn poll(&self, operation: &PendingOperation) -> Result<OperationState, AzureError> {
        self.observe("PollOperation", self.inner.poll(operation))
            .await
    }
}
