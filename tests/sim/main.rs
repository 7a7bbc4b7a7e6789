//! The Azure simulator answering as Azure does: to the SDK crates, to raw
//! HTTP, to Microsoft's Python SDKs, under faults and hostile input.

#[path = "../adapter_support/mod.rs"]
mod adapter_support;
#[path = "../sim_support/mod.rs"]
mod sim_support;

mod account_changes;
mod auth;
mod cmk;
mod cosmos;
mod faults;
mod fidelity;
mod key_lists_and_expiry;
mod keyvault;
mod policy;
mod python_sdks;
mod recorded_answers;
mod replay;
mod restorable;
mod robustness;
mod role_conditions;
mod rotation_policy;
mod standalone;
mod subscriptions;
