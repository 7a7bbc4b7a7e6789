//! Credentials: a client secret, workload identity (a federated token file, as
//! AKS projects it), or the environment AKS workload identity injects.
//! Tokens are cached by audience and refreshed before expiry; neither tokens
//! nor secrets appear in `Debug` output, logs or errors.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_core::Url;
use azure_core::auth::{AccessToken, TokenCredential};
use azure_core::error::ErrorKind;
use azure_identity::ClientSecretCredential;
use time::OffsetDateTime;

use crate::azure::errors::AzureError;

/// Where the operator's Entra ID credential comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// An app registration's client secret (e.g. from a Kubernetes Secret).
    ClientSecret {
        tenant_id: String,
        client_id: String,
        client_secret: String,
    },
    /// Workload identity: a federated token file, re-read whenever a new Entra
    /// token is needed (the kubelet rotates it).
    WorkloadIdentity {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, and `AZURE_CLIENT_SECRET` or
    /// `AZURE_FEDERATED_TOKEN_FILE` (+ optional `AZURE_AUTHORITY_HOST`).
    Environment,
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientSecret {
                tenant_id,
                client_id,
                ..
            } => f
                .debug_struct("ClientSecret")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
            Self::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => f
                .debug_struct("WorkloadIdentity")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("token_file", token_file)
                .finish(),
            Self::Environment => f.write_str("Environment"),
        }
    }
}

const ENV_TENANT: &str = "AZURE_TENANT_ID";
const ENV_CLIENT: &str = "AZURE_CLIENT_ID";
const ENV_SECRET: &str = "AZURE_CLIENT_SECRET";
const ENV_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
const ENV_AUTHORITY: &str = "AZURE_AUTHORITY_HOST";

impl CredentialSource {
    /// Resolves `Environment` with `lookup` (the process environment in production);
    /// returns the concrete source and an authority host override.
    pub fn resolve_with(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(CredentialSource, Option<String>), AzureError> {
        if *self != Self::Environment {
            return Ok((self.clone(), None));
        }
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let (tenant, client) = (get(ENV_TENANT), get(ENV_CLIENT));
        let (secret, file) = (get(ENV_SECRET), get(ENV_TOKEN_FILE));
        let mut missing = Vec::new();
        if tenant.is_none() {
            missing.push(ENV_TENANT);
        }
        if client.is_none() {
            missing.push(ENV_CLIENT);
        }
        if secret.is_none() && file.is_none() {
            missing.push("AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE");
        }
        let (Some(tenant_id), Some(client_id), true) = (tenant, client, missing.is_empty()) else {
            return Err(credential_error(format!(
                "the environment credential needs {ENV_TENANT}, {ENV_CLIENT}, and {ENV_SECRET} or {ENV_TOKEN_FILE} (as AKS workload identity injects them); missing: {}",
                missing.join(", ")
            )));
        };
        let source = match (secret, file) {
            (Some(client_secret), _) => Self::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
            },
            (None, Some(f)) => Self::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file: PathBuf::from(f),
            },
            (None, None) => unreachable!("checked above"),
        };
        Ok((source, get(ENV_AUTHORITY)))
    }
}

fn credential_error(message: String) -> AzureError {
    AzureError::Authentication {
        operation: "Credential".into(),
        message,
    }
}

/// Builds the token credential for `source` against `authority_host`.
pub(crate) fn build(
    source: &CredentialSource,
    authority_host: &str,
    http: Arc<dyn azure_core::HttpClient>,
) -> Result<Arc<dyn TokenCredential>, AzureError> {
    let (source, authority_override) = source.resolve_with(|k| std::env::var(k).ok())?;
    let authority = authority_override.as_deref().unwrap_or(authority_host);
    let authority = Url::parse(authority).map_err(|e| {
        credential_error(format!(
            "the authority host {authority:?} is not a URL: {e}"
        ))
    })?;
    Ok(match source {
        CredentialSource::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
        } => Arc::new(ClientSecretCredential::new(
            http,
            authority,
            tenant_id,
            client_id,
            client_secret,
        )),
        CredentialSource::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => Arc::new(FederatedTokenFile {
            http,
            authority,
            tenant_id,
            client_id,
            token_file,
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }),
        CredentialSource::Environment => unreachable!("resolved above"),
    })
}

/// Workload identity that reads the projected token file for every new Entra
/// token: the 0.21 `WorkloadIdentityCredential` reads it once, and the kubelet
/// rotates it long before our process ends.
pub(crate) struct FederatedTokenFile {
    http: Arc<dyn azure_core::HttpClient>,
    authority: Url,
    tenant_id: String,
    client_id: String,
    token_file: PathBuf,
    cache: tokio::sync::Mutex<HashMap<String, AccessToken>>,
}

impl fmt::Debug for FederatedTokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederatedTokenFile")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

/// Refresh this long before expiry so a call never carries a token that lapses in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[async_trait::async_trait]
impl TokenCredential for FederatedTokenFile {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let key = scopes.join(" ");
        // Held across the refresh so concurrent callers wait for one token request.
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.get(&key)
            && t.expires_on > OffsetDateTime::now_utc() + REFRESH_MARGIN
        {
            return Ok(t.clone());
        }
        let assertion = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|e| {
                azure_core::Error::full(
                    ErrorKind::Credential,
                    e,
                    format!(
                        "cannot read the federated token file {}",
                        self.token_file.display()
                    ),
                )
            })?;
        let login = azure_identity::federated_credentials_flow::perform(
            self.http.clone(),
            &self.client_id,
            assertion.trim(),
            scopes,
            &self.tenant_id,
            &self.authority,
        )
        .await
        .map_err(|e| {
            azure_core::Error::full(
                ErrorKind::Credential,
                e,
                "workload identity token request failed",
            )
        })?;
        // Entra tokens live about an hour; a larger `expires_in` is read as a day
        // (an absurd one overflowed the clock and panicked).
        let lifetime = Duration::from_secs(login.expires_in.min(24 * 3600));
        let token = AccessToken::new(
            login.access_token().clone(),
            OffsetDateTime::now_utc() + lifetime,
        );
        cache.insert(key, token.clone());
        Ok(token)
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        self.cache.lock().await.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn environment_names_what_is_missing() {
        let err = CredentialSource::Environment
            .resolve_with(env(&[("AZURE_CLIENT_ID", "c")]))
            .unwrap_err()
            .to_string();
        let missing = err.split("missing: ").nth(1).unwrap_or_default();
        assert!(
            missing
                .starts_with("AZURE_TENANT_ID, AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE;"),
            "{err}"
        );
    }

    #[test]
    fn environment_prefers_secret_then_token_file() {
        let (s, auth) = CredentialSource::Environment
            .resolve_with(env(&[
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
                ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
            ]))
            .unwrap();
        assert!(
            matches!(s, CredentialSource::WorkloadIdentity { ref token_file, .. } if token_file == &PathBuf::from("/var/run/token"))
        );
        assert_eq!(auth.as_deref(), Some("https://login.microsoftonline.us/"));
        let (s, _) = CredentialSource::Environment
            .resolve_with(env(&[
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "s3cr3t"),
            ]))
            .unwrap();
        assert!(matches!(s, CredentialSource::ClientSecret { .. }));
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }
}
