//! cosmos-cmk-operator: keeps Azure Cosmos DB accounts encrypted with
//! customer-managed keys held in Azure Key Vault.
//!
//! This crate is the operator: kube wiring (`controller`, `leader`,
//! `telemetry`), the Azure adapter (`azure`) and the process (`app`). The
//! custom resource types and the pure state machines live in the kube-free
//! `cmk-core` crate (re-exported as `api` and `reconcile`); the local Azure
//! simulator in `cmk-sim` (re-exported as `sim`, and embedded by
//! `run --azure simulator`, only in builds with the `simulator` feature).

pub use cmk_core::{api, reconcile};
#[cfg(feature = "simulator")]
pub use cmk_sim as sim;

pub mod app;
pub mod azure;
pub mod cluster_id;
pub mod controller;
pub mod crd_check;
#[cfg(feature = "simulator")]
pub mod embedded;
pub mod leader;
pub mod resource_metrics;
pub mod telemetry;
pub mod tenancy;
pub mod tenancy_file;
