//! Error types: startup errors, and the error answers in Azure's shapes.

use std::net::SocketAddr;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Errors that stop the simulator from starting or saving.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read or write state file {path}: {source}")]
    StateIo {
        path: String,
        source: std::io::Error,
    },
    #[error("state file {path} is not valid simulator state: {source}")]
    StateFormat {
        path: String,
        source: serde_json::Error,
    },
    #[error("invalid seed: {0}")]
    Seed(String),
    #[error("cannot set up TLS: {0}")]
    Tls(std::io::Error),
    #[error("cannot write the CA certificate to {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
}

/// Which service's error body an [`ApiError`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// ARM: `{"error":{"code","message"}}`.
    Arm,
    /// Key Vault data plane: `{"error":{"code","message","innererror":{"code"}}}`.
    KeyVault,
    /// Entra ID token endpoint: `{"error","error_description","error_codes"}`.
    OAuth,
}

/// An error answer, rendered in the style of the service that failed.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub style: Style,
    pub inner_code: Option<String>,
    /// Cosmos DB substatus (CMK failures); also sent as `x-ms-substatus`.
    pub substatus: Option<u32>,
    pub headers: Vec<(String, String)>,
    /// More members of an ARM `error` object (`target`, `additionalInfo`).
    /// Boxed: most errors have none, and every `Result` carries the size.
    pub details: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl ApiError {
    pub fn new(style: Style, status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            style,
            inner_code: None,
            substatus: None,
            headers: Vec::new(),
            details: None,
        }
    }
    pub fn arm(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self::new(Style::Arm, status, code, message)
    }
    pub fn kv(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self::new(Style::KeyVault, status, code, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::arm(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    pub fn inner(mut self, code: &str) -> Self {
        self.inner_code = Some(code.to_owned());
        self
    }
    pub fn substatus(mut self, sub: u32) -> Self {
        self.substatus = Some(sub);
        self
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
    /// Adds a member to the ARM `error` object.
    pub fn detail(mut self, key: &str, value: serde_json::Value) -> Self {
        self.details
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value);
        self
    }
    pub fn with_style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    pub fn body(&self) -> serde_json::Value {
        match self.style {
            Style::Arm => {
                let mut err = serde_json::Map::new();
                err.insert("code".into(), json!(self.code));
                if let Some(d) = &self.details {
                    err.extend(d.as_ref().clone());
                }
                err.insert("message".into(), json!(self.message));
                json!({"error": err})
            }
            Style::KeyVault => {
                let mut err = json!({"code": self.code, "message": self.message});
                if let Some(inner) = &self.inner_code {
                    err["innererror"] = json!({"code": inner});
                }
                json!({"error": err})
            }
            Style::OAuth => json!({
                "error": self.code,
                "error_description": self.message,
                "error_codes": [self.inner_code.as_deref().and_then(|c| c.trim_start_matches("AADSTS").parse::<u64>().ok()).unwrap_or(0)],
                "timestamp": jiff::Timestamp::now().to_string(),
            }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        if self.style == Style::Arm
            && let Ok(v) = HeaderValue::from_str(&self.code)
        {
            h.insert("x-ms-failure-cause", v);
        }
        if let Some(sub) = self.substatus {
            h.insert("x-ms-substatus", HeaderValue::from(sub));
        }
        for (k, v) in &self.headers {
            if let (Ok(name), Ok(val)) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.append(name, val);
            }
        }
        resp
    }
}
