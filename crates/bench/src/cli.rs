//! Command line of `cmk-bench`: the benchmark run, the fault runs and the
//! settings both share (simulator realism, operator flags).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "cmk-bench",
    about = "Scale benchmark and fault runs of cmk-operator"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Converge N accounts, then measure a steady-state window.
    Run(RunArgs),
    /// A fault run: converges under the fault and checks the ledger.
    Fault(FaultArgs),
}

#[derive(Clone, Debug, clap::Args)]
pub struct Common {
    /// The operator binary (default: cmk-operator next to this binary).
    #[arg(long)]
    pub operator: Option<PathBuf>,
    /// Account creation time (the LRO), milliseconds. Azure takes minutes.
    #[arg(long, default_value_t = 20_000)]
    pub lro_ms: u64,
    /// Added latency of every ARM call, milliseconds.
    #[arg(long, default_value_t = 60)]
    pub arm_latency_ms: u64,
    /// Added latency of every Key Vault data-plane call, milliseconds.
    #[arg(long, default_value_t = 20)]
    pub kv_latency_ms: u64,
    /// ARM read bucket: tokens per second and burst (Azure: 25/s, 250).
    #[arg(long, default_value_t = 25.0)]
    pub arm_reads_per_second: f64,
    #[arg(long, default_value_t = 250.0)]
    pub arm_read_burst: f64,
    /// ARM write bucket: tokens per second and burst (Azure: 10/s, 200).
    #[arg(long, default_value_t = 10.0)]
    pub arm_writes_per_second: f64,
    #[arg(long, default_value_t = 200.0)]
    pub arm_write_burst: f64,
    /// Operator --poll-seconds.
    #[arg(long, default_value_t = 10)]
    pub poll_seconds: u64,
    /// Operator --resync-seconds.
    #[arg(long, default_value_t = 60)]
    pub resync_seconds: u64,
    /// Operator --concurrency.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Operator --resync-reads-per-second (ARM reads per second drift checks may spend).
    #[arg(long, default_value_t = 5.0)]
    pub resync_reads_per_second: f64,
    /// Bindings the accounts are spread over.
    #[arg(long, default_value_t = 4)]
    pub bindings: usize,
    /// Subscriptions the accounts are spread over (round robin), each with
    /// its own ARM token buckets in the simulator, as in ARM.
    #[arg(long, default_value_t = 1)]
    pub subscriptions: usize,
    /// The last subscription's ARM buckets at a tenth (rates and bursts):
    /// do the others still converge within their own floors?
    #[arg(long)]
    pub throttle_one: bool,
    /// Operator --key-watch-seconds (0: off).
    #[arg(long, default_value_t = 30)]
    pub key_watch_seconds: u64,
    /// Leave the namespace behind (default: deleted at the end).
    #[arg(long)]
    pub keep: bool,
}

#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// Accounts to converge.
    #[arg(long, default_value_t = 100)]
    pub accounts: usize,
    /// Length of the steady-state window, seconds (default: one resync interval
    /// as the operator stretches it for N accounts).
    #[arg(long)]
    pub steady_seconds: Option<u64>,
    /// Give up converging after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout_seconds: u64,
    /// Also write the figures as JSON here (with --repeat: every run and the medians).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Runs in a row (fresh namespace and operator each); medians are printed at the end.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FaultKind {
    /// SIGKILL the operator at random points during convergence, restart it.
    Sigkill,
    /// Half of all Azure calls answered 429 with Retry-After for a minute.
    Throttle,
    /// 5xx bursts and stalled long-running operations.
    Errors,
    /// A key version disabled mid-run, then re-enabled.
    Revoke,
    /// The API server and etcd stopped and restarted mid-run (etcd data kept);
    /// the operator process must ride it out.
    ApiserverRestart,
    /// Two replicas with leader election; the leader SIGKILLed mid-run.
    LeaderHandover,
}

#[derive(Clone, Debug, clap::Args)]
pub struct FaultArgs {
    #[arg(value_enum)]
    pub kind: FaultKind,
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 50)]
    pub accounts: usize,
    /// SIGKILLs (sigkill run).
    #[arg(long, default_value_t = 50)]
    pub kills: u32,
    /// API server outages (apiserver-restart run).
    #[arg(long, default_value_t = 2)]
    pub restarts: u32,
    /// Seconds the control plane stays down per outage, beyond the time
    /// `down` and `up` take themselves (apiserver-restart run).
    #[arg(long, default_value_t = 10)]
    pub outage_seconds: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_seconds: u64,
    /// Revocations in a row (revoke run): each disables the version in use,
    /// waits until its accounts report it, re-enables it and waits for Ready.
    #[arg(long, default_value_t = 1)]
    pub revocations: u32,
}
