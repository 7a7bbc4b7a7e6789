//! The Azure adapter (the SDK crates behind `AzurePort`) against the simulator:
//! credentials, error mapping, long-running operations, every operation.
//! (`adapter_env` and `adapter_logs` stay binaries of their own: they change
//! process-wide state, the environment and the tracing subscriber.)

#[path = "../adapter_support/mod.rs"]
mod adapter_support;
#[path = "../sim_support/mod.rs"]
mod sim_support;

mod connections;
mod credentials;
mod errors;
mod lro;
mod ops;
mod rotation;
