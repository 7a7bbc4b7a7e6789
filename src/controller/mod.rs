//! kube-runtime wiring: watches with shared caches, finalizers, events,
//! bounded concurrency, backoff, metrics. The decisions live in `reconcile`.

pub mod account;
pub mod binding;
pub mod context;
pub mod error;
pub mod own_writes;
pub mod report;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use context::{Context, Settings};
pub use error::Error;

use crate::api::{CosmosAccountCMK, KeyVaultBinding};
use crate::azure::scoped::WithCredential;
use crate::telemetry::Metrics;

fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

fn error_policy<K: Resource<DynamicType = ()>, A>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context<A>>,
) -> Action {
    let key = object_key(&*obj);
    if matches!(err, Error::DeletionInProgress) {
        tracing::debug!(object = %key, "deletion in progress");
        return Action::requeue(ctx.settings.poll);
    }
    let delay = err.backoff(ctx.failed(&key));
    tracing::warn!(object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The status an object carries: its phase (for the phase gauge) and the whole
/// status (to tell whether the cache shows our last write).
pub trait Reported {
    type Status: Serialize;
    fn reported(&self) -> Option<&Self::Status>;
    fn phase(&self) -> Option<&'static str>;
}

impl Reported for KeyVaultBinding {
    type Status = crate::api::KeyVaultBindingStatus;
    fn reported(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn phase(&self) -> Option<&'static str> {
        self.status.as_ref().map(|s| s.phase.as_str())
    }
}

impl Reported for CosmosAccountCMK {
    type Status = crate::api::CosmosAccountCMKStatus;
    fn reported(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn phase(&self) -> Option<&'static str> {
        self.status.as_ref().map(|s| s.phase.as_str())
    }
}

/// How soon to look again when the cache does not show our last write yet
/// (the watch usually delivers it within milliseconds).
const CACHE_CATCH_UP: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs one reconcile with its metrics (outcome, duration, the object's phase);
/// a success clears the object's failure count.
async fn observed<K, A, F, Fut>(
    obj: Arc<K>,
    ctx: Arc<Context<A>>,
    reconcile: F,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Reported,
    F: FnOnce(Arc<K>, Arc<Context<A>>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let kind = K::kind(&());
    let key = object_key(&*obj);
    if let Some(uid) = &obj.meta().uid
        && !ctx.own_writes.caught_up(uid, obj.reported())
    {
        tracing::debug!(object = %key, "the cache does not show our last status write yet");
        return Ok(Action::requeue(CACHE_CATCH_UP));
    }
    let start = tokio::time::Instant::now();
    let result = reconcile(obj.clone(), ctx.clone()).await;
    let outcome = match &result {
        Ok(_) => "Ok",
        Err(Error::Azure(e)) => e.reason(),
        Err(Error::DeletionInProgress) => "DeletionInProgress",
        Err(_) => "Error",
    };
    ctx.metrics.reconciled(&kind, outcome, start.elapsed());
    let gone = obj.meta().deletion_timestamp.is_some() && result.is_ok();
    ctx.metrics
        .phase(&kind, &key, if gone { None } else { obj.phase() });
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// Reconnect delays of a broken watch: 0.5 s doubling to 5 s. kube's default
/// grows to 30 s, which after an API server restart (outage, then a 410 Gone
/// that forces a re-list) kept the cache stale for most of a minute; a watch
/// request is cheap for the API server.
struct WatchBackoff {
    next: std::time::Duration,
}

impl WatchBackoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(500);
    const MAX: std::time::Duration = std::time::Duration::from_secs(5);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;
    fn next(&mut self) -> Option<Self::Item> {
        let now = self.next;
        self.next = (now * 2).min(Self::MAX);
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// A controller woken by changes of an object's spec (generation: creation,
/// edits, the deletion mark) or finalizers, not by status writes: the operator
/// writes every status itself and requeues on its own schedule, so the watch
/// event of its own write would only cost one more reconcile (and one more
/// Azure read). The shared cache still sees every change.
fn spec_driven<K>(api: Api<K>) -> Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let changes = watcher(api, watcher::Config::default())
        .backoff(WatchBackoff::default())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        );
    Controller::for_stream(changes, reader)
}

/// Runs both controllers until `shutdown` resolves. The binding and account
/// caches are shared: a binding change re-queues the accounts that use it.
pub async fn run<A: WithCredential>(
    client: kube::Client,
    azure: A,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (bindings_api, accounts_api): (Api<KeyVaultBinding>, Api<CosmosAccountCMK>) =
        match &settings.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
    let config = ControllerConfig::default().concurrency(settings.concurrency);

    let binding_ctl = spec_driven(bindings_api.clone()).with_config(config.clone());
    let account_ctl = spec_driven(accounts_api).with_config(config);
    let accounts = account_ctl.store();
    let by_binding = accounts.clone();
    let account_ctl = account_ctl.watches(
        bindings_api,
        watcher::Config::default(),
        move |b: KeyVaultBinding| {
            let (ns, name) = (b.namespace(), b.name_any());
            by_binding
                .state()
                .into_iter()
                .filter(|a| a.namespace() == ns && a.spec.key_vault_binding_ref.name == name)
                .map(|a| ObjectRef::from_obj(&*a))
                .collect::<Vec<_>>()
        },
    );

    let ctx = Arc::new(Context::new(
        client,
        azure,
        settings,
        binding_ctl.store(),
        accounts,
        metrics,
    ));
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));

    let bindings = binding_ctl
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |o, c| observed(o, c, binding::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));
    let accounts = account_ctl
        .graceful_shutdown_on(shutdown)
        .run(|o, c| observed(o, c, account::reconcile), error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    futures::future::join(bindings, accounts).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;
    use std::time::Duration;

    #[test]
    fn watch_reconnects_back_off_to_five_seconds_and_reset() {
        let mut b = WatchBackoff::default();
        let first: Vec<_> = b.by_ref().take(6).collect();
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(
            first,
            [ms(500), ms(1000), ms(2000), ms(4000), ms(5000), ms(5000)]
        );
        b.reset();
        assert_eq!(b.next(), Some(ms(500)));
    }
}
