//! Faults on demand: latency, error rates, 429 bursts, failing or stalling
//! LROs, token endpoint outage, unreachable Key Vault, and hostile or broken
//! answers (absurd `Retry-After`, garbage, truncated, huge or incomplete bodies).

use serde::{Deserialize, Serialize};

/// Matches an operation name: exact (case-insensitive), `*`, or a `Prefix*` glob.
pub fn op_matches(pattern: &str, operation: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => operation
            .to_ascii_lowercase()
            .starts_with(&prefix.to_ascii_lowercase()),
        None => pattern.eq_ignore_ascii_case(operation),
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FaultConfig {
    #[serde(default)]
    pub latency: Vec<LatencyFault>,
    #[serde(default)]
    pub errors: Vec<ErrorFault>,
    #[serde(default)]
    pub throttle: Vec<ThrottleFault>,
    #[serde(default)]
    pub lro: Option<LroFault>,
    /// The token endpoint answers 503 `temporarily_unavailable`.
    #[serde(default)]
    pub token_outage: bool,
    /// Vault names (or `*`) whose data plane is unreachable, for clients and for Cosmos DB.
    #[serde(default)]
    pub keyvault_unreachable: Vec<String>,
    /// ARM's per-subscription read/write token buckets (`src/sim/arm_limits.rs`); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm_rate_limit: Option<super::arm_limits::ArmRateLimit>,
    /// Other buckets for some subscriptions (lower-cased ids), e.g. one
    /// subscription throttled hard while the others keep ARM's figures.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub arm_rate_limit_by_subscription:
        std::collections::BTreeMap<String, super::arm_limits::ArmRateLimit>,
    /// A share of matching requests answered 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub random_throttle: Vec<super::arm_limits::RandomThrottle>,
    /// Answers no well-behaved Azure gives (docs/simulator.md "Hostile answers").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostile: Vec<HostileFault>,
}

/// Matching requests get a hostile answer, `count` times (or until cleared).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostileFault {
    pub operation: String,
    pub answer: HostileAnswer,
    #[serde(default)]
    pub count: Option<u64>,
}

/// What a hostile answer is. `RetryAfter` replaces the request's answer; the
/// others are applied to the real (successful) answer, so the request itself
/// takes effect.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind")]
pub enum HostileAnswer {
    /// 429 with exactly this `Retry-After` value: huge, an HTTP date, garbage.
    RetryAfter { value: String },
    /// The status kept, the body replaced by non-JSON.
    Garbage,
    /// The body cut in half.
    Truncated,
    /// The real JSON body padded to `bytes` (default 5 MiB).
    Huge {
        #[serde(default)]
        bytes: Option<usize>,
    },
    /// The real JSON body without these top-level fields (`identity`, `tags`, ...).
    Omit { fields: Vec<String> },
}

impl HostileAnswer {
    /// Whether it replaces the answer before the request is handled.
    pub fn replaces_request(&self) -> bool {
        matches!(self, Self::RetryAfter { .. })
    }
}

/// Adds `ms` milliseconds before answering matching operations.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LatencyFault {
    pub operation: String,
    pub ms: u64,
}

/// Answers matching operations with an error, with probability `rate`
/// (1.0 = always), for at most `count` requests when given.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorFault {
    pub operation: String,
    #[serde(default = "one")]
    pub rate: f64,
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default = "default_code")]
    pub code: String,
    #[serde(default)]
    pub count: Option<u64>,
}

/// The next `count` matching requests get 429 with `Retry-After`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleFault {
    pub operation: String,
    pub count: u64,
    #[serde(default = "one_u64")]
    pub retry_after_secs: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum LroMode {
    Fail,
    Stall,
}

/// New long-running operations fail or never finish (`count` of them, or all).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LroFault {
    pub mode: LroMode,
    #[serde(default)]
    pub count: Option<u64>,
}

fn one() -> f64 {
    1.0
}
fn one_u64() -> u64 {
    1
}
fn default_status() -> u16 {
    500
}
fn default_code() -> String {
    "InternalServerError".into()
}

/// What the fault layer decided for one request.
pub enum Decision {
    Pass,
    Throttle {
        retry_after_secs: u64,
    },
    /// 429 with this exact `Retry-After` value.
    HostileThrottle {
        value: String,
    },
    Error {
        status: u16,
        code: String,
    },
}

impl FaultConfig {
    pub fn latency_ms(&self, operation: &str) -> u64 {
        self.latency
            .iter()
            .filter(|l| op_matches(&l.operation, operation))
            .map(|l| l.ms)
            .sum()
    }

    /// Consumes a throttle or error budget entry if one applies. `roll` is a
    /// uniform number in [0, 1).
    pub fn decide(&mut self, operation: &str, roll: f64) -> Decision {
        if let Some(t) = self
            .random_throttle
            .iter()
            .find(|t| op_matches(&t.operation, operation))
            && roll < t.rate
        {
            return Decision::Throttle {
                retry_after_secs: t.retry_after_secs,
            };
        }
        if let Some(t) = self
            .throttle
            .iter_mut()
            .find(|t| t.count > 0 && op_matches(&t.operation, operation))
        {
            t.count -= 1;
            return Decision::Throttle {
                retry_after_secs: t.retry_after_secs,
            };
        }
        self.throttle.retain(|t| t.count > 0);
        if let Some(e) = self
            .errors
            .iter_mut()
            .find(|e| e.count != Some(0) && op_matches(&e.operation, operation))
            && roll < e.rate
        {
            if let Some(c) = e.count.as_mut() {
                *c -= 1;
            }
            return Decision::Error {
                status: e.status,
                code: e.code.clone(),
            };
        }
        Decision::Pass
    }

    /// Takes the LRO fault for a new operation, if any.
    pub fn take_lro(&mut self) -> Option<LroMode> {
        let f = self.lro.as_mut()?;
        let mode = f.mode;
        match f.count.as_mut() {
            Some(0) => {
                self.lro = None;
                return None;
            }
            Some(c) => *c -= 1,
            None => {}
        }
        Some(mode)
    }

    /// Takes a hostile answer for `operation`: one that replaces the request
    /// (`before` true) or one applied to its answer.
    pub fn take_hostile(&mut self, operation: &str, before: bool) -> Option<HostileAnswer> {
        let f = self.hostile.iter_mut().find(|f| {
            f.count != Some(0)
                && f.answer.replaces_request() == before
                && op_matches(&f.operation, operation)
        })?;
        if let Some(c) = f.count.as_mut() {
            *c -= 1;
        }
        let answer = f.answer.clone();
        self.hostile.retain(|f| f.count != Some(0));
        Some(answer)
    }

    pub fn vault_unreachable(&self, vault: &str) -> bool {
        self.keyvault_unreachable
            .iter()
            .any(|v| v == "*" || v.eq_ignore_ascii_case(vault))
    }
}
