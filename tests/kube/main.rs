//! Kubernetes itself: the local control plane, leader election, CRD
//! admission rules, and the private test cluster.

#[path = "../common/mod.rs"]
mod common;

mod cluster;
mod control_plane;
mod crd_admission;
mod leader_election;
mod stalling_proxy;
