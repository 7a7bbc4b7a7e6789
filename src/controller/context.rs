//! What every reconcile shares: the Kubernetes client, the Azure port, the
//! caches of both kinds, settings, and the event recorder.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;

use crate::api::{CosmosAccountCMK, KeyVaultBinding};
use crate::telemetry::Metrics;

/// Operator settings (flags of `cmk-operator run`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Object id of the Cosmos DB first-party principal in the tenant.
    pub first_party_principal: String,
    /// How often settled resources are checked against Azure (drift, rotation, revocation).
    pub resync: Duration,
    /// How often an in-flight Azure operation is polled.
    pub poll: Duration,
    /// Reconciles running at once, per kind.
    pub concurrency: u16,
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            first_party_principal: String::new(),
            resync: Duration::from_secs(300),
            poll: Duration::from_secs(10),
            concurrency: 8,
            namespace: None,
        }
    }
}

/// Shared by all reconciles of both controllers.
pub struct Context<A> {
    pub client: kube::Client,
    pub azure: A,
    pub settings: Settings,
    pub bindings: Store<KeyVaultBinding>,
    pub accounts: Store<CosmosAccountCMK>,
    pub recorder: Recorder,
    pub metrics: std::sync::Arc<Metrics>,
    /// Consecutive failures per object, for exponential backoff; cleared on success.
    failures: Mutex<HashMap<String, u32>>,
}

impl<A> Context<A> {
    pub fn new(
        client: kube::Client,
        azure: A,
        settings: Settings,
        bindings: Store<KeyVaultBinding>,
        accounts: Store<CosmosAccountCMK>,
        metrics: std::sync::Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: "cosmos-cmk-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Context {
            client,
            azure,
            settings,
            bindings,
            accounts,
            recorder,
            metrics,
            failures: Mutex::default(),
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

    /// Forgets the failures of `key`.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}
