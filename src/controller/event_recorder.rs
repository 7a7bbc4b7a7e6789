//! Publishes Kubernetes events (events.k8s.io/v1) and folds a repeat within
//! six minutes into the first one's series, as kube-runtime's `Recorder`
//! does, with a compact memory of what it published.
//!
//! kube-runtime's recorder keeps every published event in full (the event and
//! its key, about 1.5 kB each) for six minutes and sweeps the whole map under
//! a write lock on every publish: at 2,000 accounts it was 57 of the
//! operator's 76 MB of heap and grew with N, and the sweep is O(events) per
//! event. Here a published event is remembered as a 64-bit digest of its key,
//! its name, namespace and count (about 100 bytes), and the sweep runs when
//! the map has doubled.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// A repeat within this long is counted on the first event (kube-runtime's TTL).
const SERIES_FOR: Duration = Duration::from_secs(6 * 60);

/// What is kept of a published event.
#[derive(Clone, Debug)]
struct Published {
    name: String,
    count: i32,
    last: Instant,
}

pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    published: Mutex<HashMap<u64, Published>>,
}

impl Recorder {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            published: Mutex::default(),
        }
    }

    /// Creates the event, or counts it on the same event published within
    /// the last six minutes (same type, reason, action and object).
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = self.key(ev, regarding);
        let now = Instant::now();
        let earlier = self.remember(key, now);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        if let Some(p) = earlier {
            let series = serde_json::json!({ "series": EventSeries {
                count: p.count,
                last_observed_time: MicroTime(Timestamp::now()),
            }});
            match events
                .patch(&p.name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Ok(_) => return Ok(()),
                // Gone from the API server (events expire): a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.event(ev, regarding);
        let name = event.metadata.name.clone().unwrap_or_default();
        events.create(&PostParams::default(), &event).await?;
        self.created(
            key,
            Published {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Published>> {
        self.published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The event published under `key` within `SERIES_FOR`, its count raised.
    fn remember(&self, key: u64, now: Instant) -> Option<Published> {
        let mut published = self.lock();
        let p = published.get_mut(&key)?;
        if now.duration_since(p.last) >= SERIES_FOR {
            published.remove(&key);
            return None;
        }
        p.count += 1;
        p.last = now;
        Some(p.clone())
    }

    fn created(&self, key: u64, p: Published) {
        let mut published = self.lock();
        if published.len() >= 64 && published.len().is_power_of_two() {
            let now = p.last;
            published.retain(|_, e| now.duration_since(e.last) < SERIES_FOR);
        }
        published.insert(key, p);
    }

    /// How many published events are remembered (for tests and figures).
    pub fn remembered(&self) -> usize {
        self.lock().len()
    }

    fn key(&self, ev: &Event, regarding: &ObjectReference) -> u64 {
        let mut h = DefaultHasher::new();
        matches!(ev.type_, EventType::Warning).hash(&mut h);
        ev.reason.hash(&mut h);
        ev.action.hash(&mut h);
        (
            &regarding.api_version,
            &regarding.kind,
            &regarding.namespace,
            &regarding.name,
            &regarding.uid,
        )
            .hash(&mut h);
        ev.secondary
            .as_ref()
            .map(|s| (&s.kind, &s.namespace, &s.name, &s.uid))
            .hash(&mut h);
        h.finish()
    }

    fn event(&self, ev: &Event, regarding: &ObjectReference) -> K8sEvent {
        let now = Timestamp::now();
        let controller = self.reporter.controller.clone();
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_instance: Some(self.reporter.instance.clone().unwrap_or(controller.clone())),
            reporting_controller: Some(controller),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..Default::default()
        }
    }
}
