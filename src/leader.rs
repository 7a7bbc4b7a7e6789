//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never
//! reconcile at once. The decision of who may hold the lease is pure
//! (`claim`); the loop around it only reads and writes the Lease with
//! optimistic concurrency (resourceVersion), so two candidates racing for an
//! expired lease cannot both win.
//!
//! Clock skew between nodes cannot make two leaders: as client-go does, a
//! candidate never compares the holder's `renewTime` with its own wall clock.
//! It notes when, by its own monotonic clock, it first saw the lease record as
//! it is now, and only takes a lease that has not changed for a whole lease
//! duration since. The holder's timestamps are written for people to read.
//!
//! The holder's side of the same rule: it notes, by its own monotonic clock,
//! when its last successful renewal *began* (the write landed later, so every
//! candidate's wait began later still). It acts only until that instant plus
//! the renew deadline, shorter than the lease duration: when no renewal has
//! succeeded by then, the work it guards is dropped (`while_leading`), before
//! any candidate can have waited out a whole lease duration.
//! (kube-lease-manager, the kept crate for this, compares `renewTime` plus the
//! duration with the local clock and tolerates only a configured grace of
//! skew; a node whose clock runs ahead by more takes a live lease.)

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

/// Lease timings, as client-go names them.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease stays valid without renewal; a stopped leader is replaced after this.
    pub lease_duration: Duration,
    /// How long after the start of its last successful renewal the leader
    /// still acts; shorter than `lease_duration`, the rest is the margin for
    /// dropping the work it guards.
    pub renew_deadline: Duration,
    /// How often the leader renews, and candidates retry.
    pub retry_period: Duration,
}

/// Lease timings that would let a leader act while another may take over.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error(
        "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration ({lease_duration:?}): a leader must stop acting before another may take its lease"
    )]
    DeadlineNotBelowDuration {
        renew_deadline: Duration,
        lease_duration: Duration,
    },
    #[error(
        "the retry period ({retry_period:?}) must be shorter than the renew deadline ({renew_deadline:?}): a leader must get at least one renewal in before it steps down"
    )]
    RetryNotBelowDeadline {
        retry_period: Duration,
        renew_deadline: Duration,
    },
}

impl LeaseSettings {
    /// Refuses timings under which leadership would not be exclusive (as
    /// client-go's `NewLeaderElector` does).
    pub fn check(&self) -> Result<(), TimingError> {
        if self.renew_deadline >= self.lease_duration {
            return Err(TimingError::DeadlineNotBelowDuration {
                renew_deadline: self.renew_deadline,
                lease_duration: self.lease_duration,
            });
        }
        if self.retry_period >= self.renew_deadline {
            return Err(TimingError::RetryNotBelowDeadline {
                retry_period: self.retry_period,
                renew_deadline: self.renew_deadline,
            });
        }
        Ok(())
    }
}

/// Why this replica no longer leads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    #[error("another replica holds the lease")]
    Taken,
    #[error("no renewal of the lease succeeded within the renew deadline ({0:?})")]
    RenewDeadline(Duration),
}

/// The lease record as this replica last saw it, and since when (its own
/// monotonic clock): how long a record has stood unchanged is the only time
/// a candidate measures.
#[derive(Debug, Default)]
pub struct Observer {
    seen: Option<(Record, Instant)>,
}

/// The parts of a lease that change with every acquisition or renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    acquire_time: Option<Timestamp>,
    transitions: Option<i32>,
    duration_seconds: Option<i32>,
}

impl Observer {
    /// Notes `current`, and answers for how long it has stood unchanged.
    fn unchanged_for(&mut self, current: Option<&LeaseSpec>, now: Instant) -> Duration {
        let record = current.map(|spec| Record {
            holder: spec.holder_identity.clone(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions,
            duration_seconds: spec.lease_duration_seconds,
        });
        match (&self.seen, record) {
            (Some((seen, since)), Some(record)) if *seen == record => now.duration_since(*since),
            (_, Some(record)) => {
                self.seen = Some((record, now));
                Duration::ZERO
            }
            (_, None) => {
                self.seen = None;
                Duration::ZERO
            }
        }
    }
}

/// What to write to the lease, if anything, for `me` to hold it at `now`
/// (wall clock, only written). `unchanged_for`: how long this replica has
/// seen `current` stand as it is. `None`: someone else holds a valid lease.
pub fn claim(
    current: Option<&LeaseSpec>,
    unchanged_for: Duration,
    me: &str,
    now: Timestamp,
    duration: Duration,
) -> Option<LeaseSpec> {
    let secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
    let fresh = |transitions: i32| LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(secs),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let Some(spec) = current else {
        return Some(fresh(0));
    };
    let transitions = spec.lease_transitions.unwrap_or(0);
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Some(LeaseSpec {
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(secs),
            ..spec.clone()
        }),
        Some(holder) if !holder.is_empty() => {
            // The holder's own duration, as client-go honours it; a missing or
            // non-positive one is ours.
            let held_for = spec
                .lease_duration_seconds
                .and_then(|d| u64::try_from(d).ok())
                .filter(|d| *d > 0)
                .map_or(duration, Duration::from_secs);
            (unchanged_for >= held_for).then(|| fresh(transitions + 1))
        }
        _ => Some(fresh(transitions + 1)),
    }
}

/// Until when a leader whose last successful renewal began at
/// `renew_started` (its monotonic clock) may act. A candidate's wait for the
/// lease began no earlier than that renewal's write, so it cannot take over
/// before `renew_started + lease_duration`; stopping at `renew_deadline`
/// leaves the difference as the margin.
pub fn acting_deadline(renew_started: Instant, s: &LeaseSettings) -> Instant {
    renew_started + s.renew_deadline
}

/// Tries once to acquire or renew; returns whether this replica leads now.
pub async fn try_lead(
    api: &Api<Lease>,
    s: &LeaseSettings,
    observer: &mut Observer,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    match api.get_opt(&s.name).await? {
        None => {
            observer.unchanged_for(None, Instant::now());
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    ..Default::default()
                },
                spec: claim(None, Duration::ZERO, &s.identity, now, s.lease_duration),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let unchanged_for = observer.unchanged_for(lease.spec.as_ref(), Instant::now());
            let wanted = claim(
                lease.spec.as_ref(),
                unchanged_for,
                &s.identity,
                now,
                s.lease_duration,
            );
            let Some(spec) = wanted else {
                return Ok(false);
            };
            lease.spec = Some(spec);
            // resourceVersion stays set: a concurrent writer makes this a 409, not a double leader.
            match api.replace(&s.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Gives the lease up (on graceful shutdown) so a standby takes over at once.
pub async fn release(api: &Api<Lease>, s: &LeaseSettings) -> Result<(), kube::Error> {
    if let Some(mut lease) = api.get_opt(&s.name).await?
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(s.identity.as_str())
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        api.replace(&s.name, &PostParams::default(), &lease).await?;
    }
    Ok(())
}

/// Waits until this replica leads, and returns when the winning attempt
/// began (its `acting_deadline` counts from there). Errors are retried (the
/// API server may be restarting).
pub async fn acquire(api: &Api<Lease>, s: &LeaseSettings) -> Instant {
    acquire_or_stand_by(api, s, || {}).await
}

/// `acquire`, calling `standing_by` after each answer that another replica
/// holds the lease (so the caller knows leadership is settled, not unknown).
pub async fn acquire_or_stand_by(
    api: &Api<Lease>,
    s: &LeaseSettings,
    standing_by: impl Fn(),
) -> Instant {
    let mut observer = Observer::default();
    loop {
        let started = Instant::now();
        // Bounded like a renewal: a hung request must not keep a standby
        // from its next attempt (kube's client has no read timeout).
        match tokio::time::timeout(s.renew_deadline, try_lead(api, s, &mut observer)).await {
            Ok(Ok(true)) => {
                tracing::info!(lease = %s.name, identity = %s.identity, "became leader");
                return started;
            }
            Ok(Ok(false)) => standing_by(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "leader election: cannot read or write the lease");
            }
            Err(_) => tracing::warn!(
                timeout = ?s.renew_deadline,
                "leader election: the lease did not answer in time"
            ),
        }
        tokio::time::sleep(s.retry_period).await;
    }
}

/// Renews every retry period, each renewal (its retries included) bounded by
/// the acting deadline of the last one that succeeded, the first being the
/// acquisition that began at `acquired`. Returns once leadership is lost.
pub async fn hold(api: &Api<Lease>, s: &LeaseSettings, acquired: Instant) -> Lost {
    let mut observer = Observer::default();
    let mut renewed = acquired;
    loop {
        let deadline = acting_deadline(renewed, s);
        match tokio::time::timeout_at(deadline, renew(api, s, &mut observer)).await {
            Ok(Some(started)) => renewed = started,
            Ok(None) => {
                tracing::error!("lost the lease to another replica");
                return Lost::Taken;
            }
            Err(_) => {
                tracing::error!(
                    renew_deadline = ?s.renew_deadline,
                    "no lease renewal succeeded within the renew deadline; stepping down"
                );
                return Lost::RenewDeadline(s.renew_deadline);
            }
        }
    }
}

/// After a retry period, tries to renew until it succeeds (`Some`: when the
/// successful attempt began) or another replica holds the lease (`None`).
async fn renew(api: &Api<Lease>, s: &LeaseSettings, observer: &mut Observer) -> Option<Instant> {
    loop {
        tokio::time::sleep(s.retry_period).await;
        let started = Instant::now();
        match try_lead(api, s, observer).await {
            Ok(true) => return Some(started),
            Ok(false) => return None,
            Err(e) => tracing::warn!(error = %e, "could not renew the lease"),
        }
    }
}

/// Runs `work` while this replica leads (since an acquisition that began at
/// `acquired`), renewing the lease beside it. When leadership is lost, `work`
/// is dropped where it stands (no drain: another replica may lead soon);
/// when `work` ends first, its output is returned and the caller may release
/// the lease.
pub async fn while_leading<T>(
    api: &Api<Lease>,
    s: &LeaseSettings,
    acquired: Instant,
    work: impl Future<Output = T>,
) -> Result<T, Lost> {
    tokio::select! {
        // Leadership first: once it is lost, `work` is not polled again.
        biased;
        lost = hold(api, s, acquired) => Err(lost),
        done = work => Ok(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }
    const D: Duration = Duration::from_secs(15);
    const NEW: Duration = Duration::ZERO;

    #[test]
    fn free_or_released_leases_are_taken() {
        let first = claim(None, NEW, "a", at(0), D).unwrap();
        assert_eq!(first.holder_identity.as_deref(), Some("a"));
        let released = LeaseSpec {
            holder_identity: None,
            lease_transitions: Some(3),
            ..Default::default()
        };
        let taken = claim(Some(&released), NEW, "b", at(0), D).unwrap();
        assert_eq!(taken.lease_transitions, Some(4));
    }

    #[test]
    fn a_lease_of_another_is_taken_only_after_standing_unchanged_a_whole_duration() {
        let held = claim(None, NEW, "a", at(0), D).unwrap();
        assert!(claim(Some(&held), D - Duration::from_millis(1), "b", at(0), D).is_none());
        let taken = claim(Some(&held), D, "b", at(0), D).unwrap();
        assert_eq!(
            (taken.holder_identity.as_deref(), taken.lease_transitions),
            (Some("b"), Some(1))
        );
    }

    #[test]
    fn wall_clocks_never_decide() {
        // The holder's clock an hour behind: its renewals look an hour stale
        // to a candidate's wall clock, but the lease was just seen changing.
        let behind = claim(None, NEW, "a", at(-3600), D).unwrap();
        assert!(claim(Some(&behind), NEW, "b", at(0), D).is_none());
        // The holder's clock an hour ahead, and stopped: taken after one
        // duration of the candidate's own watching, not an hour later.
        let ahead = claim(None, NEW, "a", at(3600), D).unwrap();
        assert!(claim(Some(&ahead), D, "b", at(0), D).is_some());
    }

    #[test]
    fn the_holders_own_duration_counts() {
        let mut held = claim(None, NEW, "a", at(0), D).unwrap();
        held.lease_duration_seconds = Some(60);
        assert!(claim(Some(&held), D, "b", at(0), D).is_none());
        assert!(claim(Some(&held), Duration::from_secs(60), "b", at(0), D).is_some());
        held.lease_duration_seconds = Some(0);
        assert!(claim(Some(&held), D, "b", at(0), D).is_some());
    }

    #[test]
    fn the_observer_restarts_its_clock_at_every_change() {
        let t0 = Instant::now();
        let mut o = Observer::default();
        let a1 = claim(None, NEW, "a", at(0), D).unwrap();
        assert_eq!(o.unchanged_for(Some(&a1), t0), Duration::ZERO);
        assert_eq!(o.unchanged_for(Some(&a1), t0 + D), D);
        // A renewal (even with an older timestamp, a clock stepped back) is a change.
        let a2 = claim(Some(&a1), NEW, "a", at(-5), D).unwrap();
        assert_eq!(o.unchanged_for(Some(&a2), t0 + D), Duration::ZERO);
        assert_eq!(o.unchanged_for(Some(&a2), t0 + D + D), D);
        assert_eq!(o.unchanged_for(None, t0 + D + D), Duration::ZERO);
    }

    #[test]
    fn the_holder_renews_without_a_transition() {
        let held = claim(None, NEW, "a", at(0), D).unwrap();
        let renewed = claim(Some(&held), NEW, "a", at(10), D).unwrap();
        assert_eq!(renewed.renew_time, Some(MicroTime(at(10))));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(renewed.lease_transitions, Some(0));
    }

    fn timings(lease: u64, renew: u64, retry: u64) -> LeaseSettings {
        LeaseSettings {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn timings_that_would_let_a_leader_overlap_its_successor_are_refused() {
        let secs = Duration::from_secs;
        let table = [
            ((15, 10, 2), Ok(())),
            (
                (15, 15, 2),
                Err(TimingError::DeadlineNotBelowDuration {
                    renew_deadline: secs(15),
                    lease_duration: secs(15),
                }),
            ),
            (
                (15, 20, 2),
                Err(TimingError::DeadlineNotBelowDuration {
                    renew_deadline: secs(20),
                    lease_duration: secs(15),
                }),
            ),
            (
                (15, 10, 10),
                Err(TimingError::RetryNotBelowDeadline {
                    retry_period: secs(10),
                    renew_deadline: secs(10),
                }),
            ),
        ];
        for ((lease, renew, retry), want) in table {
            assert_eq!(
                timings(lease, renew, retry).check(),
                want,
                "lease {lease} s, renew deadline {renew} s, retry {retry} s"
            );
        }
    }

    #[test]
    fn a_leader_acts_until_the_renew_deadline_counted_from_when_its_renewal_began() {
        let t0 = Instant::now();
        let s = timings(15, 10, 2);
        // (renewal began, may act until): always before a candidate, whose
        // wait began at the write (after the renewal began), may take over.
        let table = [
            (t0, t0 + Duration::from_secs(10)),
            (
                t0 + Duration::from_millis(2500),
                t0 + Duration::from_millis(12_500),
            ),
        ];
        for (began, until) in table {
            assert_eq!(acting_deadline(began, &s), until);
            assert!(acting_deadline(began, &s) < began + s.lease_duration);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn work_is_dropped_when_leadership_is_lost() {
        // A client of an address nothing listens on: every renewal fails.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let api: Api<Lease> = Api::namespaced(client, "ns");
        let s = timings(15, 10, 2);
        let acquired = Instant::now();
        let out = while_leading(&api, &s, acquired, std::future::pending::<()>()).await;
        assert_eq!(out, Err(Lost::RenewDeadline(s.renew_deadline)));
        // Dropped at the deadline (time is virtual here: exact up to the timer's tick).
        let deadline = acting_deadline(acquired, &s);
        let now = Instant::now();
        assert!(
            now >= deadline && now < deadline + Duration::from_millis(10),
            "dropped {:?} after the deadline",
            now.checked_duration_since(deadline)
        );
    }
}
