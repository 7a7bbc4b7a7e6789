//! End to end: the operator against a real kube-apiserver and the simulator,
//! walking every scenario of the seed procedure.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod alerts;
mod azure_answers;
mod azure_permissions;
mod azure_policy;
mod boundaries;
mod clouds;
mod credentials;
mod events;
mod hostile;
mod identities;
mod least_privilege;
mod lifecycle;
mod operability;
mod ownership;
mod preflight;
mod replicas;
mod revocation_freshness;
mod rotation_schedule;
mod sharing;
mod spec_fields;
mod tenancy;
