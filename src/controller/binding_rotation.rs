//! A ready binding's key over time: the rotation policy the spec asks for,
//! a `cosmoscmk.io/rotate` request, and the key's expiry in the status. The
//! decisions are the core's (`reconcile::rotation`); this carries them out.

use kube::api::Api;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::context::Context;
use super::error::Error;
use super::report;
use crate::api::{KeyVaultBinding, KeyVaultBindingStatus, ROTATE_ANNOTATION};
use crate::azure::AzurePort;
use crate::reconcile::binding::KeyFacts;
use crate::reconcile::rotation::{self, PolicyStep, RotateStep};
use k8s_openapi::jiff::Timestamp;

/// Runs after the binding's decision when its key is present: writes the
/// policy on drift, rotates on a new annotation value, reports expiry.
pub(super) async fn key_lifecycle<A: AzurePort>(
    api: &Api<KeyVaultBinding>,
    obj: &KeyVaultBinding,
    ctx: &Context<A>,
    azure: &A,
    vault_uri: &str,
    key: KeyFacts,
    status: &mut KeyVaultBindingStatus,
) -> Result<(), Error> {
    let KeyFacts::Present {
        mut version,
        mut created,
        mut expires,
        ..
    } = key
    else {
        return Ok(());
    };
    let name = &obj.spec.key.name;
    let reference = obj.object_ref(&());
    status.rotation_policy = match &obj.spec.key.rotation {
        Some(want) => converge_policy(ctx, azure, obj, vault_uri, want).await?,
        // Without a spec'd policy the key's own stays untouched and unread.
        None => None,
    };

    let now = Timestamp::now();
    let step = rotation::rotate_step(
        obj.annotations().get(ROTATE_ANNOTATION).map(String::as_str),
        status.rotate_request.as_ref(),
        Some((version.as_str(), created)),
        now,
    );
    let rotate = match step {
        RotateStep::Nothing => false,
        RotateStep::Done(made) => {
            if let Some(rec) = status.rotate_request.as_mut() {
                rec.version = Some(made);
            }
            false
        }
        RotateStep::Start(rec) => {
            // Recorded before the call: a restart after a rotate whose status
            // write was lost finds the version made since, and rotates no more.
            status.rotate_request = Some(rec);
            report::write_status(api, &ctx.own_writes, obj, obj.status.as_ref(), &*status).await?;
            true
        }
        RotateStep::Rotate => true,
    };
    if rotate {
        if let KeyFacts::Present {
            version: v,
            created: c,
            expires: e,
            ..
        } = azure.rotate_key(vault_uri, name).await?
        {
            (version, created, expires) = (v, c, e);
        }
        let value = status
            .rotate_request
            .as_ref()
            .map(|r| r.value.clone())
            .unwrap_or_default();
        if let Some(rec) = status.rotate_request.as_mut() {
            rec.version = Some(version.clone());
        }
        status.key_version = Some(version.clone());
        report::publish(
            &ctx.recorder,
            &reference,
            EventType::Normal,
            "KeyRotated",
            "RotateKey",
            &format!("rotated key {name} to version {version} ({ROTATE_ANNOTATION}={value}); the accounts on it move to the new version"),
        )
        .await;
    }

    let policy = obj
        .spec
        .key
        .rotation
        .as_ref()
        .and(status.rotation_policy.clone());
    if let Some(warning) = rotation::report_expiry(
        status,
        policy.as_ref(),
        created,
        expires,
        obj.metadata.generation,
        now,
    ) {
        report::publish(
            &ctx.recorder,
            &reference,
            EventType::Warning,
            "KeyExpiring",
            "Reconcile",
            &warning,
        )
        .await;
    }
    Ok(())
}

/// Reads the key's policy and writes the spec's when `policy_step` allows.
/// Returns the policy this binding now stands by in Key Vault (its
/// `last_seen` next time): a foreign policy is reported and never recorded
/// as seen, or the next resync would take it for the binding's own.
async fn converge_policy<A: AzurePort>(
    ctx: &Context<A>,
    azure: &A,
    obj: &KeyVaultBinding,
    vault_uri: &str,
    want: &crate::api::KeyRotation,
) -> Result<Option<crate::api::KeyRotation>, Error> {
    let name = &obj.spec.key.name;
    let have = azure.get_rotation_policy(vault_uri, name).await?;
    let last_seen = obj.status.as_ref().and_then(|s| s.rotation_policy.as_ref());
    let write = match rotation::policy_step(Some(want), &have, last_seen) {
        PolicyStep::Nothing => return Ok(Some(have)),
        PolicyStep::KeepForeign => {
            report::publish(
                &ctx.recorder,
                &obj.object_ref(&()),
                EventType::Warning,
                "RotationPolicyKept",
                "SetRotationPolicy",
                &format!("key {name} has a rotation policy set outside this binding, which differs from spec.key.rotation; it is left as it is (another owner, Terraform or another cluster, may rely on it). To have the operator manage it, reset the key's policy in Key Vault to none, or align spec.key.rotation with it"),
            )
            .await;
            return Ok(last_seen.cloned());
        }
        PolicyStep::Write(write) => write,
    };
    let written = azure.set_rotation_policy(vault_uri, name, &write).await?;
    report::publish(
        &ctx.recorder,
        &obj.object_ref(&()),
        EventType::Normal,
        "RotationPolicySet",
        "SetRotationPolicy",
        &format!("wrote the rotation policy of key {name} as spec.key.rotation says"),
    )
    .await;
    Ok(Some(written))
}
