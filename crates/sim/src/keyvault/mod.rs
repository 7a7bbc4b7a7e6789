//! Key Vault data plane (keys API 7.x): authentication, api-version,
//! firewall and permission checks, then the key operations.

pub mod keys;
mod paging;
pub mod rotation;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::arm::api_versions::{KEYVAULT_DATA, refuse_keyvault};
use super::auth::{self, VAULT_AUDIENCE};
use super::cmk_rules::{permitted, rbac_data_action};
use super::errors::ApiError;
use super::server::{App, Req};

pub fn operation_name(rest: &[String], m: &Method) -> &'static str {
    let r: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let r: Vec<&str> = r.iter().map(String::as_str).collect();
    match (r.as_slice(), m.as_str()) {
        (["keys"], "GET") => "KeyVault_GetKeys",
        (["keys", _, "create"], "POST") => "KeyVault_CreateKey",
        (["keys", _, "rotate"], "POST") => "KeyVault_RotateKey",
        (["keys", _, "versions"], "GET") => "KeyVault_GetKeyVersions",
        (["keys", _, "rotationpolicy"], "GET") => "KeyVault_GetKeyRotationPolicy",
        (["keys", _, "rotationpolicy"], "PUT") => "KeyVault_UpdateKeyRotationPolicy",
        (["keys", _] | ["keys", _, _], "GET") => "KeyVault_GetKey",
        (["keys", _] | ["keys", _, _], "PATCH") => "KeyVault_UpdateKey",
        (["keys", _, _, "wrapkey"], "POST") => "KeyVault_WrapKey",
        (["keys", _, _, "unwrapkey"], "POST") => "KeyVault_UnwrapKey",
        (["keys", _, _, "encrypt"], "POST") => "KeyVault_Encrypt",
        (["keys", _, _, "decrypt"], "POST") => "KeyVault_Decrypt",
        _ => "KeyVault_Unknown",
    }
}

/// The access-policy permission an operation needs.
fn required_permission(op: &str) -> &'static str {
    match op {
        "KeyVault_CreateKey" => "create",
        "KeyVault_RotateKey" => "rotate",
        "KeyVault_GetKeyVersions" | "KeyVault_GetKeys" => "list",
        "KeyVault_GetKeyRotationPolicy" => "getrotationpolicy",
        "KeyVault_UpdateKeyRotationPolicy" => "setrotationpolicy",
        "KeyVault_UpdateKey" => "update",
        "KeyVault_WrapKey" => "wrapKey",
        "KeyVault_UnwrapKey" => "unwrapKey",
        "KeyVault_Encrypt" => "encrypt",
        "KeyVault_Decrypt" => "decrypt",
        _ => "get",
    }
}

pub fn handle(
    app: &Arc<App>,
    req: &Req,
    vault_name: &str,
    rest: &[String],
) -> (Response, Option<String>) {
    let claims = match auth::authenticate(app, &req.origin, &req.headers, VAULT_AUDIENCE) {
        Ok(c) => c,
        Err(e) => return (e.into_response(), None),
    };
    let caller = Some(claims.oid.clone());
    let op = operation_name(rest, &req.method);
    let result = (|| -> Result<Response, ApiError> {
        let v = req.q("api-version").ok_or_else(|| {
            ApiError::kv(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "The 'api-version' query parameter is missing.",
            )
        })?;
        if !KEYVAULT_DATA.contains(&v) {
            return Err(refuse_keyvault(v));
        }
        if op == "KeyVault_Unknown" {
            return Err(ApiError::kv(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("No key operation at '{}'.", req.path),
            ));
        }
        let mut state = app.state();
        let vault = state.vault_by_name(vault_name).cloned().ok_or_else(|| {
            ApiError::kv(
                StatusCode::NOT_FOUND,
                "VaultNotFound",
                format!("The vault '{vault_name}' does not exist in this simulator."),
            )
        })?;
        if app.faults().vault_unreachable(&vault.name) {
            return Err(ApiError::kv(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!(
                    "The Key Vault '{}' is unreachable (injected fault).",
                    vault.name
                ),
            ));
        }
        if !vault.loopback_allowed() {
            return Err(ApiError::kv(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "Client address is not authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\nCaller: appid={};oid={}\r\nVault: {};location={}",
                    claims.appid, claims.oid, vault.name, vault.location
                ),
            )
            .inner("ForbiddenByFirewall"));
        }
        let perm = required_permission(op);
        if !permitted(&state, &vault, &claims.oid, perm) {
            return Err(if vault.rbac() {
                ApiError::kv(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={}\r\nAction: '{}'\r\nResource: '{}'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\nVault: {};location={}",
                        claims.appid, claims.oid, rbac_data_action(perm), vault.id().to_ascii_lowercase(), vault.name, vault.location
                    ),
                )
                .inner("ForbiddenByRbac")
            } else {
                ApiError::kv(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "The user, group or application 'appid={};oid={}' does not have keys {} permission on key vault '{};location={}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                        claims.appid, claims.oid, perm.to_ascii_lowercase(), vault.name, vault.location
                    ),
                )
                .inner("AccessDenied")
            });
        }
        // kid uses the host (cloud, port) the client addressed the vault with.
        let base = req.origin.vault_uri(&vault.name);
        let (now, day) = (crate::state::now_ms(), app.key_day_ms());
        rotation::apply_schedule(&mut state, &vault, now, day);
        if matches!(op, "KeyVault_WrapKey" | "KeyVault_Encrypt") {
            rotation::refuse_expired(&state, &vault, op, rest, now)?;
        }
        if op == "KeyVault_RotateKey"
            && let Some((key, kv)) = rotation::rotate(&mut state, &vault, &rest[1], now, day)?
        {
            return Ok(crate::server::json_resp(
                StatusCode::OK,
                keys::bundle(&vault, &base, &key, &kv),
            ));
        }
        keys::handle(&mut state, req, &vault, &base, op, rest)
    })();
    (result.unwrap_or_else(IntoResponse::into_response), caller)
}
