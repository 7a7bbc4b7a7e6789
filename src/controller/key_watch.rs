//! The key side of revocation: reads each key version in use once per
//! interval (`--key-watch-seconds`, within `--key-watch-reads-per-second`
//! per vault) and wakes the accounts on a version whose state changed, so a
//! disabled or deleted version is reported within about one interval however
//! long the accounts' own resync has grown. What to read and whom to wake is
//! decided in `crate::reconcile::key_watch`; this loop only feeds it from the
//! shared caches (no list call) and carries out the reads.

use std::sync::Arc;

use futures::channel::mpsc::UnboundedSender;
use futures::{StreamExt, stream};
use kube::ResourceExt;
use tokio::time::Instant;

use super::context::Context;
use crate::api::{CosmosAccountCMK, Phase};
use crate::azure::scoped::WithCredential;
use crate::reconcile::key_watch::{InUse, KeySide, KeyWatch, VersionRef, plan, to_wake};

/// Reads of one pass going out at once (each vault's limiter paces them further).
const READS_AT_ONCE: usize = 4;

/// Runs until `shutdown`; does nothing when the interval is zero.
pub async fn run<A: WithCredential>(
    ctx: Arc<Context<A>>,
    wake: UnboundedSender<Arc<CosmosAccountCMK>>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let every = ctx.settings.key_watch;
    if every.is_zero() {
        return;
    }
    let watch = async {
        for cache in &ctx.listed {
            if !cache.wait().await {
                return;
            }
        }
        let mut state = KeyWatch::default();
        loop {
            let next = pass(&ctx, &mut state, &wake).await;
            // Sleep until the next version falls due, but look at the caches
            // again at least once per interval (new accounts, rotations).
            let until = next.map_or(Instant::now() + every, |t| {
                Instant::from_std(t).min(Instant::now() + every)
            });
            tokio::time::sleep_until(until.max(Instant::now() + MIN_PAUSE)).await;
        }
    };
    tokio::select! {
        () = watch => {}
        () = shutdown => {}
    }
}

/// The loop never spins faster than this, whatever the plan says.
const MIN_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads the versions that are due and wakes whom a change concerns; returns
/// when the next version falls due.
async fn pass<A: WithCredential>(
    ctx: &Arc<Context<A>>,
    state: &mut KeyWatch,
    wake: &UnboundedSender<Arc<CosmosAccountCMK>>,
) -> Option<std::time::Instant> {
    let in_use = versions_in_use(ctx);
    let plan = plan(
        &in_use,
        ctx.settings.key_watch,
        ctx.settings.key_watch_reads_per_second,
    );
    state.retain(&plan);
    let now = std::time::Instant::now();
    let due = state.due(&plan, now);
    let answers: Vec<(VersionRef, Option<KeySide>)> = stream::iter(due)
        .map(|v| {
            let user = in_use
                .iter()
                .find(|u| u.version == v)
                .map(|u| u.account.clone());
            async move {
                let side = match user {
                    Some(a) => read(ctx, &a, &v).await,
                    None => None,
                };
                (v, side)
            }
        })
        .buffer_unordered(READS_AT_ONCE)
        .collect()
        .await;
    for (v, side) in answers {
        state.read(&v, now);
        let Some(side) = side else { continue };
        let previous = state.observe(&v, side);
        let woken = to_wake(&v, previous, side, &in_use);
        if !woken.is_empty() {
            tracing::info!(
                key = %v.key_uri,
                version = %v.version,
                ?side,
                accounts = woken.len(),
                "key version changed: waking the accounts that use it"
            );
        }
        for a in woken {
            let _ = wake.unbounded_send(a.clone());
        }
    }
    state.next_due(&plan, std::time::Instant::now())
}

/// Every account that reports a key version in use, from the shared cache.
fn versions_in_use<A>(ctx: &Context<A>) -> Vec<InUse<Arc<CosmosAccountCMK>>> {
    ctx.accounts
        .state()
        .into_iter()
        .filter(|a| a.metadata.deletion_timestamp.is_none())
        .filter_map(|a| {
            let s = a.status.as_ref()?;
            let version = VersionRef::new(
                s.key_vault_key_uri.as_deref()?,
                s.key_version_in_use.as_deref()?,
            );
            let reports_revoked = s.phase == Phase::Revoked;
            Some(InUse {
                account: a,
                version,
                reports_revoked,
            })
        })
        .collect()
}

/// One read of a version, with the credential the account's binding uses;
/// `None` when it could not be read (logged; tried again next interval).
async fn read<A: WithCredential>(
    ctx: &Context<A>,
    account: &CosmosAccountCMK,
    v: &VersionRef,
) -> Option<KeySide> {
    let ns = account.namespace().unwrap_or_default();
    let credential = ctx
        .bindings
        .state()
        .into_iter()
        .find(|b| {
            b.namespace().as_deref() == Some(ns.as_str())
                && b.name_any() == account.spec.key_vault_binding_ref.name
        })
        .and_then(|b| b.spec.credential_ref.clone());
    let answer = match ctx.azure_for(&ns, credential.as_ref()).await {
        Ok(azure) => azure
            .key_version_enabled(&v.key_uri, &v.version)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match answer {
        Ok(Some(true)) => Some(KeySide::Usable),
        Ok(Some(false)) => Some(KeySide::Disabled),
        Ok(None) => Some(KeySide::Deleted),
        Err(error) => {
            tracing::warn!(key = %v.key_uri, version = %v.version, %error, "key version not read; the accounts' own resync still checks it");
            None
        }
    }
}
