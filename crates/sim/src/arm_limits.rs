//! ARM's per-subscription request limits as token buckets (reads and writes
//! separately), the model Azure Resource Manager uses: each subscription has a
//! bucket of `burst` tokens refilled at `perSecond`; a request without a token
//! gets 429 `SubscriptionRequestsThrottled` with the `Retry-After` (whole
//! seconds, at least 1) after which a token will be there. Off unless
//! `FaultConfig::arm_rate_limit` is set. Azure's documented figures (2024):
//! reads 250 burst / 25 per second, writes 200 / 10 per second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One bucket's settings.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BucketLimit {
    pub per_second: f64,
    pub burst: f64,
}

/// Per-subscription read and write budgets (`"armRateLimit"` in the fault config).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArmRateLimit {
    pub reads: BucketLimit,
    pub writes: BucketLimit,
}

impl ArmRateLimit {
    /// ARM's documented per-subscription (per region) token buckets.
    pub fn azure() -> Self {
        ArmRateLimit {
            reads: BucketLimit {
                per_second: 25.0,
                burst: 250.0,
            },
            writes: BucketLimit {
                per_second: 10.0,
                burst: 200.0,
            },
        }
    }
}

/// Bucket levels, by lower-cased subscription and read/write.
#[derive(Debug, Default)]
pub struct Buckets {
    levels: HashMap<(String, bool), (f64, Instant)>,
}

impl Buckets {
    /// Takes a token for a request, or answers how long until one is there.
    pub fn take(
        &mut self,
        limits: &ArmRateLimit,
        subscription: &str,
        write: bool,
        now: Instant,
    ) -> Result<(), Duration> {
        let limit = if write { limits.writes } else { limits.reads };
        let (tokens, updated) = self
            .levels
            .entry((subscription.to_ascii_lowercase(), write))
            .or_insert((limit.burst, now));
        let elapsed = now.saturating_duration_since(*updated).as_secs_f64();
        *tokens = (*tokens + elapsed * limit.per_second).min(limit.burst);
        *updated = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - *tokens) / limit.per_second.max(f64::MIN_POSITIVE),
            ))
        }
    }
}

/// The subscription of an ARM path (`/subscriptions/{id}/…`).
pub fn subscription_of(path: &str) -> Option<&str> {
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    while let Some(s) = segs.next() {
        if s.eq_ignore_ascii_case("subscriptions") {
            return segs.next();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_subscription_and_kind() {
        let limits = ArmRateLimit {
            reads: BucketLimit {
                per_second: 2.0,
                burst: 3.0,
            },
            writes: BucketLimit {
                per_second: 1.0,
                burst: 1.0,
            },
        };
        let mut b = Buckets::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take(&limits, "S", false, t0).is_ok());
        }
        let wait = b.take(&limits, "s", false, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(
            b.take(&limits, "s", true, t0).is_ok(),
            "writes are separate"
        );
        assert!(
            b.take(&limits, "other", false, t0).is_ok(),
            "so are subscriptions"
        );
        assert!(b.take(&limits, "s", false, t0 + wait).is_ok());
    }

    #[test]
    fn subscription_from_path() {
        assert_eq!(
            subscription_of("/subscriptions/abc/resourceGroups/rg/providers/X"),
            Some("abc")
        );
        assert_eq!(subscription_of("/tenant/oauth2/v2.0/token"), None);
    }
}

/// Answers a share (`rate`) of the matching requests with 429 and `Retry-After`
/// (`"randomThrottle"` in the fault config), e.g. half of all calls for a minute.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RandomThrottle {
    pub operation: String,
    pub rate: f64,
    pub retry_after_secs: u64,
}
