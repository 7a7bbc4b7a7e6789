//! `cmk-operator`: the operator binary and its tooling subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "cmk-operator",
    version,
    about = "Cosmos DB customer-managed-key operator"
)]
struct Cli {
    /// Log format: JSON lines (default, for log pipelines) or human-readable text.
    #[arg(
        long,
        value_enum,
        global = true,
        default_value = "json",
        env = "CMK_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

// Parsed once at start; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the operator against real Azure (`--azure simulator`: the embedded simulator).
    Run(cmk_operator::app::RunOptions),
    /// Print the CustomResourceDefinitions of both kinds as YAML (what `crds/` holds).
    Crd,
    /// Run the local Azure simulator (ARM, Key Vault, token endpoint) until SIGTERM
    /// (as `cmk-sim` does).
    #[cfg(feature = "simulator")]
    Simulate {
        /// Address to listen on, loopback only unless you know why.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Load state from this file at start and save it there on shutdown.
        #[arg(long)]
        state_file: Option<std::path::PathBuf>,
        /// Write the simulator's CA certificate (PEM) here, for clients to trust
        /// (without it, the certificate is printed after the start-up lines).
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
    },
}

fn init_logging(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,kube=warn,azure_core=warn"));
    // azure_core 0.21 logs request headers, bearer token included, at debug level
    // in its transport policy: silence it whatever RUST_LOG says.
    if let Ok(directive) = "azure_core::policies::transport=off".parse() {
        filter = filter.add_directive(directive);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Crd => {
            print!("{}", cmk_operator::api::crds_yaml());
            Ok(())
        }
        Command::Run(opts) => {
            init_logging(cli.log_format);
            cmk_operator::app::run(opts).await.map_err(Into::into)
        }
        #[cfg(feature = "simulator")]
        Command::Simulate {
            listen,
            state_file,
            ca_file,
        } => {
            init_logging(cli.log_format);
            cmk_operator::sim::run_standalone(listen, state_file, ca_file)
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
