//! The operator as users install it: the chart, its RBAC, the kustomize
//! base, the Argo CD health checks, the CRDs in sync, the image, the CLI.

#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod argocd_actions;
mod argocd_health;
mod chart;
mod chart_aggregate;
mod chart_on_node;
mod chart_rbac;
mod chart_values;
mod cli_refuses;
mod crds_in_sync;
mod image;
mod kustomize;
mod readme;
mod release;
