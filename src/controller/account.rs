//! Reconciles `CosmosAccountCMK`: the driver over four stages, each in its
//! own file — observe (`observe_account`: the caches, then Azure as far as
//! needed), decide (the core's pure state machine), act (`act_account`: at
//! most one Azure step), report (status, events, when to come back) — and,
//! on deletion, cleanup (`cleanup_account`).

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span};

use std::time::Duration;

use super::context::Context;
use super::error::Error;
use super::observe_account::observe;
use super::op_durations;
use super::report;
use super::tenancy_gate;
use super::{act_account, cleanup_account};
use crate::api::conditions::{self, READY};
use crate::api::{CosmosAccountCMK, CosmosAccountCMKStatus, KeyVaultBinding, PendingOperation};
use crate::azure::scoped::WithCredential;
use crate::azure::{AccountRef, AzurePort};
use crate::reconcile::account::{self, Action as Step, BindingState, Decision, Requeue};
use crate::reconcile::ownership::Owner;

/// Keeps the object until its deletion policy has been carried out in Azure.
pub const FINALIZER: &str = "cosmoscmk.io/finalizer";

/// One reconcile of an account.
pub async fn reconcile<A: WithCredential>(
    obj: Arc<CosmosAccountCMK>,
    ctx: Arc<Context<A>>,
) -> Result<Action, Error> {
    let span = info_span!("reconcile", kind = "CosmosAccountCMK", namespace = obj.namespace(), name = %obj.name_any());
    async move {
        let ns = obj.namespace().ok_or(Error::NoNamespace)?;
        // Decisions read both caches (the binding; other accounts sharing a
        // grant): right after a start, before their first list is complete, a
        // binding would look missing and a shared grant unshared.
        let [bindings, accounts] = &ctx.listed;
        if !bindings.wait().await {
            return Err(Error::CacheClosed("KeyVaultBindings"));
        }
        if !accounts.wait().await {
            return Err(Error::CacheClosed("CosmosAccountCMKs"));
        }
        let api: Api<CosmosAccountCMK> = Api::namespaced(ctx.client.clone(), &ns);
        finalizer(&api, FINALIZER, obj, |event| async {
            match event {
                // The tenancy boundary comes before any Azure call.
                Finalizer::Apply(obj) => {
                    match tenancy_gate::refused_account(&api, &obj, &ctx).await? {
                        Some(refused) => Ok(refused),
                        None => apply(&api, &obj, &ctx).await,
                    }
                }
                Finalizer::Cleanup(obj) => {
                    match tenancy_gate::released_account(&obj, &ctx).await? {
                        Some(released) => Ok(released),
                        None => cleanup_account::cleanup_reported(&api, &obj, &ctx).await,
                    }
                }
            }
        })
        .await
        .map_err(|e| match e {
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(other.to_string()),
        })
    }
    .instrument(span)
    .await
}

/// This resource as account owner tags name it.
pub(super) fn owner_of<A>(obj: &CosmosAccountCMK, ctx: &Context<A>) -> Owner {
    Owner {
        cluster: ctx.settings.cluster_id.clone(),
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
        uid: obj.metadata.uid.clone().unwrap_or_default(),
    }
}

/// The vault of the binding an account names, from the cache.
pub(super) fn binding_vault<A>(obj: &CosmosAccountCMK, ctx: &Context<A>) -> Option<String> {
    let ns = obj.namespace().unwrap_or_default();
    ctx.bindings
        .get(&ObjectRef::<KeyVaultBinding>::new(&obj.spec.key_vault_binding_ref.name).within(&ns))
        .map(|b| b.spec.vault_resource_id.clone())
}

/// The adapter the resource acts with: its namespace's `credentialRef`, or
/// the operator's own identity.
pub(super) async fn azure_of<A: WithCredential>(
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
) -> Result<Arc<A>, Error> {
    ctx.azure_for(
        &obj.namespace().unwrap_or_default(),
        obj.spec.credential_ref.as_ref(),
    )
    .await
}

pub(super) fn account_ref(obj: &CosmosAccountCMK) -> AccountRef {
    AccountRef {
        subscription_id: obj.spec.subscription_id.clone(),
        resource_group: obj.spec.resource_group.clone(),
        name: obj.spec.account_name.clone(),
    }
}

/// The binding as the account needs it, from the shared cache. Only a miss
/// costs one GET: the bindings' watch is a separate stream, so a binding
/// applied together with its account (one `kubectl apply -f dir/`, one Argo
/// CD sync) may not be in the cache yet, and "not found" would be a false
/// Warning. A binding that really is missing is read once per resync.
pub(super) async fn binding_state<A>(
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
) -> Result<BindingState, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = &obj.spec.key_vault_binding_ref.name;
    let cached = ctx
        .bindings
        .get(&ObjectRef::<KeyVaultBinding>::new(name).within(&ns));
    let binding = match cached {
        Some(b) => b,
        None => match Api::<KeyVaultBinding>::namespaced(ctx.client.clone(), &ns)
            .get_opt(name)
            .await?
        {
            Some(b) => Arc::new(b),
            None => return Ok(BindingState::Missing),
        },
    };
    Ok(state_of_binding(&binding))
}

/// What a binding's spec and status say to the accounts that use it.
fn state_of_binding(b: &KeyVaultBinding) -> BindingState {
    let status = b.status.clone().unwrap_or_default();
    // The key in a binding's status is a record; only the key its spec names
    // is ever written to an account. (A status not yet caught up with a spec
    // edit is only "not reconciled yet", below.)
    if let Some(key) = status.key_uri.as_deref()
        && status.observed_generation == b.metadata.generation
        && !crate::reconcile::binding::spec_names_key(&b.spec, key)
    {
        return BindingState::NotReady {
            message: format!(
                "its status names key {key}, which is not the key its spec names ({} in vault {}); the operator writes only the spec's key",
                b.spec.key.name, b.spec.vault_resource_id
            ),
        };
    }
    let ready = conditions::find(&status.conditions, READY);
    let current = ready.is_some_and(|c| c.status == "True")
        && status.observed_generation == b.metadata.generation;
    match (current, status.key_uri, status.permission_model) {
        (true, Some(key_uri), Some(model)) => BindingState::Ready {
            vault_id: b.spec.vault_resource_id.clone(),
            key_uri,
            model,
        },
        _ if status.observed_generation != b.metadata.generation => BindingState::Updating,
        _ => BindingState::NotReady {
            message: ready.map_or_else(|| "not reconciled yet".to_owned(), |c| c.message.clone()),
        },
    }
}

/// One reconcile of a live account: observe (caches, then Azure as far as
/// needed) → decide (pure) → act (at most one Azure step) → report (status,
/// events, when to come back).
async fn apply_inner<A: WithCredential>(
    api: &Api<CosmosAccountCMK>,
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
) -> Result<Action, Error> {
    let scoped = azure_of(obj, ctx).await?;
    let azure = &*scoped;
    let seen = observe(obj, ctx, azure).await?;
    let Decision {
        mut status,
        action,
        requeue,
    } = account::decide(&seen.observed(obj, ctx));
    let synchronous = action.as_ref().is_some_and(Step::is_synchronous);
    let acted = match action {
        Some(step) => {
            act_account::act(obj, ctx, azure, step, seen, &mut status).await?;
            true
        }
        None => false,
    };
    report_outcome(api, obj, ctx, &status, acted).await?;
    Ok(Action::requeue(match requeue {
        // Nothing to wait for: the next step can go at once.
        Requeue::Soon if synchronous => Duration::ZERO,
        Requeue::Soon => status
            .pending_operation
            .as_ref()
            .map_or(ctx.settings.poll, |op| poll_delay(op, ctx)),
        Requeue::Resync => resync_delay(obj, ctx),
    }))
}

/// Writes the status when it changed; a condition transition without an
/// action of its own gets an event (an action already has one).
async fn report_outcome<A>(
    api: &Api<CosmosAccountCMK>,
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
    status: &CosmosAccountCMKStatus,
    acted: bool,
) -> Result<(), Error> {
    let old = obj.status.as_ref();
    if report::write_status(api, &ctx.own_writes, obj, old, status).await? && !acted {
        let before = old.map(|s| s.conditions.clone()).unwrap_or_default();
        report::transition_event(
            &ctx.recorder,
            &obj.object_ref(&()),
            &before,
            &status.conditions,
            status.phase,
        )
        .await;
    }
    Ok(())
}

/// Polls an operation; one that succeeded teaches how long its kind takes.
pub(super) async fn poll<A: AzurePort>(
    ctx: &Context<A>,
    azure: &A,
    op: &PendingOperation,
) -> Result<account::OperationState, Error> {
    let state = azure.poll(op).await?;
    if state == account::OperationState::Succeeded {
        ctx.op_durations.finished(op.kind.as_str(), age(op));
    }
    Ok(state)
}

fn age(op: &PendingOperation) -> Duration {
    Duration::try_from(Timestamp::now().duration_since(op.started_at.0)).unwrap_or_default()
}

/// When to poll an operation: after Azure's `Retry-After` when it gave one
/// (never sooner), else the poll interval, and not before it is as old as the
/// shortest recent operation of its kind took; at most the resync interval.
pub(super) fn poll_delay<A>(op: &PendingOperation, ctx: &Context<A>) -> Duration {
    let settings = &ctx.settings;
    let floor = Duration::from_millis(50);
    let retry_after = op
        .retry_after_ms
        .map_or(settings.poll, Duration::from_millis);
    op_durations::next_poll(
        retry_after,
        age(op),
        ctx.op_durations.shortest(op.kind.as_str()),
    )
    .clamp(floor, settings.resync.max(floor))
}

/// The resync interval, stretched so that drift checks of all accounts in a
/// subscription spend at most `resync_reads_per_second` of its ARM read
/// budget (a thousand accounts at a 60 s resync would use two thirds of it),
/// and spread by ±10 % per account so they do not come in lockstep.
fn resync_delay<A>(obj: &CosmosAccountCMK, ctx: &Context<A>) -> Duration {
    let settings = &ctx.settings;
    let peers = ctx
        .subscription_sizes
        .of(&ctx.accounts, &obj.spec.subscription_id);
    let budgeted =
        Duration::from_secs_f64(peers as f64 / settings.resync_reads_per_second.max(0.01));
    let base = settings.resync.max(budgeted);
    let spread = obj.metadata.uid.as_deref().map_or(0, |uid| {
        uid.bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
    }) % 21;
    base.mul_f64(0.9 + f64::from(spread) / 100.0)
}

/// Reconciles; a failure is recorded in the status and as an event.
async fn apply<A: WithCredential>(
    api: &Api<CosmosAccountCMK>,
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
) -> Result<Action, Error> {
    let result = apply_inner(api, obj, ctx).await;
    if let Err(err) = &result {
        report::failure(
            api,
            &ctx.own_writes,
            obj,
            obj.status.as_ref(),
            &ctx.recorder,
            err,
        )
        .await;
    }
    result
}
