//! What a run measures: the simulator's call counters and their difference
//! over a window, Kubernetes writes in a window, and the rate-limit floor.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cmk_operator::sim::SimHandle;
use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};

use crate::Res;
use crate::cli::Common;
use crate::world::World;

pub type Counters = BTreeMap<String, BTreeMap<u16, u64>>;

pub fn counters(sim: &SimHandle) -> Counters {
    sim.counters()
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

pub fn diff(after: &Counters, before: &Counters) -> Counters {
    let mut out = Counters::new();
    for (op, by) in after {
        for (st, n) in by {
            let b = before.get(op).and_then(|m| m.get(st)).copied().unwrap_or(0);
            if *n > b {
                *out.entry(op.clone()).or_default().entry(*st).or_default() += n - b;
            }
        }
    }
    out
}

pub fn is_read_op(op: &str) -> bool {
    op.contains("_Get") || op.contains("_List") || op == "OperationsStatus_Get"
}

/// Kubernetes writes seen in a window: every watch event on the run's objects
/// (accounts, bindings, events) after the window starts.
pub async fn count_k8s_writes(w: &World, window: Duration) -> Res<BTreeMap<String, u64>> {
    async fn watch_count<K>(api: Api<K>, window: Duration) -> Res<u64>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let list = api.list_metadata(&ListParams::default()).await?;
        let rv = list.metadata.resource_version.unwrap_or_default();
        let mut n = 0u64;
        let end = Instant::now() + window;
        let mut rv_now = rv;
        while Instant::now() < end {
            let secs = end
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1);
            let wp = WatchParams::default().timeout(secs.min(290) as u32);
            let stream = api.watch(&wp, &rv_now).await?;
            futures::pin_mut!(stream);
            while let Some(ev) = tokio::time::timeout(
                end.saturating_duration_since(Instant::now()) + Duration::from_millis(1),
                stream.next(),
            )
            .await
            .ok()
            .flatten()
            {
                match ev? {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                        n += 1;
                        if let Some(v) = o.meta().resource_version.clone() {
                            rv_now = v;
                        }
                    }
                    WatchEvent::Bookmark(b) => rv_now = b.metadata.resource_version,
                    // The API server compacted past our version (a busy
                    // shared control plane): go on from a fresh list. A
                    // write in that gap would be missed; it is said so.
                    WatchEvent::Error(e) if e.code == 410 => {
                        eprintln!(
                            "bench: watch of the steady-state writes expired (410); relisting"
                        );
                        let list = api.list_metadata(&ListParams::default()).await?;
                        rv_now = list.metadata.resource_version.unwrap_or_default();
                        break;
                    }
                    WatchEvent::Error(e) => return Err(format!("watch: {e:?}").into()),
                }
                if Instant::now() >= end {
                    break;
                }
            }
        }
        Ok(n)
    }
    let (a, b, e) = tokio::join!(
        watch_count(w.accounts(), window),
        watch_count(w.bindings(), window),
        watch_count(Api::<Event>::namespaced(w.client.clone(), &w.ns), window),
    );
    Ok(BTreeMap::from([
        ("CosmosAccountCMK".to_owned(), a?),
        ("KeyVaultBinding".to_owned(), b?),
        ("Event".to_owned(), e?),
    ]))
}

/// Polls of one account creation by a client that waits the simulator's
/// `Retry-After` between polls (and no longer).
pub fn polls_per_create(c: &Common) -> f64 {
    let lro = i64::try_from(c.lro_ms).unwrap_or(i64::MAX);
    let hint = cmk_operator::sim::arm::lro::poll_hint_ms(lro) as f64;
    (c.lro_ms as f64 / hint).ceil()
}

/// The state machine's minimal sequence for one account: the account GET
/// while absent, the PUT, the polls `Retry-After` asks for, the GET that
/// confirms. (Returns reads, writes.)
pub fn minimal_calls(c: &Common) -> (f64, f64) {
    (2.0 + polls_per_create(c), 1.0)
}

/// Calls the accounts share, made once however many accounts there are: per
/// binding its vault GET, key GET and key creation; per vault one grant check,
/// the grant (the first party's, shared by all its accounts; on an
/// access-policy vault after a vault GET for its tenant) and the granting
/// account's next look at itself before its PUT (one action per reconcile,
/// then observe again); the subscription's provider registration read.
pub fn shared_calls(bindings: usize, vaults: usize, policy_vaults: usize) -> f64 {
    3.0 * bindings as f64 + 3.0 * vaults as f64 + policy_vaults as f64 + 1.0
}

/// The time ARM's buckets allow for N accounts' minimal sequences (one grant
/// write per vault on top): (floor, write-bound part, read-bound part).
pub fn floor(c: &Common, n: usize, vaults: usize) -> (f64, f64, f64) {
    let (reads, writes) = minimal_calls(c);
    floor_for(c, reads * n as f64, writes * n as f64 + vaults as f64)
}

/// The floor no client can beat: one poll per account, sent only after its
/// creation ended (which a client cannot know; `Retry-After` is all it gets).
pub fn hard_floor(c: &Common, n: usize, vaults: usize) -> f64 {
    let (_, writes) = minimal_calls(c);
    floor_for(c, 3.0 * n as f64, writes * n as f64 + vaults as f64).0
}

fn floor_for(c: &Common, reads: f64, writes: f64) -> (f64, f64, f64) {
    let w = ((writes - c.arm_write_burst) / c.arm_writes_per_second).max(0.0);
    let r = ((reads - c.arm_read_burst) / c.arm_reads_per_second).max(0.0);
    let lro = c.lro_ms as f64 / 1000.0;
    ((w + lro).max(r).max(lro), w, r)
}

/// The resync interval the operator uses for N accounts in one subscription
/// (its --resync-seconds, stretched to the --resync-reads-per-second budget).
pub fn effective_resync(c: &Common, n: usize) -> f64 {
    (c.resync_seconds as f64).max(n as f64 / c.resync_reads_per_second)
}
