//! Key Vault data plane: the key's latest version, create, disable a version.
//! Requests go through an azure_core pipeline with a Key Vault token: the 0.21
//! `KeyClient` has no create/versions/update, and its fixed retry policy would
//! hide a 429's `Retry-After` from the rate limiter.

use azure_core::{Method, Url};
use serde_json::{Value, json};

use super::SdkAzure;
use super::http::{self, Answer, Failure};
use crate::api::KeyType;
use crate::azure::errors::AzureError;
use crate::azure::key_uri::KeyUri;
use crate::azure::port::DisableOutcome;
use crate::azure::rate_limit::CallKind;
use crate::reconcile::binding::KeyFacts;

const KV_API: &str = "7.4";

impl SdkAzure {
    /// Checks that `vault_uri` is a vault of this cloud (the Key Vault token goes
    /// nowhere else) and returns the parsed key reference.
    pub(super) fn key_ref(
        &self,
        op: &str,
        vault_uri: &str,
        name: &str,
    ) -> Result<KeyUri, AzureError> {
        let uri = format!("{}/keys/{name}", vault_uri.trim_end_matches('/'));
        self.parse_key_uri(op, &uri)
    }

    fn parse_key_uri(&self, op: &str, uri: &str) -> Result<KeyUri, AzureError> {
        KeyUri::parse(uri, &self.inner.cloud.vault_hosts).map_err(|e| AzureError::Rejected {
            operation: op.to_owned(),
            status: 400,
            code: "InvalidKeyUri".into(),
            message: e.to_string(),
        })
    }

    /// One data-plane request; 403/404 come back as the answer's failure for the
    /// caller to interpret, everything else as an error. Key Vault throttles per
    /// vault, so the vault is the rate-limiter bucket.
    pub(super) async fn kv(
        &self,
        op: &str,
        key: &KeyUri,
        kind: CallKind,
        method: Method,
        path: &[&str],
        body: Option<Value>,
    ) -> Result<Result<Answer, Failure>, AzureError> {
        let url = kv_url(op, &key.vault_base, path)?;
        self.call(op, &key.vault_base, kind, async {
            match self.inner.kv.send(method, url, body.as_ref()).await {
                Ok(a) => Ok(Ok(a)),
                Err(e) => match http::failure(&e) {
                    Some(f) if f.status == 403 || f.status == 404 => Ok(Err(f.clone())),
                    _ => Err(http::map_error(op, e)),
                },
            }
        })
        .await
    }

    pub(super) async fn key_facts(
        &self,
        vault_uri: &str,
        name: &str,
    ) -> Result<KeyFacts, AzureError> {
        const OP: &str = "GetKey";
        let key = self.key_ref(OP, vault_uri, name)?;
        match self
            .kv(OP, &key, CallKind::Read, Method::Get, &["keys", name], None)
            .await?
        {
            Ok(a) => bundle_facts(OP, &a),
            Err(f) if f.status == 404 => Ok(KeyFacts::Missing),
            Err(f) if is_disabled(&f) => self.latest_disabled(&key, name).await,
            Err(f) => Err(f.into_error(OP)),
        }
    }

    /// A 403 `KeyDisabled` for the latest version. Azure answers a disabled
    /// version's GET with 200 and `attributes.enabled: false` (azure-cli's
    /// recorded test_keyvault_key.yaml), which `bundle_facts` reads; this
    /// fallback stays for a refusal all the same: find the version in the
    /// version list, and its type from an enabled version when there is one.
    async fn latest_disabled(&self, key: &KeyUri, name: &str) -> Result<KeyFacts, AzureError> {
        const OP: &str = "GetKeyVersions";
        let items = match self
            .kv(
                OP,
                key,
                CallKind::Read,
                Method::Get,
                &["keys", name, "versions"],
                None,
            )
            .await?
        {
            Ok(a) => a
                .body
                .get("value")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            Err(f) if f.status == 404 => return Ok(KeyFacts::Missing),
            Err(f) => return Err(f.into_error(OP)),
        };
        let versions: Vec<(String, bool, i64, Option<i64>)> = items
            .iter()
            .filter_map(|i| {
                let kid = i.get("kid").and_then(Value::as_str)?;
                let attrs = i.get("attributes");
                let flag = attrs
                    .and_then(|a| a.get("enabled"))
                    .and_then(Value::as_bool);
                let created = attrs.and_then(|a| a.get("created")).and_then(Value::as_i64);
                let exp = attrs.and_then(|a| a.get("exp")).and_then(Value::as_i64);
                Some((
                    last_segment(kid),
                    flag.unwrap_or(true),
                    created.unwrap_or(0),
                    exp,
                ))
            })
            .collect();
        // Latest by creation time; on a tie the later entry wins.
        let Some(latest) = versions
            .iter()
            .enumerate()
            .max_by_key(|(i, v)| (v.2, *i))
            .map(|(_, v)| v.clone())
        else {
            return Ok(KeyFacts::Missing);
        };
        let enabled_version = versions
            .iter()
            .enumerate()
            .filter(|(_, v)| v.1)
            .max_by_key(|(i, v)| (v.2, *i))
            .map(|(_, v)| v.0.clone());
        // A disabled version's key material (type included) is withheld; RSA is the
        // only type this operator creates and the one Cosmos DB accepts.
        let mut key_type = "RSA".to_owned();
        if let Some(v) = enabled_version
            && let Ok(a) = self
                .kv(
                    "GetKey",
                    key,
                    CallKind::Read,
                    Method::Get,
                    &["keys", name, &v],
                    None,
                )
                .await?
            && let Ok(KeyFacts::Present { key_type: t, .. }) = bundle_facts("GetKey", &a)
        {
            key_type = t;
        }
        Ok(KeyFacts::Present {
            version: latest.0,
            enabled: latest.1,
            key_type,
            created: unix(Some(latest.2).filter(|c| *c > 0)),
            expires: unix(latest.3),
        })
    }

    pub(super) async fn new_key(
        &self,
        vault_uri: &str,
        name: &str,
        key_type: KeyType,
        size: i32,
    ) -> Result<KeyFacts, AzureError> {
        const OP: &str = "CreateKey";
        let key = self.key_ref(OP, vault_uri, name)?;
        let kty = match key_type {
            KeyType::Rsa => "RSA",
            KeyType::RsaHsm => "RSA-HSM",
        };
        let body = json!({"kty": kty, "key_size": size, "key_ops": ["wrapKey", "unwrapKey"]});
        match self
            .kv(
                OP,
                &key,
                CallKind::Write,
                Method::Post,
                &["keys", name, "create"],
                Some(body),
            )
            .await?
        {
            Ok(a) => bundle_facts(OP, &a),
            Err(f) => Err(f.into_error(OP)),
        }
    }

    pub(super) async fn disable_version(
        &self,
        key_uri: &str,
        version: &str,
    ) -> Result<DisableOutcome, AzureError> {
        const OP: &str = "DisableKeyVersion";
        let key = self.parse_key_uri(OP, key_uri)?;
        if version.is_empty() || version.contains('/') {
            return Err(AzureError::Rejected {
                operation: OP.into(),
                status: 400,
                code: "InvalidKeyVersion".into(),
                message: format!("{version:?} is not a key version"),
            });
        }
        let name = key.key_name.clone();
        // Re-read at the moment of the call: the latest version is never disabled,
        // nor any version while the latest one is disabled (that could leave none).
        match self.key_facts(&key.vault_base, &name).await? {
            KeyFacts::Missing => return Ok(DisableOutcome::Kept("the key is gone".into())),
            KeyFacts::Present {
                version: latest, ..
            } if latest.eq_ignore_ascii_case(version) => {
                return Ok(DisableOutcome::Kept(
                    "it is the key's latest version".into(),
                ));
            }
            KeyFacts::Present { enabled: false, .. } => {
                return Ok(DisableOutcome::Kept(
                    "the key's latest version is disabled, so this may be the last enabled one"
                        .into(),
                ));
            }
            KeyFacts::Present { .. } => {}
        }
        match self.version_enabled(key_uri, version).await? {
            Some(false) => return Ok(DisableOutcome::AlreadyDisabled),
            None => return Ok(DisableOutcome::Kept("the version does not exist".into())),
            Some(true) => {}
        }
        let body = json!({"attributes": {"enabled": false}});
        match self
            .kv(
                OP,
                &key,
                CallKind::Write,
                Method::Patch,
                &["keys", &name, version],
                Some(body),
            )
            .await?
        {
            Ok(_) => Ok(DisableOutcome::Disabled),
            Err(f) => Err(f.into_error(OP)),
        }
    }

    /// When a version was created (`attributes.created`, Unix seconds).
    pub(super) async fn version_created(
        &self,
        key_uri: &str,
        version: &str,
    ) -> Result<Option<k8s_openapi::jiff::Timestamp>, AzureError> {
        const OP: &str = "GetKeyVersion";
        let key = self.parse_key_uri(OP, key_uri)?;
        let name = key.key_name.clone();
        let path = ["keys", name.as_str(), version];
        match self
            .kv(OP, &key, CallKind::Read, Method::Get, &path, None)
            .await?
        {
            Ok(a) => Ok(a
                .body
                .pointer("/attributes/created")
                .and_then(Value::as_i64)
                .and_then(|s| k8s_openapi::jiff::Timestamp::from_second(s).ok())),
            Err(f) if f.status == 404 || is_disabled(&f) => Ok(None),
            Err(f) => Err(f.into_error(OP)),
        }
    }

    /// Whether one version of a key is enabled (`None`: no such version).
    pub(super) async fn version_enabled(
        &self,
        key_uri: &str,
        version: &str,
    ) -> Result<Option<bool>, AzureError> {
        const OP: &str = "GetKeyVersion";
        let key = self.parse_key_uri(OP, key_uri)?;
        let name = key.key_name.clone();
        match self
            .kv(
                OP,
                &key,
                CallKind::Read,
                Method::Get,
                &["keys", &name, version],
                None,
            )
            .await?
        {
            Ok(a) => Ok(Some(
                a.body.pointer("/attributes/enabled") != Some(&Value::Bool(false)),
            )),
            Err(f) if is_disabled(&f) => Ok(Some(false)),
            Err(f) if f.status == 404 => Ok(None),
            Err(f) => Err(f.into_error(OP)),
        }
    }
}

fn kv_url(op: &str, vault_base: &str, path: &[&str]) -> Result<Url, AzureError> {
    let mut url = Url::parse(&format!("{vault_base}/")).map_err(|e| AzureError::Rejected {
        operation: op.to_owned(),
        status: 400,
        code: "InvalidVaultUri".into(),
        message: format!("{vault_base:?} is not a URL: {e}"),
    })?;
    if let Ok(mut segs) = url.path_segments_mut() {
        segs.pop_if_empty().extend(path);
    }
    url.query_pairs_mut().append_pair("api-version", KV_API);
    Ok(url)
}

fn last_segment(kid: &str) -> String {
    kid.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn is_disabled(f: &Failure) -> bool {
    f.status == 403
        && (f.inner_code.as_deref() == Some("KeyDisabled")
            || f.message.to_ascii_lowercase().contains("disabled key"))
}

/// A key bundle: version from `key.kid`, enabled, type. A bundle without a
/// `key.kid` version is refused (it would read as a key with no version).
pub(super) fn bundle_facts(op: &str, a: &Answer) -> Result<KeyFacts, AzureError> {
    let b = &a.body;
    let s = |p: &str| b.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let version = last_segment(s("/key/kid"));
    if version.is_empty() {
        return Err(super::missing_in_answer(
            op,
            a.status,
            "`key.kid` with a version",
        ));
    }
    Ok(KeyFacts::Present {
        version,
        enabled: b
            .pointer("/attributes/enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        key_type: s("/key/kty").to_owned(),
        created: unix(b.pointer("/attributes/created").and_then(Value::as_i64)),
        expires: unix(b.pointer("/attributes/exp").and_then(Value::as_i64)),
    })
}

/// Key Vault's Unix-seconds times.
fn unix(secs: Option<i64>) -> Option<k8s_openapi::jiff::Timestamp> {
    secs.and_then(|s| k8s_openapi::jiff::Timestamp::from_second(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_append_to_the_vault() {
        let u = kv_url("x", "https://kv.vault.azure.cn", &["keys", "k", "versions"]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://kv.vault.azure.cn/keys/k/versions?api-version=7.4"
        );
        let u = kv_url("x", "https://kv.vault.azure.net", &["keys", "k"]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://kv.vault.azure.net/keys/k?api-version=7.4"
        );
    }
}
