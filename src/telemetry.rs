//! Prometheus metrics and the health endpoints (`/healthz`, `/readyz`, `/metrics`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AzureLabels {
    operation: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    kind: String,
    phase: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    azure_calls: Family<AzureLabels, Counter>,
    azure_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    throttled: Counter,
    phases: Family<PhaseLabels, Gauge>,
    last_phase: Mutex<HashMap<(String, String), String>>,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cmk_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_seconds =
            Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        let azure_calls = Family::<AzureLabels, Counter>::default();
        let azure_seconds =
            Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        let throttled = Counter::default();
        let phases = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome (Ok or an error reason)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            reconcile_seconds.clone(),
        );
        registry.register(
            "azure_calls",
            "Azure calls by operation and HTTP status (or error class)",
            azure_calls.clone(),
        );
        registry.register(
            "azure_call_duration_seconds",
            "Azure call duration by operation",
            azure_seconds.clone(),
        );
        registry.register(
            "azure_throttled",
            "Azure answers of 429 Too Many Requests",
            throttled.clone(),
        );
        registry.register("resources", "Resources by kind and phase", phases.clone());
        Metrics {
            registry,
            reconciles,
            reconcile_seconds,
            azure_calls,
            azure_seconds,
            throttled,
            phases,
            last_phase: Mutex::default(),
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Records one reconcile.
    pub fn reconciled(&self, kind: &str, outcome: &str, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.reconcile_seconds
            .get_or_create(&KindLabels { kind: kind.into() })
            .observe(took.as_secs_f64());
    }

    /// Records one Azure call; `status` is the HTTP status or an error class.
    pub fn azure_call(&self, operation: &str, status: &str, took: Duration) {
        self.azure_calls
            .get_or_create(&AzureLabels {
                operation: operation.into(),
                status: status.into(),
            })
            .inc();
        self.azure_seconds
            .get_or_create(&KindLabels {
                kind: operation.into(),
            })
            .observe(took.as_secs_f64());
        if status == "429" {
            self.throttled.inc();
        }
    }

    /// Tracks the phase of one object (`None` when it is gone).
    pub fn phase(&self, kind: &str, key: &str, phase: Option<&str>) {
        let mut last = self
            .last_phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = (kind.to_owned(), key.to_owned());
        if let Some(old) = last.remove(&id) {
            self.phases
                .get_or_create(&PhaseLabels {
                    kind: kind.into(),
                    phase: old,
                })
                .dec();
        }
        if let Some(p) = phase {
            self.phases
                .get_or_create(&PhaseLabels {
                    kind: kind.into(),
                    phase: p.into(),
                })
                .inc();
            last.insert(id, p.to_owned());
        }
    }

    /// Marks the process ready (caches synced, or standing by for the lease).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(m): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if m.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> String {
    m.encode()
}

/// Serves the health and metrics endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics_state: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(metrics_state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exported_with_their_labels() {
        let m = Metrics::default();
        m.reconciled("CosmosAccountCMK", "Ok", Duration::from_millis(20));
        m.azure_call("DatabaseAccounts_Get", "200", Duration::from_millis(5));
        m.azure_call("DatabaseAccounts_Get", "429", Duration::from_millis(5));
        m.phase("CosmosAccountCMK", "ns/a", Some("Provisioning"));
        m.phase("CosmosAccountCMK", "ns/a", Some("Ready"));
        let text = m.encode();
        assert!(
            text.contains(
                r#"cmk_operator_reconciles_total{kind="CosmosAccountCMK",outcome="Ok"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"cmk_operator_azure_calls_total{operation="DatabaseAccounts_Get",status="429"} 1"#
        ));
        assert!(text.contains("cmk_operator_azure_throttled_total 1"));
        assert!(
            text.contains(r#"cmk_operator_resources{kind="CosmosAccountCMK",phase="Ready"} 1"#)
        );
        assert!(
            text.contains(
                r#"cmk_operator_resources{kind="CosmosAccountCMK",phase="Provisioning"} 0"#
            )
        );
    }
}
