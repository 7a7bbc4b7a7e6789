//! `cmk-operator run`: builds the Azure backend (real Azure by default, or
//! the embedded simulator when asked for), the Kubernetes client, checks the
//! installed CRDs, and runs the controllers until SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;

use crate::azure::cloud::Cloud;
use crate::azure::instrumented::Instrumented;
use crate::azure::rate_limit::RateLimiter;
use crate::azure::sdk::{AzureSettings, CredentialSource, SdkAzure};
use kube::api::Api;

use crate::controller::clock::Clock;
use crate::controller::{self, Settings};
use crate::leader::{self, LeaseSettings};
use crate::telemetry::{self, Metrics, Readiness};
use crate::tenancy::{PolicyInForce, TenancyPolicy};
use crate::tenancy_file::{self, LiveTenancy};
#[cfg(feature = "simulator")]
use crate::{embedded::SimCloud, sim::SimConfig};

/// Which Azure the operator talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Real Azure, with credentials from the environment (workload identity or a client secret).
    Azure,
    /// The embedded local simulator, seeded with the world `deploy/examples/` expects
    /// (demos and tests; never a default).
    Simulator,
}

/// Options of `cmk-operator run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunOptions {
    /// Azure backend: real Azure unless `--azure simulator` asks for the embedded simulator.
    #[arg(long, value_enum, default_value = "azure", env = "CMK_AZURE")]
    pub azure: Backend,
    /// Azure cloud: AzurePublicCloud, AzureUSGovernment or AzureChinaCloud.
    #[arg(long, default_value = "AzurePublicCloud", env = "AZURE_CLOUD")]
    pub cloud: String,
    /// Object id of the Azure Cosmos DB first-party service principal in your tenant
    /// (`az ad sp show --id a232010e-820c-4083-83bb-3ace5fc29d0b --query id -o tsv`).
    #[arg(long, env = "CMK_FIRST_PARTY_PRINCIPAL_ID")]
    pub first_party_principal_id: Option<String>,
    /// Seconds between checks of settled resources against Azure (drift, rotation, revocation).
    #[arg(long, default_value_t = 300, env = "CMK_RESYNC_SECONDS")]
    pub resync_seconds: u64,
    /// Seconds between polls of an in-flight Azure operation when Azure's answer
    /// gave no Retry-After (when it did, the operator waits at least that long,
    /// and until the operation is as old as recent ones of its kind took).
    #[arg(long, default_value_t = 10, env = "CMK_POLL_SECONDS")]
    pub poll_seconds: u64,
    /// ARM reads per second per subscription that drift checks may spend (ARM
    /// allows 25): with many accounts the resync interval grows to stay within it.
    #[arg(long, default_value_t = 5.0, env = "CMK_RESYNC_READS_PER_SECOND")]
    pub resync_reads_per_second: f64,
    /// Seconds between reads of each key version in use in Key Vault: a
    /// disabled or deleted version wakes the accounts on it at once, however
    /// long their resync has grown (0: off). See docs/scale.md.
    #[arg(long, default_value_t = 30, env = "CMK_KEY_WATCH_SECONDS")]
    pub key_watch_seconds: u64,
    /// Key Vault reads per second per vault those checks may spend (Key Vault
    /// allows 1,000 per 10 s per vault for RSA 3072-bit software keys).
    #[arg(long, default_value_t = 2.0, env = "CMK_KEY_WATCH_READS_PER_SECOND")]
    pub key_watch_reads_per_second: f64,
    /// The longest Azure `Retry-After` the operator honours, in seconds: a larger
    /// one (Azure has been seen to send absurd values) is read as this, so a
    /// subscription is never paused longer.
    #[arg(long, default_value_t = 300, env = "CMK_MAX_RETRY_AFTER_SECONDS")]
    pub max_retry_after_seconds: u64,
    /// Seconds in-flight reconciles may take to finish after SIGTERM before
    /// they are dropped (they resume on the next start). Keep it below the
    /// pod's terminationGracePeriodSeconds (30 by default).
    #[arg(long, default_value_t = 10, env = "CMK_SHUTDOWN_DRAIN_SECONDS")]
    pub shutdown_drain_seconds: u64,
    /// Reconciles running at once, per kind.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Watch one namespace only (default: all).
    #[arg(long, env = "CMK_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// This installation's name in the owner tags of the accounts it creates or
    /// adopts. Unset: derived from this cluster's `kube-system` namespace uid
    /// (unique per cluster; the operator needs `get` on that namespace). Two
    /// clusters must never share one: a resource only writes to or deletes an
    /// account whose tags name its cluster id, namespace, name and uid.
    #[arg(long, env = "CMK_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// The cluster id this installation used before (for example `default`,
    /// the old default): accounts whose owner tags name it together with the
    /// very resource (namespace, name and uid) are re-tagged with the current
    /// id; tags written under it by other clusters stay theirs.
    #[arg(long, env = "CMK_PREVIOUS_CLUSTER_ID")]
    pub previous_cluster_id: Option<String>,
    /// Listen address of the embedded simulator (with --azure simulator).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub simulator_listen: std::net::SocketAddr,
    /// Milliseconds a simulated long-running operation takes.
    #[arg(long, default_value_t = 3000)]
    pub simulator_lro_ms: u64,
    /// With --azure simulator: use the simulator already running at this address
    /// (`https://127.0.0.1:8443/`, as `cmk-operator simulate` prints it) instead of
    /// embedding one: Azure's host names are resolved to it. It must use the
    /// default tenant and operator credentials (docs/simulator.md).
    #[arg(long, env = "CMK_SIMULATOR_URL")]
    pub simulator_url: Option<String>,
    /// With --simulator-url: the simulator's CA certificate (PEM; `simulate --ca-file`).
    #[arg(long, env = "CMK_SIMULATOR_CA_FILE")]
    pub simulator_ca_file: Option<std::path::PathBuf>,
    /// With --azure azure: CA certificates (a PEM file) to trust for Azure's
    /// hosts besides the public roots, e.g. a TLS-inspecting proxy's.
    #[arg(long, env = "CMK_EXTRA_CA_FILE")]
    pub extra_ca_file: Option<std::path::PathBuf>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "CMK_HEALTH_LISTEN")]
    pub health_listen: std::net::SocketAddr,
    /// Address of a second listener for /metrics (Prometheus scrapes it); off when unset.
    #[arg(long, env = "CMK_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Elect a leader on a Lease so only one replica reconciles (on by default in a cluster).
    #[arg(long, default_value_t = true, env = "CMK_LEADER_ELECTION", action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the Lease (the pod's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "cosmos-cmk-operator")]
    pub lease_name: String,
    /// YAML file of the tenancy policy: which namespaces may use the operator,
    /// with its own Azure identity or only their spec.credentialRef, and which
    /// Azure scopes each may target (README "Tenancy"). Without it no namespace
    /// may: every resource is refused with NamespaceNotAllowed and nothing is
    /// done in Azure. Read again every 5 s: a change takes effect without a
    /// restart (every resource is reconciled again), and while the changed
    /// file cannot be read or parsed every resource is refused with
    /// TenancyPolicyUnusable. An unusable file at start stops the start.
    #[arg(long, env = "CMK_TENANCY_CONFIG")]
    pub tenancy_config: Option<std::path::PathBuf>,
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "unknown Azure cloud {0:?}: use AzurePublicCloud, AzureUSGovernment or AzureChinaCloud"
    )]
    UnknownCloud(String),
    #[error(
        "cmk-operator run manages real Azure (the default; `--azure simulator` runs the embedded simulator instead), and settings it needs are missing: {}",
        .0.join("; ")
    )]
    AzureSettingsMissing(Vec<String>),
    #[cfg(feature = "simulator")]
    #[error("cannot start the embedded simulator: {0}")]
    Simulator(#[from] crate::sim::SimError),
    #[error(
        "this build of cmk-operator has no embedded simulator (the production image is built without it): give --simulator-url and --simulator-ca-file of a running `cmk-sim`, or use a build with the `simulator` feature (cargo's default)"
    )]
    NoEmbeddedSimulator,
    #[error("Azure credentials: {0}")]
    Azure(#[from] crate::azure::AzureError),
    #[error("Kubernetes client: {0} (set KUBECONFIG, or run in a cluster)")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Crd(#[from] crate::crd_check::CrdError),
    #[error("cannot serve health and metrics on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    #[error("lost the leader lease ({0}); exiting so a fresh process can stand by")]
    LostLease(crate::leader::Lost),
    #[error("leader election: {0}")]
    LeaseTiming(#[from] crate::leader::TimingError),
    #[error(
        "--simulator-url (or CMK_SIMULATOR_URL) only applies with --azure simulator; with --azure azure the operator talks to real Azure: drop it, or use --azure simulator"
    )]
    SimulatorUrlWithAzure,
    #[error(
        "--simulator-ca-file (or CMK_SIMULATOR_CA_FILE) only applies with --simulator-url: the embedded simulator and real Azure bring their own trust; drop it, or give the --simulator-url it belongs to"
    )]
    SimulatorCaFileWithoutUrl,
    #[error(
        "--extra-ca-file (or CMK_EXTRA_CA_FILE) only applies with --azure azure: the simulator brings its own trust; drop it, or use --azure azure"
    )]
    ExtraCaFileWithSimulator,
    #[error(transparent)]
    ExtraCa(#[from] crate::azure::sdk::ExtraCaError),
    #[error(
        "--first-party-principal-id (or CMK_FIRST_PARTY_PRINCIPAL_ID) does not apply to the embedded simulator: its Cosmos DB first party is its own principal in its own tenant; drop it, or give --simulator-url of a simulator seeded with that principal"
    )]
    FirstPartyWithEmbeddedSimulator,
    #[error(
        "--simulator-url {0:?}: {1} (give the address `cmk-operator simulate` printed, e.g. https://127.0.0.1:8443/, and its --simulator-ca-file)"
    )]
    SimulatorUrl(String, String),
    #[error("cannot read the tenancy policy {0} (--tenancy-config): {1}")]
    TenancyRead(std::path::PathBuf, std::io::Error),
    #[error("the tenancy policy {0} (--tenancy-config) is refused: {1}")]
    Tenancy(std::path::PathBuf, crate::tenancy::PolicyError),
    #[error(
        "--resync-reads-per-second must be a positive number of ARM reads per second (got {0}); ARM allows 25 per subscription, the default is 5"
    )]
    ResyncBudget(f64),
    #[error(
        "--key-watch-reads-per-second must be a positive number of Key Vault reads per second per vault (got {0}); the default is 2"
    )]
    KeyWatchBudget(f64),
    #[error(
        "--max-retry-after-seconds must be at least 1 (got 0): with 0 every throttled call would be retried at once, hammering a throttled subscription; the default is 300"
    )]
    MaxRetryAfter,
    #[error(transparent)]
    ClusterId(#[from] crate::cluster_id::ClusterIdError),
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(opts: RunOptions) -> Result<(), StartError> {
    let limiter = Arc::new(RateLimiter::arm_defaults());
    let call_timeout = Duration::from_secs(30);
    if opts.max_retry_after_seconds == 0 {
        return Err(StartError::MaxRetryAfter);
    }
    // A flag that cannot apply is refused by name, never ignored.
    if opts.simulator_ca_file.is_some() && opts.simulator_url.is_none() {
        return Err(StartError::SimulatorCaFileWithoutUrl);
    }
    if let Some(path) = &opts.extra_ca_file {
        if opts.azure == Backend::Simulator {
            return Err(StartError::ExtraCaFileWithSimulator);
        }
        let count = crate::azure::sdk::trust_extra_roots(path)?;
        tracing::info!(file = %path.display(), certificates = count, "trusting extra CA certificates for Azure");
    }
    let max_retry_after = Duration::from_secs(opts.max_retry_after_seconds);
    // Keeps the embedded simulator alive as long as the operator runs.
    #[cfg(feature = "simulator")]
    let mut _simulator = None;
    if !(opts.resync_reads_per_second.is_finite() && opts.resync_reads_per_second > 0.0) {
        return Err(StartError::ResyncBudget(opts.resync_reads_per_second));
    }
    if !(opts.key_watch_reads_per_second.is_finite() && opts.key_watch_reads_per_second > 0.0) {
        return Err(StartError::KeyWatchBudget(opts.key_watch_reads_per_second));
    }
    let tenancy = LiveTenancy::new(PolicyInForce::Valid(load_tenancy(
        opts.tenancy_config.as_deref(),
    )?));
    if let Some(path) = &opts.tenancy_config {
        tokio::spawn(tenancy_file::follow(
            path.clone(),
            tenancy.clone(),
            tenancy_file::FOLLOW_EVERY,
        ));
    }
    // Resolved for every backend: the simulator serves each cloud's hosts, so
    // `--cloud` means there what it means against Azure (never ignored).
    let named_cloud =
        Cloud::by_name(&opts.cloud).ok_or_else(|| StartError::UnknownCloud(opts.cloud.clone()))?;
    let (azure, first_party) = match (opts.azure, &opts.simulator_url) {
        (Backend::Simulator, Some(url)) => {
            let cloud =
                external_simulator(url, opts.simulator_ca_file.as_deref(), named_cloud).await?;
            tracing::warn!(simulator = %url, cloud = %cloud, "using an external Azure simulator");
            let (credential, first_party) = external_simulator_identity(&opts, &cloud)?;
            let settings = AzureSettings {
                cloud,
                credential,
                call_timeout,
                max_retry_after,
                limiter,
            };
            (SdkAzure::new(settings)?, first_party)
        }
        #[cfg(not(feature = "simulator"))]
        (Backend::Simulator, None) => return Err(StartError::NoEmbeddedSimulator),
        #[cfg(feature = "simulator")]
        (Backend::Simulator, None) => {
            if opts
                .first_party_principal_id
                .as_deref()
                .is_some_and(|id| !id.trim().is_empty())
            {
                return Err(StartError::FirstPartyWithEmbeddedSimulator);
            }
            tracing::warn!(
                cloud = %named_cloud,
                "using the embedded Azure simulator; pass --azure azure to manage real Azure"
            );
            let config = SimConfig {
                listen: opts.simulator_listen,
                lro_duration: Duration::from_millis(opts.simulator_lro_ms),
                ..SimConfig::default()
            };
            let sim = crate::embedded::start(config).await?;
            let (client_id, client_secret, _) = sim.operator_credentials();
            let settings = AzureSettings {
                cloud: sim.cloud_as(named_cloud),
                credential: CredentialSource::ClientSecret {
                    tenant_id: sim.tenant_id().to_owned(),
                    client_id,
                    client_secret,
                },
                call_timeout,
                max_retry_after,
                limiter,
            };
            let first_party = sim.config().cosmos_first_party_object_id.clone();
            tracing::info!(address = %sim.addr(), "embedded simulator started");
            _simulator = Some(sim);
            (SdkAzure::new(settings)?, first_party)
        }
        (Backend::Azure, Some(_)) => return Err(StartError::SimulatorUrlWithAzure),
        (Backend::Azure, None) => {
            let cloud = named_cloud;
            let first_party = real_azure_settings(&opts, &cloud)?;
            let settings = AzureSettings {
                cloud,
                credential: CredentialSource::Environment,
                call_timeout,
                max_retry_after,
                limiter,
            };
            (SdkAzure::new(settings)?, first_party)
        }
    };
    let client = kube::Client::try_default().await?;
    crate::crd_check::verify(
        &client,
        &crate::api::crds(),
        crate::crd_check::PUBLICATION_LAG,
    )
    .await?;
    let cluster_id = crate::cluster_id::resolve(
        &client,
        opts.cluster_id.as_deref(),
        opts.azure == Backend::Azure,
    )
    .await?;
    tracing::info!(%cluster_id, "owner tags name this cluster id");
    let metrics = Arc::new(Metrics::default());
    for addr in std::iter::once(opts.health_listen).chain(opts.metrics_listen) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| StartError::Listen(addr, e))?;
        // The bound address, so a port 0 request shows which port it got.
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(%bound, "serving /healthz, /readyz and /metrics");
        tokio::spawn(telemetry::serve(
            listener,
            metrics.clone(),
            shutdown_signal(),
        ));
    }
    let settings = Settings {
        first_party_principal: first_party,
        resync: Duration::from_secs(opts.resync_seconds),
        poll: Duration::from_secs(opts.poll_seconds),
        resync_reads_per_second: opts.resync_reads_per_second,
        concurrency: opts.concurrency,
        namespace: opts.namespace.clone(),
        previous_cluster_id: opts
            .previous_cluster_id
            .clone()
            .filter(|p| !p.is_empty() && *p != cluster_id),
        cluster_id,
        clock: Clock::default(),
        tenancy,
        shutdown_drain: Duration::from_secs(opts.shutdown_drain_seconds),
        key_watch: Duration::from_secs(opts.key_watch_seconds),
        key_watch_reads_per_second: opts.key_watch_reads_per_second,
    };
    let azure = Instrumented::new(azure, metrics.clone());
    if !opts.leader_election {
        metrics.set_leader(true);
        controller::run(client, azure, settings, metrics, shutdown_signal()).await;
        return Ok(());
    }

    let lease = LeaseSettings {
        namespace: opts.lease_namespace.clone(),
        name: opts.lease_name.clone(),
        identity: std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("cmk-operator-{}", std::process::id())),
        // client-go's defaults.
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };
    lease.check()?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &lease.namespace);
    // Not ready until the lease has answered: a standby is ready (it has
    // nothing to sync), the leader once its caches hold their first list.
    let standby = || metrics.set_readiness(Readiness::Standby);
    let acquired = tokio::select! {
        began = leader::acquire_or_stand_by(&leases, &lease, standby) => began,
        () = shutdown_signal() => return Ok(()),
    };
    metrics.set_leader(true);
    // SIGTERM drains the controllers (still leading) and then releases the
    // lease; a lost lease drops them at once, drain or not.
    let controllers = controller::run(client, azure, settings, metrics.clone(), shutdown_signal());
    let led = leader::while_leading(&leases, &lease, acquired, controllers).await;
    metrics.set_leader(false);
    if let Err(lost) = led {
        return Err(StartError::LostLease(lost));
    }
    if let Err(e) = leader::release(&leases, &lease).await {
        tracing::warn!(error = %e, "could not release the lease; the next leader waits for it to expire");
    }
    tracing::info!("stopped");
    Ok(())
}

/// `cloud` resolved to the simulator at `url`, trusting its CA file.
async fn external_simulator(
    url: &str,
    ca_file: Option<&std::path::Path>,
    cloud: Cloud,
) -> Result<Cloud, StartError> {
    let bad = |why: String| StartError::SimulatorUrl(url.to_owned(), why);
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if parsed.scheme() != "https" {
        return Err(bad("the simulator serves https only".into()));
    }
    let host = parsed.host_str().ok_or_else(|| bad("no host".into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port().unwrap_or(443);
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("the host has no address".into()))?;
    let ca_file = ca_file.ok_or_else(|| bad("--simulator-ca-file is missing".into()))?;
    let ca_pem = std::fs::read_to_string(ca_file)
        .map_err(|e| bad(format!("cannot read {}: {e}", ca_file.display())))?;
    Ok(cloud.redirected(addr, &ca_pem))
}

/// The object id of the first-party principal, once every setting real Azure
/// needs is there; otherwise all that are missing, named at once.
fn real_azure_settings(opts: &RunOptions, cloud: &Cloud) -> Result<String, StartError> {
    let mut missing = Vec::new();
    let first_party = opts
        .first_party_principal_id
        .clone()
        .filter(|id| !id.trim().is_empty());
    if first_party.is_none() {
        missing.push(format!(
            "--first-party-principal-id (or CMK_FIRST_PARTY_PRINCIPAL_ID), the object id of the Azure Cosmos DB service principal in your tenant: `az ad sp show --id {} --query id -o tsv`",
            cloud.cosmos_first_party_app_id
        ));
    }
    match CredentialSource::Environment.resolve_with(|k| std::env::var(k).ok()) {
        Ok(_) => {}
        Err(crate::azure::AzureError::Authentication { message, .. }) => {
            missing.push(format!("Azure credentials: {message}"));
        }
        Err(e) => missing.push(e.to_string()),
    }
    match first_party {
        Some(id) if missing.is_empty() => Ok(id),
        _ => Err(StartError::AzureSettingsMissing(missing)),
    }
}

/// Who the operator is at an external simulator: as at real Azure, the
/// credentials in the environment and `--first-party-principal-id`. A build
/// with the embedded simulator falls back to the simulator's default tenant,
/// operator and first party when none are given; a build without it carries
/// no simulator secret and insists on them.
fn external_simulator_identity(
    opts: &RunOptions,
    cloud: &Cloud,
) -> Result<(CredentialSource, String), StartError> {
    #[cfg(feature = "simulator")]
    if std::env::var_os("AZURE_CLIENT_ID").is_none() {
        let defaults = SimConfig::default();
        let credential = CredentialSource::ClientSecret {
            tenant_id: defaults.tenant_id.clone(),
            client_id: defaults.operator_client_id.clone(),
            client_secret: defaults.operator_client_secret.clone(),
        };
        let first_party = opts
            .first_party_principal_id
            .clone()
            .filter(|id| !id.trim().is_empty())
            .unwrap_or(defaults.cosmos_first_party_object_id);
        return Ok((credential, first_party));
    }
    let first_party = real_azure_settings(opts, cloud)?;
    Ok((CredentialSource::Environment, first_party))
}

/// The tenancy policy of `--tenancy-config`, or the empty one (nothing allowed).
fn load_tenancy(path: Option<&std::path::Path>) -> Result<TenancyPolicy, StartError> {
    let Some(path) = path else {
        tracing::warn!(
            "no --tenancy-config: no namespace may use the operator (every resource is refused with NamespaceNotAllowed); give it a tenancy policy (Helm value tenancy.namespaces)"
        );
        return Ok(TenancyPolicy::default());
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| StartError::TenancyRead(path.to_owned(), e))?;
    let policy =
        TenancyPolicy::from_yaml(&text).map_err(|e| StartError::Tenancy(path.to_owned(), e))?;
    let namespaces: Vec<&str> = policy
        .namespaces
        .iter()
        .map(|e| e.namespace.as_str())
        .collect();
    if namespaces.is_empty() {
        tracing::warn!(path = %path.display(), "the tenancy policy allows no namespace");
    } else {
        tracing::info!(path = %path.display(), ?namespaces, "tenancy policy loaded");
    }
    Ok(policy)
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunOptions,
    }

    fn opts(args: &[&str]) -> RunOptions {
        Cli::try_parse_from(std::iter::once("cmk-operator").chain(args.iter().copied()))
            .expect("options parse")
            .run
    }

    #[tokio::test]
    async fn an_unknown_cloud_is_refused_by_name_with_the_simulator_too() {
        for backend in ["simulator", "azure"] {
            let err = run(opts(&["--azure", backend, "--cloud", "AzureMars"]))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StartError::UnknownCloud(c) if c == "AzureMars"),
                "{backend}: {err}"
            );
        }
    }

    #[cfg(feature = "simulator")]
    #[tokio::test]
    async fn a_first_party_id_is_refused_by_name_with_the_embedded_simulator() {
        let err = run(opts(&[
            "--azure",
            "simulator",
            "--first-party-principal-id",
            "00000000-0000-0000-0000-000000000001",
        ]))
        .await
        .unwrap_err();
        assert!(
            matches!(err, StartError::FirstPartyWithEmbeddedSimulator),
            "{err}"
        );
        assert!(err.to_string().contains("--first-party-principal-id"));
    }

    #[test]
    fn a_missing_first_party_id_names_the_chosen_clouds_application() {
        for (name, app_id) in [
            (
                "AzureUSGovernment",
                crate::azure::cloud::COSMOS_APP_ID_US_GOV,
            ),
            ("AzureChinaCloud", crate::azure::cloud::COSMOS_APP_ID_PUBLIC),
        ] {
            let o = opts(&["--cloud", name]);
            let cloud = Cloud::by_name(&o.cloud).unwrap();
            let Err(StartError::AzureSettingsMissing(missing)) = real_azure_settings(&o, &cloud)
            else {
                panic!("{name}: the first-party id is missing");
            };
            assert!(
                missing[0].contains(&format!("az ad sp show --id {app_id}")),
                "{name}: {missing:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_external_simulator_is_addressed_as_the_named_cloud() {
        let dir = std::env::temp_dir().join(format!("cmk-cloud-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "PEM").unwrap();
        for named in [Cloud::us_government(), Cloud::china()] {
            let cloud = external_simulator("https://127.0.0.1:8443/", Some(&ca), named.clone())
                .await
                .unwrap();
            assert_eq!(
                cloud.redirect.as_ref().map(|r| r.addr),
                Some(([127, 0, 0, 1], 8443).into())
            );
            assert_eq!(
                Cloud {
                    redirect: None,
                    ..cloud
                },
                named
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
