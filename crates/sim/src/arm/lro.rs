//! Long-running operations: Cosmos DB `operationsStatus` / `operationResults`
//! polling with Enqueued -> Dequeued -> Succeeded | Failed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::errors::ApiError;
use crate::faults::LroMode;
use crate::hosts::Origin;
use crate::server::{App, Req, json_resp};
use crate::state::{OpKind, OpOutcome, Operation, State, new_guid, now_ms};

/// Starts an operation on `target`, consuming an LRO fault if one is armed.
pub fn start(
    app: &App,
    state: &mut State,
    kind: OpKind,
    target: &str,
    sub: &str,
    loc: &str,
) -> String {
    let outcome = match app.faults().take_lro() {
        Some(LroMode::Fail) => OpOutcome::Fail {
            code: "InternalServerError".into(),
            message: "The operation failed (injected LRO failure).".into(),
        },
        Some(LroMode::Stall) => OpOutcome::Stall,
        None => OpOutcome::Succeed,
    };
    let id = new_guid();
    state.operations.insert(
        id.clone(),
        Operation {
            id: id.clone(),
            kind,
            target: target.to_ascii_lowercase(),
            subscription_id: sub.to_owned(),
            location: normalize_location(loc),
            started_ms: now_ms(),
            duration_ms: app.lro_duration_ms(),
            outcome,
            done: false,
        },
    );
    id
}

pub fn normalize_location(loc: &str) -> String {
    loc.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn status_url(origin: &Origin, op: &Operation, api_version: &str, kind: &str) -> String {
    format!(
        "{}subscriptions/{}/providers/Microsoft.DocumentDB/locations/{}/{kind}/{}?api-version={api_version}",
        origin.arm_base(),
        op.subscription_id,
        op.location,
        op.id
    )
}

/// The `Retry-After` the simulator gives with an operation: a quarter of its
/// duration, so a client that obeys it polls about four times.
pub fn poll_hint_ms(duration_ms: i64) -> i64 {
    (duration_ms / 4).max(1)
}

/// What an operation's status URLs are made of: the ARM host (and port) the
/// client used, and the api-version it asked for.
#[derive(Clone, Copy)]
pub struct Links<'a> {
    pub origin: &'a Origin,
    pub api_version: &'a str,
}

impl<'a> Links<'a> {
    pub fn new(req: &'a Req, api_version: &'a str) -> Self {
        Links {
            origin: &req.origin,
            api_version,
        }
    }
}

/// `Azure-AsyncOperation`, `Location` and retry hints for an operation.
pub fn headers(links: Links<'_>, state: &State, op_id: &str) -> Vec<(String, String)> {
    let Links {
        origin,
        api_version,
    } = links;
    let Some(op) = state.operations.get(op_id) else {
        return Vec::new();
    };
    let ms = poll_hint_ms(op.duration_ms);
    vec![
        (
            "Azure-AsyncOperation".into(),
            status_url(origin, op, api_version, "operationsStatus"),
        ),
        (
            "Location".into(),
            status_url(origin, op, api_version, "operationResults"),
        ),
        ("Retry-After".into(), ((ms + 999) / 1000).to_string()),
        // azure_core 0.21 honours retry-after-ms first: keeps SDK polling fast in tests.
        ("retry-after-ms".into(), ms.to_string()),
    ]
}

/// Completes due operations and applies their effects on accounts and providers.
pub fn advance(state: &mut State) {
    let now = now_ms();
    let due: Vec<Operation> = state
        .operations
        .values()
        .filter(|o| !o.done && o.outcome != OpOutcome::Stall && now - o.started_ms >= o.duration_ms)
        .cloned()
        .collect();
    for op in due {
        let failed = matches!(op.outcome, OpOutcome::Fail { .. });
        match op.kind {
            OpKind::Create | OpKind::Update => {
                if let Some(a) = state.accounts.get_mut(&op.target)
                    && a.pending_op.as_deref() == Some(op.id.as_str())
                {
                    a.provisioning_state = if failed { "Failed" } else { "Succeeded" }.into();
                    a.pending_op = None;
                }
            }
            OpKind::Delete => {
                if failed {
                    if let Some(a) = state.accounts.get_mut(&op.target) {
                        a.provisioning_state = "Failed".into();
                        a.pending_op = None;
                    }
                } else if let Some(gone) = state.accounts.remove(&op.target) {
                    super::restorable::remember_deleted(
                        state,
                        gone,
                        op.started_ms + op.duration_ms,
                    );
                }
            }
            OpKind::Register => {
                if let Some(p) = state.providers.get_mut(&op.target) {
                    p.state = "Registered".into();
                }
            }
        }
        if let Some(o) = state.operations.get_mut(&op.id) {
            o.done = true;
        }
    }
}

fn phase(op: &Operation) -> &'static str {
    if op.done {
        return match op.outcome {
            OpOutcome::Fail { .. } => "Failed",
            _ => "Succeeded",
        };
    }
    if now_ms() - op.started_ms < op.duration_ms / 4 {
        "Enqueued"
    } else {
        "Dequeued"
    }
}

/// `GET .../locations/{loc}/operationsStatus/{id}` and `.../operationResults/{id}`.
pub fn status(
    app: &App,
    req: &Req,
    sub: &str,
    loc: &str,
    id: &str,
    results: bool,
) -> Result<Response, ApiError> {
    let mut state = app.state();
    advance(&mut state);
    let op = state
        .operations
        .get(id)
        .filter(|o| o.subscription_id.eq_ignore_ascii_case(sub))
        .cloned()
        .ok_or_else(|| {
            ApiError::arm(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("Operation '{id}' was not found in location '{loc}'."),
            )
        })?;
    let api_version = req.q("api-version").unwrap_or_default().to_owned();
    let phase = phase(&op);
    if results {
        return Ok(match (&op.outcome, phase) {
            (_, "Enqueued" | "Dequeued") => {
                let mut resp = StatusCode::ACCEPTED.into_response();
                for (k, v) in headers(Links::new(req, &api_version), &state, id) {
                    if k != "Azure-AsyncOperation"
                        && let (Ok(n), Ok(v)) = (
                            axum::http::HeaderName::from_bytes(k.as_bytes()),
                            axum::http::HeaderValue::from_str(&v),
                        )
                    {
                        resp.headers_mut().insert(n, v);
                    }
                }
                resp
            }
            (OpOutcome::Fail { code, message }, _) => {
                ApiError::arm(StatusCode::INTERNAL_SERVER_ERROR, code, message.clone())
                    .into_response()
            }
            _ => match state.accounts.get(&op.target) {
                Some(a) if op.kind != crate::state::OpKind::Delete => {
                    json_resp(StatusCode::OK, super::cosmos::account_json(app, &state, a))
                }
                _ => StatusCode::NO_CONTENT.into_response(),
            },
        });
    }
    let mut body = json!({
        "id": format!("/subscriptions/{}/providers/Microsoft.DocumentDB/locations/{}/operationsStatus/{}", op.subscription_id, op.location, op.id),
        "name": op.id,
        "status": phase,
        "startTime": jiff::Timestamp::from_millisecond(op.started_ms).map(|t| t.to_string()).unwrap_or_default(),
    });
    if let OpOutcome::Fail { code, message } = &op.outcome
        && op.done
    {
        body["error"] = json!({"code": code, "message": message});
    }
    let mut resp = json_resp(StatusCode::OK, body);
    if !op.done {
        let ms = poll_hint_ms(op.duration_ms);
        resp.headers_mut().insert(
            "Retry-After",
            axum::http::HeaderValue::from((ms + 999) / 1000),
        );
        resp.headers_mut()
            .insert("retry-after-ms", axum::http::HeaderValue::from(ms));
    }
    Ok(resp)
}
