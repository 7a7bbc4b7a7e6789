//! The state machines, pure: observed state in, next action out, no I/O.
//! The controllers gather the observations and carry out the actions.

pub mod account;
pub mod binding;
pub mod destructive;
pub mod key_watch;
pub mod outcomes;
pub mod ownership;
pub mod policy;
pub mod reasons;
pub mod rotation;
pub mod settings_drift;
pub mod sharing;
pub mod spec_drift;

#[cfg(test)]
mod account_tests;
#[cfg(test)]
mod binding_tests;
#[cfg(test)]
mod key_watch_tests;
#[cfg(test)]
mod settings_drift_tests;
#[cfg(test)]
mod spec_drift_tests;
