//! Request counters by operation and status, and a ledger of mutating calls.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `operation -> status -> count`; operation names are the REST specs' operationIds.
pub type Counters = BTreeMap<String, BTreeMap<u16, u64>>;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub seq: u64,
    pub at: String,
    pub method: String,
    pub path: String,
    pub operation: String,
    pub status: u16,
    /// Object id of the caller, when a valid token was presented.
    pub caller: Option<String>,
    /// The request's `api-version`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The host name the client named (`management.usgovcloudapi.net`): which
    /// cloud it addressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The audience of the bearer token it presented, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// Where a request went and with what token audience ("" for none); every
/// request counts, reads too, so a test can prove a client stayed on one cloud.
pub type HostAudiences = BTreeMap<(String, String), u64>;

#[derive(Debug, Default)]
pub struct Metrics {
    pub counters: Counters,
    /// Requests that arrived, by operation, counted before any injected
    /// latency: a test sees a call it made hang while it hangs.
    pub arrived: BTreeMap<String, u64>,
    pub ledger: Vec<LedgerEntry>,
    pub host_audiences: HostAudiences,
    next_seq: u64,
}

impl Metrics {
    pub fn arrive(&mut self, operation: &str) {
        *self.arrived.entry(operation.to_owned()).or_default() += 1;
    }

    pub fn record(
        &mut self,
        req: &super::server::Req,
        operation: &str,
        status: u16,
        caller: Option<String>,
        audience: Option<String>,
    ) {
        let (method, path) = (req.method.as_str(), req.path.as_str());
        let host = req
            .headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|v| super::hosts::split_host(v).0);
        *self
            .host_audiences
            .entry((
                host.clone().unwrap_or_default(),
                audience.clone().unwrap_or_default(),
            ))
            .or_default() += 1;
        *self
            .counters
            .entry(operation.to_owned())
            .or_default()
            .entry(status)
            .or_default() += 1;
        if method != "GET" && method != "HEAD" {
            self.next_seq += 1;
            self.ledger.push(LedgerEntry {
                seq: self.next_seq,
                at: super::state::now_rfc3339(),
                method: method.to_owned(),
                path: path.to_owned(),
                operation: operation.to_owned(),
                status,
                caller,
                api_version: req.q("api-version").map(str::to_owned),
                host,
                audience,
            });
        }
    }

    /// Total requests for an operation, all statuses.
    pub fn total(&self, operation: &str) -> u64 {
        self.counters
            .get(operation)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }
}
