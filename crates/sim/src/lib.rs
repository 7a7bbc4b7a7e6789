//! Local Azure simulator (ARM, Key Vault data plane, Entra token endpoint).
//!
//! One HTTPS listener, with a certificate authority generated at start,
//! serves Azure's own host names (`management.azure.com`,
//! `login.microsoftonline.com`, `{vault}.vault.azure.net`, and the sovereign
//! clouds' equivalents) routed by `Host`, plus the admin API: clients resolve
//! those names to the listener and trust the CA (see `docs/simulator.md`).
//! Start it in-process with [`Simulator::start`], as `cmk-sim`, or as
//! `cmk-operator simulate` (a build with the `simulator` feature).

pub mod admin;
pub mod arm;
pub mod arm_limits;
pub mod auth;
pub mod cmk_rules;
pub mod conditions;
pub mod config;
pub mod connections;
pub mod errors;
pub mod faults;
pub mod hosts;
pub mod keyvault;
pub mod metrics;
pub mod persist;
pub mod roles;
pub mod seed;
pub mod server;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use config::SimConfig;
pub use errors::SimError;
pub use faults::{
    ErrorFault, FaultConfig, HostileAnswer, HostileFault, LatencyFault, LroFault, LroMode,
    ThrottleFault,
};
pub use metrics::{Counters, HostAudiences, LedgerEntry};
pub use seed::{
    Seed, SeedIdentity, SeedKey, SeedProvider, SeedRoleAssignment, SeedRoleDefinition, SeedVault,
};
pub use state::{AppRegistration, FederatedCredential};

use server::App;
use state::State;
use tokio::sync::watch;

/// Starts simulators.
pub struct Simulator;

/// A running simulator. Dropping it stops the listener.
pub struct SimHandle {
    app: Arc<App>,
    addr: SocketAddr,
    ca_pem: String,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    state_file: Option<PathBuf>,
    connections: Arc<connections::Connections>,
}

impl Simulator {
    /// Starts an in-memory simulator.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        Self::start_with_state_file(config, None).await
    }

    /// Starts a simulator that loads `state_file` if present (and saves there on [`SimHandle::shutdown`]).
    pub async fn start_with_state_file(
        config: SimConfig,
        state_file: Option<PathBuf>,
    ) -> Result<SimHandle, SimError> {
        let mut state = match &state_file {
            Some(p) => persist::load(p)?.unwrap_or_default(),
            None => State::default(),
        };
        if state.token_key == 0 {
            state.token_key = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
        }
        state
            .apps
            .entry(config.operator_client_id.to_ascii_lowercase())
            .or_insert_with(|| state::AppRegistration {
                client_id: config.operator_client_id.clone(),
                object_id: config.operator_object_id.clone(),
                client_secret: Some(config.operator_client_secret.clone()),
                federated_credentials: Vec::new(),
                display_name: Some("cmk-operator".into()),
            });
        for (scope, role) in &config.operator_role_assignments {
            let scope = scope.trim_end_matches('/').to_owned();
            let taken = state.role_assignments.values().any(|ra| {
                ra.principal_id
                    .eq_ignore_ascii_case(&config.operator_object_id)
                    && ra.scope.eq_ignore_ascii_case(&scope)
                    && ra.role_guid() == role.to_ascii_lowercase()
            });
            if !taken {
                let ra = state::RoleAssignment {
                    name: state::new_guid(),
                    scope,
                    role_definition_id: format!(
                        "/providers/Microsoft.Authorization/roleDefinitions/{role}"
                    ),
                    principal_id: config.operator_object_id.clone(),
                    principal_type: Some("ServicePrincipal".into()),
                    created_at: state::now_rfc3339(),
                    condition: None,
                    condition_version: None,
                };
                state
                    .role_assignments
                    .insert(ra.id().to_ascii_lowercase(), ra);
            }
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let local: SocketAddr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let (tls, saved_ca) =
            tls::Tls::new(state.ca.as_ref(), local.ip()).map_err(SimError::Tls)?;
        state.ca = Some(saved_ca);
        if let Some(path) = &config.ca_file {
            std::fs::write(path, &tls.ca_pem).map_err(|source| SimError::CaFile {
                path: path.display().to_string(),
                source,
            })?;
        }
        let base_url = format!("https://{local}/");
        let (tx, rx) = watch::channel(false);
        let app = Arc::new(App::new(config, base_url, state, rx.clone()));
        let router = server::router(app.clone());
        let connections = Arc::new(connections::Connections::default());
        let listener = tls.listener(listener, connections.clone());
        let mut rx2 = rx;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx2.wait_for(|v| *v).await;
                })
                .await;
        });
        Ok(SimHandle {
            app,
            addr: local,
            ca_pem: tls.ca_pem,
            shutdown: tx,
            task: Some(task),
            state_file,
            connections,
        })
    }
}

impl SimHandle {
    /// `https://127.0.0.1:PORT/`: the listener's own address, which serves
    /// only the admin API (`_admin/...`). Azure's APIs are under Azure's host
    /// names resolved to [`SimHandle::addr`]: see [`SimHandle::arm_endpoint`].
    pub fn base_url(&self) -> &str {
        &self.app.base_url
    }
    /// The listener's address: where clients resolve Azure's host names to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The CA certificate (PEM) that signs the simulator's server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
    /// `https://management.azure.com/`.
    pub fn arm_endpoint(&self) -> String {
        hosts::Origin::default().arm_base()
    }
    /// `https://login.microsoftonline.com/`.
    pub fn authority_host(&self) -> String {
        hosts::Origin::default().login_base()
    }
    pub fn tenant_id(&self) -> &str {
        &self.app.config.tenant_id
    }
    pub fn config(&self) -> &SimConfig {
        &self.app.config
    }
    /// Client id, secret and object id of the service principal seeded at start.
    pub fn operator_credentials(&self) -> (String, String, String) {
        let c = &self.app.config;
        (
            c.operator_client_id.clone(),
            c.operator_client_secret.clone(),
            c.operator_object_id.clone(),
        )
    }
    pub fn seed(&self, seed: &Seed) -> Result<serde_json::Value, SimError> {
        seed::apply(&self.app, seed).map_err(|e| SimError::Seed(e.message))
    }
    /// Adds (or replaces) the Azure Policy assignment `name`, as the admin API's
    /// `PUT /_admin/policyAssignments/{name}` does; returns it as shown there.
    pub fn assign_policy(
        &self,
        name: &str,
        assignment: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let a = serde_json::from_value(assignment).map_err(|e| e.to_string())?;
        arm::policy::put(&mut self.app.state(), name, a).map_err(|e| e.message)
    }
    /// Removes the Azure Policy assignment `name` (any scope).
    pub fn unassign_policy(&self, name: &str) {
        self.app
            .state()
            .policy_assignments
            .retain(|_, a| !a.name.eq_ignore_ascii_case(name));
    }
    /// Whether `principal` may get, wrap and unwrap keys of the vault named by
    /// `vault_id` (its last segment), under the vault's active permission
    /// model, as the simulator's own CMK rule judges it: tests check grants
    /// here rather than through the adapter they test.
    pub fn holds_key_access(&self, vault_id: &str, principal: &str) -> bool {
        let name = vault_id
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        let st = self.app.state();
        st.vault_by_name(name).is_some_and(|v| {
            ["get", "wrapKey", "unwrapKey"]
                .iter()
                .all(|p| cmk_rules::permitted(&st, v, principal, p))
        })
    }
    /// The vault's URI (`https://{vault}.vault.azure.net/`), if the vault exists.
    pub fn vault_uri(&self, vault_name: &str) -> Option<String> {
        let st = self.app.state();
        st.vault_by_name(vault_name)
            .map(|v| hosts::Origin::default().vault_uri(&v.name))
    }
    /// The vault's URI as `cloud` names it (`https://{vault}.vault.azure.cn/`
    /// for `AzureChinaCloud`): the one the simulator hands out to a client
    /// that addresses it as that cloud. `None` for an unknown vault or cloud.
    pub fn vault_uri_in(&self, cloud: &str, vault_name: &str) -> Option<String> {
        let origin = hosts::Origin::named(cloud)?;
        let st = self.app.state();
        st.vault_by_name(vault_name)
            .map(|v| origin.vault_uri(&v.name))
    }
    pub fn set_faults(&self, faults: FaultConfig) {
        *self.app.faults() = faults;
    }
    /// TCP connections the listener has accepted since start.
    pub fn connections_accepted(&self) -> u64 {
        self.connections.accepted()
    }

    /// Drops a kept-alive connection, unanswered, when a request arrives on it
    /// after it sat idle at least `limit` (`None`: never), as a load balancer
    /// past its idle timeout does.
    pub fn set_idle_connection_limit(&self, limit: Option<Duration>) {
        self.connections.set_idle_limit(limit);
    }

    /// Requests dropped unanswered under that limit.
    pub fn requests_dropped_idle(&self) -> u64 {
        self.connections.dropped_idle()
    }

    /// Lets every stalled operation run on: each finishes its normal duration
    /// from now (Azure's stuck operations end eventually; this is that moment).
    /// Returns how many were released.
    pub fn release_stalled_operations(&self) -> usize {
        let now = state::now_ms();
        let mut st = self.app.state();
        let mut released = 0;
        for op in st.operations.values_mut() {
            if !op.done && op.outcome == state::OpOutcome::Stall {
                op.outcome = state::OpOutcome::Succeed;
                op.started_ms = now;
                released += 1;
            }
        }
        released
    }
    pub fn faults(&self) -> FaultConfig {
        self.app.faults_snapshot()
    }
    pub fn clear_faults(&self) {
        *self.app.faults() = FaultConfig::default();
    }
    pub fn counters(&self) -> Counters {
        self.app.metrics().counters.clone()
    }
    /// Requests counted for `operation` (all statuses).
    /// Requests of `operation` that arrived, finished or not.
    pub fn arrived(&self, operation: &str) -> u64 {
        self.app
            .metrics()
            .arrived
            .get(operation)
            .copied()
            .unwrap_or(0)
    }
    pub fn count(&self, operation: &str) -> u64 {
        self.app.metrics().total(operation)
    }
    /// Requests counted for `operation` with `status`.
    pub fn count_status(&self, operation: &str, status: u16) -> u64 {
        self.app
            .metrics()
            .counters
            .get(operation)
            .and_then(|m| m.get(&status))
            .copied()
            .unwrap_or(0)
    }
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.app.metrics().ledger.clone()
    }
    /// Every `(host, token audience)` requests used so far ("" when none), with counts.
    pub fn host_audiences(&self) -> metrics::HostAudiences {
        self.app.metrics().host_audiences.clone()
    }
    pub fn reset_counters(&self) {
        let mut m = self.app.metrics();
        m.host_audiences.clear();
        m.counters.clear();
        m.arrived.clear();
        m.ledger.clear();
    }
    pub fn set_lro_duration(&self, d: Duration) {
        self.app.set_lro_duration_ms(d.as_millis() as i64);
    }
    /// Lets a periodic → continuous migration end `offset_ms` after its update's
    /// operation (negative: before it), where Azure was recorded ending both
    /// together (0, the default): for clients that must not trust one of the two.
    pub fn set_migration_offset(&self, offset_ms: i64) {
        self.app.set_migration_offset_ms(offset_ms);
    }
    /// Shortens (or restores) a day of continuous-backup retention, so a
    /// test can let a deleted account's restore window pass.
    pub fn set_retention_day(&self, d: Duration) {
        self.app
            .set_retention_day_ms(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }
    /// Shortens (or restores) a day of key rotation policies, so a test can
    /// see a rotation schedule (`rotateAfter`, `expiryTime`) play out.
    pub fn set_key_day(&self, d: Duration) {
        self.app
            .set_key_day_ms(i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1));
    }
    /// Mints a token for tests (e.g. expired: negative lifetime, or another audience).
    pub fn issue_token(&self, object_id: &str, audience: &str, lifetime_secs: i64) -> String {
        let now = jiff::Timestamp::now().as_second();
        let claims = auth::Claims {
            tid: self.app.config.tenant_id.clone(),
            oid: object_id.to_owned(),
            appid: self.app.config.operator_client_id.clone(),
            aud: audience.to_owned(),
            iat: now,
            exp: now.saturating_add(lifetime_secs),
            jti: state::new_guid(),
        };
        let key = self.app.state().token_key;
        auth::mint(key, &claims)
    }
    /// The whole state as JSON (what the state file holds).
    pub fn state_json(&self) -> serde_json::Value {
        serde_json::to_value(&*self.app.state()).unwrap_or_default()
    }
    pub fn save(&self, path: &Path) -> Result<(), SimError> {
        persist::save(&self.app, path)
    }
    /// Stops the listeners, saving the state file first when one was given.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        if let Some(p) = self.state_file.take() {
            persist::save(&self.app, &p)?;
        }
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        Ok(())
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        // An embedded simulator dropped without shutdown() still keeps its state.
        if let Some(p) = self.state_file.take()
            && let Err(e) = persist::save(&self.app, &p)
        {
            tracing::warn!(error = %e, "simulator state not saved");
        }
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Runs the simulator on `listen` until SIGTERM or Ctrl-C, its CA written to
/// `ca_file` (or printed after the start-up lines without one).
pub async fn run_standalone(
    listen: SocketAddr,
    state_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
) -> Result<(), SimError> {
    use std::io::Write;
    let mut config = SimConfig {
        listen,
        ca_file: ca_file.clone(),
        ..SimConfig::default()
    };
    // Demo knobs without new CLI flags: how long LROs and revocation recovery take.
    if let Some(ms) = env_ms("CMK_SIM_LRO_MS") {
        config.lro_duration = ms;
    }
    if let Some(ms) = env_ms("CMK_SIM_REVOCATION_RECOVERY_MS") {
        config.revocation_recovery = ms;
    }
    let handle = Simulator::start_with_state_file(config, state_file).await?;
    // Listen for the signal before announcing, so a quick SIGTERM is never lost.
    let signal = tokio::spawn(wait_for_signal());
    let (id, _, _) = handle.operator_credentials();
    // The reader may go away: a closed stdout must not stop the simulator.
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "cosmos-cmk-operator Azure simulator listening on {}",
        handle.base_url()
    );
    let ca = ca_file
        .as_ref()
        .map_or_else(|| "printed below".to_owned(), |p| p.display().to_string());
    let _ = writeln!(
        out,
        "  CA certificate: {ca}  (trust it; resolve Azure's host names to {}: docs/simulator.md)",
        handle.addr().ip()
    );
    let _ = writeln!(
        out,
        "  tenant {}  operator client id {id}  (secret: see docs/simulator.md)",
        handle.tenant_id()
    );
    if ca_file.is_none() {
        let _ = write!(out, "{}", handle.ca_pem());
    }
    let _ = out.flush();
    let _ = signal.await;
    handle.shutdown().await
}

fn env_ms(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()?
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
