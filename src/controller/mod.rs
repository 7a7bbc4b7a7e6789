//! kube-runtime wiring: watches with shared caches, finalizers, events,
//! bounded concurrency, backoff. The decisions live in `reconcile`.

pub mod account;
pub mod binding;
pub mod context;
pub mod error;
pub mod report;

use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

pub use context::{Context, Settings};
pub use error::Error;

use crate::api::{CosmosAccountCMK, KeyVaultBinding};
use crate::azure::AzurePort;

fn error_policy<K: Resource<DynamicType = ()>, A>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context<A>>,
) -> Action {
    let key = format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    );
    let delay = match err {
        Error::DeletionInProgress => ctx.settings.poll,
        _ => err.backoff(ctx.failed(&key)),
    };
    if matches!(err, Error::DeletionInProgress) {
        tracing::debug!(object = %key, "deletion in progress");
    } else {
        tracing::warn!(object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    }
    Action::requeue(delay)
}

/// Runs both controllers until `shutdown` resolves. The binding and account
/// caches are shared: a binding change re-queues the accounts that use it.
pub async fn run<A: AzurePort>(
    client: kube::Client,
    azure: A,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (bindings_api, accounts_api): (Api<KeyVaultBinding>, Api<CosmosAccountCMK>) = match &settings.namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let config = ControllerConfig::default().concurrency(settings.concurrency);

    let binding_ctl = Controller::new(bindings_api.clone(), watcher::Config::default())
        .with_config(config.clone());
    let account_ctl = Controller::new(accounts_api, watcher::Config::default()).with_config(config);
    let accounts = account_ctl.store();
    let by_binding = accounts.clone();
    let account_ctl = account_ctl.watches(
        bindings_api,
        watcher::Config::default(),
        move |b: KeyVaultBinding| {
            let ns = b.namespace();
            let name = b.name_any();
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
    ));
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));

    let bindings = binding_ctl
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |o, c: Arc<Context<A>>| async move {
                let key = format!(
                    "KeyVaultBinding/{}/{}",
                    o.namespace().unwrap_or_default(),
                    o.name_any()
                );
                let r = binding::reconcile(o, c.clone()).await;
                if r.is_ok() {
                    c.succeeded(&key);
                }
                r
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));
    let accounts = account_ctl
        .graceful_shutdown_on(shutdown)
        .run(
            |o, c: Arc<Context<A>>| async move {
                let key = format!(
                    "CosmosAccountCMK/{}/{}",
                    o.namespace().unwrap_or_default(),
                    o.name_any()
                );
                let r = account::reconcile(o, c.clone()).await;
                if r.is_ok() {
                    c.succeeded(&key);
                }
                r
            },
            error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()));
    futures::future::join(bindings, accounts).await;
}
