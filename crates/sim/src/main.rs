//! `cmk-sim`: the local Azure simulator as a process of its own, until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "cmk-sim",
    version,
    about = "Local Azure (ARM, Key Vault, token endpoint) for cosmos-cmk-operator"
)]
struct Cli {
    /// Address to listen on, loopback only unless you know why.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Load state from this file at start and save it there on shutdown.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Write the simulator's CA certificate (PEM) here, for clients to trust
    /// (without it, the certificate is printed after the start-up lines).
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match cmk_sim::run_standalone(cli.listen, cli.state_file, cli.ca_file).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
