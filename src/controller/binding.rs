//! Reconciles `KeyVaultBinding`: gathers the vault and key facts, lets the pure
//! state machine decide, carries out its one action, writes the status back.

use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span};

use super::context::Context;
use super::error::Error;
use super::report;
use super::tenancy_gate;
use crate::api::KeyVaultBinding;
use crate::azure::scoped::WithCredential;
use crate::reconcile::binding::{self, BindingAction, BindingObserved, network_problem};

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
        let old = obj.status.clone();
        let status = old.clone().unwrap_or_default();

        let azure = ctx.azure_for(&ns, obj.spec.credential_ref.as_ref()).await?;
        let vault = azure.get_vault(&obj.spec.vault_resource_id).await?;
        let preflight_ok = vault
            .as_ref()
            .is_some_and(|v| v.soft_delete && v.purge_protection && network_problem(v).is_none());
        let key = match &vault {
            Some(v) if preflight_ok => Some(azure.get_key(&v.vault_uri, &obj.spec.key.name).await?),
            _ => None,
        };
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        );
        let observed = BindingObserved {
            spec: &obj.spec,
            generation: obj.metadata.generation,
            status: &status,
            vault: vault.clone(),
            key,
            now,
        };
        let mut decision = binding::decide(&observed);
        let reference = obj.object_ref(&());

        if let (
            Some(BindingAction::CreateKey {
                name,
                key_type,
                size,
                small,
            }),
            Some(v),
        ) = (&decision.action, &vault)
        {
            if *small {
                let note =
                    format!("creating key {name} with {size} bits; Azure recommends at least 3072");
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
            let created = azure
                .create_key(&v.vault_uri, name, *key_type, *size)
                .await?;
            report::publish(
                &ctx.recorder,
                &reference,
                EventType::Normal,
                "KeyCreated",
                "CreateKey",
                &format!("created key {name}"),
            )
            .await;
            // Decide again with the key in hand, so the status says Ready at once.
            let first = decision.status.clone();
            decision = binding::decide(&BindingObserved {
                status: &first,
                key: Some(created),
                ..observed
            });
            decision.status.key_created_by_operator = true;
        }

        let wrote =
            report::write_status(&api, &ctx.own_writes, &obj, old.as_ref(), &decision.status)
                .await?;
        if wrote {
            let before = old.map(|s| s.conditions).unwrap_or_default();
            report::transition_event(
                &ctx.recorder,
                &reference,
                &before,
                &decision.status.conditions,
                decision.status.phase,
            )
            .await;
        }
        tracing::debug!(wrote, phase = ?decision.status.phase, "reconciled");
        Ok(Action::requeue(ctx.settings.resync))
    }
    .instrument(span)
    .await
}
