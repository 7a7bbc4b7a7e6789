//! Key Vault list paging: `maxresults` (1–25, 25 when absent: keys.json
//! `GetKeys`/`GetKeyVersions` "Maximum number of results to return in a
//! page. If not specified the service will return up to 25 results.") and a
//! `nextLink` carrying an opaque `$skiptoken`; `null` on the last page, as
//! every replayed recording shows (azure-cli test_keyvault_key.yaml, 2020).

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::server::Req;

const MAX_PAGE: usize = 25;

/// One page of `items` for the request, with its `nextLink` (`list_url` is
/// the list's URL without a query).
pub fn page(req: &Req, list_url: &str, items: Vec<Value>) -> Result<Value, ApiError> {
    let size = match req.q("maxresults") {
        None => MAX_PAGE,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::kv(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    format!("maxresults '{s}' is invalid: use a number from 1 to {MAX_PAGE}."),
                )
            })?,
    };
    let start: usize = match req.q("$skiptoken") {
        None => 0,
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("skip:").and_then(|n| n.parse().ok()))
            .ok_or_else(|| {
                ApiError::kv(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "The $skiptoken is invalid: follow the nextLink of the previous page as it is.",
                )
            })?,
    };
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| {
        let token = URL_SAFE_NO_PAD.encode(format!("skip:{end}"));
        let version = req.q("api-version").unwrap_or_default();
        format!("{list_url}?api-version={version}&$skiptoken={token}&maxresults={size}")
    });
    let value: Vec<Value> = items.into_iter().skip(start).take(size).collect();
    Ok(json!({"value": value, "nextLink": next}))
}
