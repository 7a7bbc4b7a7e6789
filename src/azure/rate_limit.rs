//! A client-side token bucket per subscription and kind (read or write), so a
//! thousand resources never cause a 429 storm of the operator's own making.
//! ARM's documented per-subscription budgets are the defaults; a 429 from
//! Azure additionally pauses the bucket for its `Retry-After`. Buckets are
//! independent: a paused subscription (or vault) never holds back another.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The longest pause the limiter keeps, whatever it is asked (the adapter caps
/// `Retry-After` lower, `--max-retry-after-seconds`); a guard against the clock
/// overflowing, not a policy.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// Read or write: ARM budgets them separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallKind {
    Read,
    Write,
}

/// Bucket settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size (the burst allowed).
    pub burst: f64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    paused_until: Option<Instant>,
}

/// Per-subscription limiter.
#[derive(Debug)]
pub struct RateLimiter {
    reads: Budget,
    writes: Budget,
    buckets: Mutex<HashMap<(String, CallKind), Bucket>>,
}

impl RateLimiter {
    /// ARM's per-subscription token buckets: reads 250 refilled at 25 per second,
    /// writes 200 at 10 per second. Matching them (rather than staying far
    /// inside) keeps a large convergence at the pace ARM allows; a 429 caused
    /// by other callers of the subscription pauses the bucket for its Retry-After.
    pub fn arm_defaults() -> Self {
        Self::new(
            Budget {
                per_second: 25.0,
                burst: 250.0,
            },
            Budget {
                per_second: 10.0,
                burst: 200.0,
            },
        )
    }

    pub fn new(reads: Budget, writes: Budget) -> Self {
        RateLimiter {
            reads,
            writes,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until a call of `kind` against `subscription` may go out.
    pub async fn acquire(&self, subscription: &str, kind: CallKind) {
        loop {
            let wait = self.try_take(subscription, kind);
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Waits for the bucket's refill, but never past `deadline`; returns at
    /// once with the wait still ahead when the refill would end after it, or
    /// when Azure has paused the bucket (a 429's `Retry-After`). A pause is
    /// not sat out inside the call: the reconcile holding it would keep one
    /// of the shared workers for as long as one throttled subscription likes,
    /// and a few of them stall every other subscription. The caller fails
    /// fast (`AzureThrottled`) and its resource is requeued after the wait.
    pub async fn acquire_by(
        &self,
        subscription: &str,
        kind: CallKind,
        deadline: Instant,
    ) -> Result<(), Duration> {
        loop {
            let wait = match self.next_token(subscription, kind) {
                Wait::None => return Ok(()),
                Wait::Paused(wait) => return Err(wait),
                Wait::Refill(wait) => wait,
            };
            if Instant::now()
                .checked_add(wait)
                .is_none_or(|at| at > deadline)
            {
                return Err(wait);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Pauses a subscription's bucket after Azure answered 429 with `Retry-After`
    /// (at most `MAX_PAUSE`, whatever Azure said).
    pub fn pause(&self, subscription: &str, kind: CallKind, retry_after: Duration) {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let budget = self.budget(kind);
        let b = buckets
            .entry((subscription.to_ascii_lowercase(), kind))
            .or_insert_with(|| Bucket {
                tokens: budget.burst,
                updated: now,
                paused_until: None,
            });
        // Saturating: `Retry-After: 18446744073709551615` once overflowed `now + d`.
        let until = now.checked_add(retry_after.min(MAX_PAUSE)).unwrap_or(now);
        b.paused_until = Some(b.paused_until.map_or(until, |p| p.max(until)));
        b.tokens = 0.0;
    }

    fn budget(&self, kind: CallKind) -> Budget {
        match kind {
            CallKind::Read => self.reads,
            CallKind::Write => self.writes,
        }
    }

    /// Takes a token, or says how long to wait for one.
    fn try_take(&self, subscription: &str, kind: CallKind) -> Option<Duration> {
        match self.next_token(subscription, kind) {
            Wait::None => None,
            Wait::Paused(d) | Wait::Refill(d) => Some(d),
        }
    }

    /// Takes a token, or says why and how long there is none.
    fn next_token(&self, subscription: &str, kind: CallKind) -> Wait {
        let now = Instant::now();
        let budget = self.budget(kind);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = buckets
            .entry((subscription.to_ascii_lowercase(), kind))
            .or_insert_with(|| Bucket {
                tokens: budget.burst,
                updated: now,
                paused_until: None,
            });
        if let Some(until) = b.paused_until {
            if now < until {
                return Wait::Paused(until - now);
            }
            b.paused_until = None;
            b.updated = now;
        }
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + elapsed * budget.per_second).min(budget.burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Wait::None
        } else {
            Wait::Refill(Duration::from_secs_f64(
                (1.0 - b.tokens) / budget.per_second,
            ))
        }
    }
}

/// Why a call may not go out yet.
enum Wait {
    None,
    /// Azure paused the bucket (429, `Retry-After`) for this long yet.
    Paused(Duration),
    /// The client-side bucket refills a token in this long.
    Refill(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let rl = RateLimiter::new(
            Budget {
                per_second: 2.0,
                burst: 4.0,
            },
            Budget {
                per_second: 1.0,
                burst: 1.0,
            },
        );
        let start = Instant::now();
        for _ in 0..4 {
            rl.acquire("sub", CallKind::Read).await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1),
            "the burst goes out at once"
        );
        for _ in 0..4 {
            rl.acquire("sub", CallKind::Read).await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1990) && took <= Duration::from_millis(2100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn subscriptions_and_kinds_are_independent() {
        let rl = one_per_second();
        let start = Instant::now();
        rl.acquire("a", CallKind::Read).await;
        rl.acquire("b", CallKind::Read).await;
        rl.acquire("a", CallKind::Write).await;
        assert!(start.elapsed() < Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_the_bucket() {
        let rl = RateLimiter::new(
            Budget {
                per_second: 100.0,
                burst: 100.0,
            },
            Budget {
                per_second: 1.0,
                burst: 1.0,
            },
        );
        rl.pause("sub", CallKind::Read, Duration::from_secs(5));
        let start = Instant::now();
        rl.acquire("sub", CallKind::Read).await;
        assert!(start.elapsed() >= Duration::from_secs(5));
    }

    /// One token a second, bursts of one, for reads and writes alike.
    fn one_per_second() -> RateLimiter {
        let b = Budget {
            per_second: 1.0,
            burst: 1.0,
        };
        RateLimiter::new(b, b)
    }

    fn roomy() -> RateLimiter {
        let b = Budget {
            per_second: 100.0,
            burst: 100.0,
        };
        RateLimiter::new(b, b)
    }

    /// `Retry-After: 18446744073709551615` panicked (`now + d` overflowed).
    #[tokio::test(start_paused = true)]
    async fn an_absurd_pause_neither_panics_nor_outlasts_the_guard() {
        let rl = roomy();
        rl.pause("sub", CallKind::Read, Duration::MAX);
        rl.pause("sub", CallKind::Read, Duration::from_secs(u64::MAX));
        let start = Instant::now();
        rl.acquire("sub", CallKind::Read).await;
        let took = start.elapsed();
        assert!(
            took >= MAX_PAUSE && took < MAX_PAUSE + Duration::from_secs(1),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_past_the_deadline_fails_fast_with_the_wait() {
        let rl = roomy();
        rl.pause("sub", CallKind::Read, Duration::from_secs(300));
        let start = Instant::now();
        let wait = rl
            .acquire_by("sub", CallKind::Read, start + Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO, "no wait at all");
        assert_eq!(wait, Duration::from_secs(300));
        // A pause inside the deadline is not sat out either: it would hold a
        // worker the other subscriptions need.
        rl.pause("short", CallKind::Read, Duration::from_secs(2));
        let wait = rl
            .acquire_by("short", CallKind::Read, start + Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO, "no wait at all");
        assert_eq!(wait, Duration::from_secs(2));
        // Once it has passed, the call goes out.
        tokio::time::sleep(wait).await;
        rl.acquire_by("short", CallKind::Read, start + Duration::from_secs(30))
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_client_side_refill_is_waited_out_within_the_deadline() {
        let rl = one_per_second();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(30);
        rl.acquire_by("sub", CallKind::Read, deadline)
            .await
            .unwrap();
        rl.acquire_by("sub", CallKind::Read, deadline)
            .await
            .unwrap();
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "paced, not refused"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_subscription_holds_back_no_other() {
        let rl = roomy();
        rl.pause("throttled", CallKind::Read, Duration::from_secs(300));
        rl.pause("throttled", CallKind::Write, Duration::from_secs(300));
        let start = Instant::now();
        let deadline = start + Duration::from_secs(30);
        for other in ["other", "ANOTHER", "https://kv.vault.azure.net"] {
            for kind in [CallKind::Read, CallKind::Write] {
                rl.acquire_by(other, kind, deadline).await.unwrap();
            }
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Buckets are case-insensitive: the same subscription in capitals is paused.
        assert!(
            rl.acquire_by("THROTTLED", CallKind::Read, deadline)
                .await
                .is_err()
        );
    }
}
