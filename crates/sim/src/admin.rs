//! Admin API under `/_admin/` (no authentication: loopback tooling only).
//! Seeding, faults, counters, ledger, LRO timing, state save/load, test tokens,
//! Azure Policy assignments.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{Claims, mint};
use super::errors::{ApiError, Style};
use super::faults::FaultConfig;
use super::seed::{self, Seed};
use super::server::{App, Req, json_resp};
use super::state::new_guid;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::arm(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

pub async fn handle(app: &Arc<App>, req: &Req) -> Response {
    match inner(app, req) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn inner(app: &Arc<App>, req: &Req) -> Result<Response, ApiError> {
    let segs: Vec<&str> = req.segs.iter().skip(1).map(String::as_str).collect();
    let m = &req.method;
    match (segs.as_slice(), m) {
        (["health"], &Method::GET) => Ok(json_resp(
            StatusCode::OK,
            json!({"status": "ok", "baseUrl": app.base_url}),
        )),
        (["seed"], &Method::POST) => {
            let seed: Seed =
                serde_json::from_slice(&req.body).map_err(|e| bad(format!("invalid seed: {e}")))?;
            Ok(json_resp(StatusCode::OK, seed::apply(app, &seed)?))
        }
        (["state"], &Method::GET) => Ok(json_resp(
            StatusCode::OK,
            serde_json::to_value(&*app.state()).unwrap_or(Value::Null),
        )),
        (["faults"], &Method::GET) => Ok(json_resp(
            StatusCode::OK,
            serde_json::to_value(app.faults_snapshot()).unwrap_or(Value::Null),
        )),
        (["faults"], &Method::PUT) => {
            let f: FaultConfig = serde_json::from_slice(&req.body)
                .map_err(|e| bad(format!("invalid faults: {e}")))?;
            *app.faults() = f.clone();
            Ok(json_resp(
                StatusCode::OK,
                serde_json::to_value(f).unwrap_or(Value::Null),
            ))
        }
        (["faults"], &Method::DELETE) => {
            *app.faults() = FaultConfig::default();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (["counters"], &Method::GET) => Ok(json_resp(
            StatusCode::OK,
            serde_json::to_value(&app.metrics().counters).unwrap_or(Value::Null),
        )),
        (["counters"], &Method::DELETE) => {
            let mut m = app.metrics();
            m.counters.clear();
            m.ledger.clear();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (["ledger"], &Method::GET) => Ok(json_resp(
            StatusCode::OK,
            serde_json::to_value(&app.metrics().ledger).unwrap_or(Value::Null),
        )),
        (["config"], &Method::GET) => Ok(json_resp(
            StatusCode::OK,
            json!({"lroDurationMs": app.lro_duration_ms(), "retentionDayMs": app.retention_day_ms(), "keyDayMs": app.key_day_ms(), "tenantId": app.config.tenant_id}),
        )),
        (["config"], &Method::PUT) => {
            let v: Value = serde_json::from_slice(&req.body)
                .map_err(|e| bad(format!("invalid config: {e}")))?;
            if let Some(ms) = v.get("lroDurationMs").and_then(Value::as_i64) {
                app.set_lro_duration_ms(ms.max(0));
            }
            if let Some(ms) = v.get("retentionDayMs").and_then(Value::as_i64) {
                app.set_retention_day_ms(ms.max(0));
            }
            if let Some(ms) = v.get("keyDayMs").and_then(Value::as_i64) {
                // At least a millisecond: a zero-length day would rotate without end.
                app.set_key_day_ms(ms.max(1));
            }
            Ok(json_resp(
                StatusCode::OK,
                json!({"lroDurationMs": app.lro_duration_ms(), "retentionDayMs": app.retention_day_ms(), "keyDayMs": app.key_day_ms()}),
            ))
        }
        // Azure Policy assignments (crates/sim/src/arm/policy.rs).
        (["policyAssignments"], &Method::GET) => {
            let state = app.state();
            let list: Vec<Value> = state
                .policy_assignments
                .values()
                .map(|a| a.json())
                .collect();
            Ok(json_resp(StatusCode::OK, json!({"value": list})))
        }
        (["policyAssignments", name], &Method::PUT) => {
            let a: super::arm::policy::Assignment = serde_json::from_slice(&req.body)
                .map_err(|e| bad(format!("invalid policy assignment: {e}")))?;
            let v = super::arm::policy::put(&mut app.state(), name, a)?;
            Ok(json_resp(StatusCode::OK, v))
        }
        (["policyAssignments", name], &Method::DELETE) => {
            let mut state = app.state();
            let before = state.policy_assignments.len();
            state
                .policy_assignments
                .retain(|_, a| !a.name.eq_ignore_ascii_case(name));
            Ok(if state.policy_assignments.len() < before {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            }
            .into_response())
        }
        (["save"], &Method::POST) => {
            let v = req.json(Style::Arm)?;
            let path = v
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("'path' is required"))?;
            super::persist::save(app, std::path::Path::new(path))
                .map_err(|e| bad(e.to_string()))?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (["token"], &Method::POST) => {
            // Test helper: mint a token for any principal/audience/lifetime (e.g. an expired one).
            let v = req.json(Style::Arm)?;
            let now = jiff::Timestamp::now().as_second();
            let claims = Claims {
                tid: app.config.tenant_id.clone(),
                oid: v
                    .get("objectId")
                    .and_then(Value::as_str)
                    .unwrap_or(&app.config.operator_object_id)
                    .to_owned(),
                appid: v
                    .get("clientId")
                    .and_then(Value::as_str)
                    .unwrap_or(&app.config.operator_client_id)
                    .to_owned(),
                aud: v
                    .get("audience")
                    .and_then(Value::as_str)
                    .unwrap_or(super::auth::ARM_AUDIENCE)
                    .to_owned(),
                iat: now,
                exp: now.saturating_add(
                    v.get("lifetimeSecs")
                        .and_then(Value::as_i64)
                        .unwrap_or(3599),
                ),
                jti: new_guid(),
            };
            let key = app.state().token_key;
            Ok(json_resp(
                StatusCode::OK,
                json!({"access_token": mint(key, &claims), "expires_on": claims.exp}),
            ))
        }
        _ => Err(ApiError::arm(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No admin route '{} {}'.", m, req.path),
        )),
    }
}
