//! The act stage of an account's reconcile: carries out the one step the
//! state machine decided (a destructive one through `guard_facts`, which
//! re-derives its target and asks the core's rule first), keeps the vault's
//! grant cache true to what Azure now holds, and publishes the step's event.

use kube::Resource;
use kube::runtime::events::EventType;

use super::account::account_ref;
use super::context::Context;
use super::error::Error;
use super::guard_facts;
use super::observe_account::Seen;
use super::report::{self, StepEvent};
use crate::api::{CosmosAccountCMK, CosmosAccountCMKStatus, same_id};
use crate::azure::scoped::WithCredential;
use crate::azure::{AccountChange, AccountRef, NewAccount};
use crate::reconcile::account::Action as Step;
use crate::reconcile::destructive;

/// The Request Unit overhead of customer-managed keys, as the CMK guide's FAQ
/// "How do customer-managed keys influence capacity planning?" gives it
/// (shared/seed/how-to-setup-customer-managed-keys.md).
pub const RU_OVERHEAD_REASON: &str = "CmkRequestUnitOverhead";
pub const RU_OVERHEAD_NOTE: &str = "customer-managed keys add Request Units to every operation: about +6% per write (plus about 0.06 RU per indexed property), +5% per point read and +15% per query or change-feed read; plan provisioned throughput accordingly";

/// Field names Cassandra reserves under CMK (the seed's warning).
const CASSANDRA_RESERVED: &str = "id, ttl, _ts, _etag, _rid, _self, _attachments, _epk";

/// Carries out the decided step, keeps the vault's grant cache true to what
/// Azure now holds, and publishes the step's event.
pub(super) async fn act<A: WithCredential>(
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
    if matches!(step, Step::CreateAccount(_)) {
        // Once per account: the create call is made once (its operation is
        // persisted in status before anything else runs), so a resync or a
        // restart never repeats this.
        report::publish(
            &ctx.recorder,
            &reference,
            EventType::Normal,
            RU_OVERHEAD_REASON,
            name,
            RU_OVERHEAD_NOTE,
        )
        .await;
    }
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
                settings: c.settings.clone(),
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
        Step::UpdateSettings(update) => {
            status.pending_operation =
                Some(change(AccountChange::SetSettings(update.clone())).await?);
            (
                if update.owner.is_some() {
                    "AdoptingAccount"
                } else {
                    "UpdatingAccountSettings"
                },
                format!("updating the account's settings{}", settings_words(update)),
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
            return Ok(
                destructive::settle_disable(status, key_uri, version, outcome, until, now).into(),
            );
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

/// What a settings update writes, for an event.
fn settings_words(u: &crate::reconcile::settings_drift::SettingsUpdate) -> String {
    let s = &u.settings;
    let mut parts = Vec::new();
    if let Some(v) = s.public_network_access {
        parts.push(format!("publicNetworkAccess {}", v.as_str()));
    }
    if let Some(v) = s.disable_local_auth {
        parts.push(format!("disableLocalAuth {v}"));
    }
    if let Some(v) = s.minimal_tls_version {
        parts.push(format!("minimalTlsVersion {}", v.as_str()));
    }
    if let Some(v) = s.network_acl_bypass {
        parts.push(format!("networkAclBypass {}", v.as_str()));
    }
    if let Some(v) = s.is_virtual_network_filter_enabled {
        parts.push(format!("isVirtualNetworkFilterEnabled {v}"));
    }
    if let Some(v) = &s.ip_rules {
        parts.push(format!("{} IP rule(s)", v.len()));
    }
    if let Some(v) = &s.virtual_network_rules {
        parts.push(format!("{} virtual network rule(s)", v.len()));
    }
    if let Some(v) = &s.network_acl_bypass_resource_ids {
        parts.push(format!("{} bypass resource id(s)", v.len()));
    }
    if !u.tags.is_empty() {
        let names: Vec<&str> = u.tags.keys().map(String::as_str).collect();
        parts.push(format!("tags {}", names.join(", ")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}
