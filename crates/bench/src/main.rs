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
//!
//! Modules: `cli` (flags), `repo` (where the checkout is), `control_plane`
//! (`tests/control-plane/up`/`down`, or `CMK_TEST_KUBECONFIG`'s), `world`
//! (namespace, simulator, operator processes), `bench` (the run), `measure` and `proc_stats` (what
//! it measures), `fault` (the fault runs) with `revoke`, `apiserver_restart`
//! and `leader_handover`, and `check` (the clean-ledger check they end with).

mod apiserver_restart;
mod bench;
mod check;
mod cli;
mod control_plane;
mod fault;
mod leader_handover;
mod measure;
mod proc_stats;
mod repo;
mod revoke;
mod world;

use clap::Parser;

use crate::cli::{Cli, Cmd};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

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
            Cmd::Run(a) => bench::run_bench(a).await,
            Cmd::Fault(a) => fault::run_fault(a).await,
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
