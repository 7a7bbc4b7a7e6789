//! Prometheus metrics and the health endpoints (`/healthz`, `/readyz`, `/metrics`).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::resource_metrics::{FigureSource, ResourceGauges};

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
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    kind: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Duration histograms by the labels `L`.
fn histograms<L: Clone + std::hash::Hash + Eq>() -> Family<L, Histogram, fn() -> Histogram> {
    Family::new_with_constructor(duration_histogram as fn() -> Histogram)
}

/// What `/readyz` answers, in the order a process goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Readiness {
    /// Leadership is not settled: the first try at the lease has not been answered.
    Starting = 0,
    /// Another replica holds the lease: this one stands by (ready, since it
    /// has nothing to sync; a standby that never turned ready would stall
    /// every rolling update).
    Standby = 1,
    /// Reconciling is about to start: the caches do not hold their first list yet.
    Syncing = 2,
    /// Both caches hold their first list: reconciling.
    Ready = 3,
}

impl Readiness {
    fn from_u8(v: u8) -> Readiness {
        match v {
            1 => Readiness::Standby,
            2 => Readiness::Syncing,
            3 => Readiness::Ready,
            _ => Readiness::Starting,
        }
    }

    /// `/readyz`'s status and body.
    fn answer(self) -> (StatusCode, &'static str) {
        match self {
            Readiness::Starting => (
                StatusCode::SERVICE_UNAVAILABLE,
                "starting: leadership not settled",
            ),
            Readiness::Standby => (StatusCode::OK, "standby"),
            Readiness::Syncing => (
                StatusCode::SERVICE_UNAVAILABLE,
                "syncing: the caches do not hold their first list yet",
            ),
            Readiness::Ready => (StatusCode::OK, "ok"),
        }
    }
}

/// One kind's figures, computed at scrape time from the caches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindCounts {
    pub kind: String,
    /// Objects in the cache per phase (every phase, zeros included).
    pub phases: Vec<(&'static str, i64)>,
    /// Objects whose last reconcile failed.
    pub failing: i64,
}

/// Computes the per-object gauges on each scrape (the controllers set it).
pub type CountSource = Box<dyn Fn() -> Vec<KindCounts> + Send + Sync>;

/// A function the controllers hand over, called at each scrape.
pub(crate) struct ScrapeSource<T>(Mutex<Option<Box<dyn Fn() -> T + Send + Sync>>>);

impl<T> Default for ScrapeSource<T> {
    fn default() -> Self {
        ScrapeSource(Mutex::new(None))
    }
}

impl<T> ScrapeSource<T> {
    /// Replaces an earlier source.
    pub(crate) fn set(&self, source: Box<dyn Fn() -> T + Send + Sync>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(source);
    }

    /// What the source says now; None before one is set.
    pub(crate) fn now(&self) -> Option<T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|source| source())
    }
}

/// The gauges computed at scrape time: an object deleted from the cluster
/// leaves its cache, so it leaves these gauges with nothing to forget.
#[derive(Default)]
struct CacheGauges {
    source: ScrapeSource<Vec<KindCounts>>,
}

impl std::fmt::Debug for CacheGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheGauges")
    }
}

impl Collector for CacheGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(counts) = self.source.now() else {
            return Ok(());
        };
        let resources = Family::<PhaseLabels, Gauge>::default();
        let failing = Family::<KindLabels, Gauge>::default();
        for c in &counts {
            for (phase, n) in &c.phases {
                resources
                    .get_or_create(&PhaseLabels {
                        kind: c.kind.clone(),
                        phase: (*phase).into(),
                    })
                    .set(*n);
            }
            failing
                .get_or_create(&KindLabels {
                    kind: c.kind.clone(),
                })
                .set(c.failing);
        }
        resources.encode(encoder.encode_descriptor(
            "resources",
            "Resources in the cache by kind and phase",
            None,
            resources.metric_type(),
        )?)?;
        failing.encode(encoder.encode_descriptor(
            "failing_resources",
            "Resources whose last reconcile failed, by kind",
            None,
            failing.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    reconcile_errors: Family<KindLabels, Counter>,
    active_workers: Family<KindLabels, Gauge>,
    azure_calls: Family<AzureLabels, Counter>,
    azure_seconds: Family<OperationLabels, Histogram, fn() -> Histogram>,
    throttled: Counter,
    leader: Gauge,
    cache_gauges: Arc<CacheGauges>,
    resource_gauges: Arc<ResourceGauges>,
    readiness: AtomicU8,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cmk_operator");
        let metrics = Metrics {
            reconciles: Family::default(),
            reconcile_seconds: histograms(),
            reconcile_errors: Family::default(),
            active_workers: Family::default(),
            azure_calls: Family::default(),
            azure_seconds: histograms(),
            throttled: Counter::default(),
            leader: Gauge::default(),
            cache_gauges: Arc::default(),
            resource_gauges: Arc::default(),
            readiness: AtomicU8::new(Readiness::Starting as u8),
            registry: Registry::default(),
        };
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the version of this binary is its label",
            build_info,
        );
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome (Ok or an error reason)",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            metrics.reconcile_seconds.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by kind (reconciles_total tells their outcomes)",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "active_workers",
            "Reconciles running now, by kind",
            metrics.active_workers.clone(),
        );
        registry.register(
            "azure_calls",
            "Azure calls by operation and HTTP status (or error class)",
            metrics.azure_calls.clone(),
        );
        registry.register(
            "azure_call_duration_seconds",
            "Azure call duration by operation",
            metrics.azure_seconds.clone(),
        );
        registry.register(
            "azure_throttled",
            "Azure answers of 429 Too Many Requests",
            metrics.throttled.clone(),
        );
        registry.register(
            "leader",
            "1 while this process reconciles (holds the lease, or runs without leader election)",
            metrics.leader.clone(),
        );
        registry.register_collector(Box::new(metrics.cache_gauges.clone()));
        registry.register_collector(Box::new(metrics.resource_gauges.clone()));
        Metrics {
            registry,
            ..metrics
        }
    }
}

/// Counts one running reconcile until dropped (finished or cancelled).
pub struct ActiveWorker(Gauge);

impl Drop for ActiveWorker {
    fn drop(&mut self) {
        self.0.dec();
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

    /// Records one failed reconcile.
    pub fn reconcile_failed(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// Counts a reconcile of `kind` as running until the guard is dropped.
    pub fn active_worker(&self, kind: &str) -> ActiveWorker {
        let gauge = self
            .active_workers
            .get_or_create(&KindLabels { kind: kind.into() })
            .clone();
        gauge.inc();
        ActiveWorker(gauge)
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
            .get_or_create(&OperationLabels {
                operation: operation.into(),
            })
            .observe(took.as_secs_f64());
        if status == "429" {
            self.throttled.inc();
        }
    }

    /// Where the per-object gauges come from (replaces an earlier source).
    pub fn count_from(&self, source: CountSource) {
        self.cache_gauges.source.set(source);
    }

    /// Where the per-resource gauges (conditions, key times) come from
    /// (replaces an earlier source).
    pub fn figures_from(&self, source: FigureSource) {
        self.resource_gauges.set_source(source);
    }

    /// Whether this process reconciles now.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Moves `/readyz` to `readiness`.
    pub fn set_readiness(&self, readiness: Readiness) {
        self.readiness.store(readiness as u8, Ordering::SeqCst);
    }

    /// What `/readyz` answers now.
    pub fn readiness(&self) -> Readiness {
        Readiness::from_u8(self.readiness.load(Ordering::SeqCst))
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
    m.readiness().answer()
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
        m.reconciled(
            "CosmosAccountCMK",
            "AzureThrottled",
            Duration::from_millis(20),
        );
        m.reconcile_failed("CosmosAccountCMK");
        m.azure_call("DatabaseAccounts_Get", "200", Duration::from_millis(5));
        m.azure_call("DatabaseAccounts_Get", "429", Duration::from_millis(5));
        m.set_leader(true);
        let text = m.encode();
        for line in [
            r#"cmk_operator_reconciles_total{kind="CosmosAccountCMK",outcome="Ok"} 1"#,
            r#"cmk_operator_reconcile_errors_total{kind="CosmosAccountCMK"} 1"#,
            r#"cmk_operator_azure_calls_total{operation="DatabaseAccounts_Get",status="429"} 1"#,
            r#"cmk_operator_azure_call_duration_seconds_count{operation="DatabaseAccounts_Get"} 2"#,
            "cmk_operator_azure_throttled_total 1",
            "cmk_operator_leader 1",
            concat!(
                r#"cmk_operator_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn active_workers_count_running_reconciles() {
        let m = Metrics::default();
        let line = |n: u32| format!(r#"cmk_operator_active_workers{{kind="KeyVaultBinding"}} {n}"#);
        let a = m.active_worker("KeyVaultBinding");
        let b = m.active_worker("KeyVaultBinding");
        assert!(m.encode().contains(&line(2)));
        drop(a);
        assert!(m.encode().contains(&line(1)));
        drop(b);
        assert!(m.encode().contains(&line(0)));
    }

    #[test]
    fn per_object_gauges_are_what_the_source_says_at_each_scrape() {
        let m = Metrics::default();
        assert!(
            !m.encode().contains("cmk_operator_resources"),
            "no source yet"
        );
        let objects = Arc::new(Mutex::new(vec!["Ready", "Ready", "Failed"]));
        let seen = objects.clone();
        m.count_from(Box::new(move || {
            let now = seen.lock().unwrap();
            let count = |p: &str| now.iter().filter(|o| **o == p).count() as i64;
            vec![KindCounts {
                kind: "KeyVaultBinding".into(),
                phases: vec![("Ready", count("Ready")), ("Failed", count("Failed"))],
                failing: count("Failed"),
            }]
        }));
        let text = m.encode();
        for line in [
            r#"cmk_operator_resources{kind="KeyVaultBinding",phase="Ready"} 2"#,
            r#"cmk_operator_resources{kind="KeyVaultBinding",phase="Failed"} 1"#,
            r#"cmk_operator_failing_resources{kind="KeyVaultBinding"} 1"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        // Both deleted from the cluster (gone from the cache): nothing remembers them.
        objects.lock().unwrap().retain(|o| *o != "Failed");
        objects.lock().unwrap().pop();
        let text = m.encode();
        for line in [
            r#"cmk_operator_resources{kind="KeyVaultBinding",phase="Ready"} 1"#,
            r#"cmk_operator_resources{kind="KeyVaultBinding",phase="Failed"} 0"#,
            r#"cmk_operator_failing_resources{kind="KeyVaultBinding"} 0"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }

    #[tokio::test]
    async fn readyz_answers_ready_only_when_synced_or_standing_by() {
        let m = Arc::new(Metrics::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, m.clone(), async {
            let _ = stopped.await;
        }));
        let expected = [
            (
                Readiness::Starting,
                "503",
                "starting: leadership not settled",
            ),
            (Readiness::Standby, "200", "standby"),
            (
                Readiness::Syncing,
                "503",
                "syncing: the caches do not hold their first list yet",
            ),
            (Readiness::Ready, "200", "ok"),
        ];
        for (readiness, status, body) in expected {
            m.set_readiness(readiness);
            let answer = get(addr, "/readyz").await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")) && answer.ends_with(body),
                "{readiness:?}: {answer}"
            );
        }
        assert!(get(addr, "/healthz").await.ends_with("ok"));
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }

    /// A plain HTTP/1.1 GET; the whole answer, head and body.
    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        answer
    }
}
