//! The kube-free core of cosmos-cmk-operator: the custom resource types
//! (`api`) and the state machines that decide, from observed state, what to do
//! next (`reconcile`). No I/O: the operator crate observes, acts and reports.

pub mod api;
pub mod iso_duration;
pub mod reconcile;
