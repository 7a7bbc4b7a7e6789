//! `Microsoft.KeyVault/vaults`: GET, PUT (test setup) and `accessPolicies/{add|replace|remove}`.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::errors::{ApiError, Style};
use crate::hosts::Origin;
use crate::server::{App, Req, json_resp};
use crate::state::{State, Vault, now_rfc3339};

const TYPE: &str = "Microsoft.KeyVault/vaults";

fn key(sub: &str, rg: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.keyvault/vaults/{name}")
        .to_ascii_lowercase()
}

/// The vault as ARM answers it; `vaultUri` names the vault host of the
/// cloud (and port) the client reached ARM through.
pub fn vault_json(origin: &Origin, v: &Vault) -> Value {
    let mut p = v.properties.as_object().cloned().unwrap_or_default();
    p.insert("vaultUri".into(), json!(origin.vault_uri(&v.name)));
    p.entry("accessPolicies").or_insert(json!([]));
    p.entry("enableSoftDelete").or_insert(json!(true));
    // Every recorded vault answer carries it (azure-cli recordings, 2020 and 2022).
    p.entry("enabledForDeployment").or_insert(json!(false));
    p.entry("softDeleteRetentionInDays").or_insert(json!(90));
    p.entry("enableRbacAuthorization").or_insert(json!(false));
    p.entry("publicNetworkAccess").or_insert(json!("Enabled"));
    p.insert("provisioningState".into(), json!("Succeeded"));
    json!({
        "id": v.id(),
        "name": v.name,
        "type": TYPE,
        "location": v.location,
        "tags": v.tags,
        "systemData": {"createdAt": v.created_at, "createdByType": "Application", "lastModifiedAt": v.created_at},
        "properties": Value::Object(p),
    })
}

/// Creates or updates a vault from ARM-shaped properties.
#[allow(clippy::too_many_arguments)] // mirrors the ARM PUT fields one to one
pub fn put_vault(
    app: &Arc<App>,
    state: &mut State,
    sub: &str,
    rg: &str,
    name: &str,
    location: &str,
    tags: Value,
    props: &Map<String, Value>,
) -> Result<(Vault, bool), ApiError> {
    if !(3..=24).contains(&name.len())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(ApiError::arm(
            StatusCode::BAD_REQUEST,
            "VaultNameNotValid",
            format!(
                "The vault name '{name}' is invalid. A vault's name must be between 3-24 alphanumeric characters."
            ),
        ));
    }
    let k = key(sub, rg, name);
    if let Some(other) = state.vault_by_name(name)
        && other.id().to_ascii_lowercase() != k
    {
        return Err(ApiError::arm(
            StatusCode::CONFLICT,
            "VaultAlreadyExists",
            format!("The vault name '{name}' is already in use."),
        ));
    }
    let existing = state.vaults.get(&k).cloned();
    let mut merged = existing
        .as_ref()
        .and_then(|v| v.properties.as_object().cloned())
        .unwrap_or_default();
    for (pk, pv) in props {
        if pk != "vaultUri" && pk != "provisioningState" {
            merged.insert(pk.clone(), pv.clone());
        }
    }
    if !merged.contains_key("tenantId") {
        merged.insert("tenantId".into(), json!(app.config.tenant_id));
    }
    if !merged.contains_key("sku") {
        merged.insert("sku".into(), json!({"family": "A", "name": "standard"}));
    }
    if let Some(old) = &existing {
        if old.purge_protection() && merged.get("enablePurgeProtection") == Some(&json!(false)) {
            return Err(ApiError::bad_request(
                "Once enabled, purge protection cannot be disabled.",
            ));
        }
        if old.soft_delete() && merged.get("enableSoftDelete") == Some(&json!(false)) {
            return Err(ApiError::bad_request(
                "Once enabled, soft delete cannot be disabled.",
            ));
        }
    }
    let vault = Vault {
        subscription_id: sub.to_owned(),
        resource_group: rg.to_owned(),
        name: existing
            .as_ref()
            .map(|v| v.name.clone())
            .unwrap_or_else(|| name.to_owned()),
        location: location.to_owned(),
        tags,
        properties: Value::Object(merged),
        created_at: existing
            .as_ref()
            .map(|v| v.created_at.clone())
            .unwrap_or_else(now_rfc3339),
    };
    state.vaults.insert(k, vault.clone());
    Ok((vault, existing.is_none()))
}

pub fn handle(
    app: &Arc<App>,
    req: &Req,
    sub: &str,
    rg: &str,
    name: &str,
    extra: &[String],
) -> Result<Response, ApiError> {
    let k = key(sub, rg, name);
    let not_found = || super::not_found(TYPE, name, rg);
    match (req.method.as_str(), extra) {
        ("GET", []) => {
            let state = app.state();
            let v = state.vaults.get(&k).ok_or_else(not_found)?;
            Ok(json_resp(StatusCode::OK, vault_json(&req.origin, v)))
        }
        ("PUT", []) => {
            let body = req.json(Style::Arm)?;
            let location = body
                .get("location")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::arm(
                        StatusCode::BAD_REQUEST,
                        "LocationRequired",
                        "The location property is required for this definition.",
                    )
                })?;
            let props = body
                .get("properties")
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| {
                    ApiError::bad_request("The 'properties' object (tenantId, sku) is required.")
                })?;
            let mut state = app.state();
            let tags = body.get("tags").cloned().unwrap_or_else(|| json!({}));
            // Key Vault answers 200 for creates too; a 201 makes the 0.21 SDK
            // poller re-send the PUT after its default 30 s.
            let (v, created) = put_vault(app, &mut state, sub, rg, name, location, tags, &props)?;
            let mut answer = vault_json(&req.origin, &v);
            if created {
                // A new vault's answer is `RegisteringDns` (azure-cli
                // test_keyvault_key.yaml 2020, test_cosmosdb_system_identity_restore.yaml
                // 2023); reads that follow say `Succeeded` here, where Azure
                // took a few seconds (its vault is usable here at once).
                answer["properties"]["provisioningState"] = json!("RegisteringDns");
                // …and its URI lacks the trailing slash every later read has
                // (the same two recordings).
                if let Some(uri) = answer["properties"]["vaultUri"].as_str() {
                    let trimmed = uri.trim_end_matches('/').to_owned();
                    answer["properties"]["vaultUri"] = json!(trimmed);
                }
            }
            Ok(json_resp(StatusCode::OK, answer))
        }
        ("PUT", [ap, kind]) if ap.eq_ignore_ascii_case("accessPolicies") => {
            let body = req.json(Style::Arm)?;
            let list = body
                .pointer("/properties/accessPolicies")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| ApiError::bad_request("properties.accessPolicies is required."))?;
            let mut state = app.state();
            let v = state.vaults.get_mut(&k).ok_or_else(not_found)?;
            let mut policies = v.access_policies();
            apply_policy_op(&mut policies, &list, kind)?;
            if let Some(obj) = v.properties.as_object_mut() {
                obj.insert("accessPolicies".into(), Value::Array(policies.clone()));
            }
            Ok(json_resp(
                StatusCode::OK,
                json!({
                    "id": format!("{}/accessPolicies/", v.id()),
                    "type": "Microsoft.KeyVault/vaults/accessPolicies",
                    "properties": {"accessPolicies": policies},
                }),
            ))
        }
        _ => Ok(crate::server::method_not_allowed(Style::Arm)),
    }
}

fn same_principal(a: &Value, b: &Value) -> bool {
    let f = |v: &Value, n: &str| {
        v.get(n)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    f(a, "objectId") == f(b, "objectId")
        && f(a, "tenantId") == f(b, "tenantId")
        && f(a, "applicationId") == f(b, "applicationId")
}

const PERM_KINDS: [&str; 4] = ["keys", "secrets", "certificates", "storage"];

fn perms(v: &Value, kind: &str) -> Vec<String> {
    v.pointer(&format!("/permissions/{kind}"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// add: union of permissions per principal; replace: the entry is replaced;
/// remove: the listed permissions go, and an entry left with none goes too.
fn apply_policy_op(policies: &mut Vec<Value>, list: &[Value], kind: &str) -> Result<(), ApiError> {
    if !["add", "replace", "remove"].contains(&kind.to_ascii_lowercase().as_str()) {
        return Err(ApiError::bad_request(format!(
            "Invalid operationKind '{kind}'. Allowed values are 'add', 'replace' and 'remove'."
        )));
    }
    for entry in list {
        if entry.get("permissions").is_some_and(|p| !p.is_object()) {
            return Err(ApiError::bad_request(
                "An access policy's 'permissions' must be an object.",
            ));
        }
        // Stored entries may come from a loose PUT: make their permissions indexable.
        for p in policies.iter_mut() {
            if p.is_object() && !p["permissions"].is_object() {
                p["permissions"] = json!({});
            }
        }
        if entry.get("objectId").and_then(Value::as_str).is_none()
            || entry.get("tenantId").and_then(Value::as_str).is_none()
        {
            return Err(ApiError::bad_request(
                "Every access policy entry needs 'tenantId' and 'objectId'.",
            ));
        }
        let pos = policies.iter().position(|p| same_principal(p, entry));
        match (kind.to_ascii_lowercase().as_str(), pos) {
            ("add", Some(i)) => {
                for pk in PERM_KINDS {
                    let mut cur = perms(&policies[i], pk);
                    for p in perms(entry, pk) {
                        if !cur.iter().any(|c| c.eq_ignore_ascii_case(&p)) {
                            cur.push(p);
                        }
                    }
                    if !cur.is_empty() {
                        policies[i]["permissions"][pk] = json!(cur);
                    }
                }
            }
            ("add" | "replace", None) => policies.push(entry.clone()),
            ("replace", Some(i)) => policies[i] = entry.clone(),
            ("remove", Some(i)) => {
                for pk in PERM_KINDS {
                    let gone = perms(entry, pk);
                    let left: Vec<String> = perms(&policies[i], pk)
                        .into_iter()
                        .filter(|c| !gone.iter().any(|g| g.eq_ignore_ascii_case(c)))
                        .collect();
                    if policies[i].pointer(&format!("/permissions/{pk}")).is_some() {
                        policies[i]["permissions"][pk] = json!(left);
                    }
                }
                if PERM_KINDS
                    .iter()
                    .all(|pk| perms(&policies[i], pk).is_empty())
                {
                    policies.remove(i);
                }
            }
            ("remove", None) => {}
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid operationKind '{other}'. Allowed values are 'add', 'replace' and 'remove'."
                )));
            }
        }
    }
    Ok(())
}
