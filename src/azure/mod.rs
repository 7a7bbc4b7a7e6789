//! Everything the operator knows about Azure, behind one narrow port.
//! Azure SDK types never leave this module.

pub mod cloud;
pub mod errors;
pub mod instrumented;
pub mod key_uri;
pub mod port;
pub mod rate_limit;
pub mod scoped;
pub mod sdk;

pub use errors::{AzureError, CmkCause, ErrorClass};
pub use port::{AccountChange, AccountRef, AzurePort, DisableOutcome, NewAccount, RevokeOutcome};
pub use sdk::{AzureSettings, CredentialSource, SdkAzure};

#[cfg(test)]
mod key_uri_tests;
