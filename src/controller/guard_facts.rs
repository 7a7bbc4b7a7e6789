//! The facts the destructive rules (`crate::reconcile::destructive`) decide
//! over, read at the moment of the call: from the resource's spec, the
//! bindings' specs, the tenancy policy and Azure — never from a status. Then
//! the one call the verdict allows, and its event.
//!
//! Reads that could not be made count as "unknown", and every rule keeps what
//! it cannot prove unused; a subscription that cannot be read never blocks a
//! deletion, it only keeps a grant or a key version.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::cache_peers::CachePeers;
use super::context::Context;
use super::error::Error;
use super::report::StepEvent;
use super::tenancy_gate;
use crate::api::{CosmosAccountCMK, GrantRemoval, KeyVaultBinding, same_id};
use crate::azure::{AzurePort, DisableOutcome, RevokeOutcome};
use crate::reconcile::account::AccountFacts;
use crate::reconcile::binding::{KeyFacts, spec_names_key};
use crate::reconcile::destructive::{
    self, AzureUse, GrantRemovalFacts, VersionDisableFacts, VersionVerdict,
};
use crate::reconcile::sharing::Peers;

/// Bindings of the resource's namespace whose spec names the vault.
fn bindings_on_vault<A>(ctx: &Context<A>, ns: &str, vault_id: &str) -> Vec<KeyVaultBinding> {
    ctx.bindings
        .state()
        .iter()
        .filter(|b| {
            b.namespace().as_deref() == Some(ns) && same_id(&b.spec.vault_resource_id, vault_id)
        })
        .map(|b| (**b).clone())
        .collect()
}

/// The binding of the resource's namespace whose spec names the key.
fn binding_of_key<A>(ctx: &Context<A>, ns: &str, key_uri: &str) -> Option<KeyVaultBinding> {
    ctx.bindings
        .state()
        .iter()
        .find(|b| b.namespace().as_deref() == Some(ns) && spec_names_key(&b.spec, key_uri))
        .map(|b| (**b).clone())
}

/// An account as an event of `ns` may name it: by id when the namespace may
/// act on it, otherwise without saying whose it is.
fn describe<A>(ctx: &Context<A>, obj: &CosmosAccountCMK, account_id: &str) -> String {
    let ns = obj.namespace().unwrap_or_default();
    if tenancy_gate::allows(ctx, &ns, obj.spec.credential_ref.is_some(), account_id) {
        format!("account {account_id}")
    } else {
        "an account outside this namespace's tenancy scopes".to_owned()
    }
}

/// The subscriptions to read for uses of a vault: every subscription the
/// identity can read, and the vault's own.
async fn subscriptions<A: AzurePort>(azure: &A, vault_id: &str) -> Result<Vec<String>, String> {
    let mut subs = azure
        .subscriptions()
        .await
        .map_err(|e| format!("the subscriptions could not be listed ({e})"))?;
    if let Some(own) = vault_id.split('/').nth(2) {
        subs.push(own.to_owned());
    }
    for s in &mut subs {
        s.make_ascii_lowercase();
    }
    subs.sort();
    subs.dedup();
    Ok(subs)
}

/// Every account Azure shows in `subs`, or why not all could be read.
async fn accounts_in<A: AzurePort>(
    azure: &A,
    subs: &[String],
) -> Result<Vec<AccountFacts>, String> {
    let mut out = Vec::new();
    for sub in subs {
        let found = azure
            .accounts_in_subscription(sub)
            .await
            .map_err(|e| format!("the accounts of subscription {sub} could not be read ({e})"))?;
        out.extend(found);
    }
    Ok(out)
}

/// Whether `a` uses `principal` with a key of the vault at `vault_uri`.
fn uses_principal_on_vault(a: &AccountFacts, fp: &str, vault_uri: &str, principal: &str) -> bool {
    let in_vault = a
        .key_vault_key_uri
        .as_deref()
        .is_some_and(|k| k.to_ascii_lowercase().starts_with(&format!("{vault_uri}/")));
    let first_party = a
        .default_identity
        .as_deref()
        .is_none_or(|d| d.eq_ignore_ascii_case("FirstPartyIdentity"));
    let user = if first_party {
        Some(fp)
    } else {
        a.default_identity_principal.as_deref()
    };
    in_vault && user.is_some_and(|p| p.eq_ignore_ascii_case(principal))
}

/// Removes one grant the resource holds a record of, when the core's rule
/// allows it; the vault's grant turn is held throughout, so no account
/// checks (and trusts) that grant while it goes.
pub(super) async fn remove_grant<A: AzurePort>(
    ctx: &Context<A>,
    azure: &A,
    obj: &CosmosAccountCMK,
    vault_id: &str,
    grant: &crate::api::Grant,
) -> Result<StepEvent, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let principal = grant.principal_id.as_str();
    let fp = ctx.settings.first_party_principal.as_str();
    let _turn = ctx.grants.enter(vault_id).await;
    let peers = CachePeers::new(ctx, obj, ctx.settings.clock.now());
    let mut facts = GrantRemovalFacts {
        principal,
        vault_id,
        first_party: principal.eq_ignore_ascii_case(fp),
        vault_allowed: tenancy_gate::allows(ctx, &ns, obj.spec.credential_ref.is_some(), vault_id),
        made_by_operator: !grant.entry_found,
        opted_in: bindings_on_vault(ctx, &ns, vault_id)
            .iter()
            .any(|b| b.spec.grant_removal == GrantRemoval::RemoveWhenUnused),
        needed_in_cluster: peers.grant_needed(vault_id, principal),
        used_in_azure: AzureUse::Unknown("not read".into()),
    };
    // Azure is read only when everything else allows the removal.
    let unless_azure = GrantRemovalFacts {
        used_in_azure: AzureUse::Unused,
        ..facts.clone()
    };
    if destructive::grant_removal(&unless_azure).is_ok() {
        facts.used_in_azure = principal_use(ctx, azure, obj, vault_id, principal).await?;
    }
    let outcome = match destructive::grant_removal(&facts) {
        Ok(()) => {
            // Forgotten first: an account behind this turn checks Azure again.
            ctx.grants.forget(vault_id, &[principal.to_owned()]);
            azure.revoke_grant(vault_id, grant).await?
        }
        Err(why) => RevokeOutcome::Kept(why),
    };
    Ok(destructive::settle_revoke(outcome, principal, vault_id).into())
}

/// Who in Azure uses `principal` with a key of the vault.
async fn principal_use<A: AzurePort>(
    ctx: &Context<A>,
    azure: &A,
    obj: &CosmosAccountCMK,
    vault_id: &str,
    principal: &str,
) -> Result<AzureUse, Error> {
    let Some(vault) = azure.get_vault(vault_id).await? else {
        // No vault, no grant on it to keep.
        return Ok(AzureUse::Unused);
    };
    let vault_uri = vault.vault_uri.trim_end_matches('/').to_ascii_lowercase();
    let fp = ctx.settings.first_party_principal.as_str();
    let subs = match subscriptions(azure, vault_id).await {
        Ok(s) => s,
        Err(why) => return Ok(AzureUse::Unknown(why)),
    };
    Ok(match accounts_in(azure, &subs).await {
        Err(why) => AzureUse::Unknown(why),
        Ok(all) => match all
            .iter()
            .find(|a| uses_principal_on_vault(a, fp, &vault_uri, principal))
        {
            Some(a) => AzureUse::UsedBy(describe(ctx, obj, &a.id)),
            None => AzureUse::Unused,
        },
    })
}

/// Disables a previous key version when the core's rule allows it now;
/// `Kept` (with why, and until when) otherwise.
pub(super) async fn disable_version<A: AzurePort>(
    ctx: &Context<A>,
    azure: &A,
    obj: &CosmosAccountCMK,
    key_uri: &str,
    version: &str,
    retired_at: Timestamp,
) -> Result<(DisableOutcome, Option<Timestamp>), Error> {
    let ns = obj.namespace().unwrap_or_default();
    let now = ctx.settings.clock.now();
    let binding = binding_of_key(ctx, &ns, key_uri);
    let vault_allowed = binding.as_ref().is_some_and(|b| {
        tenancy_gate::allows(
            ctx,
            &ns,
            obj.spec.credential_ref.is_some(),
            &b.spec.vault_resource_id,
        )
    });
    let peers = CachePeers::new(ctx, obj, now);
    let mut facts = VersionDisableFacts {
        key_uri,
        version,
        managed: binding.is_some(),
        vault_allowed,
        latest: None,
        used_in_azure: AzureUse::Unknown("not read".into()),
        needed_in_cluster: peers.version_needed(key_uri, version),
        retired_at,
        latest_created: None,
        grace_hours: i64::from(obj.spec.rotation.previous_version_grace_hours),
        windows: Ok(vec![(
            "the spec's backup policy".to_owned(),
            obj.spec.backup_policy.restore_window_hours(),
        )]),
        restorable_deleted: Ok(Vec::new()),
        now,
    };
    let latest;
    if let Some(b) = binding.as_ref().filter(|_| vault_allowed) {
        latest = latest_version(azure, key_uri, &b.spec.key.name).await?;
        facts.latest = latest.as_deref();
        if let Some(l) = facts.latest {
            facts.latest_created = azure.key_version_created(key_uri, l).await?;
            read_key_users(ctx, azure, obj, &b.spec.vault_resource_id, &mut facts).await?;
        }
    }
    Ok(match destructive::version_disable(&facts) {
        VersionVerdict::Disable => (azure.disable_key_version(key_uri, version).await?, None),
        VersionVerdict::KeepUntil(t, why) => (DisableOutcome::Kept(why), Some(t)),
        VersionVerdict::Keep(why) => (DisableOutcome::Kept(why), None),
    })
}

/// The key's latest version in Key Vault, when it can be read.
async fn latest_version<A: AzurePort>(
    azure: &A,
    key_uri: &str,
    key_name: &str,
) -> Result<Option<String>, Error> {
    let Some((vault_uri, _)) = key_uri.split_once("/keys/") else {
        return Ok(None);
    };
    Ok(match azure.get_key(vault_uri, key_name).await? {
        KeyFacts::Present { version, .. } => Some(version),
        KeyFacts::Missing => None,
    })
}

/// Fills in who in Azure uses the version, every restore window that may
/// reach back to it, and the deleted accounts Azure can still restore.
async fn read_key_users<A: AzurePort>(
    ctx: &Context<A>,
    azure: &A,
    obj: &CosmosAccountCMK,
    vault_id: &str,
    facts: &mut VersionDisableFacts<'_>,
) -> Result<(), Error> {
    let subs = match subscriptions(azure, vault_id).await {
        Ok(s) => s,
        Err(why) => {
            facts.used_in_azure = AzureUse::Unknown(why.clone());
            facts.windows = Err(why);
            return Ok(());
        }
    };
    let all = match accounts_in(azure, &subs).await {
        Ok(all) => all,
        Err(why) => {
            facts.used_in_azure = AzureUse::Unknown(why.clone());
            facts.windows = Err(why);
            return Ok(());
        }
    };
    let on_key: Vec<&AccountFacts> = all
        .iter()
        .filter(|a| {
            a.key_vault_key_uri
                .as_deref()
                .is_some_and(|k| same_id(k, facts.key_uri))
        })
        .collect();
    facts.used_in_azure = match on_key.iter().find(|a| {
        a.key_version_in_use
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case(facts.version))
    }) {
        Some(a) => AzureUse::UsedBy(describe(ctx, obj, &a.id)),
        None => AzureUse::Unused,
    };
    // This account's own window as Azure keeps it, and every account's on the key.
    let this = super::account::account_ref(obj).id();
    let mut windows = facts.windows.clone().unwrap_or_default();
    for a in all
        .iter()
        .filter(|a| same_id(&a.id, &this))
        .chain(on_key.iter().copied())
    {
        match a.backup.as_ref().map(backup_window_hours) {
            Some(h) => windows.push((
                format!("Azure's backup policy of {}", describe(ctx, obj, &a.id)),
                h,
            )),
            None => {
                facts.windows = Err(format!(
                    "the backup policy of {} is not reported",
                    describe(ctx, obj, &a.id)
                ));
                return Ok(());
            }
        }
    }
    facts.windows = Ok(windows);
    let mut deleted = Vec::new();
    for sub in &subs {
        match azure.restorable_accounts(sub).await {
            Ok(list) => deleted.extend(
                list.into_iter()
                    .filter(|r| r.deleted_restorable_before(facts.retired_at))
                    .map(|r| {
                        let when = r.deletion_time.unwrap_or_default();
                        format!("an account deleted at {when}")
                    }),
            ),
            Err(e) => {
                facts.restorable_deleted = Err(format!(
                    "the restorable accounts of subscription {sub} could not be read ({e})"
                ));
                return Ok(());
            }
        }
    }
    facts.restorable_deleted = Ok(deleted);
    Ok(())
}

/// How far back Azure can restore an account with this backup policy.
fn backup_window_hours(b: &crate::reconcile::spec_drift::BackupFacts) -> i64 {
    crate::api::BackupPolicy {
        type_: b.type_,
        continuous_tier: b.continuous_tier,
        periodic_interval_minutes: b.periodic_interval_minutes,
        periodic_retention_hours: b.periodic_retention_hours,
    }
    .restore_window_hours()
}
