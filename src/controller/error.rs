//! Reconcile errors and the backoff policy for them.

use std::time::Duration;

use crate::azure::{AzureError, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Azure: {0}")]
    Azure(#[from] AzureError),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("{0}")]
    Credential(#[from] crate::azure::scoped::CredentialRefError),
    #[error("resource has no namespace")]
    NoNamespace,
    #[error("the watch cache of {0} stopped before its first list finished")]
    CacheClosed(&'static str),
    /// Not a failure: the account's deletion is running and the finalizer must stay.
    /// Carries when to look again (Azure's `Retry-After`, else the poll interval).
    #[error("waiting for the Azure account's deletion to finish")]
    DeletionInProgress(Duration),
    /// The deletion waits for the user to confirm the account is this resource's.
    #[error("{0}")]
    OwnerUnconfirmed(String),
    /// The tenancy policy file is unusable: a deletion waits (finalizer kept)
    /// instead of leaving Azure as it is for good.
    #[error("{0}")]
    TenancyPolicyUnusable(crate::tenancy::Refusal),
}

impl Error {
    /// How long to wait before the next attempt: Azure's `Retry-After` when it
    /// gave one, quick for transient trouble, slow for what the user must fix
    /// (grants often need minutes to propagate).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = |base: u64, cap: u64| Duration::from_secs((base << attempt.min(6)).min(cap));
        match self {
            // A resource throttled again and again waits longer each time
            // (1 s doubling to 30 s) even when Azure's pause is shorter: a
            // subscription at its limit serves a few calls a second, and a
            // thousand resources retrying at every pause only churn.
            Error::Azure(e @ AzureError::Throttled { .. }) => {
                e.retry_after().unwrap_or_default().max(exp(1, 30))
            }
            Error::Azure(e) => match (e.retry_after(), e.class()) {
                (Some(d), _) => d,
                (None, ErrorClass::Retryable) => exp(2, 120),
                (None, ErrorClass::UserFixable) => exp(15, 600),
                (None, ErrorClass::Terminal) => Duration::from_secs(900),
            },
            // The API server is back within seconds of most outages; a longer
            // wait only delays recovery (the helper run saw 30 s after a restart).
            Error::Kube(_) | Error::Finalizer(_) | Error::CacheClosed(_) => exp(1, 10),
            Error::NoNamespace => Duration::from_secs(3600),
            Error::Credential(_) => exp(15, 600),
            Error::DeletionInProgress(next) => *next,
            // The confirming annotation wakes the controller; this is the fallback.
            Error::OwnerUnconfirmed(_) => Duration::from_secs(30),
            // A fixed file triggers a reconcile of everything; this is the fallback.
            Error::TenancyPolicyUnusable(_) => exp(5, 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_honours_retry_after_and_grows_to_a_cap() {
        let throttled = Error::Azure(AzureError::Throttled {
            operation: "x".into(),
            retry_after: Duration::from_secs(17),
        });
        assert_eq!(throttled.backoff(3), Duration::from_secs(17));
        // Throttled again and again: longer than a short pause, up to 30 s.
        let paused_briefly = Error::Azure(AzureError::Throttled {
            operation: "x".into(),
            retry_after: Duration::from_millis(300),
        });
        assert_eq!(paused_briefly.backoff(0), Duration::from_secs(1));
        assert_eq!(paused_briefly.backoff(3), Duration::from_secs(8));
        assert_eq!(paused_briefly.backoff(9), Duration::from_secs(30));
        let flaky = Error::Azure(AzureError::Unavailable {
            operation: "x".into(),
            status: 503,
            message: String::new(),
        });
        assert_eq!(flaky.backoff(0), Duration::from_secs(2));
        assert_eq!(flaky.backoff(10), Duration::from_secs(120));
        let forbidden = Error::Azure(AzureError::Forbidden {
            operation: "x".into(),
            code: String::new(),
            message: String::new(),
        });
        assert_eq!(forbidden.backoff(0), Duration::from_secs(15));
    }
}
