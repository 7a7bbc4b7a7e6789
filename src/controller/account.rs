//! Reconciles `CosmosAccountCMK`: gathers what the state machine needs (the
//! binding from the shared cache, Azure's view of the account, grants, the
//! pending operation), carries out the one action it decides, writes status.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span};

use std::time::Duration;

use super::context::Context;
use super::error::Error;
use super::guard_facts;
use super::observe_account::{Seen, observe};
use super::op_durations;
use super::report::{self, StepEvent};
use super::tenancy_gate;
use crate::api::CONFIRM_OWNER_ANNOTATION;
use crate::api::conditions::{self, READY};
use crate::api::{
    CosmosAccountCMK, CosmosAccountCMKStatus, DeletionPolicy, Grant, KeyVaultBinding,
    OperationKind, PendingOperation, Phase, ReconcilePolicy, same_id,
};
use crate::azure::scoped::WithCredential;
use crate::azure::{AccountChange, AccountRef, AzurePort, DisableOutcome, NewAccount};
use crate::reconcile::account::{self, Action as Step, BindingState, Decision, Requeue};
use crate::reconcile::destructive::{DeletionFacts, DeletionVerdict, account_deletion};
use crate::reconcile::ownership::{self, Owner};
use crate::reconcile::sharing::Peer;

/// Keeps the object until its deletion policy has been carried out in Azure.
pub const FINALIZER: &str = "cosmoscmk.io/finalizer";

/// Field names Cassandra reserves under CMK (the seed's warning).
const CASSANDRA_RESERVED: &str = "id, ttl, _ts, _etag, _rid, _self, _attachments, _epk";

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
                        None => cleanup_reported(&api, &obj, &ctx).await,
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
fn binding_vault<A>(obj: &CosmosAccountCMK, ctx: &Context<A>) -> Option<String> {
    let ns = obj.namespace().unwrap_or_default();
    ctx.bindings
        .get(&ObjectRef::<KeyVaultBinding>::new(&obj.spec.key_vault_binding_ref.name).within(&ns))
        .map(|b| b.spec.vault_resource_id.clone())
}

/// Every other account in the cluster as sharing sees it, and the grant records
/// the live ones hold (from the cache: no API call).
pub(super) fn peers<A>(
    ctx: &Context<A>,
    this: &CosmosAccountCMK,
    now: k8s_openapi::jiff::Timestamp,
) -> (Vec<Peer>, Vec<Grant>) {
    let mut peers = Vec::new();
    let mut grants = Vec::new();
    for other in ctx.accounts.state() {
        if other.metadata.uid == this.metadata.uid {
            continue;
        }
        let live = other.metadata.deletion_timestamp.is_none();
        let vault = binding_vault(&other, ctx);
        peers.push(Peer::of(
            &other.spec,
            other.status.as_ref(),
            vault.as_deref(),
            &ctx.settings.first_party_principal,
            live,
            now,
        ));
        if live && let Some(s) = &other.status {
            grants.extend(s.grants.iter().cloned());
        }
    }
    (peers, grants)
}

pub(super) fn account_ref(obj: &CosmosAccountCMK) -> AccountRef {
    AccountRef {
        subscription_id: obj.spec.subscription_id.clone(),
        resource_group: obj.spec.resource_group.clone(),
        name: obj.spec.account_name.clone(),
    }
}

/// The binding as the account needs it, from the shared cache (no API call).
pub(super) fn binding_state<A>(obj: &CosmosAccountCMK, ctx: &Context<A>) -> BindingState {
    let ns = obj.namespace().unwrap_or_default();
    let Some(b) = ctx
        .bindings
        .get(&ObjectRef::<KeyVaultBinding>::new(&obj.spec.key_vault_binding_ref.name).within(&ns))
    else {
        return BindingState::Missing;
    };
    let status = b.status.clone().unwrap_or_default();
    // The key in a binding's status is a record; only the key its spec names
    // is ever written to an account.
    if let Some(key) = status.key_uri.as_deref()
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
        _ if status.observed_generation != b.metadata.generation => BindingState::NotReady {
            message: "its latest change has not been reconciled yet".to_owned(),
        },
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
    let scoped = ctx
        .azure_for(
            &obj.namespace().unwrap_or_default(),
            obj.spec.credential_ref.as_ref(),
        )
        .await?;
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
            act(obj, ctx, azure, step, seen, &mut status).await?;
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

/// Carries out the decided step, keeps the vault's grant cache true to what
/// Azure now holds, and publishes the step's event.
async fn act<A: WithCredential>(
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
    azure: &A,
    step: Step,
    seen: Seen,
    status: &mut CosmosAccountCMKStatus,
) -> Result<(), Error> {
    let Seen {
        mut turn,
        grants_vault,
        granted,
        ..
    } = seen;
    // The vault's grant turn is kept through the action only when it is the grant.
    if !matches!(step, Step::Grant { .. }) {
        drop(turn.take());
    }
    let done = carry_out(obj, ctx, azure, &account_ref(obj), &step, status).await;
    drop(turn);
    if let Some(vault_id) = &grants_vault {
        match (&step, &done) {
            // Azure may have refused for want of the grant: check it again next time.
            (_, Err(_)) => ctx.grants.forget(vault_id, &granted),
            (Step::RevokeGrant { grant, .. }, Ok(_)) => ctx
                .grants
                .forget(vault_id, std::slice::from_ref(&grant.principal_id)),
            (Step::Grant { principal_id, .. }, Ok(_)) => ctx
                .grants
                .confirm(vault_id, std::slice::from_ref(principal_id)),
            _ => {}
        }
    }
    let done = done?;
    let reference = obj.object_ref(&());
    let name = done.reason;
    report::publish(
        &ctx.recorder,
        &reference,
        done.type_,
        name,
        name,
        &done.note,
    )
    .await;
    if matches!(step, Step::CreateAccount(_))
        && obj
            .spec
            .capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case("EnableCassandra"))
    {
        let note = format!(
            "with customer-managed keys, Cassandra API tables reserve the field names {CASSANDRA_RESERVED}"
        );
        report::publish(
            &ctx.recorder,
            &reference,
            EventType::Warning,
            "CassandraReservedFields",
            name,
            &note,
        )
        .await;
    }
    Ok(())
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
fn poll_delay<A>(op: &PendingOperation, ctx: &Context<A>) -> Duration {
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
        .accounts
        .state()
        .iter()
        .filter(|a| {
            a.spec
                .subscription_id
                .eq_ignore_ascii_case(&obj.spec.subscription_id)
        })
        .count();
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

/// Executes one step; returns the event reason and note.
async fn carry_out<A: WithCredential>(
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
    azure: &A,
    target: &AccountRef,
    step: &Step,
    status: &mut CosmosAccountCMKStatus,
) -> Result<StepEvent, Error> {
    let change = |c: AccountChange| async move { azure.update_account(target, &c).await };
    Ok(StepEvent::from(match step {
        Step::Grant {
            vault_id,
            model,
            principal_id,
        } => {
            let made = azure.grant(vault_id, *model, principal_id).await?;
            status.grants.retain(|g| !g.is_for(vault_id, principal_id));
            status.grants.push(made);
            (
                "GrantedKeyAccess",
                format!("granted principal {principal_id} Get/WrapKey/UnwrapKey on the key vault"),
            )
        }
        Step::RevokeGrant { vault_id, grant } => {
            return guard_facts::remove_grant(ctx, azure, obj, vault_id, grant).await;
        }
        Step::CreateAccount(c) => {
            let new = NewAccount {
                account: target.clone(),
                kind: obj.spec.kind.as_str().to_owned(),
                locations: obj.spec.locations.clone(),
                capabilities: obj.spec.capabilities.clone(),
                key_uri: c.key_uri.clone(),
                default_identity: c.default_identity.clone(),
                user_assigned_identity: c.user_assigned_identity.clone(),
                backup: obj.spec.backup_policy.clone(),
                restore: obj.spec.restore.clone(),
                tags: c.tags.clone(),
            };
            status.pending_operation = Some(azure.create_account(&new).await?);
            (
                "CreatingAccount",
                format!("creating account {} with key {}", target.name, c.key_uri),
            )
        }
        Step::TagAccount(owner) => {
            status.pending_operation = Some(change(AccountChange::SetOwner(owner.clone())).await?);
            (
                "AdoptingAccount",
                format!("adopting account {}: writing its owner tags", target.name),
            )
        }
        Step::EnableSystemIdentity => {
            status.pending_operation = Some(change(AccountChange::EnableSystemIdentity).await?);
            (
                "EnablingSystemIdentity",
                "enabling the account's system-assigned identity".to_owned(),
            )
        }
        Step::AddUserAssignedIdentity(id) => {
            status.pending_operation =
                Some(change(AccountChange::AddUserAssignedIdentity(id.clone())).await?);
            (
                "AddingUserAssignedIdentity",
                format!("adding identity {id} to the account"),
            )
        }
        Step::SetDefaultIdentity(value) => {
            status.pending_operation =
                Some(change(AccountChange::SetDefaultIdentity(value.clone())).await?);
            (
                "SettingDefaultIdentity",
                format!("setting defaultIdentity to {value}"),
            )
        }
        Step::SetKeyUri(uri) => {
            status.pending_operation = Some(change(AccountChange::SetKeyUri(uri.clone())).await?);
            ("SettingKeyUri", format!("setting keyVaultKeyUri to {uri}"))
        }
        Step::SetLocations(locations) => {
            status.pending_operation =
                Some(change(AccountChange::SetLocations(locations.clone())).await?);
            (
                "UpdatingRegions",
                format!(
                    "setting the account's regions to [{}] (one region added or removed)",
                    regions(locations)
                ),
            )
        }
        Step::ChangeFailoverPriorities(locations) => {
            status.pending_operation =
                Some(change(AccountChange::ChangeFailoverPriorities(locations.clone())).await?);
            (
                "ChangingFailoverPriorities",
                format!("changing the failover order to [{}]", regions(locations)),
            )
        }
        Step::SetBackupPolicy(policy) => {
            status.pending_operation =
                Some(change(AccountChange::SetBackupPolicy(policy.clone())).await?);
            (
                "UpdatingBackupPolicy",
                format!("setting the backup policy to {}", backup_words(policy)),
            )
        }
        Step::DisableKeyVersion { key_uri, version } => {
            let now = ctx.settings.clock.now();
            let retired_at = status
                .retained_key_versions
                .iter()
                .find(|r| same_id(&r.key_uri, key_uri) && r.version == *version)
                .and_then(|r| r.retired_at.as_ref().map(|t| t.0))
                .unwrap_or(now);
            let (outcome, until) =
                guard_facts::disable_version(ctx, azure, obj, key_uri, version, retired_at).await?;
            return Ok(disable_note(status, key_uri, version, outcome, until, now));
        }
    }))
}

/// Regions in failover order, for an event.
fn regions(locations: &[crate::api::Location]) -> String {
    let mut l: Vec<_> = locations.iter().collect();
    l.sort_by_key(|l| l.failover_priority);
    l.iter()
        .map(|l| format!("{} ({})", l.location_name, l.failover_priority))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A backup policy in words, for an event.
fn backup_words(b: &crate::api::BackupPolicy) -> String {
    match (b.type_, b.continuous_tier) {
        (crate::api::BackupPolicyType::Continuous, Some(t)) => format!("Continuous ({t:?})"),
        (crate::api::BackupPolicyType::Continuous, None) => "Continuous".to_owned(),
        (crate::api::BackupPolicyType::Periodic, _) => format!(
            "Periodic every {} min, kept {} h",
            b.periodic_interval_minutes
                .unwrap_or(crate::api::DEFAULT_PERIODIC_INTERVAL_MINUTES),
            b.periodic_retention_hours
                .unwrap_or(crate::api::DEFAULT_PERIODIC_RETENTION_HOURS)
        ),
    }
}

/// Carries out the deletion policy; a failure says in the status what blocks
/// the deletion and how to release the object.
async fn cleanup_reported<A: WithCredential>(
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
    let scoped = ctx
        .azure_for(
            &obj.namespace().unwrap_or_default(),
            obj.spec.credential_ref.as_ref(),
        )
        .await?;
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

/// What the restore's source looked like: its name (from Azure), the identities
/// it has (in Azure, and the one its resource names, when it is in the cluster),
/// and the key version it used at the restore time with its state in Key Vault
/// (when the operator tracked the source).
pub(super) async fn restore_facts<A: AzurePort>(
    ctx: &Context<A>,
    azure: &A,
    restore: &crate::api::RestoreSource,
) -> Result<account::RestoreFacts, Error> {
    let mut facts = account::RestoreFacts::default();
    let Some(source_id) = &restore.source_account_id else {
        return Ok(facts);
    };
    facts.source_name = azure.restorable_account_name(source_id).await?;
    let Some(name) = &facts.source_name else {
        return Ok(facts);
    };
    let source = ctx
        .accounts
        .state()
        .into_iter()
        .find(|a| a.spec.account_name.eq_ignore_ascii_case(name));
    let Some(source) = source else {
        // A source made outside this cluster (by hand, Terraform, another
        // cluster): its identities are read from Azure, where account names
        // are unique, in the restorable source's subscription.
        if let Some(sub) = source_id.split('/').nth(2) {
            let live = azure.accounts_in_subscription(sub).await?;
            if let Some(a) = live.into_iter().find(|a| {
                a.id.rsplit('/')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            }) {
                facts.source_identities.extend(a.user_assigned_ids);
            }
        }
        return Ok(facts);
    };
    facts
        .source_identities
        .extend(source.spec.identity.user_assigned_identity_id.clone());
    if let Some(a) = azure.get_account(&account_ref(&source)).await? {
        facts.source_identities.extend(a.user_assigned_ids);
    }
    let when = restore
        .timestamp
        .as_deref()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
    if let (Some(when), Some(status)) = (when, &source.status)
        && let Some((uri, version)) = account::version_in_use_at(status, when)
    {
        let enabled = azure.key_version_enabled(&uri, &version).await?;
        facts.key_at_time = Some((uri, version, enabled));
    }
    Ok(facts)
}

/// Records what disabling a version did; a version left enabled is looked at
/// again an hour later (not on every reconcile: each look reads every account).
fn disable_note(
    status: &mut CosmosAccountCMKStatus,
    key_uri: &str,
    version: &str,
    outcome: DisableOutcome,
    until: Option<k8s_openapi::jiff::Timestamp>,
    now: k8s_openapi::jiff::Timestamp,
) -> StepEvent {
    let entry = status
        .retained_key_versions
        .iter_mut()
        .find(|r| same_id(&r.key_uri, key_uri) && r.version == version);
    match outcome {
        DisableOutcome::Disabled | DisableOutcome::AlreadyDisabled => StepEvent::from((
            "DisabledPreviousKeyVersion",
            format!(
                "disabled key version {version} of {key_uri}, past its grace period and backup window and used by no account"
            ),
        )),
        DisableOutcome::Kept(why) => {
            if let Some(r) = entry {
                r.disabled = false;
                r.kept_because = Some(why.clone());
                let hour_later = now
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(1))
                    .unwrap_or(now);
                // A window Azure reports longer than the record's moves it out.
                let later = until.map_or(hour_later, |t| t.max(hour_later));
                r.safe_to_disable_after =
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(later);
            }
            if status.previous_key_version.as_deref() == Some(version) {
                status.previous_version_disabled = false;
            }
            StepEvent::warning(
                "KeyVersionKept",
                format!(
                    "left key version {version} of {key_uri} enabled: {why}; checked again in an hour"
                ),
            )
        }
    }
}
