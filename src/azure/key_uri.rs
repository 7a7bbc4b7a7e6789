//! Key Vault key identifiers: parsed, checked against the cloud in use, and
//! turned into the *versionless* form Cosmos DB must be given so the account
//! follows new key versions.

use std::fmt;

use super::cloud::VaultHosts;

/// A validated key identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUri {
    /// Scheme, host and optional port, and the path prefix of the vault, without a trailing slash
    /// (e.g. `https://myvault.vault.azure.net`).
    pub vault_base: String,
    pub key_name: String,
    pub version: Option<String>,
}

/// Why a key URI was refused; each names the problem and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyUriError {
    #[error(
        "key URI {0:?} is not a URL: use https://<vault>.<key vault DNS suffix>/keys/<key name>"
    )]
    NotAUrl(String),
    #[error("key URI {0:?} uses http: Key Vault only serves https")]
    NotHttps(String),
    #[error(
        "key URI {uri:?} has host {host:?}, which is not a Key Vault of this cloud (expected <vault>.{suffix})"
    )]
    WrongHost {
        uri: String,
        host: String,
        suffix: String,
    },
    #[error(
        "key URI {uri:?} has vault name {name:?}: vault names are 3-24 letters, digits and hyphens, starting with a letter"
    )]
    BadVaultName { uri: String, name: String },
    #[error(
        "key URI {0:?} carries credentials, a query or a fragment: remove everything after the key name"
    )]
    TrailingJunk(String),
    #[error("key URI {0:?} has no key name: the path must be /keys/<key name>")]
    MissingKeyName(String),
    #[error("key URI {uri:?} names key {name:?}: key names are 1-127 letters, digits and hyphens")]
    BadKeyName { uri: String, name: String },
    #[error("key URI {uri:?} has version {version:?}: versions are 32 hexadecimal characters")]
    BadVersion { uri: String, version: String },
    #[error(
        "key URI {0:?} includes a version where only the versionless form is allowed: drop the last path segment"
    )]
    VersionNotAllowed(String),
    #[error("key URI {0:?} has unexpected path segments after the version")]
    ExtraSegments(String),
}

impl KeyUri {
    /// Parses a key identifier (with or without version) for a cloud's vault hosts.
    pub fn parse(uri: &str, hosts: &VaultHosts) -> Result<Self, KeyUriError> {
        let e = || uri.to_owned();
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| KeyUriError::NotAUrl(e()))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(KeyUriError::NotAUrl(e()));
        }
        let VaultHosts::DnsSuffix(suffix) = hosts;
        if rest.contains(['?', '#', '@']) || rest.chars().any(char::is_whitespace) {
            return Err(KeyUriError::TrailingJunk(e()));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(KeyUriError::NotAUrl(e()));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h,
                Some(p.parse::<u16>().map_err(|_| KeyUriError::NotAUrl(e()))?),
            ),
            _ => (authority, None),
        };
        let host = host.to_ascii_lowercase();
        let mut segments: Vec<&str> = path.split('/').collect();
        if segments.last() == Some(&"") {
            segments.pop();
        }

        if scheme != "https" {
            return Err(KeyUriError::NotHttps(e()));
        }
        let vault = host
            .strip_suffix(suffix.as_str())
            .and_then(|v| v.strip_suffix('.'))
            .filter(|v| !v.contains('.'))
            .ok_or_else(|| KeyUriError::WrongHost {
                uri: e(),
                host: host.clone(),
                suffix: suffix.clone(),
            })?;
        check_vault_name(uri, vault)?;
        if port.is_some_and(|p| p != 443) {
            return Err(KeyUriError::WrongHost {
                uri: e(),
                host: authority.to_owned(),
                suffix: suffix.clone(),
            });
        }
        let vault_base = format!("https://{host}");

        match segments.as_slice() {
            ["keys"] | [] => Err(KeyUriError::MissingKeyName(e())),
            ["keys", "", ..] => Err(KeyUriError::MissingKeyName(e())),
            ["keys", name, rest @ ..] => {
                if name.is_empty()
                    || name.len() > 127
                    || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(KeyUriError::BadKeyName {
                        uri: e(),
                        name: (*name).to_owned(),
                    });
                }
                let version = match rest {
                    [] => None,
                    [v] if v.len() == 32 && v.chars().all(|c| c.is_ascii_hexdigit()) => {
                        Some(v.to_ascii_lowercase())
                    }
                    [v] => {
                        return Err(KeyUriError::BadVersion {
                            uri: e(),
                            version: (*v).to_owned(),
                        });
                    }
                    _ => return Err(KeyUriError::ExtraSegments(e())),
                };
                Ok(KeyUri {
                    vault_base,
                    key_name: (*name).to_owned(),
                    version,
                })
            }
            _ => Err(KeyUriError::MissingKeyName(e())),
        }
    }

    /// Parses and insists on the versionless form (what an account must be given).
    pub fn parse_versionless(uri: &str, hosts: &VaultHosts) -> Result<Self, KeyUriError> {
        let parsed = Self::parse(uri, hosts)?;
        if parsed.version.is_some() {
            return Err(KeyUriError::VersionNotAllowed(uri.to_owned()));
        }
        Ok(parsed)
    }

    /// `{vault}/keys/{name}`: the form Cosmos DB follows across key versions.
    pub fn versionless(&self) -> String {
        format!("{}/keys/{}", self.vault_base, self.key_name)
    }

    /// The vault's base URI with a trailing slash, as Key Vault clients take it.
    pub fn vault_uri(&self) -> String {
        format!("{}/", self.vault_base)
    }
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}/{v}", self.versionless()),
            None => f.write_str(&self.versionless()),
        }
    }
}

fn check_vault_name(uri: &str, name: &str) -> Result<(), KeyUriError> {
    let ok = (3..=24).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(KeyUriError::BadVaultName {
            uri: uri.to_owned(),
            name: name.to_owned(),
        })
    }
}
