//! Local Azure simulator (ARM, Key Vault data plane, Entra token endpoint).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors that stop the standalone simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the simulator is not built yet (listen address {0})")]
    NotBuilt(SocketAddr),
}

/// Runs the simulator on `listen` until SIGTERM or Ctrl-C.
pub async fn run_standalone(listen: SocketAddr, _state_file: Option<PathBuf>) -> Result<(), SimError> {
    Err(SimError::NotBuilt(listen))
}
