//! The HTTPS front: one listener for every host name (ARM, login, every
//! vault), request parsing, fault injection, counting, and routing by `Host`.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::watch;

use super::config::SimConfig;
use super::errors::{ApiError, Style};
use super::faults::{Decision, FaultConfig, HostileAnswer};
use super::hosts::{Origin, Service};
use super::metrics::Metrics;
use super::state::State;
use super::{admin, arm, auth, keyvault};

const MAX_BODY: usize = 4 * 1024 * 1024;
const READS_PER_HOUR: u64 = 12000;
const WRITES_PER_HOUR: u64 = 1200;

/// Shared simulator internals. Locks are never held across an `.await`.
pub struct App {
    pub config: SimConfig,
    /// `https://{listen address}/`: the admin API's address.
    pub base_url: String,
    state: Mutex<State>,
    faults: Mutex<FaultConfig>,
    pub metrics: Mutex<Metrics>,
    quota: Mutex<(i64, u64, u64)>,
    rng: Mutex<u64>,
    pub shutdown: watch::Receiver<bool>,
    /// Run-time override of `config.lro_duration` (ms).
    pub lro_ms: Mutex<i64>,
    /// Run-time override of `config.retention_day` (ms).
    retention_day_ms: Mutex<i64>,
    /// How much longer (negative: shorter) a backup migration runs than its
    /// update's operation; 0 as recorded (see `SimHandle::set_migration_offset`).
    migration_offset_ms: Mutex<i64>,
    /// Run-time override of `config.key_day` (ms).
    key_day_ms: Mutex<i64>,
    /// Levels of the ARM token buckets (`FaultConfig::arm_rate_limit`).
    arm_buckets: Mutex<super::arm_limits::Buckets>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not wedge the simulator: keep serving the data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl App {
    pub fn new(
        config: SimConfig,
        base_url: String,
        state: State,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let lro_ms = config.lro_duration.as_millis() as i64;
        let retention_day_ms = i64::try_from(config.retention_day.as_millis()).unwrap_or(i64::MAX);
        let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
        Self {
            base_url,
            state: Mutex::new(state),
            faults: Mutex::new(FaultConfig::default()),
            metrics: Mutex::new(Metrics::default()),
            quota: Mutex::new((0, 0, 0)),
            rng: Mutex::new(seed),
            shutdown,
            lro_ms: Mutex::new(lro_ms),
            retention_day_ms: Mutex::new(retention_day_ms),
            migration_offset_ms: Mutex::new(0),
            key_day_ms: Mutex::new(i64::try_from(config.key_day.as_millis()).unwrap_or(i64::MAX)),
            arm_buckets: Mutex::default(),
            config,
        }
    }
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
    pub fn faults(&self) -> MutexGuard<'_, FaultConfig> {
        lock(&self.faults)
    }
    pub fn faults_snapshot(&self) -> FaultConfig {
        self.faults().clone()
    }
    pub fn metrics(&self) -> MutexGuard<'_, Metrics> {
        lock(&self.metrics)
    }
    pub fn lro_duration_ms(&self) -> i64 {
        *lock(&self.lro_ms)
    }
    pub fn set_lro_duration_ms(&self, ms: i64) {
        *lock(&self.lro_ms) = ms;
    }
    pub fn migration_offset_ms(&self) -> i64 {
        *lock(&self.migration_offset_ms)
    }
    pub fn set_migration_offset_ms(&self, ms: i64) {
        *lock(&self.migration_offset_ms) = ms;
    }
    pub fn retention_day_ms(&self) -> i64 {
        *lock(&self.retention_day_ms)
    }
    pub fn set_retention_day_ms(&self, ms: i64) {
        *lock(&self.retention_day_ms) = ms;
    }
    pub fn key_day_ms(&self) -> i64 {
        *lock(&self.key_day_ms)
    }
    pub fn set_key_day_ms(&self, ms: i64) {
        *lock(&self.key_day_ms) = ms;
    }
    fn roll(&self) -> f64 {
        let mut x = lock(&self.rng);
        // xorshift64: deterministic enough, no extra dependency.
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Remaining ARM quota after this call (per hour, as ARM reports it).
    fn quota_after(&self, write: bool) -> u64 {
        let mut q = lock(&self.quota);
        let hour = super::state::now_ms() / 3_600_000;
        if q.0 != hour {
            *q = (hour, 0, 0);
        }
        if write {
            q.2 += 1;
            WRITES_PER_HOUR.saturating_sub(q.2)
        } else {
            q.1 += 1;
            READS_PER_HOUR.saturating_sub(q.1)
        }
    }
}

/// A parsed request.
pub struct Req {
    /// The cloud, service and port the client named in `Host`.
    pub origin: Origin,
    pub method: Method,
    pub path: String,
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    /// Query parameter by case-insensitive name.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body as JSON, or Azure's malformed-content error.
    pub fn json(&self, style: Style) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.body).map_err(|e| match style {
            Style::KeyVault => ApiError::kv(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                format!("The request body could not be parsed as JSON: {e}"),
            ),
            _ => ApiError::arm(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            ),
        })
    }
}

/// Where a request goes, and the operation name it is counted under.
pub enum Route {
    Admin,
    Token {
        tenant: String,
    },
    Discovery {
        tenant: String,
    },
    KeyVault {
        vault: String,
        rest: Vec<String>,
    },
    Arm(arm::Target),
    NotFound,
    /// A host that is none of Azure's (the listen address): only `_admin`.
    UnknownHost,
}

fn route(origin: &Origin, segs: &[String]) -> Route {
    if let Service::Vault(v) = &origin.service {
        return Route::KeyVault {
            vault: v.clone(),
            rest: segs.to_vec(),
        };
    }
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (&origin.service, s.as_slice()) {
        (_, ["_admin", ..]) => Route::Admin,
        (Service::Login, [t, "oauth2", "v2.0", "token"]) => Route::Token {
            tenant: (*t).to_owned(),
        },
        (Service::Login, [t, "v2.0", ".well-known", "openid-configuration"]) => Route::Discovery {
            tenant: (*t).to_owned(),
        },
        (Service::Arm, [first, ..]) if first.eq_ignore_ascii_case("subscriptions") => {
            Route::Arm(arm::classify(segs))
        }
        // CheckNameExists, the one tenant-level ARM call modelled.
        (Service::Arm, [p, ns, ty, _])
            if p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.DocumentDB")
                && ty.eq_ignore_ascii_case("databaseAccountNames") =>
        {
            Route::Arm(arm::classify(segs))
        }
        (Service::Other, _) => Route::UnknownHost,
        _ => Route::NotFound,
    }
}

fn operation_name(route: &Route, method: &Method) -> String {
    match route {
        Route::Admin => "Admin".into(),
        Route::Token { .. } => "Token".into(),
        Route::Discovery { .. } => "OpenIdConfiguration".into(),
        Route::KeyVault { rest, .. } => keyvault::operation_name(rest, method).into(),
        Route::Arm(t) => arm::operation_name(t, method).into(),
        Route::NotFound | Route::UnknownHost => "Unknown".into(),
    }
}

async fn parse(req: Request) -> Result<Req, ApiError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::arm(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "The request content is too large.",
        )
    })?;
    let origin = Origin::of(&parts.headers, &parts.uri);
    let path = parts.uri.path().to_owned();
    let segs = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let query = url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    Ok(Req {
        origin,
        method: parts.method,
        path,
        segs,
        query,
        headers: parts.headers,
        body,
    })
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

pub async fn main_entry(AxState(app): AxState<Arc<App>>, req: Request) -> Response {
    handle(app, req).await
}

async fn handle(app: Arc<App>, req: Request) -> Response {
    let req = match parse(req).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let route = route(&req.origin, &req.segs);
    if matches!(route, Route::Admin) {
        return admin::handle(&app, &req).await;
    }
    let operation = operation_name(&route, &req.method);
    let style = match &route {
        Route::KeyVault { .. } => Style::KeyVault,
        Route::Token { .. } | Route::Discovery { .. } => Style::OAuth,
        _ => Style::Arm,
    };
    app.metrics().arrive(&operation);
    let latency = app.faults().latency_ms(&operation);
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let roll = app.roll();
    let write = req.method != Method::GET && req.method != Method::HEAD;
    // Bound first: the guard of a `match` scrutinee lives through its arms.
    let arm_limit = app.faults().arm_rate_limit;
    let limited = match (arm_limit, &route) {
        (Some(limits), Route::Arm(_)) => {
            super::arm_limits::subscription_of(&req.path).and_then(|sub| {
                let limits = app
                    .faults()
                    .arm_rate_limit_by_subscription
                    .get(&sub.to_ascii_lowercase())
                    .copied()
                    .unwrap_or(limits);
                lock(&app.arm_buckets)
                    .take(&limits, sub, write, std::time::Instant::now())
                    .err()
            })
        }
        _ => None,
    };
    let decision = match limited {
        Some(wait) => Decision::Throttle {
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        },
        None => {
            // Bound first: the guard of a `match` scrutinee lives through its arms.
            let hostile = app.faults().take_hostile(&operation, true);
            match hostile {
                Some(HostileAnswer::RetryAfter { value }) => Decision::HostileThrottle { value },
                _ => app.faults().decide(&operation, roll),
            }
        }
    };
    let (mut resp, caller) = match decision {
        Decision::Throttle { retry_after_secs } => {
            let kind = if write { "writes" } else { "reads" };
            let e = ApiError::new(
                if style == Style::OAuth { Style::Arm } else { style },
                StatusCode::TOO_MANY_REQUESTS,
                if style == Style::KeyVault { "Throttled" } else { "SubscriptionRequestsThrottled" },
                format!("Number of '{kind}' requests for subscription exceeded the limit. Please try again after '{retry_after_secs}' seconds."),
            )
            .header("Retry-After", retry_after_secs.to_string())
            .header(&format!("x-ms-ratelimit-remaining-subscription-{kind}"), "0");
            (e.into_response(), None)
        }
        Decision::HostileThrottle { value } => {
            let e = ApiError::new(
                if style == Style::OAuth {
                    Style::Arm
                } else {
                    style
                },
                StatusCode::TOO_MANY_REQUESTS,
                if style == Style::KeyVault {
                    "Throttled"
                } else {
                    "SubscriptionRequestsThrottled"
                },
                "Too many requests.",
            )
            .header("Retry-After", value);
            (e.into_response(), None)
        }
        Decision::Error { status, code } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let e = ApiError::new(
                if style == Style::OAuth {
                    Style::Arm
                } else {
                    style
                },
                status,
                &code,
                format!("Injected fault for operation '{operation}'."),
            );
            (e.into_response(), None)
        }
        Decision::Pass => {
            let (resp, caller) = dispatch(&app, &req, route);
            let hostile = resp
                .status()
                .is_success()
                .then(|| app.faults().take_hostile(&operation, false))
                .flatten();
            match hostile {
                Some(h) => (spoil(resp, &h).await, caller),
                None => (resp, caller),
            }
        }
    };
    if style == Style::Arm && resp.status() != StatusCode::TOO_MANY_REQUESTS {
        let remaining = app.quota_after(write);
        let name = if write {
            "x-ms-ratelimit-remaining-subscription-writes"
        } else {
            "x-ms-ratelimit-remaining-subscription-reads"
        };
        resp.headers_mut()
            .insert(name, HeaderValue::from(remaining));
    }
    let request_id = super::state::new_guid();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-ms-request-id", v.clone());
        let corr = req
            .headers
            .get("x-ms-correlation-request-id")
            .cloned()
            .unwrap_or(v);
        resp.headers_mut()
            .insert("x-ms-correlation-request-id", corr);
    }
    let status = resp.status().as_u16();
    let audience = super::auth::bearer_audience(&app, &req.headers);
    app.metrics()
        .record(&req, &operation, status, caller, audience);
    resp
}

/// A successful answer made hostile (`FaultConfig::hostile`): status and
/// headers kept, the body garbled, cut, padded or missing fields.
async fn spoil(resp: Response, how: &HostileAnswer) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let object = || match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let out: Vec<u8> = match how {
        HostileAnswer::Garbage => b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
        HostileAnswer::Truncated => bytes[..bytes.len() / 2].to_vec(),
        HostileAnswer::Huge { bytes: size } => {
            let mut m = object();
            m.insert(
                "padding".into(),
                Value::String("x".repeat(size.unwrap_or(5 * 1024 * 1024))),
            );
            serde_json::to_vec(&m).unwrap_or_default()
        }
        HostileAnswer::Omit { fields } => {
            let mut m = object();
            for f in fields {
                m.remove(f);
            }
            serde_json::to_vec(&m).unwrap_or_default()
        }
        HostileAnswer::RetryAfter { .. } => bytes.to_vec(),
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

fn dispatch(app: &Arc<App>, req: &Req, route: Route) -> (Response, Option<String>) {
    match route {
        Route::Token { tenant } => {
            if req.method != Method::POST {
                return (method_not_allowed(Style::OAuth), None);
            }
            match auth::token(app, &req.origin, &tenant, &req.body) {
                Ok((body, oid)) => (axum::Json(body).into_response(), Some(oid)),
                Err(e) => (e.into_response(), None),
            }
        }
        Route::Discovery { tenant } => (
            axum::Json(auth::openid_configuration(&req.origin, &tenant)).into_response(),
            None,
        ),
        Route::KeyVault { vault, rest } => keyvault::handle(app, req, &vault, &rest),
        Route::Arm(target) => arm::handle(app, req, target),
        Route::Admin => (StatusCode::NOT_FOUND.into_response(), None),
        Route::UnknownHost => (
            ApiError::arm(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!(
                    "No route for '{}' on this host: the simulator serves Azure's host names ({}, {}, <vault>.{} and the sovereign clouds' equivalents) resolved to its address; the address itself serves only /_admin.",
                    req.path,
                    super::hosts::PUBLIC.arm_host,
                    super::hosts::PUBLIC.login_host,
                    super::hosts::PUBLIC.vault_suffix
                ),
            )
            .into_response(),
            None,
        ),
        Route::NotFound => (
            ApiError::arm(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("No route for '{}'.", req.path),
            )
            .into_response(),
            None,
        ),
    }
}

pub fn method_not_allowed(style: Style) -> Response {
    ApiError::new(
        style,
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "The requested method is not allowed for this resource.",
    )
    .into_response()
}

/// A JSON answer with a status.
pub fn json_resp(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(main_entry).with_state(app)
}
