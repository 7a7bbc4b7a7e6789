//! Writing back what the state machine decided: the status (only when it
//! changed) and an event for each transition.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::Error;
use super::event_recorder::Recorder;
use super::own_writes::OwnWrites;
use crate::api::conditions::{self, READY};
use crate::api::{AzureErrorRecord, CosmosAccountCMKStatus, KeyVaultBindingStatus, Phase};
use crate::azure::{AzureError, ErrorClass};

/// Field manager of every write the operator makes.
pub const MANAGER: &str = "cosmos-cmk-operator";

/// Server-side applies `status` when it differs from `old`; returns whether it
/// wrote. A write is remembered in `own` until the shared cache shows it.
pub async fn write_status<K, S>(
    api: &Api<K>,
    own: &OwnWrites,
    obj: &K,
    old: Option<&S>,
    new: &S,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if old == Some(new) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": new,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    if let Some(uid) = &obj.meta().uid {
        own.wrote(uid, new);
    }
    Ok(true)
}

/// Publishes an event when the Ready condition's reason changed. Warnings for
/// failures, revocation and waiting; Normal otherwise.
pub async fn transition_event(
    recorder: &Recorder,
    reference: &ObjectReference,
    old: &[Condition],
    new: &[Condition],
    phase: Phase,
) {
    let (Some(now), before) = (conditions::find(new, READY), conditions::find(old, READY)) else {
        return;
    };
    if before.is_some_and(|b| b.reason == now.reason && b.status == now.status) {
        return;
    }
    let type_ = match phase {
        Phase::Failed | Phase::Revoked | Phase::Waiting => EventType::Warning,
        _ => EventType::Normal,
    };
    publish(
        recorder,
        reference,
        type_,
        &now.reason,
        "Reconcile",
        &now.message,
    )
    .await;
}

/// Publishes one event; a failure to publish is logged, never fatal.
pub async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    // Events carry at most 1 kB of note; cut on a character boundary.
    let mut end = note.len().min(1000);
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    let note = note[..end].to_owned();
    // kube-runtime folds events by (type, reason, action, object): the note is
    // not part of the key, so three grants to three principals would show as
    // one event with the first principal. A digest of the note in the action
    // keeps distinct events distinct; the same note still counts up.
    let event = Event {
        type_,
        reason: reason.to_owned(),
        action: format!("{action}/{:08x}", fnv1a(&note)),
        note: Some(note),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, reference).await {
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}

/// 32-bit FNV-1a: a short, stable digest (not a security boundary).
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The parts of a status a failed reconcile records.
pub struct FailureParts<'a> {
    pub conditions: &'a mut Vec<Condition>,
    pub last_azure_error: &'a mut Option<AzureErrorRecord>,
    pub phase: &'a mut Phase,
    pub observed_generation: &'a mut Option<i64>,
}

/// Statuses that can record a failed reconcile.
pub trait FailureStatus: Default + Clone + Serialize + PartialEq {
    fn failure_parts(&mut self) -> FailureParts<'_>;
    /// Condition types besides Ready, each present after any reconcile.
    fn stages() -> &'static [&'static str] {
        &[]
    }
}

impl FailureStatus for KeyVaultBindingStatus {
    fn failure_parts(&mut self) -> FailureParts<'_> {
        FailureParts {
            conditions: &mut self.conditions,
            last_azure_error: &mut self.last_azure_error,
            phase: &mut self.phase,
            observed_generation: &mut self.observed_generation,
        }
    }
}

impl FailureStatus for CosmosAccountCMKStatus {
    fn failure_parts(&mut self) -> FailureParts<'_> {
        FailureParts {
            conditions: &mut self.conditions,
            last_azure_error: &mut self.last_azure_error,
            phase: &mut self.phase,
            observed_generation: &mut self.observed_generation,
        }
    }
    fn stages() -> &'static [&'static str] {
        &[
            conditions::VAULT_READY,
            conditions::IDENTITY_GRANTED,
            conditions::ACCOUNT_CREATED,
            conditions::ROTATION_TRACKED,
        ]
    }
}

/// What Azure said, as the status keeps it.
fn record_of(err: &AzureError, now: Timestamp) -> AzureErrorRecord {
    record_for("Reconcile", err, now)
}

/// What Azure said during `operation` ("Reconcile", "Delete"), as the status
/// keeps it.
pub fn record_for(operation: &str, err: &AzureError, now: Timestamp) -> AzureErrorRecord {
    AzureErrorRecord {
        operation: operation.to_owned(),
        http_status: err.http_status().map_or(0, i32::from),
        sub_status: match err {
            AzureError::Cmk { sub_status, .. } => Some(*sub_status),
            _ => None,
        },
        code: Some(err.reason().to_owned()),
        message: Some(err.to_string()),
        time: Some(now.to_string()),
    }
}

/// Records a failed reconcile where users look: the Ready condition False with
/// the error's reason, `lastAzureError`, and a Warning event. The same failure
/// again writes nothing. Kubernetes errors are only logged (the API is the problem).
pub async fn failure<K, S>(
    api: &Api<K>,
    own: &OwnWrites,
    obj: &K,
    old: Option<&S>,
    recorder: &Recorder,
    err: &Error,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: FailureStatus,
{
    let now = Timestamp::now();
    let (reason, record) = match err {
        Error::Azure(e) => (e.reason(), Some(record_of(e, now))),
        Error::Credential(_) => ("CredentialRefInvalid", None),
        _ => return,
    };
    let mut status = old.cloned().unwrap_or_default();
    let FailureParts {
        conditions,
        last_azure_error: last,
        phase,
        observed_generation,
    } = status.failure_parts();
    // A transient failure (throttling, 5xx, a timeout) says nothing about a
    // resource that is Ready: flipping it would make every restart under ARM's
    // read limits look like an outage. Metrics and logs still count it.
    let transient = matches!(err, Error::Azure(e) if e.class() == ErrorClass::Retryable);
    if transient && conditions::find(conditions, READY).is_some_and(|c| c.status == "True") {
        return;
    }
    if let Some(record) = record {
        remember_error(last, record);
    }
    let generation = obj.meta().generation;
    let message = format!("{err}; retrying with backoff");
    // Every failure leaves a phase, the generation it judged, and every
    // condition present (a stage never evaluated is Unknown, not missing):
    // GitOps health checks read these.
    *phase = if transient {
        match *phase {
            Phase::Pending | Phase::Ready => Phase::Waiting,
            p => p,
        }
    } else {
        Phase::Failed
    };
    *observed_generation = generation;
    for stage in S::stages() {
        if conditions::find(conditions, stage).is_none() {
            conditions::set_condition(
                conditions,
                conditions::condition(
                    stage,
                    conditions::UNKNOWN,
                    reason,
                    "not evaluated: the reconcile stopped at an error",
                    generation,
                    Time(now),
                ),
            );
        }
    }
    conditions::set_condition(
        conditions,
        conditions::condition(READY, "False", reason, message, generation, Time(now)),
    );
    let changed = match write_status(api, own, obj, old, &status).await {
        Ok(wrote) => wrote,
        Err(e) => {
            tracing::warn!(error = %e, "could not record the failure in the status");
            true
        }
    };
    // A transient failure the status already shows is no news: a thousand
    // throttled resources retrying would each add an event per retry.
    if changed || !transient {
        publish(
            recorder,
            &obj.object_ref(&()),
            EventType::Warning,
            reason,
            "Reconcile",
            &err.to_string(),
        )
        .await;
    }
}

/// Keeps `record` as the last Azure error, unless it is the one already kept
/// (then its first time stays, and the status write changes nothing).
pub fn remember_error(last: &mut Option<AzureErrorRecord>, record: AzureErrorRecord) {
    let same = last.as_ref().is_some_and(|l| {
        AzureErrorRecord {
            time: l.time.clone(),
            ..record.clone()
        } == *l
    });
    if !same {
        *last = Some(record);
    }
}

/// What an Azure step did, as its event. A warning marks something the
/// operator left in place that a person may want to look at.
pub struct StepEvent {
    pub reason: &'static str,
    pub note: String,
    pub type_: EventType,
}

impl StepEvent {
    pub fn warning(reason: &'static str, note: String) -> Self {
        StepEvent {
            reason,
            note,
            type_: EventType::Warning,
        }
    }
}

impl From<crate::reconcile::destructive::Settled> for StepEvent {
    fn from(s: crate::reconcile::destructive::Settled) -> Self {
        StepEvent {
            reason: s.reason,
            note: s.note,
            type_: if s.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
        }
    }
}

impl From<(&'static str, String)> for StepEvent {
    fn from((reason, note): (&'static str, String)) -> Self {
        StepEvent {
            reason,
            note,
            type_: EventType::Normal,
        }
    }
}
