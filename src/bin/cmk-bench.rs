//! `cmk-bench`: scale benchmark and fault runs of the operator, by hand (see
//! BENCHMARKS.md). It brings up the local control plane
//! (`tests/control-plane/up`), starts the Azure simulator in this process with
//! realistic settings (per-call latency, account-creation LRO time, ARM's
//! per-subscription read and write token buckets), runs `cmk-operator run` as a
//! separate process against it (`--simulator-url`), applies N
//! `CosmosAccountCMK` over a few `KeyVaultBinding`s and measures.
//!
//! ```text
//! cargo build --release --bins
//! target/release/cmk-bench run --accounts 100 --bindings 4
//! target/release/cmk-bench fault sigkill --accounts 50 --kills 50
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use cmk_operator::api::conditions;
use cmk_operator::api::{CosmosAccountCMK, KeyVaultBinding};
use cmk_operator::embedded::{RESOURCE_GROUP, SUBSCRIPTION};
use cmk_operator::sim::arm_limits::{ArmRateLimit, RandomThrottle};
use cmk_operator::sim::{
    ErrorFault, FaultConfig, LatencyFault, LroFault, LroMode, SimConfig, SimHandle,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Parser)]
#[command(
    name = "cmk-bench",
    about = "Scale benchmark and fault runs of cmk-operator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Converge N accounts, then measure a steady-state window.
    Run(RunArgs),
    /// A fault run: converges under the fault and checks the ledger.
    Fault(FaultArgs),
}

#[derive(Clone, Debug, clap::Args)]
struct Common {
    /// The operator binary (default: cmk-operator next to this binary).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// Account creation time (the LRO), milliseconds. Azure takes minutes.
    #[arg(long, default_value_t = 20_000)]
    lro_ms: u64,
    /// Added latency of every ARM call, milliseconds.
    #[arg(long, default_value_t = 60)]
    arm_latency_ms: u64,
    /// Added latency of every Key Vault data-plane call, milliseconds.
    #[arg(long, default_value_t = 20)]
    kv_latency_ms: u64,
    /// ARM read bucket: tokens per second and burst (Azure: 25/s, 250).
    #[arg(long, default_value_t = 25.0)]
    arm_reads_per_second: f64,
    #[arg(long, default_value_t = 250.0)]
    arm_read_burst: f64,
    /// ARM write bucket: tokens per second and burst (Azure: 10/s, 200).
    #[arg(long, default_value_t = 10.0)]
    arm_writes_per_second: f64,
    #[arg(long, default_value_t = 200.0)]
    arm_write_burst: f64,
    /// Operator --poll-seconds.
    #[arg(long, default_value_t = 10)]
    poll_seconds: u64,
    /// Operator --resync-seconds.
    #[arg(long, default_value_t = 60)]
    resync_seconds: u64,
    /// Operator --concurrency.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Bindings the accounts are spread over.
    #[arg(long, default_value_t = 4)]
    bindings: usize,
    /// Leave the namespace behind (default: deleted at the end).
    #[arg(long)]
    keep: bool,
}

#[derive(Clone, Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Accounts to converge.
    #[arg(long, default_value_t = 100)]
    accounts: usize,
    /// Length of the steady-state window, seconds (default: two resync intervals).
    #[arg(long)]
    steady_seconds: Option<u64>,
    /// Give up converging after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_seconds: u64,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FaultKind {
    /// SIGKILL the operator at random points during convergence, restart it.
    Sigkill,
    /// Half of all Azure calls answered 429 with Retry-After for a minute.
    Throttle,
    /// 5xx bursts and stalled long-running operations.
    Errors,
    /// A key version disabled mid-run, then re-enabled.
    Revoke,
}

#[derive(Clone, Debug, clap::Args)]
struct FaultArgs {
    #[arg(value_enum)]
    kind: FaultKind,
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 50)]
    accounts: usize,
    /// SIGKILLs (sigkill run).
    #[arg(long, default_value_t = 50)]
    kills: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Simulator, control plane, namespace and the operator process.
struct World {
    common: Common,
    kubeconfig: PathBuf,
    client: kube::Client,
    ns: String,
    sim: SimHandle,
    operator: Option<Child>,
    operator_bin: PathBuf,
    log: PathBuf,
    starts: u32,
}

impl World {
    async fn up(common: Common, prefix: &str) -> Res<World> {
        eprintln!("bench: bringing up the control plane (tests/control-plane/up)");
        let out = Command::new(repo_root().join("tests/control-plane/up"))
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            return Err("tests/control-plane/up failed".into());
        }
        let kubeconfig = PathBuf::from(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .trim(),
        );
        let kubectl = repo_root().join("target/control-plane/bin/kubectl");
        let crds = repo_root().join("crds/cosmoscmk.io.yaml");
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

        let sim = cmk_operator::embedded::start(SimConfig {
            listen: "127.0.0.1:0".parse()?,
            lro_duration: Duration::from_millis(common.lro_ms),
            revocation_recovery: Duration::ZERO,
            ..SimConfig::default()
        })
        .await?;
        sim.set_faults(realistic(&common));
        let operator_bin = common.operator.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("cmk-operator")))
                .unwrap_or_else(|| repo_root().join("target/release/cmk-operator"))
        });
        let dir = repo_root().join("target/bench");
        std::fs::create_dir_all(&dir)?;
        let log = dir.join(format!("{ns}-operator.log"));
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
        })
    }

    fn start_operator(&mut self) -> Res<u32> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let c = &self.common;
        let child = Command::new(&self.operator_bin)
            .args(["run", "--azure", "simulator", "--simulator-url"])
            .arg(self.sim.base_url())
            .args(["--namespace", &self.ns, "--leader-election", "false"])
            .args(["--health-listen", "127.0.0.1:0"])
            .args(["--poll-seconds", &c.poll_seconds.to_string()])
            .args(["--resync-seconds", &c.resync_seconds.to_string()])
            .args(["--concurrency", &c.concurrency.to_string()])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("CMK_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.starts += 1;
        let pid = child.id();
        self.operator = Some(child);
        Ok(pid)
    }

    /// SIGKILL (std's `Child::kill`), then reap.
    fn kill_operator(&mut self) {
        if let Some(mut c) = self.operator.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn accounts(&self) -> Api<CosmosAccountCMK> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn bindings(&self) -> Api<KeyVaultBinding> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn apply_world(&self, accounts: usize) -> Res<()> {
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
                            "subscriptionId": SUBSCRIPTION,
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

    /// Names of the accounts not Ready at their generation.
    async fn not_ready(&self) -> Res<Vec<String>> {
        Ok(self
            .accounts()
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|a| !is_ready(a))
            .map(|a| kube::ResourceExt::name_any(&a))
            .collect())
    }

    /// Waits until all `n` accounts are Ready (a watch, not polling lists).
    async fn wait_all_ready(&self, n: usize, timeout: Duration) -> Res<Duration> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut ready: HashSet<String> = HashSet::new();
        let stream =
            kube::runtime::watcher(self.accounts(), kube::runtime::watcher::Config::default());
        futures::pin_mut!(stream);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(
                    format!("{} of {n} accounts Ready after {timeout:?}", ready.len()).into(),
                );
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
            use kube::runtime::watcher::Event as E;
            match ev {
                E::Apply(a) | E::InitApply(a) => {
                    let name = kube::ResourceExt::name_any(&a);
                    if is_ready(&a) {
                        ready.insert(name);
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
            if ready.len() >= n {
                return Ok(start.elapsed());
            }
        }
    }

    async fn cleanup(mut self) {
        self.kill_operator();
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

fn account_name(ns: &str, j: usize) -> String {
    // Globally unique in Azure: the namespace (with the pid) keeps runs apart.
    let pid = ns.rsplit('-').next().unwrap_or("0");
    format!("bench{pid}-{j:04}")
}

fn is_ready(a: &CosmosAccountCMK) -> bool {
    a.status.as_ref().is_some_and(|s| {
        s.observed_generation == a.metadata.generation
            && conditions::find(&s.conditions, conditions::READY)
                .is_some_and(|c| c.status == "True")
    })
}

/// Latency per call, the account-creation LRO time (set at start), ARM's token buckets.
fn realistic(c: &Common) -> FaultConfig {
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
        arm_rate_limit: Some(ArmRateLimit {
            reads: cmk_operator::sim::arm_limits::BucketLimit {
                per_second: c.arm_reads_per_second,
                burst: c.arm_read_burst,
            },
            writes: cmk_operator::sim::arm_limits::BucketLimit {
                per_second: c.arm_writes_per_second,
                burst: c.arm_write_burst,
            },
        }),
        ..FaultConfig::default()
    }
}

/// Whole-process figures of the operator from /proc.
#[derive(Clone, Copy, Debug, Default)]
struct ProcSample {
    at: Option<Instant>,
    rss_kib: u64,
    hwm_kib: u64,
    cpu_ticks: u64,
}

fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: utime and stime are 14th and 15th overall.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ProcSample {
        at: Some(Instant::now()),
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu_ticks: ticks,
    })
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Samples the operator every 250 ms in the background.
fn sampler(pid: u32) -> Arc<Mutex<Vec<ProcSample>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let o = out.clone();
    tokio::spawn(async move {
        while let Some(s) = sample(pid) {
            o.lock().unwrap_or_else(|p| p.into_inner()).push(s);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    out
}

type Counters = BTreeMap<String, BTreeMap<u16, u64>>;

fn counters(sim: &SimHandle) -> Counters {
    sim.counters()
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

fn diff(after: &Counters, before: &Counters) -> Counters {
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

fn is_read_op(op: &str) -> bool {
    op.contains("_Get") || op.contains("_List") || op == "OperationsStatus_Get"
}

/// Kubernetes writes seen in a window: every watch event on the run's objects
/// (accounts, bindings, events) after the window starts.
async fn count_k8s_writes(w: &World, window: Duration) -> Res<BTreeMap<String, u64>> {
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

/// The rate-limit floor: the state machine's minimal sequence per account
/// (first-party identity, vault grant shared by the accounts of one vault):
/// writes 1 (the account PUT) plus one grant per vault; ARM reads 4 (account
/// GET while absent, grant check, one LRO poll, account GET that confirms).
/// The last write cannot finish before its LRO does.
fn floor(c: &Common, n: usize, vaults: usize) -> (f64, f64, f64) {
    let writes = n as f64 + vaults as f64;
    let reads = 4.0 * n as f64;
    let w = ((writes - c.arm_write_burst) / c.arm_writes_per_second).max(0.0);
    let r = ((reads - c.arm_read_burst) / c.arm_reads_per_second).max(0.0);
    let lro = c.lro_ms as f64 / 1000.0;
    ((w + lro).max(r).max(lro), w, r)
}

async fn run_bench(args: RunArgs) -> Res<()> {
    let c = args.common.clone();
    let n = args.accounts;
    let mut w = World::up(c.clone(), "cmk-bench").await?;
    let tck = clk_tck();
    let pid = w.start_operator()?;
    let samples = sampler(pid);
    // Let the operator start its watches before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.sim.reset_counters();
    let base = sample(pid).unwrap_or_default();
    let t0 = Instant::now();
    w.apply_world(n).await?;
    let applied = t0.elapsed();
    eprintln!("bench: applied {n} accounts in {applied:.1?}");
    let waited = w
        .wait_all_ready(n, Duration::from_secs(args.timeout_seconds))
        .await;
    let ready_at = t0.elapsed();
    if let Err(e) = waited {
        eprintln!("bench: {e}; not ready: {:?}", w.not_ready().await?);
        w.cleanup().await;
        return Err(e);
    }
    let at_ready = sample(pid).unwrap_or_default();
    let conv = counters(&w.sim);
    eprintln!("bench: all {n} Ready after {ready_at:.1?}");

    // Steady state: let stragglers finish, then one window of whole resync intervals.
    let settle = Duration::from_secs(c.poll_seconds * 2 + 5);
    tokio::time::sleep(settle).await;
    let window = Duration::from_secs(args.steady_seconds.unwrap_or(c.resync_seconds * 2));
    let before = counters(&w.sim);
    let ledger_before = w.sim.ledger().len();
    let s0 = sample(pid).unwrap_or_default();
    let k8s = count_k8s_writes(&w, window).await?;
    let s1 = sample(pid).unwrap_or_default();
    let steady = diff(&counters(&w.sim), &before);
    let steady_azure_writes: Vec<_> = w.sim.ledger()[ledger_before..]
        .iter()
        .filter(|l| l.operation != "Token")
        .map(|l| format!("{} {}", l.method, l.operation))
        .collect();

    let minutes = window.as_secs_f64() / 60.0;
    let resyncs = window.as_secs_f64() / c.resync_seconds as f64;
    let steady_reads: u64 = steady
        .iter()
        .filter(|(op, _)| is_read_op(op))
        .flat_map(|(_, m)| m.values())
        .sum();
    let k8s_total: u64 = k8s.values().sum();
    let all = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut steady_rss: Vec<u64> = all
        .iter()
        .filter(|s| s.at.is_some_and(|t| s0.at.is_some_and(|a| t >= a)))
        .map(|s| s.rss_kib)
        .collect();
    steady_rss.sort_unstable();
    let steady_rss_mib = steady_rss
        .get(steady_rss.len() / 2)
        .copied()
        .unwrap_or(s1.rss_kib) as f64
        / 1024.0;
    let peak_mib = s1.hwm_kib.max(at_ready.hwm_kib) as f64 / 1024.0;
    let conv_cpu = (at_ready.cpu_ticks.saturating_sub(base.cpu_ticks)) as f64 / tck;
    let steady_cpu_pct =
        (s1.cpu_ticks.saturating_sub(s0.cpu_ticks)) as f64 / tck / window.as_secs_f64() * 100.0;
    let vaults = c.bindings.clamp(1, 2);
    let (fl, fw, fr) = floor(&c, n, vaults);

    println!(
        "\n== cmk-bench: {n} accounts over {} bindings ==",
        c.bindings
    );
    println!(
        "settings: ARM latency {} ms, Key Vault {} ms, LRO {} ms, ARM buckets reads {}/s burst {}, writes {}/s burst {}; operator poll {} s, resync {} s, concurrency {}",
        c.arm_latency_ms,
        c.kv_latency_ms,
        c.lro_ms,
        c.arm_reads_per_second,
        c.arm_read_burst,
        c.arm_writes_per_second,
        c.arm_write_burst,
        c.poll_seconds,
        c.resync_seconds,
        c.concurrency
    );
    println!(
        "time to all Ready: {:.1} s (applying took {:.1} s); rate-limit floor {:.1} s (writes {:.1} s + LRO, reads {:.1} s); ratio {:.2}",
        ready_at.as_secs_f64(),
        applied.as_secs_f64(),
        fl,
        fw,
        fr,
        ready_at.as_secs_f64() / fl
    );
    println!("Azure calls per account until Ready (operation: per account [statuses]):");
    let mut conv_total = 0u64;
    for (op, by) in &conv {
        let total: u64 = by.values().sum();
        if op != "Token" {
            conv_total += total;
        }
        println!("  {op:<36} {:>7.2}  {:?}", total as f64 / n as f64, by);
    }
    println!(
        "  {:<36} {:>7.2}",
        "(all but Token)",
        conv_total as f64 / n as f64
    );
    println!(
        "steady state ({:.0} s window, {:.1} resync intervals):",
        window.as_secs_f64(),
        resyncs
    );
    println!(
        "  Azure writes/min {:.2} {:?}",
        steady_azure_writes.len() as f64 / minutes,
        steady_azure_writes
    );
    println!(
        "  Kubernetes writes/min {:.2} {:?}",
        k8s_total as f64 / minutes,
        k8s
    );
    println!(
        "  Azure reads per resource per resync interval {:.2} ({:?})",
        steady_reads as f64 / (n as f64 + c.bindings as f64) / resyncs,
        steady
    );
    println!(
        "operator process: peak RSS {peak_mib:.1} MiB, steady RSS {steady_rss_mib:.1} MiB; CPU {conv_cpu:.1} s until Ready ({:.0}% of one core), {steady_cpu_pct:.1}% of one core at steady state",
        conv_cpu / ready_at.as_secs_f64() * 100.0
    );
    if let Some(path) = &args.json {
        let v = json!({
            "accounts": n, "bindings": c.bindings,
            "timeToReadySecs": ready_at.as_secs_f64(), "floorSecs": fl,
            "callsPerAccount": conv.iter().map(|(k, m)| (k.clone(), m.values().sum::<u64>() as f64 / n as f64)).collect::<BTreeMap<_, _>>(),
            "steadyAzureWritesPerMin": steady_azure_writes.len() as f64 / minutes,
            "steadyK8sWritesPerMin": k8s_total as f64 / minutes,
            "steadyReadsPerResourcePerResync": steady_reads as f64 / (n as f64 + c.bindings as f64) / resyncs,
            "peakRssMiB": peak_mib, "steadyRssMiB": steady_rss_mib,
            "cpuSecsToReady": conv_cpu, "steadyCpuPct": steady_cpu_pct,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&v)?)?;
    }
    w.cleanup().await;
    Ok(())
}

/// Ends a fault run: all Ready, then the ledger and the simulator's state
/// show nothing duplicated or orphaned.
async fn check_clean(w: &World, n: usize, timeout: Duration) -> Res<()> {
    w.wait_all_ready(n, timeout).await?;
    let pid = w.ns.rsplit('-').next().unwrap_or("0").to_owned();
    let state = w.sim.state_json();
    let accounts: Vec<&Value> = state["accounts"]
        .as_object()
        .map(|m| m.values().collect())
        .or_else(|| state["accounts"].as_array().map(|a| a.iter().collect()))
        .unwrap_or_default();
    let ours: Vec<&Value> = accounts
        .iter()
        .copied()
        .filter(|a| {
            a.to_string()
                .to_ascii_lowercase()
                .contains(&format!("bench{pid}-"))
        })
        .collect();
    let mut problems = Vec::new();
    if ours.len() != n {
        problems.push(format!(
            "{} accounts in Azure for {n} resources",
            ours.len()
        ));
    }
    let mut creates: HashMap<String, u32> = HashMap::new();
    let mut deletes = 0;
    for l in w.sim.ledger() {
        if l.operation == "DatabaseAccounts_CreateOrUpdate" && l.status < 300 {
            *creates
                .entry(
                    l.path
                        .split('?')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                )
                .or_default() += 1;
        }
        if l.method == "DELETE" {
            deletes += 1;
        }
    }
    let dup: Vec<_> = creates.iter().filter(|(_, c)| **c > 1).collect();
    if !dup.is_empty() {
        problems.push(format!("accounts created more than once: {dup:?}"));
    }
    if creates.len() != n {
        problems.push(format!(
            "{} successful creates for {n} accounts",
            creates.len()
        ));
    }
    if deletes > 0 {
        problems.push(format!("{deletes} DELETE calls"));
    }
    // Grants: no principal granted twice on one scope.
    let mut seen = HashSet::new();
    for ra in state["roleAssignments"]
        .as_object()
        .map(|m| m.values().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let k = format!(
            "{}|{}|{}",
            ra["scope"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            ra["principalId"].as_str().unwrap_or_default(),
            ra["roleDefinitionId"].as_str().unwrap_or_default()
        );
        if !seen.insert(k.clone()) {
            problems.push(format!("duplicate role assignment {k}"));
        }
    }
    let creates_total: u32 = creates.values().sum();
    eprintln!(
        "fault: ledger {} mutating calls, {creates_total} account creates for {n} accounts, {} role assignments",
        w.sim.ledger().len(),
        seen.len()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

async fn run_fault(args: FaultArgs) -> Res<()> {
    let n = args.accounts;
    let timeout = Duration::from_secs(args.timeout_seconds);
    let mut w = World::up(
        args.common.clone(),
        &format!("cmk-fault-{:?}", args.kind).to_ascii_lowercase(),
    )
    .await?;
    let started = Instant::now();
    let result = fault_body(&mut w, &args, n, timeout).await;
    let outcome = match result {
        Ok(()) => check_clean(&w, n, timeout).await,
        Err(e) => Err(e),
    };
    eprintln!(
        "fault {:?}: {} after {:.1?}, {} operator starts",
        args.kind,
        if outcome.is_ok() { "CLEAN" } else { "FAILED" },
        started.elapsed(),
        w.starts
    );
    if outcome.is_err() {
        eprintln!("not ready: {:?}", w.not_ready().await.unwrap_or_default());
    }
    w.cleanup().await;
    outcome
}

async fn fault_body(w: &mut World, args: &FaultArgs, n: usize, timeout: Duration) -> Res<()> {
    match args.kind {
        FaultKind::Sigkill => {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64
                | 1;
            let mut rng = Rng(seed);
            w.start_operator()?;
            w.apply_world(n).await?;
            let mut kills = 0;
            while kills < args.kills {
                // Up to 4 s of life: startup, list/watch, reconciles mid-flight.
                let life = Duration::from_millis((200.0 + rng.next() * 3800.0) as u64);
                tokio::time::sleep(life).await;
                w.kill_operator();
                kills += 1;
                let left = w.not_ready().await?.len();
                eprintln!("fault: SIGKILL {kills} after {life:?}; {left} of {n} not Ready");
                w.start_operator()?;
            }
        }
        FaultKind::Throttle => {
            w.start_operator()?;
            w.apply_world(n).await?;
            let ops = [
                "DatabaseAccounts_*",
                "Operation*",
                "Vaults_*",
                "RoleAssignments_*",
                "Providers_*",
                "KeyVault_*",
            ];
            let mut f = realistic(&w.common);
            let retry_after = 3;
            f.random_throttle = ops
                .iter()
                .map(|o| RandomThrottle {
                    operation: (*o).into(),
                    rate: 0.5,
                    retry_after_secs: retry_after,
                })
                .collect();
            let before = counters(&w.sim);
            w.sim.set_faults(f);
            let minute = Duration::from_secs(60);
            tokio::time::sleep(minute).await;
            w.sim.set_faults(realistic(&w.common));
            let d = diff(&counters(&w.sim), &before);
            let (mut total, mut throttled) = (0u64, 0u64);
            for (op, by) in &d {
                if op == "Token" {
                    continue;
                }
                total += by.values().sum::<u64>();
                throttled += by.get(&429).copied().unwrap_or(0);
            }
            // Each 429 pauses a bucket (subscription or vault, reads or writes) for
            // Retry-After; with half the calls refused a bucket that obeys sends on
            // average 2 calls per Retry-After. Buckets in play: reads and writes of
            // one subscription, reads and writes of 2 vaults.
            let buckets = 6.0;
            let allowed = buckets * 2.0 * 60.0 / retry_after as f64;
            eprintln!(
                "fault: during the 429 minute {total} Azure calls ({throttled} answered 429, {:.2}/s); Retry-After allows about {allowed:.0} ({:.2}/s)",
                total as f64 / 60.0,
                allowed / 60.0
            );
            if total as f64 > allowed * 1.25 {
                return Err(format!(
                    "retry rate {total} calls/min over the {allowed:.0} Retry-After allows"
                )
                .into());
            }
        }
        FaultKind::Errors => {
            w.start_operator()?;
            let mut f = realistic(&w.common);
            f.errors = vec![
                ErrorFault {
                    operation: "DatabaseAccounts_*".into(),
                    rate: 0.3,
                    status: 503,
                    code: "ServiceUnavailable".into(),
                    count: Some(200),
                },
                ErrorFault {
                    operation: "OperationsStatus_Get".into(),
                    rate: 0.3,
                    status: 500,
                    code: "InternalServerError".into(),
                    count: Some(100),
                },
                ErrorFault {
                    operation: "KeyVault_*".into(),
                    rate: 0.3,
                    status: 502,
                    code: "BadGateway".into(),
                    count: Some(50),
                },
            ];
            // The first 20 account creations stall (never finish) until cleared.
            f.lro = Some(LroFault {
                mode: LroMode::Stall,
                count: Some(20),
            });
            w.sim.set_faults(f);
            w.apply_world(n).await?;
            tokio::time::sleep(Duration::from_secs(60)).await;
            let stalled = w.not_ready().await?.len();
            eprintln!(
                "fault: after 60 s of 5xx bursts and stalled LROs, {stalled} of {n} not Ready; clearing the faults"
            );
            w.sim.set_faults(realistic(&w.common));
            // A stalled operation stays Dequeued: the simulator finishes it only
            // when Azure would (here: never), so Ready needs the operator to give up on it.
        }
        FaultKind::Revoke => {
            w.start_operator()?;
            w.apply_world(n).await?;
            w.wait_all_ready(n, timeout).await?;
            return revoke(w, n).await;
        }
    }
    Ok(())
}

/// Disables the key version of binding key-0 mid-run: the accounts on it must
/// report KeyRevoked within one resync, with no destructive call, and recover.
async fn revoke(w: &mut World, n: usize) -> Res<()> {
    let b = w.bindings().get("key-0").await?;
    let uri = b
        .status
        .as_ref()
        .and_then(|s| s.key_uri.clone())
        .ok_or("binding has no key URI")?;
    let accounts = w.accounts().list(&ListParams::default()).await?.items;
    let on_key: Vec<String> = accounts
        .iter()
        .filter(|a| a.spec.key_vault_binding_ref.name == "key-0")
        .map(kube::ResourceExt::name_any)
        .collect();
    let version = accounts
        .iter()
        .find_map(|a| a.status.as_ref()?.key_version_in_use.clone())
        .ok_or("no key version in use")?;
    let ledger_before = w.sim.ledger().len();
    set_key_enabled(&w.sim, &uri, &version, false).await?;
    let t = Instant::now();
    let resync = Duration::from_secs(w.common.resync_seconds);
    loop {
        let list = w.accounts().list(&ListParams::default()).await?.items;
        let revoked = list
            .iter()
            .filter(|a| on_key.contains(&kube::ResourceExt::name_any(*a)))
            .filter(|a| {
                a.status.as_ref().is_some_and(|s| {
                    conditions::find(&s.conditions, conditions::READY)
                        .is_some_and(|c| c.reason == "KeyRevoked")
                })
            })
            .count();
        if revoked == on_key.len() {
            eprintln!(
                "fault: {revoked} accounts report KeyRevoked {:.1?} after the key was disabled (resync {resync:?})",
                t.elapsed()
            );
            break;
        }
        if t.elapsed() > resync + Duration::from_secs(w.common.poll_seconds + 15) {
            return Err(format!(
                "only {revoked} of {} accounts report KeyRevoked after one resync",
                on_key.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let writes: Vec<String> = w.sim.ledger()[ledger_before..]
        .iter()
        .filter(|l| l.operation != "Token" && !l.operation.starts_with("KeyVault_UpdateKey"))
        .map(|l| format!("{} {}", l.method, l.operation))
        .collect();
    if !writes.is_empty() {
        return Err(format!("writes while revoked: {writes:?}").into());
    }
    set_key_enabled(&w.sim, &uri, &version, true).await?;
    let t = Instant::now();
    w.wait_all_ready(n, resync * 3).await?;
    eprintln!(
        "fault: access back, all {n} Ready again after {:.1?}",
        t.elapsed()
    );
    Ok(())
}

async fn set_key_enabled(sim: &SimHandle, key_uri: &str, version: &str, enabled: bool) -> Res<()> {
    let (_, _, operator) = sim.operator_credentials();
    let token = sim.issue_token(&operator, "https://vault.azure.net", 3600);
    let url = azure_core::Url::parse(&format!(
        "{}/{version}?api-version=7.4",
        key_uri.trim_end_matches('/')
    ))?;
    let mut req = azure_core::Request::new(url, azure_core::Method::Patch);
    req.insert_header("authorization", format!("Bearer {token}"));
    req.insert_header("content-type", "application/json");
    req.set_body(serde_json::to_vec(
        &json!({"attributes": {"enabled": enabled}}),
    )?);
    let resp = azure_core::new_http_client().execute_request(&req).await?;
    let status = u16::from(resp.status());
    if status != 200 {
        return Err(format!("key update answered {status}").into());
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.cmd {
            Cmd::Run(a) => run_bench(a).await,
            Cmd::Fault(a) => run_fault(a).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
