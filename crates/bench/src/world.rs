//! The world a run happens in: the local control plane, a fresh namespace,
//! the Azure simulator in this process and the operator as a child process.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cmk_operator::api::conditions;
use cmk_operator::api::{CosmosAccountCMK, KeyVaultBinding};
use cmk_operator::embedded::{RESOURCE_GROUP, SUBSCRIPTION};
use cmk_operator::sim::arm_limits::ArmRateLimit;
use cmk_operator::sim::{FaultConfig, LatencyFault, SimConfig, SimHandle};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::Res;
use crate::cli::Common;
use crate::control_plane::{control_plane_up, kubectl};
use crate::repo::repo_root;

/// Simulator, control plane, namespace and the operator process.
pub struct World {
    pub common: Common,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
    pub ns: String,
    pub sim: SimHandle,
    pub operator: Option<Child>,
    pub operator_bin: PathBuf,
    pub log: PathBuf,
    pub starts: u32,
    /// Further operator processes (leader-election runs), killed at cleanup.
    pub replicas: Vec<Child>,
    /// The operator's tenancy policy: this namespace, on the simulated world's group.
    pub tenancy: PathBuf,
    /// The simulator's CA certificate, for the operator to trust.
    pub ca_file: PathBuf,
}

impl World {
    pub async fn up(common: Common, prefix: &str) -> Res<World> {
        let root = repo_root()?;
        eprintln!(
            "bench: repository {}; the control plane (tests/control-plane/up, or CMK_TEST_KUBECONFIG)",
            root.display()
        );
        let kubeconfig = control_plane_up()?;
        let kubectl = kubectl(&kubeconfig)?;
        let crds = root.join("crds/cosmoscmk.io.yaml");
        for args in [
            vec![
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                crds.to_str().unwrap_or_default(),
            ],
            vec![
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/cosmosaccountcmks.cosmoscmk.io",
                "crd/keyvaultbindings.cosmoscmk.io",
            ],
        ] {
            let st = Command::new(&kubectl)
                .env("KUBECONFIG", &kubeconfig)
                .args(&args)
                .stdout(Stdio::null())
                .status()?;
            if !st.success() {
                return Err(format!("kubectl {args:?} failed").into());
            }
        }
        let config = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        let client = kube::Client::try_from(config)?;
        let ns = format!("{prefix}-{}", std::process::id());
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.patch(
            &ns,
            &PatchParams::apply("cmk-bench").force(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ),
        )
        .await?;

        let dir = root.join("target/bench");
        std::fs::create_dir_all(&dir)?;
        let ca_file = dir.join(format!("{ns}-simulator-ca.pem"));
        let sim = cmk_operator::embedded::start(SimConfig {
            listen: "127.0.0.1:0".parse()?,
            ca_file: Some(ca_file.clone()),
            lro_duration: Duration::from_millis(common.lro_ms),
            revocation_recovery: Duration::ZERO,
            ..SimConfig::default()
        })
        .await?;
        sim.set_faults(realistic(&common));
        let operator_bin = match &common.operator {
            Some(path) => path.clone(),
            None => default_operator(root)?,
        };
        let log = dir.join(format!("{ns}-operator.log"));
        let tenancy = dir.join(format!("{ns}-tenancy.yaml"));
        let scopes: String = (0..common.subscriptions.max(1))
            .map(|i| {
                format!(
                    "      - /subscriptions/{}/resourceGroups/{RESOURCE_GROUP}\n",
                    subscription(i)
                )
            })
            .collect();
        std::fs::write(
            &tenancy,
            format!(
                "namespaces:\n  - namespace: {ns}\n    operatorIdentity: true\n    scopes:\n{scopes}"
            ),
        )?;
        eprintln!(
            "bench: namespace {ns}, simulator {}, operator {} (log {})",
            sim.base_url(),
            operator_bin.display(),
            log.display()
        );
        Ok(World {
            common,
            kubeconfig,
            client,
            ns,
            sim,
            operator: None,
            operator_bin,
            log,
            starts: 0,
            replicas: Vec::new(),
            tenancy,
            ca_file,
        })
    }

    /// Starts the operator without leader election (the one-replica runs).
    pub fn start_operator(&mut self) -> Res<u32> {
        let child = self.spawn_operator(
            &self.log,
            &[
                "--leader-election",
                "false",
                "--health-listen",
                "127.0.0.1:0",
            ],
        )?;
        self.starts += 1;
        let pid = child.id();
        self.operator = Some(child);
        Ok(pid)
    }

    /// `cmk-operator run` against this world's simulator and namespace, with
    /// `extra` flags (leader election, health listener), logging to `log`.
    pub fn spawn_operator(&self, log: &Path, extra: &[&str]) -> Res<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let c = &self.common;
        let child = Command::new(&self.operator_bin)
            .args(["run", "--azure", "simulator", "--simulator-url"])
            .arg(self.sim.base_url())
            .arg("--simulator-ca-file")
            .arg(&self.ca_file)
            .args(["--namespace", &self.ns])
            .arg("--tenancy-config")
            .arg(&self.tenancy)
            .args(extra)
            .args(["--poll-seconds", &c.poll_seconds.to_string()])
            .args(["--resync-seconds", &c.resync_seconds.to_string()])
            .arg(format!(
                "--resync-reads-per-second={}",
                c.resync_reads_per_second
            ))
            .args(["--concurrency", &c.concurrency.to_string()])
            .args(["--key-watch-seconds", &c.key_watch_seconds.to_string()])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("CMK_LOG_FORMAT", "text")
            // The lease identity falls back to the pid only without POD_NAME.
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(child)
    }

    /// The operator's exit status if it has exited (it must not, in a run
    /// that expects it to ride out a fault).
    pub fn operator_exited(&mut self) -> Res<Option<std::process::ExitStatus>> {
        match self.operator.as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => Err("no operator process".into()),
        }
    }

    /// SIGKILL (std's `Child::kill`), then reap.
    pub fn kill_operator(&mut self) {
        if let Some(mut c) = self.operator.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn accounts(&self) -> Api<CosmosAccountCMK> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn bindings(&self) -> Api<KeyVaultBinding> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn apply_world(&self, accounts: usize) -> Res<()> {
        let pp = PatchParams::apply("cmk-bench").force();
        let b = self.common.bindings.max(1);
        for i in 0..b {
            let vault = if i % 2 == 0 {
                "cmk-demo-policies"
            } else {
                "cmk-demo-rbac"
            };
            let obj = json!({
                "apiVersion": "cosmoscmk.io/v1alpha1", "kind": "KeyVaultBinding",
                "metadata": {"name": format!("key-{i}")},
                "spec": {
                    "vaultResourceId": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/{vault}"),
                    "key": {"name": format!("bench-key-{i}"), "type": "RSA", "size": 3072},
                    "permissionModel": "Auto"
                }
            });
            self.bindings()
                .patch(&format!("key-{i}"), &pp, &Patch::Apply(obj))
                .await?;
        }
        let api = self.accounts();
        let ns = self.ns.clone();
        let subs = self.common.subscriptions.max(1);
        futures::stream::iter(0..accounts)
            .map(|j| {
                let api = api.clone();
                let pp = pp.clone();
                let ns = ns.clone();
                async move {
                    let name = format!("acct-{j:04}");
                    let obj = json!({
                        "apiVersion": "cosmoscmk.io/v1alpha1", "kind": "CosmosAccountCMK",
                        "metadata": {"name": name},
                        "spec": {
                            "subscriptionId": subscription(j % subs),
                            "resourceGroup": RESOURCE_GROUP,
                            "accountName": account_name(&ns, j),
                            "locations": [{"locationName": "eastus", "failoverPriority": 0}],
                            "keyVaultBindingRef": {"name": format!("key-{}", j % b)}
                        }
                    });
                    api.patch(&name, &pp, &Patch::Apply(obj)).await.map(|_| ())
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Names of the accounts not Ready at their generation (retried while
    /// the API server is unreachable).
    pub async fn not_ready(&self) -> Res<Vec<String>> {
        Ok(self
            .readiness()
            .await?
            .into_iter()
            .filter(|(_, ready)| !ready)
            .map(|(name, _)| name)
            .collect())
    }

    /// Every account's name and whether it is Ready.
    pub async fn readiness(&self) -> Res<Vec<(String, bool)>> {
        let (api, lp) = (self.accounts(), ListParams::default());
        Ok(retry_kube("list accounts", || api.list(&lp))
            .await?
            .items
            .into_iter()
            .map(|a| (kube::ResourceExt::name_any(&a), is_ready(&a)))
            .collect())
    }

    /// Waits until all `n` accounts are Ready (a watch, not polling lists).
    pub async fn wait_all_ready(&self, n: usize, timeout: Duration) -> Res<Duration> {
        let start = Instant::now();
        self.wait_all_ready_times(n, timeout).await?;
        Ok(start.elapsed())
    }

    /// The same, answering when each account last turned Ready (from the start).
    pub async fn wait_all_ready_times(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Res<HashMap<String, Duration>> {
        let start = Instant::now();
        let mut turned: HashMap<String, Duration> = HashMap::new();
        let mut ready: HashSet<String> = HashSet::new();
        use kube::runtime::watcher::Event as E;
        let done = self
            .watch_accounts(timeout, |ev| {
                match ev {
                    E::Apply(a) | E::InitApply(a) => {
                        let name = kube::ResourceExt::name_any(&a);
                        if is_ready(&a) {
                            if ready.insert(name.clone()) {
                                turned.insert(name, start.elapsed());
                            }
                        } else {
                            ready.remove(&name);
                        }
                    }
                    E::Delete(a) => {
                        ready.remove(&kube::ResourceExt::name_any(&a));
                    }
                    E::Init => ready.clear(),
                    E::InitDone => {}
                }
                ready.len() >= n
            })
            .await?;
        if !done {
            return Err(format!("{} of {n} accounts Ready after {timeout:?}", ready.len()).into());
        }
        Ok(turned)
    }

    /// Feeds every watch event on the accounts to `step` until it answers
    /// true (`Ok(true)`) or `timeout` passes (`Ok(false)`); watch errors are
    /// retried.
    pub async fn watch_accounts(
        &self,
        timeout: Duration,
        mut step: impl FnMut(kube::runtime::watcher::Event<CosmosAccountCMK>) -> bool,
    ) -> Res<bool> {
        let deadline = Instant::now() + timeout;
        let stream =
            kube::runtime::watcher(self.accounts(), kube::runtime::watcher::Config::default());
        futures::pin_mut!(stream);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let ev =
                match tokio::time::timeout(left.min(Duration::from_secs(5)), stream.next()).await {
                    Ok(Some(Ok(ev))) => ev,
                    Ok(Some(Err(e))) => {
                        eprintln!("bench: watch error (retrying): {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    Ok(None) => return Err("watch ended".into()),
                    Err(_) => continue,
                };
            if step(ev) {
                return Ok(true);
            }
        }
    }

    pub async fn cleanup(mut self) {
        self.kill_operator();
        for mut c in self.replicas.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.common.keep {
            return;
        }
        // Finalizers would wait for the (gone) operator: drop them, then the namespace.
        let pp = PatchParams::default();
        let names: Vec<String> = self
            .accounts()
            .list(&ListParams::default())
            .await
            .map(|l| l.items.iter().map(kube::ResourceExt::name_any).collect())
            .unwrap_or_default();
        futures::stream::iter(names)
            .for_each_concurrent(16, |n| {
                let api = self.accounts();
                let pp = pp.clone();
                async move {
                    let _ = api
                        .patch(
                            &n,
                            &pp,
                            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                        )
                        .await;
                }
            })
            .await;
        // The local control plane runs no namespace controller: delete the objects too.
        let dp = DeleteParams::default();
        let lp = ListParams::default();
        let _ = self.accounts().delete_collection(&dp, &lp).await;
        let _ = self.bindings().delete_collection(&dp, &lp).await;
        let _ = Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .delete_collection(&dp, &lp)
            .await;
        let nss: Api<Namespace> = Api::all(self.client.clone());
        let _ = nss.delete(&self.ns, &dp).await;
    }
}

/// Retries a Kubernetes call while the API server is unreachable or not
/// serving (a restart in a fault run), for up to 3 minutes; an answer that is
/// a client error (4xx but 429) is returned at once.
pub async fn retry_kube<T, F, Fut>(what: &str, mut call: F) -> Res<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut reported = false;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(kube::Error::Api(e)) if e.code < 500 && e.code != 429 => {
                return Err(format!("{what}: {e}").into());
            }
            Err(e) if Instant::now() < deadline => {
                if !reported {
                    eprintln!("bench: {what}: {e} (retrying)");
                    reported = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("{what}: {e}").into()),
        }
    }
}

/// The last `n` lines of a log file, for a failure report.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `cmk-operator` next to this binary (the same build), else the release one
/// of the checkout.
fn default_operator(root: &Path) -> Res<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("cmk-operator")));
    let candidates: Vec<PathBuf> = beside
        .into_iter()
        .chain([root.join("target/release/cmk-operator")])
        .collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "no cmk-operator at {}: build it (cargo build --release --workspace --bins) or pass --operator",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" nor ")
            )
            .into()
        })
}

/// The i-th subscription of a run: the example world's first, then made-up
/// ones (the simulator's operator is Owner at `/` and providers are
/// registered by default, so any subscription works).
pub fn subscription(i: usize) -> String {
    if i == 0 {
        SUBSCRIPTION.to_owned()
    } else {
        format!("00000000-0000-0000-{i:04x}-00000000c0de")
    }
}

/// Which subscription account `acct-NNNN` of a run is in (`apply_world`'s round robin).
pub fn subscription_index(account: &str, subscriptions: usize) -> Option<usize> {
    let j: usize = account.strip_prefix("acct-")?.parse().ok()?;
    Some(j % subscriptions.max(1))
}

/// The ARM buckets of a throttled subscription: a tenth of the run's.
pub fn throttled(c: &Common) -> Common {
    Common {
        arm_reads_per_second: c.arm_reads_per_second / 10.0,
        arm_read_burst: c.arm_read_burst / 10.0,
        arm_writes_per_second: c.arm_writes_per_second / 10.0,
        arm_write_burst: c.arm_write_burst / 10.0,
        ..c.clone()
    }
}

fn buckets(c: &Common) -> ArmRateLimit {
    ArmRateLimit {
        reads: cmk_operator::sim::arm_limits::BucketLimit {
            per_second: c.arm_reads_per_second,
            burst: c.arm_read_burst,
        },
        writes: cmk_operator::sim::arm_limits::BucketLimit {
            per_second: c.arm_writes_per_second,
            burst: c.arm_write_burst,
        },
    }
}

pub fn account_name(ns: &str, j: usize) -> String {
    // Globally unique in Azure: the namespace (with the pid) keeps runs apart.
    let pid = ns.rsplit('-').next().unwrap_or("0");
    format!("bench{pid}-{j:04}")
}

pub fn is_ready(a: &CosmosAccountCMK) -> bool {
    a.status.as_ref().is_some_and(|s| {
        s.observed_generation == a.metadata.generation
            && conditions::find(&s.conditions, conditions::READY)
                .is_some_and(|c| c.status == "True")
    })
}

/// Latency per call, the account-creation LRO time (set at start), ARM's token buckets.
pub fn realistic(c: &Common) -> FaultConfig {
    FaultConfig {
        latency: vec![
            LatencyFault {
                operation: "KeyVault_*".into(),
                ms: c.kv_latency_ms,
            },
            // ARM: every other named operation (Token excluded: Entra is fast and cached).
            LatencyFault {
                operation: "DatabaseAccounts_*".into(),
                ms: c.arm_latency_ms,
            },
            LatencyFault {
                operation: "Operation*".into(),
                ms: c.arm_latency_ms,
            },
            LatencyFault {
                operation: "Vaults_*".into(),
                ms: c.arm_latency_ms,
            },
            LatencyFault {
                operation: "RoleAssignments_*".into(),
                ms: c.arm_latency_ms,
            },
            LatencyFault {
                operation: "Providers_*".into(),
                ms: c.arm_latency_ms,
            },
            LatencyFault {
                operation: "UserAssignedIdentities_*".into(),
                ms: c.arm_latency_ms,
            },
        ],
        arm_rate_limit: Some(buckets(c)),
        arm_rate_limit_by_subscription: if c.throttle_one && c.subscriptions > 1 {
            [(
                subscription(c.subscriptions - 1).to_ascii_lowercase(),
                buckets(&throttled(c)),
            )]
            .into()
        } else {
            Default::default()
        },
        ..FaultConfig::default()
    }
}
