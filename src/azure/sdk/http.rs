//! HTTP plumbing shared by every call: pipelines without retries (the
//! controllers retry, and a 429 must reach the rate limiter; the transport's
//! one retry of a request lost with a dead kept-alive connection is below
//! them, see `transport`), a policy that
//! keeps what azure_core's `HttpError` hides (`Retry-After`, `x-ms-substatus`,
//! the inner error code), and the mapping of SDK errors to `AzureError`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use azure_core::auth::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::headers::{HeaderName, Headers};
use azure_core::{
    ClientOptions, Context, HttpClient, Method, Pipeline, Policy, PolicyResult, Request,
    RetryOptions, TransportOptions, Url,
};
use serde_json::Value;

use crate::azure::cloud::{Cloud, Redirect};
use crate::azure::errors::AzureError;
use crate::reconcile::policy::PolicyViolation;

use super::transport;

const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_MS_RETRY_AFTER_MS: HeaderName = HeaderName::from_static("x-ms-retry-after-ms");
const SUB_STATUS: HeaderName = HeaderName::from_static("x-ms-substatus");

/// One HTTP client (and connection pool) for every adapter in the process.
fn shared_http_client() -> Result<Arc<dyn HttpClient>, transport::BuildError> {
    static CLIENT: OnceLock<Arc<dyn HttpClient>> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let built: Arc<dyn HttpClient> = Arc::new(transport::for_azure()?);
    Ok(CLIENT.get_or_init(|| built).clone())
}

/// The HTTP client for `cloud`: the shared one for Azure; for a redirected
/// cloud (the simulator), one that resolves the cloud's host names (ARM,
/// Entra, every `{vault}.{suffix}`) to its address, refuses every other name,
/// and trusts its CA alone. URLs, TLS server-name checks and token audiences
/// stay the cloud's own.
pub fn http_client_for(cloud: &Cloud) -> Result<Arc<dyn HttpClient>, AzureError> {
    let refuse = |what: &str, e: &dyn fmt::Display| AzureError::Rejected {
        operation: "Configure".into(),
        status: 400,
        code: "InvalidTransport".into(),
        message: format!("the {} of cloud {}: {e}", what, cloud.name),
    };
    let Some(Redirect { addr, ca_pem }) = &cloud.redirect else {
        return shared_http_client().map_err(|e| refuse("HTTP client", &e));
    };
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|e| refuse("CA certificate", &e))?;
    // The cloud's own names, and every named cloud's (the simulator serves
    // them all, and AZURE_AUTHORITY_HOST may name another cloud's login host).
    let mut resolver = CloudResolver {
        addr: *addr,
        names: Vec::new(),
        vault_suffixes: Vec::new(),
    };
    for c in [
        cloud.clone(),
        Cloud::public(),
        Cloud::us_government(),
        Cloud::china(),
    ] {
        let (names, suffix) = c.hosts();
        resolver.names.extend(names);
        resolver.vault_suffixes.push(suffix.to_ascii_lowercase());
    }
    let client = transport::client_builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .https_only(true)
        .dns_resolver(Arc::new(resolver))
        .build()
        .map_err(|e| refuse("HTTP client", &e))?;
    Ok(Arc::new(transport::Reusing::new(client)))
}

/// Name resolution for a redirected cloud: Azure's host names to one address.
struct CloudResolver {
    addr: SocketAddr,
    /// ARM and Entra hosts.
    names: Vec<String>,
    /// Key Vault DNS suffixes: `{vault}.{suffix}` is a vault host.
    vault_suffixes: Vec<String>,
}

impl CloudResolver {
    fn serves(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&host)
            || self.vault_suffixes.iter().any(|suffix| {
                host.strip_suffix(suffix.as_str())
                    .and_then(|v| v.strip_suffix('.'))
                    .is_some_and(|v| !v.is_empty() && !v.contains('.'))
            })
    }
}

impl reqwest::dns::Resolve for CloudResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let result: Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> =
            if self.serves(name.as_str()) {
                Ok(Box::new(std::iter::once(self.addr)))
            } else {
                Err(format!(
                    "{} is not a host name of this cloud (resolved to the simulator at {})",
                    name.as_str(),
                    self.addr
                )
                .into())
            };
        Box::pin(std::future::ready(result))
    }
}

/// Client options for every SDK client: `http` as transport, no SDK retries,
/// and the failure-capturing policy.
pub(crate) fn client_options(http: &Arc<dyn HttpClient>) -> ClientOptions {
    ClientOptions::new(TransportOptions::new(http.clone()))
        .retry(RetryOptions::none())
        .per_retry_policies(vec![
            Arc::new(CaptureFailures { http: http.clone() }) as Arc<dyn Policy>
        ])
}

/// A non-success answer, with everything `AzureError::from_response` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub sub_status: Option<i32>,
    pub code: String,
    pub message: String,
    /// `error.innererror.code` (Key Vault: `KeyDisabled`, ...).
    pub inner_code: Option<String>,
    /// The `PolicyViolation` entries of `error.additionalInfo` (403
    /// `RequestDisallowedByPolicy`).
    pub policy_violations: Vec<PolicyViolation>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    pub(crate) fn from_parts(status: u16, headers: &Headers, body: &[u8]) -> Self {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let err = json.get("error").unwrap_or(&json);
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let code = text(err.get("code"))
            .or_else(|| text(json.get("code")))
            .unwrap_or_else(|| status_text(status).to_owned());
        let message = text(err.get("message"))
            .or_else(|| text(json.get("message")))
            .or_else(|| text(json.get("error_description")))
            .unwrap_or_default();
        let sub_status = headers
            .get_optional_str(&SUB_STATUS)
            .and_then(|s| s.trim().parse().ok())
            .or_else(|| sub_status_in_message(&message));
        Failure {
            status,
            retry_after: retry_after(headers),
            sub_status,
            code,
            message: truncate(message),
            inner_code: text(err.pointer("/innererror/code")),
            policy_violations: policy_violations(err),
        }
    }

    pub(crate) fn into_error(self, operation: &str) -> AzureError {
        if self.status == 403 && self.code == "RequestDisallowedByPolicy" {
            return AzureError::DisallowedByPolicy {
                operation: operation.to_owned(),
                violations: self.policy_violations,
                message: self.message,
            };
        }
        AzureError::from_response(
            operation,
            self.status,
            self.retry_after,
            self.sub_status,
            &self.code,
            &self.message,
        )
    }
}

/// The assignments ARM names in `additionalInfo` (`type` `PolicyViolation`,
/// `info` with `policyDefinitionId`, `policyAssignmentId`, their display
/// names, the scope and the parameters; shape as in MicrosoftDocs/azure-docs
/// articles/automation/enforce-job-execution-hybrid-worker.md, commit 866d237).
fn policy_violations(err: &Value) -> Vec<PolicyViolation> {
    let Some(list) = err.get("additionalInfo").and_then(Value::as_array) else {
        return Vec::new();
    };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    list.iter()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("PolicyViolation"))
        .filter_map(|e| e.get("info"))
        .filter_map(|i| {
            Some(PolicyViolation {
                definition_id: text(i, "policyDefinitionId")?,
                definition_display_name: text(i, "policyDefinitionDisplayName"),
                assignment_id: text(i, "policyAssignmentId").unwrap_or_default(),
                assignment_display_name: text(i, "policyAssignmentDisplayName"),
                assignment_scope: text(i, "policyAssignmentScope"),
                tag_name: i
                    .pointer("/policyAssignmentParameters/tagName/value")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .take(8)
        .collect()
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        412 => "PreconditionFailed",
        429 => "TooManyRequests",
        500 => "InternalServerError",
        503 => "ServiceUnavailable",
        _ => "HttpError",
    }
}

/// Azure messages can be long; keep conditions readable.
fn truncate(mut s: String) -> String {
    const MAX: usize = 1024;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Cosmos DB also writes the substatus into the message: `(Status: 403, Substatus: 4002)`.
fn sub_status_in_message(message: &str) -> Option<i32> {
    let (_, rest) = message.split_once("Substatus:")?;
    rest.trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// `retry-after-ms` / `x-ms-retry-after-ms` first (finer), then `Retry-After`
/// in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &Headers) -> Option<Duration> {
    for h in [&RETRY_AFTER_MS, &X_MS_RETRY_AFTER_MS] {
        if let Some(ms) = headers
            .get_optional_str(h)
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let v = headers.get_optional_str(&RETRY_AFTER)?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = azure_core::date::parse_rfc1123(v).ok()?;
    let now = time::OffsetDateTime::now_utc();
    Some(Duration::try_from(at - now).unwrap_or_default())
}

/// Sends the request and turns a non-success answer into an error that keeps its
/// headers' meaning. It is the last policy and sends the request itself:
/// azure_core 0.21's `TransportPolicy` logs every request at debug level with a
/// `Headers` `Debug` that prints the `Authorization` value (and redacts the rest),
/// so it must never see a request.
pub(crate) struct CaptureFailures {
    http: Arc<dyn HttpClient>,
}

impl fmt::Debug for CaptureFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaptureFailures")
    }
}

#[async_trait::async_trait]
impl Policy for CaptureFailures {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        // `next` is only the token-logging transport policy: skipped on purpose.
        let _ = (ctx, next);
        let response = self.http.execute_request(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let (status, headers, body) = response.deconstruct();
        // Too large or broken: the status alone still classifies the failure.
        let body = collect_bounded(body)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let failure = Failure::from_parts(u16::from(status), &headers, &body);
        let kind = ErrorKind::http_response(status, Some(failure.code.clone()));
        Err(azure_core::Error::full(
            kind,
            failure,
            format!("Azure answered HTTP {status}"),
        ))
    }
}

/// Adds a bearer token for `scope` (for the requests no SDK client builds).
#[derive(Clone)]
pub(crate) struct Bearer {
    credential: Arc<dyn TokenCredential>,
    scope: String,
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Policy for Bearer {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let token = self.credential.get_token(&[&self.scope]).await?;
        request.insert_header(
            azure_core::headers::AUTHORIZATION,
            format!("Bearer {}", token.token.secret()),
        );
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// A pipeline for requests the SDK crates have no call for (LRO status, provider
/// registration, the Key Vault key operations the 0.21 crate lacks).
#[derive(Clone, Debug)]
pub(crate) struct Raw {
    pipeline: Pipeline,
}

/// A successful answer.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Headers,
    pub body: Value,
}

impl Raw {
    pub(crate) fn new(
        http: &Arc<dyn HttpClient>,
        credential: Arc<dyn TokenCredential>,
        scope: String,
    ) -> Self {
        let bearer = Arc::new(Bearer { credential, scope }) as Arc<dyn Policy>;
        Raw {
            pipeline: Pipeline::new(
                option_env!("CARGO_PKG_NAME"),
                option_env!("CARGO_PKG_VERSION"),
                client_options(http),
                Vec::new(),
                vec![bearer],
            ),
        }
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> azure_core::Result<Answer> {
        self.send_with(method, url, body, &[]).await
    }

    /// `send` with extra request headers (e.g. a create's `If-None-Match: *`).
    pub(crate) async fn send_with(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        headers: &[(&'static str, &'static str)],
    ) -> azure_core::Result<Answer> {
        let mut req = Request::new(url, method);
        for (name, value) in headers {
            req.insert_header(*name, *value);
        }
        if let Some(b) = body {
            req.insert_header("content-type", "application/json");
            req.set_body(serde_json::to_vec(b)?);
        }
        let resp = self.pipeline.send(&Context::new(), &mut req).await?;
        read(resp, method == Method::Delete).await
    }

    /// `send` for a long-running operation's status, where a finished
    /// operation may answer 200 without a body.
    pub(crate) async fn poll(&self, url: Url) -> azure_core::Result<Answer> {
        let mut req = Request::new(url, Method::Get);
        let resp = self.pipeline.send(&Context::new(), &mut req).await?;
        read(resp, true).await
    }
}

/// The largest answer body read. Azure's answers are kilobytes; a larger one
/// is broken or hostile, and is not buffered whole.
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;

/// A successful answer whose body cannot be used (not JSON, truncated, not
/// an object, empty where Azure always sends one, or larger than `MAX_BODY`).
/// Names what was wrong, never the body itself (it could hold a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BadBody {
    pub status: u16,
    pub what: String,
}

impl fmt::Display for BadBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.what)
    }
}

impl std::error::Error for BadBody {}

/// The body, or `None` when it is larger than `MAX_BODY` (reading stops there).
async fn collect_bounded(
    mut body: azure_core::ResponseBody,
) -> azure_core::Result<Option<Vec<u8>>> {
    use futures::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// Status, headers and JSON object body of a successful response. The body
/// may be empty (`Null`) only on 202/204 or when `empty_ok` (DELETE, LRO
/// status); anything else not a JSON object is a `BadBody` error, so a
/// garbage answer is never read as "no properties" (a vault without purge
/// protection, a key without a version, ...).
pub(crate) async fn read(resp: azure_core::Response, empty_ok: bool) -> azure_core::Result<Answer> {
    let (status, headers, body) = resp.deconstruct();
    let status = u16::from(status);
    let bad =
        |what: String| azure_core::Error::new(ErrorKind::DataConversion, BadBody { status, what });
    let Some(bytes) = collect_bounded(body).await? else {
        return Err(bad(format!(
            "the body is larger than {} MiB",
            MAX_BODY / (1024 * 1024)
        )));
    };
    let body = if bytes.is_empty() {
        if !(empty_ok || status == 202 || status == 204) {
            return Err(bad("the body is empty".into()));
        }
        Value::Null
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v @ Value::Object(_)) => v,
            Ok(v) => {
                let kind = match v {
                    Value::Null => "null",
                    Value::Bool(_) => "boolean",
                    Value::Number(_) => "number",
                    Value::String(_) => "string",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                };
                return Err(bad(format!("the body is a JSON {kind}, not an object")));
            }
            // serde's message gives the position only, never the content.
            Err(e) => {
                return Err(bad(format!(
                    "the body ({} bytes) is not JSON, truncated or garbage: {e}",
                    bytes.len()
                )));
            }
        }
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The first error of type `T` in the call's error chain.
fn find<T: std::error::Error + 'static>(err: &azure_core::Error) -> Option<&T> {
    let mut e: &(dyn std::error::Error + 'static) = err.get_ref()?;
    loop {
        if let Some(f) = e.downcast_ref::<T>() {
            return Some(f);
        }
        e = e.source()?;
    }
}

/// The answer's failure, if the call failed with one.
pub(crate) fn failure(err: &azure_core::Error) -> Option<&Failure> {
    find::<Failure>(err)
}

/// Whether the call failed with this HTTP status.
pub(crate) fn is_status(err: &azure_core::Error, status: u16) -> bool {
    match err.kind() {
        ErrorKind::HttpResponse { status: s, .. } => u16::from(*s) == status,
        _ => false,
    }
}

/// Maps any SDK error to the operator's typed error. Never includes request
/// headers or bodies, so no token or secret can end up in a message.
pub(crate) fn map_error(operation: &str, err: azure_core::Error) -> AzureError {
    if let Some(f) = failure(&err) {
        return f.clone().into_error(operation);
    }
    if let Some(b) = find::<BadBody>(&err) {
        return AzureError::InvalidResponse {
            operation: operation.to_owned(),
            status: b.status,
            message: b.what.clone(),
        };
    }
    if let Some(h) = err.as_http_error() {
        return AzureError::from_response(
            operation,
            u16::from(h.status()),
            None,
            None,
            h.error_code().unwrap_or_default(),
            h.error_message().unwrap_or_default(),
        );
    }
    let message = chain(&err);
    match err.kind() {
        ErrorKind::HttpResponse { status, error_code } => AzureError::from_response(
            operation,
            u16::from(*status),
            None,
            None,
            error_code.as_deref().unwrap_or_default(),
            &message,
        ),
        ErrorKind::Credential => {
            // An Entra outage is transient; anything else is a bad credential. The OAuth
            // error code is only in the inner error's Debug form (used to classify, not shown).
            let lower = format!("{message} {err:?}").to_ascii_lowercase();
            if inner_http_status(&err).is_some_and(|s| s >= 500)
                || [
                    "temporarily_unavailable",
                    "service unavailable",
                    "serviceunavailable",
                ]
                .iter()
                .any(|m| lower.contains(m))
            {
                AzureError::Unavailable {
                    operation: operation.to_owned(),
                    status: 503,
                    message: format!("Entra ID token endpoint: {message}"),
                }
            } else if [
                "error sending request",
                "connection refused",
                "dns error",
                "timed out",
            ]
            .iter()
            .any(|m| lower.contains(m))
            {
                AzureError::Transport {
                    operation: operation.to_owned(),
                    message: format!("Entra ID token endpoint: {message}"),
                }
            } else {
                // Entra's AADSTS code names the problem (bad secret, unknown client, ...).
                let debug = format!("{err:?}");
                let aadsts = debug.find("AADSTS").map(|i| {
                    debug[i..]
                        .chars()
                        .take_while(char::is_ascii_alphanumeric)
                        .collect::<String>()
                });
                AzureError::Authentication {
                    operation: operation.to_owned(),
                    message: match aadsts {
                        Some(code) => format!("{message} ({code})"),
                        None => message,
                    },
                }
            }
        }
        ErrorKind::Io => AzureError::Transport {
            operation: operation.to_owned(),
            message,
        },
        _ => AzureError::Transport {
            operation: operation.to_owned(),
            message: format!("unexpected answer: {message}"),
        },
    }
}

/// The HTTP status of a wrapped azure_core error (a token endpoint's answer).
fn inner_http_status(err: &azure_core::Error) -> Option<u16> {
    let mut e: &(dyn std::error::Error + 'static) = err.get_ref()?;
    loop {
        if let Some(ErrorKind::HttpResponse { status, .. }) = e
            .downcast_ref::<azure_core::Error>()
            .map(azure_core::Error::kind)
        {
            return Some(u16::from(*status));
        }
        e = e.source()?;
    }
}

/// The error and its sources on one line.
fn chain(err: &azure_core::Error) -> String {
    let mut out = err.to_string();
    let mut src = std::error::Error::source(err);
    while let Some(e) = src {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        src = e.source();
    }
    truncate(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (k, v) in pairs {
            h.insert(*k, v.to_string());
        }
        h
    }

    #[test]
    fn arm_error_body_and_headers_are_read() {
        let f = Failure::from_parts(
            403,
            &headers(&[("x-ms-substatus", "4002")]),
            br#"{"error":{"code":"Forbidden","message":"no (Status: 403, Substatus: 4002)"}}"#,
        );
        assert_eq!(
            (f.code.as_str(), f.sub_status, f.retry_after),
            ("Forbidden", Some(4002), None)
        );
        let f = Failure::from_parts(
            429,
            &headers(&[("retry-after", "7")]),
            br#"{"error":{"code":"SubscriptionRequestsThrottled","message":"slow"}}"#,
        );
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
        let f = Failure::from_parts(
            403,
            &Headers::new(),
            br#"{"error":{"code":"Forbidden","message":"x","innererror":{"code":"KeyDisabled"}}}"#,
        );
        assert_eq!(f.inner_code.as_deref(), Some("KeyDisabled"));
        // Substatus only in the message.
        let f = Failure::from_parts(
            404,
            &Headers::new(),
            br#"{"error":{"code":"NotFound","message":"gone (Status: 404, Substatus: 4003)"}}"#,
        );
        assert_eq!(f.sub_status, Some(4003));
        // Empty body.
        let f = Failure::from_parts(503, &headers(&[("retry-after-ms", "1500")]), b"");
        assert_eq!(
            (f.code.as_str(), f.retry_after),
            ("ServiceUnavailable", Some(Duration::from_millis(1500)))
        );
    }

    /// Azure's refusal by policy (shape of the Microsoft docs example and the
    /// 2025 Cosmos DB recording, see `policy_violations`): the typed error
    /// names the policy, the assignment and the spec field, and is retried
    /// slowly (no hot loop).
    #[test]
    fn a_policy_refusal_names_the_policy_and_the_field() {
        let body = br#"{"error":{"code":"RequestDisallowedByPolicy","target":"acct","message":"Resource 'acct' was disallowed by policy. Reasons: 'no keys'. See error details for policy resource IDs.","additionalInfo":[{"type":"PolicyViolation","info":{"policyDefinitionDisplayName":"Cosmos DB database accounts should have local authentication methods disabled","policyDefinitionId":"/providers/Microsoft.Authorization/policyDefinitions/5450f5bd-9c72-4390-a9c4-a7aba4edfdd2","policyDefinitionName":"5450f5bd-9c72-4390-a9c4-a7aba4edfdd2","policyDefinitionEffect":"Deny","policyAssignmentId":"/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a1","policyAssignmentName":"a1","policyAssignmentDisplayName":"Entra only","policyAssignmentScope":"/subscriptions/s","policyAssignmentParameters":{}}}]}}"#;
        let e = Failure::from_parts(403, &Headers::new(), body).into_error("CreateAccount");
        assert_eq!(e.reason(), "DisallowedByPolicy");
        assert_eq!(e.class(), crate::azure::ErrorClass::UserFixable);
        assert_eq!(e.http_status(), Some(403));
        let text = e.to_string();
        for part in [
            "policy 'Cosmos DB database accounts should have local authentication methods disabled'",
            "assignment 'Entra only' (/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a1)",
            "set spec.disableLocalAuth to true",
        ] {
            assert!(text.contains(part), "{part:?} missing: {text}");
        }
        // Without additionalInfo, Azure's own words.
        let e = Failure::from_parts(
            403,
            &Headers::new(),
            br#"{"error":{"code":"RequestDisallowedByPolicy","message":"Resource 'acct' was disallowed by policy."}}"#,
        )
        .into_error("CreateAccount");
        assert!(e.to_string().contains("was disallowed by policy"), "{e}");
    }

    fn response(status: u16, body: Vec<u8>) -> azure_core::Response {
        let status = azure_core::StatusCode::try_from(status).unwrap();
        azure_core::Response::new(
            status,
            Headers::new(),
            Box::pin(azure_core::BytesStream::new(body)),
        )
    }

    async fn read_err(status: u16, body: &[u8], empty_ok: bool) -> AzureError {
        let err = match read(response(status, body.to_vec()), empty_ok).await {
            Ok(a) => panic!(
                "{:?} was accepted as {}",
                String::from_utf8_lossy(body),
                a.body
            ),
            Err(e) => e,
        };
        map_error("GetVault", err)
    }

    /// A 200 with garbage was read as JSON null: a vault without purge protection.
    #[tokio::test]
    async fn unusable_bodies_are_a_typed_transient_error_naming_the_problem() {
        for (body, what) in [
            (&b"<html>502 Bad Gateway</html>"[..], "not JSON"),
            (
                br#"{"properties": {"enablePurgeProtection": tr"#,
                "not JSON",
            ),
            (b"null", "a JSON null, not an object"),
            (b"[1, 2]", "a JSON array, not an object"),
            (br#""secret-looking-text""#, "a JSON string, not an object"),
            (b"", "empty"),
        ] {
            let err = read_err(200, body, false).await;
            let AzureError::InvalidResponse {
                operation,
                status,
                message,
            } = &err
            else {
                panic!("{err:?}")
            };
            assert_eq!((operation.as_str(), *status), ("GetVault", 200));
            assert!(message.contains(what), "{message}");
            assert_eq!(
                (err.class(), err.reason()),
                (crate::azure::ErrorClass::Retryable, "AzureInvalidResponse")
            );
            // What Azure sent is never repeated (it could hold a secret).
            assert!(
                !format!("{err} {err:?}").contains("secret-looking"),
                "{err}"
            );
        }
        let huge = vec![b' '; MAX_BODY + 1];
        let err = read_err(200, &huge, false).await;
        assert!(err.to_string().contains("larger than 4 MiB"), "{err}");
    }

    #[tokio::test]
    async fn empty_bodies_pass_where_azure_sends_none() {
        for (status, empty_ok) in [(202, false), (204, false), (200, true)] {
            let a = read(response(status, Vec::new()), empty_ok).await.unwrap();
            assert_eq!(a.body, Value::Null);
        }
        let a = read(response(200, br#"{"id": "/x"}"#.to_vec()), false)
            .await
            .unwrap();
        assert_eq!(a.body["id"], "/x");
        // Garbage stays an error where an empty body would pass.
        let err = read_err(202, b"garbage", true).await;
        assert!(
            matches!(err, AzureError::InvalidResponse { status: 202, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_redirected_cloud_resolves_its_own_host_names_only() {
        let r = CloudResolver {
            addr: "127.0.0.1:9".parse().unwrap(),
            names: vec![
                "management.azure.com".into(),
                "login.microsoftonline.com".into(),
            ],
            vault_suffixes: vec!["vault.azure.net".into()],
        };
        for ok in [
            "management.azure.com",
            "Login.MicrosoftOnline.com.",
            "kv-1.vault.azure.net",
        ] {
            assert!(r.serves(ok), "{ok}");
        }
        for no in [
            "vault.azure.net",
            "a.b.vault.azure.net",
            "kv.vault.azure.cn",
            "example.com",
            "127.0.0.1",
            "management.azure.com.evil.example",
        ] {
            assert!(!r.serves(no), "{no}");
        }
    }

    /// Hostile `Retry-After` values never panic; the adapter caps what they say.
    #[test]
    fn any_retry_after_is_read_without_panicking() {
        let ra = |v: &str| retry_after(&headers(&[("retry-after", v)]));
        assert_eq!(
            ra("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(ra("315360000"), Some(Duration::from_secs(315_360_000)));
        assert_eq!(ra(" 7 "), Some(Duration::from_secs(7)));
        for garbage in ["", "-5", "1.5", "soon", "99999999999999999999999", "\u{0}"] {
            assert_eq!(ra(garbage), None, "{garbage:?}");
        }
        // An HTTP date: the time until then; one in the past is no wait.
        let in_a_minute = time::OffsetDateTime::now_utc() + time::Duration::seconds(60);
        let d = ra(&azure_core::date::to_rfc1123(&in_a_minute)).unwrap();
        assert!(
            d > Duration::from_secs(55) && d <= Duration::from_secs(60),
            "{d:?}"
        );
        assert_eq!(ra("Tue, 01 Jan 2002 00:00:00 GMT"), Some(Duration::ZERO));
        assert!(ra("Fri, 31 Dec 9999 23:59:59 GMT").is_some());
        let ms = retry_after(&headers(&[("retry-after-ms", "18446744073709551615")]));
        assert_eq!(ms, Some(Duration::from_millis(u64::MAX)));
    }
}
