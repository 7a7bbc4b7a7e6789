//! The tenancy boundary in the reconcilers: before any Azure call, a resource
//! whose namespace may not act on what it targets (see `crate::tenancy`) gets
//! Ready=False `NamespaceNotAllowed` with the fix, phase Failed and a Warning
//! event, and nothing happens in Azure. It is checked again at every resync.
//! On deletion such a resource leaves Azure alone and lets its finalizer go.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use super::error::Error;
use super::report;
use crate::api::conditions::{self, READY};
use crate::api::{
    CosmosAccountCMK, CosmosAccountCMKStatus, KeyVaultBinding, KeyVaultBindingStatus, Phase,
};
use crate::reconcile::reasons::NAMESPACE_NOT_ALLOWED;
use crate::tenancy::{self, Refusal, Request};

/// Why an account may not go ahead, if it may not.
pub fn account_refusal<A>(obj: &CosmosAccountCMK, ctx: &Context<A>) -> Option<Refusal> {
    let ns = obj.namespace().unwrap_or_default();
    let vault = ctx
        .bindings
        .get(&ObjectRef::<KeyVaultBinding>::new(&obj.spec.key_vault_binding_ref.name).within(&ns))
        .map(|b| b.spec.vault_resource_id.clone());
    let targets = tenancy::account_targets(&obj.spec, vault.as_deref());
    ctx.settings
        .tenancy
        .check(&Request {
            namespace: &ns,
            credential_ref: obj.spec.credential_ref.is_some(),
            targets: &targets,
        })
        .err()
}

/// Whether the namespace may act on (and read) the ARM resource `id`.
pub fn allows<A>(ctx: &Context<A>, namespace: &str, credential_ref: bool, id: &str) -> bool {
    ctx.settings
        .tenancy
        .check(&Request {
            namespace,
            credential_ref,
            targets: &[id.to_owned()],
        })
        .is_ok()
}

/// Why a binding may not go ahead, if it may not.
fn binding_refusal<A>(obj: &KeyVaultBinding, ctx: &Context<A>) -> Option<Refusal> {
    let ns = obj.namespace().unwrap_or_default();
    ctx.settings
        .tenancy
        .check(&Request {
            namespace: &ns,
            credential_ref: obj.spec.credential_ref.is_some(),
            targets: &tenancy::binding_targets(&obj.spec),
        })
        .err()
}

/// `Some(action)` when the account is outside its namespace's allowance: the
/// refusal is recorded and the reconcile must end there, without Azure.
pub async fn refused_account<A>(
    api: &Api<CosmosAccountCMK>,
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
) -> Result<Option<Action>, Error> {
    match account_refusal(obj, ctx) {
        None => Ok(None),
        Some(refusal) => refuse(api, obj, obj.status.as_ref(), ctx, &refusal)
            .await
            .map(Some),
    }
}

/// `Some(action)` when the binding is outside its namespace's allowance: the
/// refusal is recorded and the reconcile must end there, without Azure.
pub async fn refused_binding<A>(
    api: &Api<KeyVaultBinding>,
    obj: &KeyVaultBinding,
    ctx: &Context<A>,
) -> Result<Option<Action>, Error> {
    match binding_refusal(obj, ctx) {
        None => Ok(None),
        Some(refusal) => refuse(api, obj, obj.status.as_ref(), ctx, &refusal)
            .await
            .map(Some),
    }
}

/// `Some(action)` when a deleted account is outside its namespace's
/// allowance: Azure is left alone (no call at all, whatever the deletion
/// policy) and the finalizer may go.
pub async fn released_account<A>(obj: &CosmosAccountCMK, ctx: &Context<A>) -> Option<Action> {
    let refusal = account_refusal(obj, ctx)?;
    tracing::warn!(%refusal, "deleted outside the tenancy policy; Azure left alone");
    let note = format!(
        "{refusal} Deleted without any Azure call: the Azure account and any grants the operator made are left in place."
    );
    report::publish(
        &ctx.recorder,
        &obj.object_ref(&()),
        EventType::Warning,
        NAMESPACE_NOT_ALLOWED,
        "Delete",
        &note,
    )
    .await;
    Some(Action::await_change())
}

/// The parts of a status a refusal sets.
trait Refusable: Default + Clone + Serialize + PartialEq {
    fn parts(&mut self) -> (&mut Phase, &mut Vec<Condition>, &mut Option<i64>);
}

impl Refusable for CosmosAccountCMKStatus {
    fn parts(&mut self) -> (&mut Phase, &mut Vec<Condition>, &mut Option<i64>) {
        (
            &mut self.phase,
            &mut self.conditions,
            &mut self.observed_generation,
        )
    }
}

impl Refusable for KeyVaultBindingStatus {
    fn parts(&mut self) -> (&mut Phase, &mut Vec<Condition>, &mut Option<i64>) {
        (
            &mut self.phase,
            &mut self.conditions,
            &mut self.observed_generation,
        )
    }
}

/// Records the refusal (status, and a Warning event when it is news) and
/// looks again at the next resync.
async fn refuse<K, S, A>(
    api: &Api<K>,
    obj: &K,
    old: Option<&S>,
    ctx: &Context<A>,
    refusal: &Refusal,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Refusable,
{
    let generation = obj.meta().generation;
    let message = refusal.to_string();
    let mut status = old.cloned().unwrap_or_default();
    let (phase, conds, observed) = status.parts();
    *phase = Phase::Failed;
    *observed = generation;
    conditions::set_condition(
        conds,
        conditions::condition(
            READY,
            conditions::FALSE,
            NAMESPACE_NOT_ALLOWED,
            message.clone(),
            generation,
            Time(Timestamp::now()),
        ),
    );
    if report::write_status(api, &ctx.own_writes, obj, old, &status).await? {
        tracing::warn!(%refusal, "refused by the tenancy policy; no Azure call made");
        report::publish(
            &ctx.recorder,
            &obj.object_ref(&()),
            EventType::Warning,
            NAMESPACE_NOT_ALLOWED,
            "Reconcile",
            &message,
        )
        .await;
    }
    Ok(Action::requeue(ctx.settings.resync))
}
