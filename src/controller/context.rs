//! What every reconcile shares: the Kubernetes client, the Azure port, the
//! caches of both kinds, settings, and the event recorder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::Reporter;

use super::event_recorder::Recorder;
use kube::runtime::reflector::Store;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::clock::Clock;
use super::error::Error;
use super::grant_gate::{self, GrantGate};
use super::listed::Listed;
use super::op_durations::OperationDurations;
use super::own_writes::OwnWrites;
use super::subscription_sizes::SubscriptionSizes;
use crate::api::{CosmosAccountCMK, CredentialRef, KeyVaultBinding};
use crate::azure::scoped::{CredentialRefError, WithCredential, credential_from_secret};
use crate::telemetry::Metrics;
use crate::tenancy_file::LiveTenancy;

/// Operator settings (flags of `cmk-operator run`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Object id of the Cosmos DB first-party principal in the tenant.
    pub first_party_principal: String,
    /// How often settled resources are checked against Azure (drift, rotation, revocation).
    pub resync: Duration,
    /// How often an in-flight Azure operation is polled (unless Azure asks for longer).
    pub poll: Duration,
    /// ARM reads per second per subscription that resyncs may spend: the resync
    /// interval grows with the number of accounts to stay within it.
    pub resync_reads_per_second: f64,
    /// Reconciles running at once, per kind.
    pub concurrency: u16,
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// This installation's name in account owner tags (`--cluster-id`, or
    /// derived from the cluster's `kube-system` namespace uid).
    pub cluster_id: String,
    /// The cluster id this installation used before (`--previous-cluster-id`):
    /// tags this very resource wrote under it move to `cluster_id`.
    pub previous_cluster_id: Option<String>,
    /// Now, for grace periods and backup windows (tests move it forward).
    pub clock: Clock,
    /// Which namespaces may use the operator, and on which Azure scopes
    /// (empty: none may); followed from its file while the operator runs.
    pub tenancy: LiveTenancy,
    /// After the shutdown signal, how long in-flight reconciles may take to
    /// finish before they are dropped (below the pod's grace period).
    pub shutdown_drain: Duration,
    /// How often each key version in use is read in Key Vault, so a disabled
    /// or deleted version wakes its accounts at once (zero: never; the
    /// accounts' own resync still finds it).
    pub key_watch: Duration,
    /// Key Vault reads per second per vault that those checks may spend: a
    /// vault with many versions in use is read less often.
    pub key_watch_reads_per_second: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            first_party_principal: String::new(),
            resync: Duration::from_secs(300),
            poll: Duration::from_secs(10),
            resync_reads_per_second: 5.0,
            concurrency: 8,
            namespace: None,
            cluster_id: "unit-test".to_owned(),
            previous_cluster_id: None,
            clock: Clock::default(),
            tenancy: LiveTenancy::default(),
            shutdown_drain: Duration::from_secs(10),
            key_watch: Duration::from_secs(30),
            key_watch_reads_per_second: 2.0,
        }
    }
}

/// Shared by all reconciles of both controllers.
pub struct Context<A> {
    pub client: kube::Client,
    /// The operator's own identity.
    pub azure: Arc<A>,
    /// Adapters for `spec.credentialRef` Secrets, by namespace/name and resourceVersion.
    scoped: Mutex<HashMap<String, (String, Arc<A>)>>,
    pub settings: Settings,
    pub bindings: Store<KeyVaultBinding>,
    pub accounts: Store<CosmosAccountCMK>,
    /// Set once both caches hold their first complete list (bindings, accounts).
    pub listed: [Listed; 2],
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per object, for exponential backoff; cleared on success.
    failures: Mutex<HashMap<String, u32>>,
    /// Status writes the shared cache has not shown yet.
    pub own_writes: OwnWrites,
    /// One grant check (and grant) per key vault at a time, shared by accounts.
    pub grants: GrantGate,
    /// How long Azure's operations have lately taken, to time the first poll.
    pub op_durations: OperationDurations,
    /// Accounts per subscription, for the resync budget.
    pub subscription_sizes: SubscriptionSizes,
}

impl<A> Context<A> {
    pub fn new(
        client: kube::Client,
        azure: A,
        settings: Settings,
        bindings: Store<KeyVaultBinding>,
        accounts: Store<CosmosAccountCMK>,
        listed: [Listed; 2],
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: "cosmos-cmk-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Context {
            client,
            azure: Arc::new(azure),
            scoped: Mutex::default(),
            settings,
            bindings,
            accounts,
            listed,
            recorder,
            metrics,
            failures: Mutex::default(),
            own_writes: OwnWrites::default(),
            grants: GrantGate::new(grant_gate::FRESH_FOR),
            op_durations: OperationDurations::default(),
            subscription_sizes: SubscriptionSizes::default(),
        }
    }

    /// Counts a failure of `key` and returns how many happened in a row before it.
    pub fn failed(&self, key: &str) -> u32 {
        let mut f = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = f.entry(key.to_owned()).or_insert(0);
        *n += 1;
        *n - 1
    }

    /// Forgets the failures of `key` (it succeeded, or it is gone).
    pub fn forget_failures(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// How many of `keys` (objects in a cache) failed their last reconcile.
    pub fn failing_among(&self, keys: impl Iterator<Item = String>) -> usize {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.filter(|k| failures.contains_key(k)).count()
    }

    /// The adapter for a resource: the operator's own, or the one of the Secret
    /// its `credentialRef` names (same namespace only), rebuilt when the Secret changes.
    pub async fn azure_for(
        &self,
        namespace: &str,
        credential: Option<&CredentialRef>,
    ) -> Result<Arc<A>, Error>
    where
        A: WithCredential,
    {
        let Some(reference) = credential else {
            return Ok(self.azure.clone());
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let name = &reference.secret_name;
        let secret = secrets
            .get_opt(name)
            .await?
            .ok_or_else(|| Error::Credential(CredentialRefError::NotFound(name.clone())))?;
        let key = format!("{namespace}/{name}");
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        let mut scoped = self
            .scoped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, adapter)) = scoped.get(&key)
            && *seen == version
        {
            return Ok(adapter.clone());
        }
        let source = credential_from_secret(name, &secret.data.unwrap_or_default())
            .map_err(Error::Credential)?;
        let adapter = Arc::new(self.azure.with_credential(source)?);
        scoped.insert(key, (version, adapter.clone()));
        Ok(adapter)
    }
}
