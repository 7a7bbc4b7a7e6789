//! How long Azure's operations of each kind have lately taken, so a poll is
//! not sent while the operation is surely still running. Azure's `Retry-After`
//! is a floor, not a forecast: an account creation answers "5 s" for minutes.
//! Polling each one at `Retry-After` spends the subscription's read budget
//! (shared with every other account) on answers that say "still running".
//!
//! The first poll waits until the operation is as old as the shortest recent
//! one of its kind took: an operation is never polled later than the fastest
//! of its peers finished, so Ready is delayed only for one faster than all of
//! them, and only by that difference.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Completed operations remembered per kind: enough to follow a change in
/// Azure's pace, few enough that one slow period is soon forgotten.
const REMEMBERED: usize = 16;

#[derive(Default)]
pub struct OperationDurations {
    recent: Mutex<HashMap<String, VecDeque<Duration>>>,
}

impl OperationDurations {
    /// Records that an operation of `kind` finished after `took`.
    pub fn finished(&self, kind: &str, took: Duration) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let times = recent.entry(kind.to_owned()).or_default();
        if times.len() == REMEMBERED {
            times.pop_front();
        }
        times.push_back(took);
    }

    /// The shortest recent duration of `kind`, once one has finished.
    pub fn shortest(&self, kind: &str) -> Option<Duration> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.get(kind).and_then(|t| t.iter().min().copied())
    }
}

/// When to poll an operation `age` old: never before `retry_after`, and not
/// before it is as old as the shortest recent operation of its kind.
pub fn next_poll(retry_after: Duration, age: Duration, shortest: Option<Duration>) -> Duration {
    match shortest {
        Some(s) if s > age => retry_after.max(s - age),
        _ => retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_shortest_of_the_recent_ones_per_kind() {
        let d = OperationDurations::default();
        assert_eq!(d.shortest("CreateAccount"), None);
        d.finished("CreateAccount", S(20));
        d.finished("CreateAccount", S(18));
        d.finished("DeleteAccount", S(5));
        assert_eq!(d.shortest("CreateAccount"), Some(S(18)));
        assert_eq!(d.shortest("DeleteAccount"), Some(S(5)));
        // An old fast one is forgotten after REMEMBERED newer ones.
        for _ in 0..REMEMBERED {
            d.finished("CreateAccount", S(30));
        }
        assert_eq!(d.shortest("CreateAccount"), Some(S(30)));
    }

    #[test]
    fn polls_wait_for_retry_after_and_for_the_fastest_peer() {
        // Nothing learned yet: Retry-After.
        assert_eq!(next_poll(S(5), S(0), None), S(5));
        // Peers took 20 s: a fresh operation waits 20 s, one 15 s old 5 s.
        assert_eq!(next_poll(S(5), S(0), Some(S(20))), S(20));
        assert_eq!(next_poll(S(5), S(15), Some(S(20))), S(5));
        // Never sooner than Retry-After, even when nearly due.
        assert_eq!(next_poll(S(5), S(19), Some(S(20))), S(5));
        // Older than its fastest peer: back to Retry-After.
        assert_eq!(next_poll(S(5), S(40), Some(S(20))), S(5));
    }
}
