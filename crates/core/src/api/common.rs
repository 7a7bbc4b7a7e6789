//! Types shared by both custom resources.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::patterns;

/// Reference to a Secret in the resource's own namespace holding Azure credentials.
///
/// Only same-namespace references exist on purpose: one namespace must never be
/// able to use another namespace's Azure identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRef {
    /// Name of a Secret in this namespace. It holds `tenantId` and `clientId`, and either
    /// `clientSecret` (service principal) or nothing else when the operator's workload
    /// identity federates as that client. Omit the whole reference to use the operator's
    /// own identity.
    #[schemars(length(min = 1, max = 253), regex(pattern = patterns::K8S_NAME))]
    pub secret_name: String,
}

/// Reference to another object of this operator in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the object in the same namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = patterns::K8S_NAME))]
    pub name: String,
}

/// The last error Azure returned, as it returned it (never with credentials).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureErrorRecord {
    /// The Azure operation that failed, e.g. `CreateAccount` or `GetKey`.
    pub operation: String,
    /// HTTP status code of the answer.
    pub http_status: i32,
    /// Cosmos DB substatus code (`x-ms-substatus`), e.g. 4002 when Key Vault denied access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_status: Option<i32>,
    /// Azure's error code, e.g. `Forbidden` or `KeyNotFound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Azure's error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it happened (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// Coarse lifecycle phase shown by `kubectl get`; conditions carry the detail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Accepted, nothing done yet.
    #[default]
    Pending,
    /// Waiting for a dependency (for example a binding that is not Ready yet).
    Waiting,
    /// An Azure step is in progress.
    Provisioning,
    /// Every stage holds for the current generation.
    Ready,
    /// The key or the grant to it was revoked; the account only accepts deletion.
    Revoked,
    /// A stage failed; the Ready condition says why and how to fix it.
    Failed,
    /// The object is being deleted and its deletion policy is being carried out.
    Deleting,
}

impl Phase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Phase; 7] = [
        Phase::Pending,
        Phase::Waiting,
        Phase::Provisioning,
        Phase::Ready,
        Phase::Revoked,
        Phase::Failed,
        Phase::Deleting,
    ];

    /// The phase's name, as written to the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Waiting => "Waiting",
            Phase::Provisioning => "Provisioning",
            Phase::Ready => "Ready",
            Phase::Revoked => "Revoked",
            Phase::Failed => "Failed",
            Phase::Deleting => "Deleting",
        }
    }
}

/// Whether two ARM ids or key URIs name the same thing: Azure compares them
/// case-insensitively, and a trailing `/` changes nothing.
pub fn same_id(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}
