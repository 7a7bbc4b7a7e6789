//! cosmos-cmk-operator: keeps Azure Cosmos DB accounts encrypted with
//! customer-managed keys held in Azure Key Vault.
//!
//! Layers (see README): `api` holds the custom resource types, `sim` the
//! local Azure simulator (embedded by `run --azure simulator` for demos and
//! tests; real Azure is the default).

pub mod api;
pub mod app;
pub mod azure;
pub mod controller;
pub mod crd_check;
pub mod embedded;
pub mod leader;
pub mod reconcile;
pub mod sim;
pub mod telemetry;
pub mod tenancy;
