//! A scripted `AzurePort` for the controller glue's unit tests: it answers
//! what the test set up and records every call by name, so a test asserts
//! which Azure calls a reconcile makes, not only what it decides.

use std::sync::Mutex;

use crate::api::{Grant, KeyRotation, KeyType, PendingOperation, PermissionModel};
use crate::azure::{
    AccountChange, AccountRef, AzureError, AzurePort, DisableOutcome, NewAccount, RevokeOutcome,
};
use crate::reconcile::account::{AccountFacts, OperationState};
use crate::reconcile::binding::{KeyFacts, VaultFacts};
use crate::reconcile::destructive::RestorableAccount;

#[derive(Default)]
pub struct FakeAzure {
    pub account: Option<AccountFacts>,
    pub provider_registered: bool,
    pub user_assigned_principal: Option<String>,
    /// Of the principals asked about, those reported as granted.
    pub granted: Vec<String>,
    pub operation: Option<OperationState>,
    /// What the subscription-wide restorable list answers.
    pub restorable: Vec<RestorableAccount>,
    /// The calls made, by name (read with `calls`).
    pub made: Mutex<Vec<&'static str>>,
}

impl FakeAzure {
    fn called(&self, name: &'static str) {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name);
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn unexpected<T>(&self, name: &'static str) -> Result<T, AzureError> {
        self.called(name);
        Err(AzureError::Transport {
            operation: name.to_owned(),
            message: format!("the fake was not scripted for {name}"),
        })
    }
}

impl AzurePort for FakeAzure {
    async fn get_vault(&self, _: &str) -> Result<Option<VaultFacts>, AzureError> {
        self.unexpected("get_vault")
    }
    async fn get_key(&self, _: &str, _: &str) -> Result<KeyFacts, AzureError> {
        self.unexpected("get_key")
    }
    async fn create_key(
        &self,
        _: &str,
        _: &str,
        _: KeyType,
        _: i32,
    ) -> Result<KeyFacts, AzureError> {
        self.unexpected("create_key")
    }
    async fn get_rotation_policy(&self, _: &str, _: &str) -> Result<KeyRotation, AzureError> {
        self.unexpected("get_rotation_policy")
    }
    async fn set_rotation_policy(
        &self,
        _: &str,
        _: &str,
        _: &KeyRotation,
    ) -> Result<KeyRotation, AzureError> {
        self.unexpected("set_rotation_policy")
    }
    async fn rotate_key(&self, _: &str, _: &str) -> Result<KeyFacts, AzureError> {
        self.unexpected("rotate_key")
    }
    async fn disable_key_version(&self, _: &str, _: &str) -> Result<DisableOutcome, AzureError> {
        self.unexpected("disable_key_version")
    }
    async fn key_version_enabled(&self, _: &str, _: &str) -> Result<Option<bool>, AzureError> {
        self.unexpected("key_version_enabled")
    }
    async fn key_version_created(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<k8s_openapi::jiff::Timestamp>, AzureError> {
        self.unexpected("key_version_created")
    }
    async fn restorable_account_name(&self, _: &str) -> Result<Option<String>, AzureError> {
        self.unexpected("restorable_account_name")
    }
    async fn provider_registered(&self, _: &str) -> Result<bool, AzureError> {
        self.called("provider_registered");
        Ok(self.provider_registered)
    }
    async fn user_assigned_principal(&self, _: &str) -> Result<Option<String>, AzureError> {
        self.called("user_assigned_principal");
        Ok(self.user_assigned_principal.clone())
    }
    async fn granted_principals(
        &self,
        _: &str,
        _: PermissionModel,
        principals: &[String],
    ) -> Result<Vec<String>, AzureError> {
        self.called("granted_principals");
        Ok(principals
            .iter()
            .filter(|p| self.granted.contains(p))
            .cloned()
            .collect())
    }
    async fn grant(&self, _: &str, _: PermissionModel, _: &str) -> Result<Grant, AzureError> {
        self.unexpected("grant")
    }
    async fn revoke_grant(&self, _: &str, _: &Grant) -> Result<RevokeOutcome, AzureError> {
        self.unexpected("revoke_grant")
    }
    async fn get_account(&self, _: &AccountRef) -> Result<Option<AccountFacts>, AzureError> {
        self.called("get_account");
        Ok(self.account.clone())
    }
    async fn accounts_in_subscription(&self, _: &str) -> Result<Vec<AccountFacts>, AzureError> {
        self.unexpected("accounts_in_subscription")
    }
    async fn restorable_accounts(&self, _: &str) -> Result<Vec<RestorableAccount>, AzureError> {
        self.called("restorable_accounts");
        Ok(self.restorable.clone())
    }
    async fn subscriptions(&self) -> Result<Vec<String>, AzureError> {
        self.unexpected("subscriptions")
    }
    async fn create_account(&self, _: &NewAccount) -> Result<PendingOperation, AzureError> {
        self.unexpected("create_account")
    }
    async fn update_account(
        &self,
        _: &AccountRef,
        _: &AccountChange,
    ) -> Result<PendingOperation, AzureError> {
        self.unexpected("update_account")
    }
    async fn delete_account(&self, _: &AccountRef) -> Result<Option<PendingOperation>, AzureError> {
        self.unexpected("delete_account")
    }
    async fn poll(&self, _: &PendingOperation) -> Result<OperationState, AzureError> {
        match &self.operation {
            Some(state) => {
                self.called("poll");
                Ok(state.clone())
            }
            None => self.unexpected("poll"),
        }
    }
}
