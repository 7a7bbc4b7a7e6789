//! `SdkAzure`: the port over the Azure SDK crates (0.21 line). SDK types stay
//! in this module; every call takes a token from the per-subscription rate
//! limiter, is bounded by `call_timeout`, and maps failures to `AzureError`.
//!
//! Why the 0.21 line: it is the last one where `azure_identity`, the
//! `azure_mgmt_*` crates (Cosmos DB, Key Vault, authorization, MSI) and a Key
//! Vault client share one `azure_core`; the 1.x line has no `azure_mgmt_*` crates
//! (as of this writing).
//! SDK retries are off (the controllers retry, and a 429 must reach the rate
//! limiter), and requests bypass azure_core's transport policy, whose debug
//! log prints the `Authorization` header (see `http.rs`).

mod account_settings;
mod accounts;
mod credentials;
mod grants;
mod http;
mod ids;
mod key_rotation;
mod keys;
mod listing;
mod lro;
mod transport;
pub use transport::{ExtraCaError, trust_extra_roots};
mod vaults;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use azure_core::Url;
use azure_core::auth::TokenCredential;
use azure_mgmt_authorization::package_2022_04_01 as authz;
use azure_mgmt_cosmosdb::package_preview_2024_09 as cosmosdb;
use azure_mgmt_keyvault::package_preview_2022_02 as keyvault;
use azure_mgmt_msi::package_2023_01_31 as msi;

pub use credentials::CredentialSource;
pub use http::http_client_for;

use super::cloud::Cloud;
use super::errors::AzureError;
use super::port::{
    AccountChange, AccountRef, AzurePort, DisableOutcome, NewAccount, RevokeOutcome,
};
use super::rate_limit::{CallKind, RateLimiter};
use crate::api::{Grant, KeyRotation, KeyType, PendingOperation, PermissionModel};
use crate::reconcile::account::{AccountFacts, OperationState};
use crate::reconcile::binding::{KeyFacts, VaultFacts};
use crate::reconcile::destructive::RestorableAccount;
use http::{Answer, Raw};

/// How to reach Azure.
#[derive(Clone, Debug)]
pub struct AzureSettings {
    pub cloud: Cloud,
    pub credential: CredentialSource,
    /// Upper bound for one Azure call, rate-limiter waits included.
    pub call_timeout: Duration,
    /// The longest `Retry-After` honoured (a larger one is read as this):
    /// Azure's answer must not freeze a subscription for days.
    pub max_retry_after: Duration,
    /// Shared by every adapter in the process, so all credentials draw from one budget.
    pub limiter: Arc<RateLimiter>,
}

/// Default of `AzureSettings::max_retry_after` (`--max-retry-after-seconds`).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The Azure adapter. Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct SdkAzure {
    inner: Arc<Inner>,
}

struct Inner {
    cloud: Cloud,
    call_timeout: Duration,
    max_retry_after: Duration,
    limiter: Arc<RateLimiter>,
    cosmos: cosmosdb::Client,
    vaults: keyvault::Client,
    authz: authz::Client,
    msi: msi::Client,
    /// ARM requests no SDK call covers (operation status, providers).
    arm: Raw,
    /// Key Vault data plane.
    kv: Raw,
    /// Subscriptions seen with Microsoft.DocumentDB registered (it does not go back).
    registered: std::sync::Mutex<std::collections::HashSet<String>>,
    /// One registration read at a time per subscription: accounts starting
    /// together wait for the first answer instead of each asking, and a
    /// throttled subscription's read never holds back another's.
    registration_reads:
        std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The restorable-accounts list in flight per subscription (see `listing`).
    restorable_reads: std::sync::Mutex<std::collections::HashMap<String, listing::RestorableRead>>,
}

impl fmt::Debug for SdkAzure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkAzure")
            .field("cloud", &self.inner.cloud.name)
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}

/// The endpoint with an `api-version` the generated request builders keep
/// (they add their package's own only when the URL has none).
fn with_api_version(endpoint: &Url, version: &str) -> Url {
    let mut url = endpoint.clone();
    url.query_pairs_mut().append_pair("api-version", version);
    url
}

fn scope(audience: &str) -> String {
    format!("{}/.default", audience.trim_end_matches('/'))
}

impl SdkAzure {
    /// Builds the clients; no network call is made until the first request.
    pub fn new(settings: AzureSettings) -> Result<Self, AzureError> {
        let AzureSettings {
            cloud,
            credential,
            call_timeout,
            max_retry_after,
            limiter,
        } = settings;
        let http = http::http_client_for(&cloud)?;
        let cred = credentials::build(&credential, &cloud.authority_host, http.clone())?;
        let endpoint = Url::parse(&cloud.resource_manager).map_err(|e| AzureError::Rejected {
            operation: "Configure".into(),
            status: 400,
            code: "InvalidEndpoint".into(),
            message: format!(
                "the ARM endpoint {:?} is not a URL: {e}",
                cloud.resource_manager
            ),
        })?;
        let arm_scope = scope(&cloud.arm_audience);
        let scopes = [arm_scope.as_str()];
        let opts = || http::client_options(&http);
        let cred2 = || -> Arc<dyn TokenCredential> { cred.clone() };
        let inner = Inner {
            cosmos: cosmosdb::Client::new(
                with_api_version(&endpoint, lro::COSMOS_API),
                cred2(),
                own(&scopes),
                opts(),
            ),
            vaults: keyvault::Client::new(endpoint.clone(), cred2(), own(&scopes), opts()),
            authz: authz::Client::new(endpoint.clone(), cred2(), own(&scopes), opts()),
            msi: msi::Client::new(endpoint, cred2(), own(&scopes), opts()),
            arm: Raw::new(&http, cred2(), arm_scope.clone()),
            kv: Raw::new(&http, cred2(), scope(&cloud.key_vault_audience)),
            registered: std::sync::Mutex::default(),
            registration_reads: std::sync::Mutex::default(),
            restorable_reads: std::sync::Mutex::default(),
            cloud,
            call_timeout,
            max_retry_after,
            limiter,
        };
        Ok(SdkAzure {
            inner: Arc::new(inner),
        })
    }

    /// Another adapter for the same cloud, timeout and rate limiter with a
    /// different credential (a per-resource credential reference).
    pub fn with_credential(&self, credential: CredentialSource) -> Result<Self, AzureError> {
        Self::new(AzureSettings {
            cloud: self.inner.cloud.clone(),
            credential,
            call_timeout: self.inner.call_timeout,
            max_retry_after: self.inner.max_retry_after,
            limiter: self.inner.limiter.clone(),
        })
    }

    pub fn cloud(&self) -> &Cloud {
        &self.inner.cloud
    }

    /// Rate limit, time bound, and 429 back-pressure around one Azure call.
    /// The limiter's wait counts inside `call_timeout`: a pause longer than
    /// what is left fails the call at once as `Throttled` with the wait, so
    /// the controller requeues instead of a reconcile sleeping through it.
    /// One ARM request sent as JSON outside the SDK's models, under the same
    /// rate limiter and deadline as every other call.
    async fn arm_send(
        &self,
        operation: &str,
        subscription: &str,
        kind: CallKind,
        method: azure_core::Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, AzureError> {
        self.call(operation, subscription, kind, async {
            self.inner
                .arm
                .send(method, url, body)
                .await
                .map_err(|e| http::map_error(operation, e))
        })
        .await
    }

    async fn call<T>(
        &self,
        operation: &str,
        bucket: &str,
        kind: CallKind,
        fut: impl Future<Output = Result<T, AzureError>>,
    ) -> Result<T, AzureError> {
        let after = self.inner.call_timeout;
        let start = tokio::time::Instant::now();
        let deadline = start.checked_add(after).unwrap_or(start);
        if let Err(wait) = self.inner.limiter.acquire_by(bucket, kind, deadline).await {
            return Err(AzureError::Throttled {
                operation: operation.to_owned(),
                retry_after: wait.min(self.inner.max_retry_after),
            });
        }
        let mut result = tokio::time::timeout_at(deadline, fut)
            .await
            .unwrap_or_else(|_| {
                Err(AzureError::Timeout {
                    operation: operation.to_owned(),
                    after,
                })
            });
        if let Err(AzureError::Throttled { retry_after, .. }) = &mut result {
            *retry_after = (*retry_after).min(self.inner.max_retry_after);
            self.inner.limiter.pause(bucket, kind, *retry_after);
        }
        result
    }

    /// Azure's `Retry-After` on an answer, at most `max_retry_after`.
    fn bounded_retry_after(&self, headers: &azure_core::headers::Headers) -> Option<Duration> {
        http::retry_after(headers).map(|d| d.min(self.inner.max_retry_after))
    }

    /// Sends an SDK request and reads its answer (a JSON object, see
    /// `http::read`); `None` on 404 when `missing_ok`.
    async fn sdk<R>(
        operation: &str,
        missing_ok: bool,
        fut: impl Future<Output = azure_core::Result<R>>,
    ) -> Result<Option<Answer>, AzureError>
    where
        R: Into<azure_core::Response>,
    {
        Self::sdk_answer(operation, missing_ok, false, fut).await
    }

    /// `sdk` for a DELETE: gone already is fine, and the answer may be empty.
    async fn sdk_delete<R>(
        operation: &str,
        fut: impl Future<Output = azure_core::Result<R>>,
    ) -> Result<Option<Answer>, AzureError>
    where
        R: Into<azure_core::Response>,
    {
        Self::sdk_answer(operation, true, true, fut).await
    }

    async fn sdk_answer<R>(
        operation: &str,
        missing_ok: bool,
        empty_ok: bool,
        fut: impl Future<Output = azure_core::Result<R>>,
    ) -> Result<Option<Answer>, AzureError>
    where
        R: Into<azure_core::Response>,
    {
        match fut.await {
            Ok(r) => http::read(r.into(), empty_ok)
                .await
                .map(Some)
                .map_err(|e| http::map_error(operation, e)),
            Err(e) if missing_ok && http::is_status(&e, 404) => Ok(None),
            Err(e) => Err(http::map_error(operation, e)),
        }
    }
}

/// A whole JSON answer that lacks what the operator reads from it: refused,
/// so a broken answer is never taken for "absent" or "off".
fn missing_in_answer(operation: &str, status: u16, what: &str) -> AzureError {
    AzureError::InvalidResponse {
        operation: operation.to_owned(),
        status,
        message: format!("the body has no {what}"),
    }
}

fn own(scopes: &[&str]) -> Vec<String> {
    scopes.iter().map(|s| (*s).to_owned()).collect()
}

/// Builds an SDK model from the JSON Azure documents (keeps the wire shape visible).
fn model<T: serde::de::DeserializeOwned>(
    operation: &str,
    v: serde_json::Value,
) -> Result<T, AzureError> {
    serde_json::from_value(v).map_err(|e| AzureError::Rejected {
        operation: operation.to_owned(),
        status: 400,
        code: "InvalidRequest".into(),
        message: format!("cannot build the request: {e}"),
    })
}

impl AzurePort for SdkAzure {
    async fn get_vault(&self, vault_id: &str) -> Result<Option<VaultFacts>, AzureError> {
        self.vault_facts(vault_id).await
    }
    async fn get_key(&self, vault_uri: &str, name: &str) -> Result<KeyFacts, AzureError> {
        self.key_facts(vault_uri, name).await
    }
    async fn create_key(
        &self,
        vault_uri: &str,
        name: &str,
        key_type: KeyType,
        size: i32,
    ) -> Result<KeyFacts, AzureError> {
        self.new_key(vault_uri, name, key_type, size).await
    }
    async fn get_rotation_policy(
        &self,
        vault_uri: &str,
        name: &str,
    ) -> Result<KeyRotation, AzureError> {
        self.read_rotation_policy(vault_uri, name).await
    }
    async fn set_rotation_policy(
        &self,
        vault_uri: &str,
        name: &str,
        policy: &KeyRotation,
    ) -> Result<KeyRotation, AzureError> {
        self.write_rotation_policy(vault_uri, name, policy).await
    }
    async fn rotate_key(&self, vault_uri: &str, name: &str) -> Result<KeyFacts, AzureError> {
        self.new_version(vault_uri, name).await
    }
    async fn disable_key_version(
        &self,
        key_uri: &str,
        version: &str,
    ) -> Result<DisableOutcome, AzureError> {
        self.disable_version(key_uri, version).await
    }
    async fn key_version_enabled(
        &self,
        key_uri: &str,
        version: &str,
    ) -> Result<Option<bool>, AzureError> {
        self.version_enabled(key_uri, version).await
    }
    async fn key_version_created(
        &self,
        key_uri: &str,
        version: &str,
    ) -> Result<Option<k8s_openapi::jiff::Timestamp>, AzureError> {
        self.version_created(key_uri, version).await
    }
    async fn restorable_account_name(&self, source_id: &str) -> Result<Option<String>, AzureError> {
        self.restorable_name(source_id).await
    }
    async fn provider_registered(&self, subscription_id: &str) -> Result<bool, AzureError> {
        self.cosmos_provider_registered(subscription_id).await
    }
    async fn user_assigned_principal(
        &self,
        identity_id: &str,
    ) -> Result<Option<String>, AzureError> {
        self.identity_principal(identity_id).await
    }
    async fn granted_principals(
        &self,
        vault_id: &str,
        model: PermissionModel,
        principals: &[String],
    ) -> Result<Vec<String>, AzureError> {
        self.principals_with_access(vault_id, model, principals)
            .await
    }
    async fn grant(
        &self,
        vault_id: &str,
        model: PermissionModel,
        principal_id: &str,
    ) -> Result<Grant, AzureError> {
        self.grant_access(vault_id, model, principal_id).await
    }
    async fn revoke_grant(
        &self,
        vault_id: &str,
        grant: &Grant,
    ) -> Result<RevokeOutcome, AzureError> {
        self.revoke_access(vault_id, grant).await
    }
    async fn get_account(&self, account: &AccountRef) -> Result<Option<AccountFacts>, AzureError> {
        self.account_facts(account).await
    }
    async fn accounts_in_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<AccountFacts>, AzureError> {
        self.list_accounts(subscription_id).await
    }
    async fn restorable_accounts(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<RestorableAccount>, AzureError> {
        self.restorable_list(subscription_id).await
    }
    async fn subscriptions(&self) -> Result<Vec<String>, AzureError> {
        self.subscription_list().await
    }
    async fn create_account(&self, new: &NewAccount) -> Result<PendingOperation, AzureError> {
        self.start_create(new).await
    }
    async fn update_account(
        &self,
        account: &AccountRef,
        change: &AccountChange,
    ) -> Result<PendingOperation, AzureError> {
        self.start_update(account, change).await
    }
    async fn delete_account(
        &self,
        account: &AccountRef,
    ) -> Result<Option<PendingOperation>, AzureError> {
        self.start_delete(account).await
    }
    async fn poll(&self, operation: &PendingOperation) -> Result<OperationState, AzureError> {
        self.poll_operation(operation).await
    }
}
