//! `cmk-operator`: the operator binary and its tooling subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cmk-operator",
    version,
    about = "Cosmos DB customer-managed-key operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions of both kinds as YAML (what `crds/` holds).
    Crd,
    /// Run the local Azure simulator (ARM, Key Vault, token endpoint) until SIGTERM.
    Simulate {
        /// Address to listen on, loopback only unless you know why.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Load state from this file at start and save it there on shutdown.
        #[arg(long)]
        state_file: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Crd => {
            print!("{}", cmk_operator::api::crds_yaml());
            Ok(())
        }
        Command::Simulate { listen, state_file } => {
            cmk_operator::sim::run_standalone(listen, state_file)
                .await
                .map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
