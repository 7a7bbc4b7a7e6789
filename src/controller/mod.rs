//! kube-runtime wiring: watches with shared caches, finalizers, events,
//! bounded concurrency, backoff, metrics. The decisions live in `reconcile`.

pub mod account;
mod act_account;
pub mod binding;
mod binding_rotation;
mod cache_peers;
mod cleanup_account;
pub mod clock;
pub mod context;
pub mod error;
pub mod event_recorder;
#[cfg(test)]
mod fake_azure;
mod figures;
pub mod grant_gate;
mod guard_facts;
mod key_watch;
pub mod listed;
mod observe_account;
pub mod op_durations;
pub mod own_writes;
pub mod report;
mod subscription_sizes;
pub mod tenancy_gate;

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use context::{Context, Settings};
pub use error::Error;

use crate::api::{CosmosAccountCMK, KeyVaultBinding, Phase};
use crate::azure::scoped::WithCredential;
use crate::telemetry::{KindCounts, Metrics, Readiness};

/// `Kind/namespace/name`: how logs and the failure counts name an object.
fn key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{kind}/{}/{name}", namespace.unwrap_or_default())
}

fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    key(
        &K::kind(&()),
        obj.meta().namespace.as_deref(),
        &obj.name_any(),
    )
}

fn error_policy<K: Resource<DynamicType = ()>, A>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context<A>>,
) -> Action {
    let key = object_key(&*obj);
    if let Error::DeletionInProgress(next) = err {
        tracing::debug!(object = %key, "deletion in progress");
        return Action::requeue(*next);
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
    fn phase(&self) -> Option<Phase>;
}

impl Reported for KeyVaultBinding {
    type Status = crate::api::KeyVaultBindingStatus;
    fn reported(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn phase(&self) -> Option<Phase> {
        self.status.as_ref().map(|s| s.phase)
    }
}

impl Reported for CosmosAccountCMK {
    type Status = crate::api::CosmosAccountCMKStatus;
    fn reported(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn phase(&self) -> Option<Phase> {
        self.status.as_ref().map(|s| s.phase)
    }
}

/// How soon to look again when the cache does not show our last write yet
/// (the watch usually delivers it within milliseconds).
const CACHE_CATCH_UP: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs one reconcile with its metrics (outcome, duration, running workers);
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
    let running = ctx.metrics.active_worker(&kind);
    let result = reconcile(obj.clone(), ctx.clone()).await;
    drop(running);
    let outcome = match &result {
        Ok(_) => "Ok",
        Err(Error::Azure(e)) => e.reason(),
        Err(Error::DeletionInProgress(_)) => "DeletionInProgress",
        Err(_) => "Error",
    };
    ctx.metrics.reconciled(&kind, outcome, start.elapsed());
    match &result {
        Ok(_) => ctx.forget_failures(&key),
        // Waiting for Azure to finish a deletion is no failure.
        Err(Error::DeletionInProgress(_)) => {}
        Err(_) => ctx.metrics.reconcile_failed(&kind),
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
fn spec_driven<K>(api: Api<K>, mark: listed::MarkListed) -> Controller<K>
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
        .modify(slim)
        .reflect(writer)
        .inspect_ok(move |event| mark.observe(event))
        .applied_objects()
        .predicate_filter(spec_or_finalizers, Default::default());
    Controller::for_stream(changes, reader)
}

/// What the caches keep of an object: all but its `managedFields` and kubectl's
/// last-applied copy, which the operator never reads (it writes with patches,
/// never a whole object). Server-side apply's field sets are parsed into JSON
/// trees: at 10,000 accounts they were 138 of the operator's 176 MB of heap.
fn slim<K: Resource>(obj: &mut K) {
    obj.managed_fields_mut().clear();
    if let Some(a) = obj.meta_mut().annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// What wakes a controller: the spec (generation: creation, edits, the
/// deletion mark), the finalizers, or the operator's own annotations (a
/// re-create or an owner confirmation is acted on at once); never a status write.
fn spec_or_finalizers<K: Resource>(obj: &K) -> Option<u64> {
    predicates::generation
        .combine(predicates::finalizers)
        .combine(operator_annotations)
        .hash_property(obj)
}

/// A hash of the `cosmoscmk.io/` annotations (none: nothing to hash).
fn operator_annotations<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let ours: Vec<_> = obj
        .meta()
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("cosmoscmk.io/"))
        .collect();
    if ours.is_empty() {
        return None;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ours.hash(&mut h);
    Some(h.finish())
}

/// `spec_or_finalizers` for a shared stream (kube's `predicate_filter` only
/// takes a watch stream): an object passes when that hash changed, per uid.
/// A shared stream carries no deletions, so the hashes of objects gone from
/// `live` (the cache) are dropped whenever they outnumber the live ones.
fn only_spec_changes<K>(
    objects: impl futures::Stream<Item = Arc<K>>,
    live: reflector::Store<K>,
) -> impl futures::Stream<Item = Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let mut seen = std::collections::HashMap::<String, Option<u64>>::new();
    let uid = |obj: &K| obj.meta().uid.clone().unwrap_or_else(|| obj.name_any());
    objects.filter_map(move |obj| {
        let now = spec_or_finalizers(&*obj);
        let changed = seen.insert(uid(&obj), now) != Some(now);
        if seen.len() > 2 * live.len() + 64 {
            let alive: std::collections::HashSet<String> =
                live.state().iter().map(|o| uid(o)).collect();
            seen.retain(|k, _| alive.contains(k));
        }
        futures::future::ready(changed.then_some(obj))
    })
}

/// Logs a failed watch request with the kind it watches (a missing CRD is a
/// 404 here, missing RBAC a 403); the watch retries with `WatchBackoff`.
fn watch_failed(kind: &str, error: &watcher::Error) {
    tracing::warn!(kind, %error, "watch failed; retrying in 0.5 to 5 s");
}

/// What a controller's run stream yields for each scheduled reconcile.
type RunResult<K> =
    Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<Error, watcher::Error>>;

/// Takes one item of a controller's run stream: logs what went wrong, with
/// the object or kind, and forgets the failures of objects that are gone.
fn ran<K: Resource<DynamicType = ()>, A>(ctx: &Context<A>, result: RunResult<K>) {
    use kube::runtime::controller::Error as Ctl;
    let kind = K::kind(&());
    match result {
        Ok(_) => {}
        // `error_policy` logged it, with the retry delay.
        Err(Ctl::ReconcilerFailed(..)) => {}
        // Deleted after its reconcile was scheduled (expected, kube-runtime
        // says): its failure count goes with it.
        Err(Ctl::ObjectNotFound(obj)) => {
            let object = key(&kind, obj.namespace.as_deref(), &obj.name);
            tracing::debug!(%object, "scheduled reconcile of an object no longer in the cache");
            ctx.forget_failures(&object);
        }
        Err(Ctl::QueueError(e)) => watch_failed(&kind, &e),
        Err(Ctl::RunnerError(e)) => {
            tracing::error!(kind = %kind, error = %e, "controller runner failed");
        }
    }
}

/// One kind's per-object gauges from its cache: objects by phase (those
/// without a status yet are not counted), and how many failed their last reconcile.
fn cache_counts<K, A>(ctx: &Context<A>, cache: &reflector::Store<K>) -> KindCounts
where
    K: Resource<DynamicType = ()> + Reported + Clone,
{
    let objects = cache.state();
    let phases = Phase::ALL
        .iter()
        .map(|p| {
            let n = objects.iter().filter(|o| o.phase() == Some(*p)).count();
            (p.as_str(), i64::try_from(n).unwrap_or(i64::MAX))
        })
        .collect();
    let failing = ctx.failing_among(objects.iter().map(|o| object_key(&**o)));
    KindCounts {
        kind: K::kind(&()).into_owned(),
        phases,
        failing: i64::try_from(failing).unwrap_or(i64::MAX),
    }
}

/// Room for binding events a subscriber has not taken yet (the watch waits
/// when it is full).
const BINDING_EVENTS_BUFFER: usize = 1024;

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

    // One watch of the bindings fills their cache first, then wakes the binding
    // controller and the accounts that use a binding. With a second watch for
    // the accounts' trigger, an account could be woken by its binding turning
    // Ready and still read it NotReady from the cache (then wait a full resync).
    let (bindings, writer) = reflector::store_shared(BINDING_EVENTS_BUFFER);
    let (Some(to_binding_ctl), Some(to_accounts)) = (writer.subscribe(), writer.subscribe()) else {
        unreachable!("a shared store hands out subscriptions");
    };
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let (bindings_mark, bindings_listed) = listed::listed();
    let (accounts_mark, accounts_listed) = listed::listed();
    // This watch's errors reach no controller (a shared stream carries only
    // objects): they are logged here.
    let binding_feed = watcher(bindings_api, watcher::Config::default())
        .backoff(WatchBackoff::default())
        .modify(slim)
        .reflect_shared(writer)
        .inspect_ok(move |event| bindings_mark.observe(event))
        .inspect_err(|e| watch_failed(&KeyVaultBinding::kind(&()), e))
        .take_until(shutdown.clone())
        .for_each(|_| futures::future::ready(()));
    // A changed tenancy policy may allow or refuse any resource: all are
    // looked at again at once, not at their next resync.
    let binding_ctl = Controller::for_shared_stream(
        only_spec_changes(to_binding_ctl, bindings.clone()),
        bindings.clone(),
    )
    .with_config(config.clone())
    .reconcile_all_on(settings.tenancy.changes());
    let account_ctl = spec_driven(accounts_api, accounts_mark)
        .with_config(config)
        .reconcile_all_on(settings.tenancy.changes());
    let accounts = account_ctl.store();
    let by_binding = accounts.clone();
    // The key watch wakes the accounts on a key version whose state changed.
    let (wake_accounts, woken) = futures::channel::mpsc::unbounded::<Arc<CosmosAccountCMK>>();
    let account_ctl = account_ctl
        .watches_shared_stream(woken, |a: Arc<CosmosAccountCMK>| {
            Some(ObjectRef::from_obj(&*a))
        })
        .watches_shared_stream(to_accounts, move |b: Arc<KeyVaultBinding>| {
            let (ns, name) = (b.namespace(), b.name_any());
            by_binding
                .state()
                .into_iter()
                .filter(|a| a.namespace() == ns && a.spec.key_vault_binding_ref.name == name)
                .map(|a| ObjectRef::from_obj(&*a))
                .collect::<Vec<_>>()
        });

    let drain = settings.shutdown_drain;
    let shutdown_for_keys = shutdown.clone();
    let drain_after = shutdown.clone();
    metrics.set_readiness(Readiness::Syncing);
    let ctx = Arc::new(Context::new(
        client,
        azure,
        settings,
        bindings,
        accounts,
        [bindings_listed, accounts_listed],
        metrics,
    ));
    let counted = Arc::downgrade(&ctx);
    ctx.metrics.count_from(Box::new(move || {
        counted.upgrade().map_or_else(Vec::new, |ctx| {
            vec![
                cache_counts(&ctx, &ctx.bindings),
                cache_counts(&ctx, &ctx.accounts),
            ]
        })
    }));
    let figured = Arc::downgrade(&ctx);
    ctx.metrics.figures_from(Box::new(move || {
        figured.upgrade().map_or_else(Vec::new, |ctx| {
            let bindings = ctx.bindings.state();
            let accounts = ctx.accounts.state();
            let bindings = bindings.iter().map(|b| figures::binding(b));
            bindings
                .chain(accounts.iter().map(|a| figures::account(a)))
                .collect()
        })
    }));
    let synced = {
        let (listed, metrics) = (ctx.listed.clone(), ctx.metrics.clone());
        let stop = shutdown.clone();
        async move {
            let both = async {
                for cache in &listed {
                    if !cache.wait().await {
                        return;
                    }
                }
                metrics.set_readiness(Readiness::Ready);
                tracing::info!("caches synced; ready");
            };
            tokio::select! {
                () = both => {}
                () = stop => {}
            }
        }
    };

    let bindings = binding_ctl
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |o, c| observed(o, c, binding::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|result| {
            ran(&ctx, result);
            futures::future::ready(())
        });
    let accounts = account_ctl
        .graceful_shutdown_on(shutdown)
        .run(
            |o, c| observed(o, c, account::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|result| {
            ran(&ctx, result);
            futures::future::ready(())
        });
    // Graceful shutdown waits for in-flight reconciles, and one can be inside
    // a slow Azure call or a Retry-After wait for tens of seconds: past
    // `drain` they are dropped, as SIGKILL would (every step is idempotent and
    // resumes from what Azure and the status hold), so the process ends
    // within the pod's grace period whatever Azure does.
    let keys = key_watch::run(ctx.clone(), wake_accounts, shutdown_for_keys);
    let stopped = futures::future::join5(binding_feed, bindings, accounts, synced, keys);
    let overdue = async move {
        drain_after.await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        _ = stopped => {}
        () = overdue => tracing::warn!(
            drain = ?drain,
            "reconciles still running after the shutdown drain; dropping them"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;
    use std::time::Duration;

    fn binding(
        uid: &str,
        generation: i64,
        finalizers: &[&str],
        phase: crate::api::Phase,
    ) -> Arc<KeyVaultBinding> {
        let mut b: KeyVaultBinding = serde_json::from_value(serde_json::json!({
            "apiVersion": "cosmoscmk.io/v1alpha1", "kind": "KeyVaultBinding",
            "metadata": {"name": uid, "namespace": "ns", "uid": uid, "generation": generation},
            "spec": {
                "vaultResourceId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v",
                "key": {"name": "k"}
            }
        }))
        .expect("a binding");
        b.metadata.finalizers = Some(finalizers.iter().map(|f| (*f).to_owned()).collect());
        b.status = Some(crate::api::KeyVaultBindingStatus {
            phase,
            ..Default::default()
        });
        Arc::new(b)
    }

    #[test]
    fn the_caches_keep_no_managed_fields_or_last_applied_copy() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let mut b =
            (*binding("u1", 1, &["cosmoscmk.io/cleanup"], crate::api::Phase::Ready)).clone();
        b.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            ..Default::default()
        }]);
        b.metadata.annotations = Some(
            [
                ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
                ("cosmoscmk.io/rotate", "1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let before = b.clone();
        slim(&mut b);
        assert!(b.metadata.managed_fields.unwrap_or_default().is_empty());
        let kept: Vec<_> = b
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_keys()
            .collect();
        assert_eq!(
            kept,
            ["cosmoscmk.io/rotate"],
            "the operator's own annotations stay"
        );
        assert_eq!(
            (b.spec, b.status, b.metadata.finalizers),
            (before.spec, before.status, before.metadata.finalizers)
        );
    }

    #[tokio::test]
    async fn only_spec_or_finalizer_changes_pass() {
        let at = |generation: i64, finalizers: &[&str], phase: crate::api::Phase| {
            binding("u1", generation, finalizers, phase)
        };
        use crate::api::Phase::{Pending, Ready};
        let events = futures::stream::iter(vec![
            at(1, &[], Pending),
            at(1, &[], Ready),      // our own status write: dropped
            at(1, &["f"], Ready),   // finalizer added
            at(2, &["f"], Ready),   // spec edited
            at(2, &["f"], Pending), // status again: dropped
        ]);
        let (live, _) = reflector::store();
        let passed: Vec<_> = only_spec_changes(events, live)
            .map(|b| (b.metadata.generation, b.finalizers().len()))
            .collect()
            .await;
        assert_eq!(passed, [(Some(1), 0), (Some(1), 1), (Some(2), 1)]);
    }

    #[tokio::test]
    async fn the_operators_annotations_pass_and_others_do_not() {
        let with = |annotations: &[(&str, &str)]| {
            let mut b = (*binding("u1", 1, &[], crate::api::Phase::Ready)).clone();
            b.metadata.annotations = Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
            Arc::new(b)
        };
        let events = futures::stream::iter(vec![
            with(&[]),
            with(&[("team", "a")]), // not ours: dropped
            with(&[("team", "a"), ("cosmoscmk.io/confirm-owner", "u0")]),
            with(&[("team", "b"), ("cosmoscmk.io/confirm-owner", "u0")]), // dropped
            // A new reconcile or rotate value wakes the controller; the same again does not.
            with(&[(crate::api::RECONCILE_ANNOTATION, "1")]),
            with(&[(crate::api::RECONCILE_ANNOTATION, "1")]), // dropped
            with(&[(crate::api::RECONCILE_ANNOTATION, "2")]),
            with(&[
                (crate::api::RECONCILE_ANNOTATION, "2"),
                (crate::api::ROTATE_ANNOTATION, "a"),
            ]),
        ]);
        let (live, _) = reflector::store();
        let passed = only_spec_changes(events, live).count().await;
        assert_eq!(passed, 5);
    }

    #[tokio::test]
    async fn hashes_of_deleted_objects_are_dropped() {
        use crate::api::Phase::{Pending, Ready};
        let (live, mut cache) = reflector::store();
        cache.apply_watcher_event(&watcher::Event::Apply(
            (*binding("u0", 1, &[], Pending)).clone(),
        ));
        // 67 objects seen (more than 2 × 1 live + 64), only u0 still in the
        // cache: the others' hashes go...
        let mut events: Vec<_> = (0..67)
            .map(|i| binding(&format!("u{i}"), 1, &[], Pending))
            .collect();
        // ...so a later status-only change passes for a gone one (it cannot
        // be told from a new object), never for the live one.
        events.push(binding("u0", 1, &[], Ready));
        events.push(binding("u1", 1, &[], Ready));
        let passed: Vec<String> = only_spec_changes(futures::stream::iter(events), live)
            .map(|b| b.name_any())
            .collect()
            .await;
        assert_eq!(passed.len(), 68);
        assert_eq!(passed.last().map(String::as_str), Some("u1"));
    }

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
