//! Reconciles `KeyVaultBinding`: a short driver over the same named stages
//! as the account's — observe, decide (the core's pure state machine), act,
//! report. A binding never removes anything in Azure.

use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span};

use super::binding_rotation;
use super::context::Context;
use super::error::Error;
use super::report;
use super::tenancy_gate;
use crate::api::{KeyVaultBinding, Phase};
use crate::azure::AzurePort;
use crate::azure::scoped::WithCredential;
use crate::reconcile::binding::{
    self, BindingAction, BindingObserved, KeyFacts, VaultFacts, network_problem,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// One reconcile of a binding; a failure is recorded in the status and as an event.
pub async fn reconcile<A: WithCredential>(
    obj: Arc<KeyVaultBinding>,
    ctx: Arc<Context<A>>,
) -> Result<Action, Error> {
    let result = reconcile_inner(obj.clone(), ctx.clone()).await;
    if let (Err(err), Some(ns)) = (&result, obj.namespace()) {
        let api: Api<KeyVaultBinding> = Api::namespaced(ctx.client.clone(), &ns);
        report::failure(
            &api,
            &ctx.own_writes,
            &*obj,
            obj.status.as_ref(),
            &ctx.recorder,
            err,
        )
        .await;
    }
    result
}

/// One reconcile of a live binding: observe (the vault, and the key once the
/// vault passed its preflight) → decide (pure) → act (creating the key is the
/// only write a binding makes) → report (status and events).
async fn reconcile_inner<A: WithCredential>(
    obj: Arc<KeyVaultBinding>,
    ctx: Arc<Context<A>>,
) -> Result<Action, Error> {
    let span = info_span!("reconcile", kind = "KeyVaultBinding", namespace = obj.namespace(), name = %obj.name_any());
    async move {
        let ns = obj.namespace().ok_or(Error::NoNamespace)?;
        let api: Api<KeyVaultBinding> = Api::namespaced(ctx.client.clone(), &ns);
        // The tenancy boundary comes before any Azure call.
        if let Some(refused) = tenancy_gate::refused_binding(&api, &obj, &ctx).await? {
            return Ok(refused);
        }
        let status = obj.status.clone().unwrap_or_default();
        let azure = ctx.azure_for(&ns, obj.spec.credential_ref.as_ref()).await?;
        let (vault, key) = observe(&obj, &*azure).await?;
        let observed = BindingObserved {
            spec: &obj.spec,
            generation: obj.metadata.generation,
            status: &status,
            vault: vault.clone(),
            key: key.clone(),
            now: Time(Timestamp::now()),
        };
        let mut decision = binding::decide(&observed);
        let mut key = key;
        if let (Some(action), Some(v)) = (&decision.action, &vault) {
            let created = act(&obj, &ctx, &*azure, action, &v.vault_uri).await?;
            key = Some(created.clone());
            // Decide again with the key in hand, so the status says Ready at once.
            let first = decision.status.clone();
            decision = binding::decide(&BindingObserved {
                status: &first,
                key: Some(created),
                ..observed
            });
            decision.status.key_created_by_operator = true;
        }
        if let (Phase::Ready, Some(v), Some(k)) = (decision.status.phase, &vault, key) {
            binding_rotation::key_lifecycle(
                &api,
                &obj,
                &ctx,
                &*azure,
                &v.vault_uri,
                k,
                &mut decision.status,
            )
            .await?;
        }
        report_outcome(&api, &obj, &ctx, &decision.status).await?;
        Ok(Action::requeue(ctx.settings.resync))
    }
    .instrument(span)
    .await
}

/// The vault, and its key once the vault passes the preflight (a key in a
/// vault that cannot hold Cosmos DB keys is not worth a read).
async fn observe<A: AzurePort>(
    obj: &KeyVaultBinding,
    azure: &A,
) -> Result<(Option<VaultFacts>, Option<KeyFacts>), Error> {
    let vault = azure.get_vault(&obj.spec.vault_resource_id).await?;
    let preflight_ok = vault
        .as_ref()
        .is_some_and(|v| v.soft_delete && v.purge_protection && network_problem(v).is_none());
    let key = match &vault {
        Some(v) if preflight_ok => Some(azure.get_key(&v.vault_uri, &obj.spec.key.name).await?),
        _ => None,
    };
    Ok((vault, key))
}

/// Creates the key the decision asks for, with its events.
async fn act<A: AzurePort>(
    obj: &KeyVaultBinding,
    ctx: &Context<A>,
    azure: &A,
    action: &BindingAction,
    vault_uri: &str,
) -> Result<KeyFacts, Error> {
    let BindingAction::CreateKey {
        name,
        key_type,
        size,
        small,
    } = action;
    let reference = obj.object_ref(&());
    if *small {
        let note = format!("creating key {name} with {size} bits; Azure recommends at least 3072");
        report::publish(
            &ctx.recorder,
            &reference,
            EventType::Warning,
            "KeySizeBelowRecommended",
            "CreateKey",
            &note,
        )
        .await;
    }
    let created = azure.create_key(vault_uri, name, *key_type, *size).await?;
    report::publish(
        &ctx.recorder,
        &reference,
        EventType::Normal,
        "KeyCreated",
        "CreateKey",
        &format!("created key {name}"),
    )
    .await;
    Ok(created)
}

/// Writes the status when it changed, with an event for a condition transition.
async fn report_outcome<A>(
    api: &Api<KeyVaultBinding>,
    obj: &KeyVaultBinding,
    ctx: &Context<A>,
    status: &crate::api::KeyVaultBindingStatus,
) -> Result<(), Error> {
    let old = obj.status.as_ref();
    let wrote = report::write_status(api, &ctx.own_writes, obj, old, status).await?;
    if wrote {
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
    tracing::debug!(wrote, phase = ?status.phase, "reconciled");
    Ok(())
}
