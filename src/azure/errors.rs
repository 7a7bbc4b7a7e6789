//! Typed Azure errors, classified so the controllers know whether to retry
//! soon, retry slowly, or wait for the user to fix something.

use std::time::Duration;

use crate::reconcile::policy::{self, PolicyViolation};

/// How an error should be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient (throttling, 5xx, timeouts): retry with backoff.
    Retryable,
    /// Needs a change from the user (permissions, bad input, missing resources);
    /// retried slowly, because grants often take minutes to propagate.
    UserFixable,
    /// Will not succeed as asked (a revoked account refusing writes, a conflict).
    Terminal,
}

/// Causes Cosmos DB reports with CMK substatus codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmkCause {
    /// 4000: Entra ID client-credentials grant failed.
    AadClientCredentialsFailed,
    /// 4001: Entra ID unavailable.
    AadUnavailable,
    /// 4002: Key Vault refused: no permission, or the key is disabled.
    KeyVaultAccessDenied,
    /// 4003: the key was not found.
    KeyNotFound,
    /// 4004: Key Vault unavailable.
    KeyVaultUnavailable,
    /// 4005: wrap or unwrap failed.
    WrapUnwrapFailed,
    /// 4006: invalid key URI.
    InvalidKeyUri,
    /// 4009: the vault's DNS name did not resolve.
    KeyVaultDnsNotResolved,
    /// 4012: the customer key was rotated and is catching up.
    KeyRotated,
    /// 403 substatus 3: writes forbidden (the account is revoked).
    WriteForbidden,
}

impl CmkCause {
    /// Maps a Cosmos DB substatus code.
    pub fn from_sub_status(code: i32) -> Option<Self> {
        Some(match code {
            4000 => Self::AadClientCredentialsFailed,
            4001 => Self::AadUnavailable,
            4002 => Self::KeyVaultAccessDenied,
            4003 => Self::KeyNotFound,
            4004 => Self::KeyVaultUnavailable,
            4005 => Self::WrapUnwrapFailed,
            4006 => Self::InvalidKeyUri,
            4009 => Self::KeyVaultDnsNotResolved,
            4012 => Self::KeyRotated,
            3 => Self::WriteForbidden,
            _ => return None,
        })
    }

    /// Condition reason for this cause (stable CamelCase).
    pub fn reason(self) -> &'static str {
        match self {
            Self::AadClientCredentialsFailed => "AadCredentialsFailed",
            Self::AadUnavailable => "AadUnavailable",
            Self::KeyVaultAccessDenied => "KeyAccessDenied",
            Self::KeyNotFound => "KeyNotFound",
            Self::KeyVaultUnavailable => "KeyVaultUnavailable",
            Self::WrapUnwrapFailed => "KeyWrapUnwrapFailed",
            Self::InvalidKeyUri => "InvalidKeyUri",
            Self::KeyVaultDnsNotResolved => "KeyVaultDnsNotResolved",
            Self::KeyRotated => "KeyRotationInProgress",
            Self::WriteForbidden => "AccountWriteForbidden",
        }
    }

    /// Whether the cause means the account lost access to its key.
    pub fn is_revocation(self) -> bool {
        matches!(
            self,
            Self::KeyVaultAccessDenied | Self::KeyNotFound | Self::WriteForbidden
        )
    }
}

/// An Azure call that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AzureError {
    // No duration in the text: it goes into the Ready condition and events,
    // and a text that changed with every pause made each retry a status
    // write and a new event (the pause is logged with the retry).
    #[error("{operation}: throttled by Azure (HTTP 429); retried after Azure's Retry-After")]
    Throttled {
        operation: String,
        retry_after: Duration,
    },
    #[error("{operation}: Azure is unavailable (HTTP {status}): {message}")]
    Unavailable {
        operation: String,
        status: u16,
        message: String,
    },
    #[error("{operation}: no answer within {after:?}")]
    Timeout { operation: String, after: Duration },
    #[error("{operation}: cannot reach Azure: {message}")]
    Transport { operation: String, message: String },
    #[error(
        "{operation}: authentication failed: {message}; check the credential (client id, secret or federated token) and tenant"
    )]
    Authentication { operation: String, message: String },
    #[error(
        "{operation}: forbidden ({code}): {message}; grant the operator's identity the role this call needs"
    )]
    Forbidden {
        operation: String,
        code: String,
        message: String,
    },
    /// ARM's `AuthorizationFailed` / `LinkedAuthorizationFailed`: the
    /// operator's identity lacks one Azure RBAC action at a scope.
    #[error(
        "{operation}: Azure refused: the operator's identity lacks the permission '{action}' over scope '{scope}' ({code}); add '{action}' to the operator's role (deploy/azure/operator-role.json holds every action the operator needs) or assign it a role with that action at this scope or above, then wait for the grant to propagate"
    )]
    AuthorizationFailed {
        operation: String,
        code: String,
        action: String,
        scope: String,
        message: String,
    },
    /// ARM's 403 `RequestDisallowedByPolicy`: an Azure Policy assignment
    /// denied the write. Named with the field that makes the account comply.
    #[error(
        "{operation}: Azure Policy denied the request: {}. Set the field in the spec; the operator retries with backoff",
        policy::describe(.violations, .message)
    )]
    DisallowedByPolicy {
        operation: String,
        violations: Vec<PolicyViolation>,
        message: String,
    },
    #[error("{operation}: not found: {message}")]
    NotFound { operation: String, message: String },
    #[error(
        "{operation}: Cosmos DB reports a customer-managed key problem (HTTP {status}, substatus {sub_status}): {message}"
    )]
    Cmk {
        operation: String,
        status: u16,
        sub_status: i32,
        cause: CmkCause,
        message: String,
    },
    /// An answer the operator cannot use as it came (not JSON, truncated, too
    /// large, or missing what a write would have to carry over). Transient:
    /// the next answer is usually whole, and acting on a broken one could
    /// mislead the operator or drop what Azure holds.
    #[error("{operation}: Azure's answer (HTTP {status}) cannot be used: {message}")]
    InvalidResponse {
        operation: String,
        status: u16,
        message: String,
    },
    #[error("{operation}: Azure refused the request (HTTP {status}, {code}): {message}")]
    Rejected {
        operation: String,
        status: u16,
        code: String,
        message: String,
    },
}

impl AzureError {
    /// How to handle it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Throttled { .. }
            | Self::Unavailable { .. }
            | Self::Timeout { .. }
            | Self::Transport { .. }
            | Self::InvalidResponse { .. } => ErrorClass::Retryable,
            Self::Authentication { .. }
            | Self::Forbidden { .. }
            | Self::AuthorizationFailed { .. }
            | Self::DisallowedByPolicy { .. }
            | Self::NotFound { .. } => ErrorClass::UserFixable,
            // Permission and revocation errors are often transient while grants propagate:
            // never terminal, retried slowly.
            Self::Cmk { cause, .. } => match cause {
                CmkCause::AadUnavailable | CmkCause::KeyVaultUnavailable | CmkCause::KeyRotated => {
                    ErrorClass::Retryable
                }
                _ => ErrorClass::UserFixable,
            },
            // Another operation holds the account's lock (409/412): it will finish.
            Self::Rejected {
                status: 409 | 412, ..
            } => ErrorClass::Retryable,
            Self::Rejected { .. } => ErrorClass::UserFixable,
        }
    }

    /// The delay Azure asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// A condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "AzureThrottled",
            Self::Unavailable { .. } | Self::Transport { .. } | Self::Timeout { .. } => {
                "AzureUnavailable"
            }
            Self::Authentication { .. } => "AzureAuthenticationFailed",
            Self::Forbidden { .. } => "AzureForbidden",
            Self::AuthorizationFailed { .. } => "AuthorizationFailed",
            Self::DisallowedByPolicy { .. } => crate::reconcile::reasons::DISALLOWED_BY_POLICY,
            Self::NotFound { .. } => "AzureResourceNotFound",
            Self::Cmk { cause, .. } => cause.reason(),
            Self::InvalidResponse { .. } => "AzureInvalidResponse",
            Self::Rejected { .. } => "AzureRejected",
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Throttled { .. } => Some(429),
            Self::Unavailable { status, .. }
            | Self::Cmk { status, .. }
            | Self::InvalidResponse { status, .. }
            | Self::Rejected { status, .. } => Some(*status),
            Self::Authentication { .. } => Some(401),
            Self::Forbidden { .. }
            | Self::AuthorizationFailed { .. }
            | Self::DisallowedByPolicy { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::Timeout { .. } | Self::Transport { .. } => None,
        }
    }

    /// Builds the typed error from an HTTP answer (status, headers already read, ARM error body).
    pub fn from_response(
        operation: &str,
        status: u16,
        retry_after: Option<Duration>,
        sub_status: Option<i32>,
        code: &str,
        message: &str,
    ) -> Self {
        let (operation, code, message) =
            (operation.to_owned(), code.to_owned(), message.to_owned());
        if let Some(cause) = sub_status.and_then(CmkCause::from_sub_status) {
            return Self::Cmk {
                operation,
                status,
                sub_status: sub_status.unwrap_or_default(),
                cause,
                message,
            };
        }
        match status {
            429 => Self::Throttled {
                operation,
                retry_after: retry_after.unwrap_or(Duration::from_secs(10)),
            },
            401 => Self::Authentication { operation, message },
            // Only when Azure's message names the action and scope: otherwise
            // Azure's own words (as `Forbidden`) say more than "unknown" would.
            403 if code == "AuthorizationFailed" || code == "LinkedAuthorizationFailed" => {
                match denied_action(&message) {
                    Some((action, scope)) => Self::AuthorizationFailed {
                        operation,
                        code,
                        action,
                        scope,
                        message,
                    },
                    None => Self::Forbidden {
                        operation,
                        code,
                        message,
                    },
                }
            }
            403 if code == "RequestDisallowedByPolicy" => Self::DisallowedByPolicy {
                operation,
                violations: Vec::new(),
                message,
            },
            403 => Self::Forbidden {
                operation,
                code,
                message,
            },
            404 => Self::NotFound { operation, message },
            500..=599 => Self::Unavailable {
                operation,
                status,
                message,
            },
            _ => Self::Rejected {
                operation,
                status,
                code,
                message,
            },
        }
    }
}

/// The action and scope ARM names in an `AuthorizationFailed` message
/// ("… to perform action '{action}' over scope '{scope}' …") or a
/// `LinkedAuthorizationFailed` one ("… to perform action '{action}' on the
/// linked scope(s) '{scope}' …"); `None` when the wording differs.
pub fn denied_action(message: &str) -> Option<(String, String)> {
    let quoted_after = |marker: &str, from: usize| -> Option<(String, usize)> {
        let at = message[from..].find(marker)? + from + marker.len();
        let end = message[at..].find('\'')? + at;
        Some((message[at..end].to_owned(), end))
    };
    let linked = message.find("however, it does not have permission");
    let from = linked.unwrap_or(0);
    let (action, end) = quoted_after("perform action '", from)?;
    let scope_marker = if linked.is_some() {
        "linked scope(s) '"
    } else {
        "over scope '"
    };
    let (scope, _) = quoted_after(scope_marker, end)?;
    Some((action, scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_seed_and_arm_guidance() {
        let t = AzureError::from_response(
            "GetAccount",
            429,
            Some(Duration::from_secs(7)),
            None,
            "TooManyRequests",
            "slow down",
        );
        assert_eq!(
            (t.class(), t.retry_after()),
            (ErrorClass::Retryable, Some(Duration::from_secs(7)))
        );
        assert_eq!(
            AzureError::from_response("x", 503, None, None, "", "").class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            AzureError::from_response("x", 403, None, None, "AuthorizationFailed", "").class(),
            ErrorClass::UserFixable
        );
        assert_eq!(
            AzureError::from_response("x", 409, None, None, "Conflict", "").class(),
            ErrorClass::Retryable
        );
        let cmk = AzureError::from_response("x", 403, None, Some(4002), "Forbidden", "denied");
        assert_eq!(
            (cmk.class(), cmk.reason()),
            (ErrorClass::UserFixable, "KeyAccessDenied")
        );
        assert_eq!(
            AzureError::from_response("x", 503, None, Some(4004), "", "").class(),
            ErrorClass::Retryable
        );
    }

    /// Each substatus pinned to the reason the README documents for it (from
    /// the seed's troubleshooting table): a swap of two codes fails here.
    #[test]
    fn each_substatus_maps_to_its_documented_reason() {
        let documented = [
            (4000, "AadCredentialsFailed"),
            (4001, "AadUnavailable"),
            (4002, "KeyAccessDenied"),
            (4003, "KeyNotFound"),
            (4004, "KeyVaultUnavailable"),
            (4005, "KeyWrapUnwrapFailed"),
            (4006, "InvalidKeyUri"),
            (4009, "KeyVaultDnsNotResolved"),
            (4012, "KeyRotationInProgress"),
            (3, "AccountWriteForbidden"),
        ];
        for (code, reason) in documented {
            assert_eq!(
                CmkCause::from_sub_status(code).map(|c| c.reason()),
                Some(reason),
                "substatus {code}"
            );
        }
        let readme = include_str!("../../README.md");
        for (code, reason) in documented {
            let shown = if code == 3 {
                format!("`{reason}` (403/3)")
            } else {
                format!("`{reason}` ({code})")
            };
            assert!(readme.contains(&shown), "README documents {shown}");
        }
    }

    #[test]
    fn authorization_failed_names_the_action_scope_and_fix() {
        let e = AzureError::from_response(
            "CreateAccount",
            403,
            None,
            None,
            "AuthorizationFailed",
            "The client 'o' with object id 'o' does not have authorization to perform action 'Microsoft.DocumentDB/databaseAccounts/write' over scope '/subscriptions/s/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/a' or the scope is invalid. If access was recently granted, please refresh your credentials.",
        );
        assert_eq!(
            (e.reason(), e.class()),
            ("AuthorizationFailed", ErrorClass::UserFixable)
        );
        let text = e.to_string();
        assert!(
            text.contains("'Microsoft.DocumentDB/databaseAccounts/write'"),
            "{text}"
        );
        assert!(text.contains("over scope '/subscriptions/s/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/a'"), "{text}");
        assert!(text.contains("deploy/azure/operator-role.json"), "{text}");
        let linked = AzureError::from_response(
            "CreateAccount",
            403,
            None,
            None,
            "LinkedAuthorizationFailed",
            "The client 'o' with object id 'o' has permission to perform action 'Microsoft.DocumentDB/databaseAccounts/write' on scope '/a'; however, it does not have permission to perform action 'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked scope(s) '/i' or the linked scope(s) are invalid.",
        );
        assert_eq!(
            denied_action(match &linked {
                AzureError::AuthorizationFailed { message, .. } => message,
                _ => panic!("{linked:?}"),
            }),
            Some((
                "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action".into(),
                "/i".into()
            ))
        );
    }

    #[test]
    fn every_substatus_maps_to_a_distinct_reason() {
        let codes = [4000, 4001, 4002, 4003, 4004, 4005, 4006, 4009, 4012, 3];
        let mut reasons: Vec<_> = codes
            .iter()
            .map(|c| CmkCause::from_sub_status(*c).unwrap().reason())
            .collect();
        reasons.sort();
        reasons.dedup();
        assert_eq!(reasons.len(), codes.len());
        assert!(CmkCause::from_sub_status(1234).is_none());
    }
}
