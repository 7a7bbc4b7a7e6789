//! The cleanup stage of an account: its deletion policy carried out in Azure
//! before the finalizer goes. What is deleted or removed is decided by the
//! core's rules (`reconcile::destructive`) over what Azure says at that
//! moment; the status only says what to look at.

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::account::{account_ref, azure_of, binding_vault, owner_of, poll, poll_delay};
use super::context::Context;
use super::error::Error;
use super::guard_facts;
use super::report;
use crate::api::conditions::{self, READY};
use crate::api::{
    CONFIRM_OWNER_ANNOTATION, CosmosAccountCMK, CosmosAccountCMKStatus, DeletionPolicy,
    OperationKind, Phase, ReconcilePolicy,
};
use crate::azure::scoped::WithCredential;
use crate::reconcile::account;
use crate::reconcile::destructive::{DeletionFacts, DeletionVerdict, account_deletion};
use crate::reconcile::ownership;

/// Carries out the deletion policy; a failure says in the status what blocks
/// the deletion and how to release the object.
pub(super) async fn cleanup_reported<A: WithCredential>(
    api: &Api<CosmosAccountCMK>,
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
) -> Result<Action, Error> {
    let result = cleanup(api, obj, ctx).await;
    if let Err(err) = &result
        && !matches!(err, Error::DeletionInProgress(_))
    {
        let old = obj.status.clone();
        let mut status = old.clone().unwrap_or_default();
        status.phase = Phase::Deleting;
        // What Azure refused is kept where users look for it (an
        // AuthorizationFailed here names the missing action, its scope and
        // the role file); the same refusal again keeps its first time.
        if let Error::Azure(e) = err {
            let record = report::record_for("Delete", e, Timestamp::now());
            report::remember_error(&mut status.last_azure_error, record);
        }
        let message = format!(
            "deletion policy Delete cannot be carried out: {err}; the operator retries with backoff. To release the object without touching Azure, set spec.deletionPolicy to Retain (the account and its grants stay in Azure)"
        );
        let c = conditions::condition(
            READY,
            "False",
            crate::reconcile::reasons::DELETION_BLOCKED,
            message.clone(),
            obj.metadata.generation,
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        conditions::set_condition(&mut status.conditions, c);
        if report::write_status(api, &ctx.own_writes, obj, old.as_ref(), &status)
            .await
            .unwrap_or(false)
        {
            report::publish(
                &ctx.recorder,
                &obj.object_ref(&()),
                EventType::Warning,
                crate::reconcile::reasons::DELETION_BLOCKED,
                "Delete",
                &message,
            )
            .await;
        }
    }
    result
}

/// Carries out the deletion policy; the finalizer goes once this returns Ok.
async fn cleanup<A: WithCredential>(
    api: &Api<CosmosAccountCMK>,
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
) -> Result<Action, Error> {
    let observe_only = obj.spec.reconcile_policy == ReconcilePolicy::ObserveOnly;
    if obj.spec.deletion_policy == DeletionPolicy::Retain || observe_only {
        let note = "deletion policy Retain (or observe-only): the Azure account and its grants are left in place";
        report::publish(
            &ctx.recorder,
            &obj.object_ref(&()),
            EventType::Normal,
            "Retained",
            "Delete",
            note,
        )
        .await;
        return Ok(Action::await_change());
    }
    let old = obj.status.clone();
    let mut status = old.clone().unwrap_or_default();
    let target = account_ref(obj);
    let scoped = azure_of(obj, ctx).await?;
    let azure = &*scoped;
    status.phase = Phase::Deleting;

    if let Some(op) = &status.pending_operation
        && op.kind == OperationKind::DeleteAccount
    {
        if poll(ctx, azure, op).await? == account::OperationState::InProgress {
            report::write_status(api, &ctx.own_writes, obj, old.as_ref(), &status).await?;
            return Err(Error::DeletionInProgress(poll_delay(op, ctx)));
        }
        status.pending_operation = None;
    }
    // Re-derived at the moment of the call: only an account whose owner tags in
    // Azure name this very resource is deleted, whatever the status says.
    let current = azure.get_account(&target).await?;
    let owner = owner_of(obj, ctx);
    let previous = ctx.settings.previous_cluster_id.as_deref();
    let facts = DeletionFacts {
        account_name: &target.name,
        me: &owner,
        ownership: current.map(|a| ownership::classify(&a.tags, &owner, previous)),
        confirmed_uid: obj
            .annotations()
            .get(CONFIRM_OWNER_ANNOTATION)
            .map(String::as_str),
    };
    match account_deletion(&facts) {
        DeletionVerdict::Delete => {
            match azure.delete_account(&target).await? {
                Some(op) => status.pending_operation = Some(op),
                None => status.pending_operation = None,
            }
            report::publish(
                &ctx.recorder,
                &obj.object_ref(&()),
                EventType::Normal,
                "DeletingAccount",
                "Delete",
                &format!("deleting account {}", target.name),
            )
            .await;
            report::write_status(api, &ctx.own_writes, obj, old.as_ref(), &status).await?;
            let next = status
                .pending_operation
                .as_ref()
                .map_or(ctx.settings.poll, |op| poll_delay(op, ctx));
            return Err(Error::DeletionInProgress(next));
        }
        DeletionVerdict::NeedsConfirmation(why) => return Err(Error::OwnerUnconfirmed(why)),
        DeletionVerdict::NotOurs(why) => {
            let note = format!("deletion policy Delete, but the account is not deleted: {why}");
            report::publish(
                &ctx.recorder,
                &obj.object_ref(&()),
                EventType::Warning,
                "AccountNotDeleted",
                "Delete",
                &note,
            )
            .await;
        }
        DeletionVerdict::AlreadyGone => {}
    }
    remove_grants(obj, ctx, azure, &status).await?;
    Ok(Action::await_change())
}

/// Settles the grants this resource holds records of: each is removed only
/// when the core's rule allows it at that moment (`guard_facts::remove_grant`),
/// and an event says what was removed or left and why. Grants record their
/// vault, so this works after the binding is gone too.
async fn remove_grants<A: WithCredential>(
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
    azure: &A,
    status: &CosmosAccountCMKStatus,
) -> Result<(), Error> {
    let fallback = binding_vault(obj, ctx);
    for grant in &status.grants {
        let Some(vault_id) = grant.vault_id.clone().or_else(|| fallback.clone()) else {
            let note = format!(
                "the vault of the grant for principal {} is not recorded and the binding is gone: the grant is left in place",
                grant.principal_id
            );
            report::publish(
                &ctx.recorder,
                &obj.object_ref(&()),
                EventType::Warning,
                "GrantKept",
                "Delete",
                &note,
            )
            .await;
            continue;
        };
        let done = guard_facts::remove_grant(ctx, azure, obj, &vault_id, grant).await?;
        report::publish(
            &ctx.recorder,
            &obj.object_ref(&()),
            done.type_,
            done.reason,
            "Delete",
            &done.note,
        )
        .await;
    }
    Ok(())
}
