//! Adapters that act as another Azure identity: the one a resource names in
//! `spec.credentialRef` (a Secret in its own namespace).

use super::errors::AzureError;
use super::instrumented::Instrumented;
use super::port::AzurePort;
use super::sdk::{CredentialSource, SdkAzure};

/// An adapter that can be rebuilt for another credential, sharing its cloud,
/// timeout and rate limiter.
pub trait WithCredential: AzurePort + Sized {
    fn with_credential(&self, source: CredentialSource) -> Result<Self, AzureError>;
}

impl WithCredential for SdkAzure {
    fn with_credential(&self, source: CredentialSource) -> Result<Self, AzureError> {
        SdkAzure::with_credential(self, source)
    }
}

impl<A: WithCredential> WithCredential for Instrumented<A> {
    fn with_credential(&self, source: CredentialSource) -> Result<Self, AzureError> {
        Ok(Instrumented::new(
            self.inner().with_credential(source)?,
            self.metrics().clone(),
        ))
    }
}

/// Why a credential Secret cannot be used; each names the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialRefError {
    #[error(
        "credential Secret {0} not found in this namespace: create it, or remove spec.credentialRef"
    )]
    NotFound(String),
    #[error(
        "credential Secret {secret} lacks key {key}: it needs tenantId, clientId and clientSecret"
    )]
    MissingKey { secret: String, key: &'static str },
    #[error("credential Secret {secret} key {key} is not UTF-8 text")]
    NotText { secret: String, key: &'static str },
}

/// Reads a service principal from a Secret's data. Only client secrets are
/// accepted here: federating the operator's own workload identity to a client
/// id named in a namespace's Secret would let that namespace borrow any identity
/// that trusts the operator.
pub fn credential_from_secret(
    name: &str,
    data: &std::collections::BTreeMap<String, k8s_openapi::ByteString>,
) -> Result<CredentialSource, CredentialRefError> {
    let get = |key: &'static str| {
        let bytes = data
            .get(key)
            .ok_or_else(|| CredentialRefError::MissingKey {
                secret: name.to_owned(),
                key,
            })?;
        String::from_utf8(bytes.0.clone())
            .map(|s| s.trim().to_owned())
            .map_err(|_| CredentialRefError::NotText {
                secret: name.to_owned(),
                key,
            })
    };
    Ok(CredentialSource::ClientSecret {
        tenant_id: get("tenantId")?,
        client_id: get("clientId")?,
        client_secret: get("clientSecret")?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn a_complete_secret_gives_a_service_principal() {
        let data: BTreeMap<_, _> = [
            ("tenantId", "t"),
            ("clientId", "c"),
            ("clientSecret", "s\n"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
        let CredentialSource::ClientSecret { client_secret, .. } =
            credential_from_secret("creds", &data).unwrap()
        else {
            panic!("a client secret credential")
        };
        assert_eq!(client_secret, "s");
    }

    #[test]
    fn a_missing_key_is_named() {
        let data = BTreeMap::from([("tenantId".to_owned(), ByteString(b"t".to_vec()))]);
        let err = credential_from_secret("creds", &data).unwrap_err();
        assert_eq!(
            err.to_string(),
            "credential Secret creds lacks key clientId: it needs tenantId, clientId and clientSecret"
        );
    }
}
