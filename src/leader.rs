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
//! (kube-lease-manager, the kept crate for this, compares `renewTime` plus the
//! duration with the local clock and tolerates only a configured grace of
//! skew; a node whose clock runs ahead by more takes a live lease.)

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
    /// How often the leader renews, and candidates retry.
    pub retry_period: Duration,
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

/// Whether a leader whose last successful renewal was `since_renewed` ago
/// must stop now: before the next retry could come too late, so it has
/// stopped before any other replica can see its lease unchanged for a whole
/// duration.
pub fn must_step_down(since_renewed: Duration, s: &LeaseSettings) -> bool {
    since_renewed + s.retry_period >= s.lease_duration
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

/// Waits until this replica leads. Errors are retried (the API server may be restarting).
pub async fn acquire(api: &Api<Lease>, s: &LeaseSettings) {
    acquire_or_stand_by(api, s, || {}).await;
}

/// `acquire`, calling `standing_by` after each answer that another replica
/// holds the lease (so the caller knows leadership is settled, not unknown).
pub async fn acquire_or_stand_by(api: &Api<Lease>, s: &LeaseSettings, standing_by: impl Fn()) {
    let mut observer = Observer::default();
    loop {
        match try_lead(api, s, &mut observer).await {
            Ok(true) => {
                tracing::info!(lease = %s.name, identity = %s.identity, "became leader");
                return;
            }
            Ok(false) => standing_by(),
            Err(e) => tracing::warn!(error = %e, "leader election: cannot read or write the lease"),
        }
        tokio::time::sleep(s.retry_period).await;
    }
}

/// Renews until a renewal has failed for longer than the lease lasts; then
/// returns, and the caller must stop reconciling (another replica may lead).
pub async fn hold(api: &Api<Lease>, s: &LeaseSettings) {
    let mut observer = Observer::default();
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(s.retry_period).await;
        match try_lead(api, s, &mut observer).await {
            Ok(true) => last_ok = Instant::now(),
            Ok(false) => {
                tracing::error!("lost the lease to another replica");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the lease");
                // Step down before the lease can expire, so two leaders never overlap.
                if must_step_down(last_ok.elapsed(), s) {
                    tracing::error!("lease renewal deadline passed; stepping down");
                    return;
                }
            }
        }
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

    #[test]
    fn a_leader_steps_down_a_retry_before_its_lease_could_lapse() {
        let s = LeaseSettings {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "a".into(),
            lease_duration: D,
            retry_period: Duration::from_secs(2),
        };
        assert!(!must_step_down(Duration::from_secs(12), &s));
        assert!(must_step_down(Duration::from_secs(13), &s));
    }
}
