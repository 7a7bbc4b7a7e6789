//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never
//! reconcile at once. The decision of who may hold the lease is pure
//! (`claim`); the loop around it only reads and writes the Lease with
//! optimistic concurrency (resourceVersion), so two candidates racing for an
//! expired lease cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};

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

/// What to write to the lease, if anything, for `me` to hold it at `now`.
/// `None`: someone else holds a valid lease.
pub fn claim(
    current: Option<&LeaseSpec>,
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
            let held_for =
                SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(secs)));
            let expired = spec
                .renew_time
                .as_ref()
                .is_none_or(|t| t.0.checked_add(held_for).is_ok_and(|end| end <= now));
            expired.then(|| fresh(transitions + 1))
        }
        _ => Some(fresh(transitions + 1)),
    }
}

/// Tries once to acquire or renew; returns whether this replica leads now.
pub async fn try_lead(api: &Api<Lease>, s: &LeaseSettings) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    match api.get_opt(&s.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    ..Default::default()
                },
                spec: claim(None, &s.identity, now, s.lease_duration),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => match claim(lease.spec.as_ref(), &s.identity, now, s.lease_duration) {
            None => Ok(false),
            Some(spec) => {
                lease.spec = Some(spec);
                // resourceVersion stays set: a concurrent writer makes this a 409, not a double leader.
                match api.replace(&s.name, &PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        },
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
    loop {
        match try_lead(api, s).await {
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
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(s.retry_period).await;
        match try_lead(api, s).await {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!("lost the lease to another replica");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the lease");
                // Step down before the lease can expire, so two leaders never overlap.
                if last_ok.elapsed() + s.retry_period >= s.lease_duration {
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

    #[test]
    fn free_or_released_leases_are_taken() {
        assert_eq!(
            claim(None, "a", at(0), D)
                .unwrap()
                .holder_identity
                .as_deref(),
            Some("a")
        );
        let released = LeaseSpec {
            holder_identity: None,
            lease_transitions: Some(3),
            ..Default::default()
        };
        assert_eq!(
            claim(Some(&released), "b", at(0), D)
                .unwrap()
                .lease_transitions,
            Some(4)
        );
    }

    #[test]
    fn a_valid_lease_of_another_is_respected_until_it_expires() {
        let held = claim(None, "a", at(0), D).unwrap();
        assert!(claim(Some(&held), "b", at(14), D).is_none());
        let taken = claim(Some(&held), "b", at(15), D).unwrap();
        assert_eq!(
            (taken.holder_identity.as_deref(), taken.lease_transitions),
            (Some("b"), Some(1))
        );
    }

    #[test]
    fn the_holder_renews_without_a_transition() {
        let held = claim(None, "a", at(0), D).unwrap();
        let renewed = claim(Some(&held), "a", at(10), D).unwrap();
        assert_eq!(renewed.renew_time, Some(MicroTime(at(10))));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(renewed.lease_transitions, Some(0));
    }
}
