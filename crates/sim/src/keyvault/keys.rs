//! Key operations: create, get, versions, update (disable), rotate, rotation
//! policy, and wrap/unwrap with a stand-in transform (no real cryptography).

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::errors::{ApiError, Style};
use crate::server::{Req, json_resp};
use crate::state::{Key, KeyVersion, State, Vault, new_version};

use super::paging;

const DEFAULT_OPS: [&str; 6] = [
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
];

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn key_not_found(name: &str, version: Option<&str>) -> ApiError {
    let what = match version {
        Some(v) if !v.is_empty() => format!("{name}/{v}"),
        _ => name.to_owned(),
    };
    ApiError::kv(
        StatusCode::NOT_FOUND,
        "KeyNotFound",
        format!(
            "A key with (name/id) {what} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::kv(StatusCode::BAD_REQUEST, "BadParameter", msg)
}

/// `recoveryLevel` and `recoverableDays` follow the vault's soft-delete
/// retention (keys.json `DeletionRecoveryLevel`): a retention under 90 days is
/// "Customized"; without purge protection the key is also "+Purgeable".
/// Recorded: `CustomizedRecoverable`/7 for a 7-day purge-protected vault, and
/// `Purgeable` with no `recoverableDays` without soft delete (azure-cli
/// recordings under tests/fixtures/recordings/).
fn recovery(vault: &Vault) -> (String, Option<i64>) {
    if !vault.soft_delete() {
        return ("Purgeable".into(), None);
    }
    let days = vault
        .properties
        .get("softDeleteRetentionInDays")
        .and_then(Value::as_i64)
        .unwrap_or(90);
    let base = if days < 90 {
        "CustomizedRecoverable"
    } else {
        "Recoverable"
    };
    let level = if vault.purge_protection() {
        base.to_owned()
    } else {
        format!("{base}+Purgeable")
    };
    (level, Some(days))
}

fn attributes(vault: &Vault, kv: &KeyVersion) -> Value {
    let (level, days) = recovery(vault);
    let mut a = json!({
        "enabled": kv.enabled,
        "created": kv.created,
        "updated": kv.updated,
        "recoveryLevel": level,
    });
    if let Some(d) = days {
        a["recoverableDays"] = json!(d);
    }
    if let Some(n) = kv.nbf {
        a["nbf"] = json!(n);
    }
    if let Some(e) = kv.exp {
        a["exp"] = json!(e);
    }
    // Recorded in 7.5 answers for a software RSA key (azure-cli
    // test_keyvault_key_rotation.yaml, 2023): not exportable (no release
    // policy is modelled), platform "0" (software); an HSM key's platform was
    // not recorded, so it is left out.
    a["exportable"] = json!(false);
    if !kv.kty.ends_with("-HSM") {
        a["hsmPlatform"] = json!("0");
    }
    a
}

fn kid(base: &str, name: &str, version: &str) -> String {
    format!("{base}keys/{name}/{version}")
}

pub fn bundle(vault: &Vault, base: &str, key: &Key, kv: &KeyVersion) -> Value {
    let mut jwk = json!({
        "kid": kid(base, &key.name, &kv.version),
        "kty": kv.kty,
        "key_ops": kv.key_ops,
    });
    if kv.kty.starts_with("RSA") {
        jwk["n"] = json!(kv.n);
        jwk["e"] = json!("AQAB");
    }
    let mut b = json!({"key": jwk, "attributes": attributes(vault, kv)});
    if kv.tags.is_object() {
        b["tags"] = kv.tags.clone();
    }
    b
}

fn random_modulus(bits: u32) -> String {
    let mut bytes = Vec::with_capacity(bits as usize / 8);
    while bytes.len() < bits as usize / 8 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes.truncate(bits as usize / 8);
    if let Some(b) = bytes.first_mut() {
        *b |= 0x80;
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Creates a key (or a new version of it) from a `KeyCreateParameters` body.
pub fn create_version(
    state: &mut State,
    vault: &Vault,
    name: &str,
    body: &Value,
) -> Result<(Key, KeyVersion), ApiError> {
    if name.is_empty()
        || name.len() > 127
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(bad(format!(
            "The key name '{name}' is invalid: use 1-127 letters, digits and dashes."
        )));
    }
    let kty = body
        .get("kty")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("The parameter 'kty' is required."))?;
    let kty = match kty {
        "RSA" | "RSA-HSM" | "EC" | "EC-HSM" | "oct-HSM" => kty.to_owned(),
        other => {
            return Err(bad(format!(
                "The key type '{other}' is not valid. Valid values: RSA, RSA-HSM, EC, EC-HSM, oct-HSM."
            )));
        }
    };
    if kty.ends_with("-HSM")
        && vault
            .properties
            .pointer("/sku/name")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("standard"))
    {
        return Err(bad(format!(
            "Key type '{kty}' requires a Premium vault; '{}' is Standard.",
            vault.name
        )));
    }
    let size = match body.get("key_size") {
        None | Some(Value::Null) => {
            if kty.starts_with("RSA") {
                2048
            } else {
                256
            }
        }
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad("The parameter 'key_size' must be an integer."))?
            as u32,
    };
    if kty.starts_with("RSA") && ![2048, 3072, 4096].contains(&size) {
        return Err(bad(format!(
            "Invalid key size {size} for RSA keys. Valid sizes: 2048, 3072, 4096."
        )));
    }
    let ops: Vec<String> = match body.get("key_ops").and_then(Value::as_array) {
        Some(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        None => DEFAULT_OPS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let attrs = body.get("attributes").cloned().unwrap_or(Value::Null);
    let now = now_s();
    let kv = KeyVersion {
        version: new_version(),
        kty: kty.clone(),
        key_size: size,
        key_ops: ops,
        enabled: attrs
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        nbf: attrs.get("nbf").and_then(Value::as_i64),
        exp: attrs.get("exp").and_then(Value::as_i64),
        created: now,
        updated: now,
        n: if kty.starts_with("RSA") {
            random_modulus(size)
        } else {
            String::new()
        },
        tags: body.get("tags").cloned().unwrap_or(Value::Null),
    };
    let keys = state
        .keys
        .entry(vault.name.to_ascii_lowercase())
        .or_default();
    let key = keys
        .entry(name.to_ascii_lowercase())
        .or_insert_with(|| Key {
            name: name.to_owned(),
            versions: Vec::new(),
            rotation_policy: None,
        });
    key.versions.push(kv.clone());
    Ok((key.clone(), kv))
}

fn find<'a>(state: &'a mut State, vault: &Vault, name: &str) -> Result<&'a mut Key, ApiError> {
    state
        .keys
        .get_mut(&vault.name.to_ascii_lowercase())
        .and_then(|ks| ks.get_mut(&name.to_ascii_lowercase()))
        .ok_or_else(|| key_not_found(name, None))
}

fn version_index(key: &Key, version: Option<&str>) -> Result<usize, ApiError> {
    match version.filter(|v| !v.is_empty()) {
        None => key
            .versions
            .len()
            .checked_sub(1)
            .ok_or_else(|| key_not_found(&key.name, None)),
        Some(v) => key
            .versions
            .iter()
            .position(|kv| kv.version.eq_ignore_ascii_case(v))
            .ok_or_else(|| key_not_found(&key.name, Some(v))),
    }
}

fn disabled(op: &str) -> ApiError {
    ApiError::kv(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!("Operation {op} is not allowed on a disabled key."),
    )
    .inner("KeyDisabled")
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .or_else(|| STANDARD.decode(s).ok())
}

pub fn handle(
    state: &mut State,
    req: &Req,
    vault: &Vault,
    base: &str,
    op: &str,
    rest: &[String],
) -> Result<Response, ApiError> {
    let name = rest.get(1).cloned().unwrap_or_default();
    let ok = |v: Value| Ok(json_resp(StatusCode::OK, v));
    match op {
        "KeyVault_GetKeys" => {
            let value: Vec<Value> = state
                .keys
                .get(&vault.name.to_ascii_lowercase())
                .map(|ks| {
                    ks.values()
                        .filter_map(|k| k.versions.last().map(|kv| json!({"kid": format!("{base}keys/{}", k.name), "attributes": attributes(vault, kv)})))
                        .collect()
                })
                .unwrap_or_default();
            ok(paging::page(req, &format!("{base}keys"), value)?)
        }
        "KeyVault_CreateKey" => {
            let body = req.json(Style::KeyVault)?;
            let (key, kv) = create_version(state, vault, &name, &body)?;
            ok(bundle(vault, base, &key, &kv))
        }
        "KeyVault_GetKey" => {
            let key = find(state, vault, &name)?;
            let i = version_index(key, rest.get(2).map(String::as_str))?;
            // A disabled version stays readable (200, attributes.enabled
            // false): recorded in azure-cli's test_keyvault_key.yaml. Only the
            // cryptographic operations refuse it.
            ok(bundle(vault, base, key, &key.versions[i]))
        }
        "KeyVault_GetKeyVersions" => {
            let key = find(state, vault, &name)?;
            let value: Vec<Value> = key
                .versions
                .iter()
                .map(|kv| {
                    let mut item = json!({"kid": kid(base, &key.name, &kv.version), "attributes": attributes(vault, kv)});
                    if kv.tags.is_object() {
                        item["tags"] = kv.tags.clone();
                    }
                    item
                })
                .collect();
            let url = format!("{base}keys/{}/versions", key.name);
            ok(paging::page(req, &url, value)?)
        }
        "KeyVault_UpdateKey" => {
            let body = req.json(Style::KeyVault)?;
            let key = find(state, vault, &name)?;
            let i = version_index(key, rest.get(2).map(String::as_str))?;
            let kv = &mut key.versions[i];
            if let Some(a) = body.get("attributes") {
                if let Some(e) = a.get("enabled") {
                    kv.enabled = e
                        .as_bool()
                        .ok_or_else(|| bad("attributes.enabled must be a boolean."))?;
                }
                if let Some(n) = a.get("nbf") {
                    kv.nbf = n.as_i64();
                }
                if let Some(x) = a.get("exp") {
                    kv.exp = x.as_i64();
                }
            }
            if let Some(ops) = body.get("key_ops").and_then(Value::as_array) {
                kv.key_ops = ops
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
            }
            if let Some(t) = body.get("tags") {
                kv.tags = t.clone();
            }
            kv.updated = now_s();
            let kv = kv.clone();
            ok(bundle(vault, base, key, &kv))
        }
        // `rotation::rotate` answers the rotation of every key that has a
        // version (mod.rs); what is left here is a key that does not exist.
        "KeyVault_RotateKey" => {
            find(state, vault, &name)?;
            Err(key_not_found(&name, None))
        }
        "KeyVault_GetKeyRotationPolicy" => {
            let key = find(state, vault, &name)?;
            let id = format!("{base}keys/{}/rotationpolicy", key.name);
            let policy = key.rotation_policy.clone().unwrap_or_else(|| {
                json!({"lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}], "attributes": {}})
            });
            let mut p = policy;
            p["id"] = json!(id);
            ok(p)
        }
        "KeyVault_UpdateKeyRotationPolicy" => {
            let body = req.json(Style::KeyVault)?;
            let actions = body
                .get("lifetimeActions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for a in &actions {
                let t = a
                    .pointer("/action/type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !t.eq_ignore_ascii_case("Rotate") && !t.eq_ignore_ascii_case("Notify") {
                    return Err(bad(format!(
                        "Invalid lifetime action type '{t}'. Valid values: Rotate, Notify."
                    )));
                }
                let trig = a.get("trigger").cloned().unwrap_or(Value::Null);
                if trig.get("timeAfterCreate").is_none() && trig.get("timeBeforeExpiry").is_none() {
                    return Err(bad(
                        "Each lifetime action needs a trigger with timeAfterCreate or timeBeforeExpiry.",
                    ));
                }
            }
            let key = find(state, vault, &name)?;
            let now = now_s();
            let created = key
                .rotation_policy
                .as_ref()
                .and_then(|p| p.pointer("/attributes/created"))
                .and_then(Value::as_i64)
                .unwrap_or(now);
            let mut attrs = body.get("attributes").cloned().unwrap_or_else(|| json!({}));
            if !attrs.is_object() {
                return Err(bad("The rotation policy 'attributes' must be an object."));
            }
            attrs["created"] = json!(created);
            attrs["updated"] = json!(now);
            let policy = json!({"lifetimeActions": actions, "attributes": attrs});
            key.rotation_policy = Some(policy.clone());
            let mut p = policy;
            p["id"] = json!(format!("{base}keys/{}/rotationpolicy", key.name));
            ok(p)
        }
        "KeyVault_WrapKey" | "KeyVault_Encrypt" | "KeyVault_UnwrapKey" | "KeyVault_Decrypt" => {
            let body = req.json(Style::KeyVault)?;
            let key = find(state, vault, &name)?;
            let i = version_index(key, rest.get(2).map(String::as_str))?;
            let kv = &key.versions[i];
            let wrap = op == "KeyVault_WrapKey" || op == "KeyVault_Encrypt";
            let short = match op {
                "KeyVault_WrapKey" => "wrapKey",
                "KeyVault_UnwrapKey" => "unwrapKey",
                "KeyVault_Encrypt" => "encrypt",
                _ => "decrypt",
            };
            if !kv.enabled {
                return Err(disabled(short));
            }
            if !kv.key_ops.iter().any(|o| o.eq_ignore_ascii_case(short)) {
                return Err(bad(format!(
                    "Operation {short} is not permitted on this key (key_ops)."
                )));
            }
            body.get("alg")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("The parameter 'alg' is required."))?;
            let value = body
                .get("value")
                .and_then(Value::as_str)
                .and_then(decode_b64)
                .ok_or_else(|| bad("The parameter 'value' must be base64url."))?;
            // Stand-in transform: tag with the version so unwrap checks the right key version.
            let tag = format!("sim:{}:", kv.version);
            let out = if wrap {
                let mut v = tag.into_bytes();
                v.extend_from_slice(&value);
                v
            } else {
                value
                    .strip_prefix(tag.as_bytes())
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| bad("The ciphertext was not produced by this key version."))?
            };
            ok(
                json!({"kid": kid(base, &key.name, &kv.version), "value": URL_SAFE_NO_PAD.encode(out)}),
            )
        }
        _ => Err(ApiError::kv(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No key operation at '{}'.", req.path),
        )),
    }
}
