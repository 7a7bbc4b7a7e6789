//! Every destructive decision the operator makes in Azure, in one place: an
//! account DELETE, a grant removal, a key-version disable, and creating an
//! account where one existed before. Each is one pure function over facts the
//! controller reads from the spec and from Azure at the moment of the call —
//! never from status, which anyone allowed to patch `/status` can write. The
//! controller carries out exactly what the verdict says.
//!
//! Azure is shared: other clusters, teams, subscriptions, Terraform and other
//! services use the same accounts, vaults, keys and principals. So every rule
//! here answers "keep" whenever a fact it needs could not be read.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::outcomes::{DisableOutcome, RevokeOutcome};
use super::ownership::{Owner, Ownership};
use crate::api::{CONFIRM_OWNER_ANNOTATION, CosmosAccountCMKStatus, RECREATE_ANNOTATION, same_id};

/// An account Azure can restore (`restorableDatabaseAccounts`), live or deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestorableAccount {
    pub id: String,
    pub account_name: String,
    pub creation_time: Option<String>,
    /// Set for a deleted account.
    pub deletion_time: Option<String>,
    /// The earliest time it can be restored to.
    pub oldest_restorable_time: Option<String>,
}

impl RestorableAccount {
    /// Deleted, and restorable to a time before `t` (or since when is unknown).
    pub fn deleted_restorable_before(&self, t: Timestamp) -> bool {
        self.deletion_time.is_some()
            && self
                .oldest_restorable_time
                .as_deref()
                .and_then(|o| o.parse::<Timestamp>().ok())
                .is_none_or(|oldest| oldest < t)
    }
}

/// Who uses something, as Azure answered at the moment of the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AzureUse {
    /// Every place that could use it was read, and nothing does.
    Unused,
    /// Something does (described without naming what the namespace may not see).
    UsedBy(String),
    /// Not every place could be read: why.
    Unknown(String),
}

// ---------------------------------------------------------------- accounts

/// What deleting an account depends on, read just before the DELETE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionFacts<'a> {
    pub account_name: &'a str,
    /// This resource, as owner tags would name it (messages name another
    /// namespace's owner only as such).
    pub me: &'a Owner,
    /// The account's ownership from its tags as Azure returns them now;
    /// `None` when Azure has no such account.
    pub ownership: Option<Ownership>,
    /// The value of `CONFIRM_OWNER_ANNOTATION` on the resource, if any.
    pub confirmed_uid: Option<&'a str>,
}

/// What to do with the account when its resource is deleted with policy `Delete`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeletionVerdict {
    /// Nothing in Azure to delete.
    AlreadyGone,
    Delete,
    /// Not this resource's: left in place, and the resource may go.
    NotOurs(String),
    /// Possibly this resource's, but not proven: the deletion waits for the
    /// owner to be confirmed (or for the policy to become `Retain`).
    NeedsConfirmation(String),
}

/// Deletes only an account whose owner tags name this very resource: its
/// cluster id, namespace, name and uid.
pub fn account_deletion(f: &DeletionFacts<'_>) -> DeletionVerdict {
    let name = f.account_name;
    match &f.ownership {
        None => DeletionVerdict::AlreadyGone,
        Some(Ownership::Mine | Ownership::MineUnderPreviousId) => DeletionVerdict::Delete,
        Some(Ownership::MineUnconfirmed { tagged_uid }) => {
            if f.confirmed_uid == Some(tagged_uid.as_str()) {
                return DeletionVerdict::Delete;
            }
            DeletionVerdict::NeedsConfirmation(format!(
                "account {name}'s owner tags name this cluster, namespace and name but another object (uid {tagged_uid}): this resource was re-created or restored, or the same manifest runs in another cluster with the same cluster id. To delete the account, confirm it is this resource's: annotate it with {CONFIRM_OWNER_ANNOTATION}={tagged_uid}; to keep the account, set spec.deletionPolicy to Retain"
            ))
        }
        Some(Ownership::OtherCluster(o)) => DeletionVerdict::NotOurs(format!(
            "account {name} belongs to {o}, another cluster's resource; it is left in place"
        )),
        Some(Ownership::Other(o)) => DeletionVerdict::NotOurs(format!(
            "account {name} belongs to {}; it is left in place",
            o.as_seen_from(f.me)
        )),
        Some(Ownership::Unowned) => DeletionVerdict::NotOurs(format!(
            "account {name} has no owner tags: this resource did not create or adopt it; it is left in place"
        )),
    }
}

/// What creating an account depends on: whether one of that name existed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreationFacts<'a> {
    pub account_name: &'a str,
    /// The account id the status recorded (a record, which may be lost).
    pub recorded: Option<&'a str>,
    /// Deleted accounts of that name Azure still keeps restorable (their
    /// deletion times), or why they could not be read.
    pub restorable_deleted: Result<Vec<String>, String>,
    /// The user asked (with a new `RECREATE_ANNOTATION` value) to create it again.
    pub recreate_asked: bool,
}

/// Creates an account only where none existed, or where the user asked to
/// create it again: an empty account under the old name would also take the
/// name a restore of the deleted one needs.
pub fn account_creation(f: &CreationFacts<'_>) -> Result<(), String> {
    if f.recreate_asked {
        return Ok(());
    }
    let name = f.account_name;
    let fix = format!(
        "Restore it (a new CosmosAccountCMK with spec.restore), or annotate this resource with {RECREATE_ANNOTATION}=<a new value> to create it again, empty"
    );
    if let Some(id) = f.recorded {
        return Err(format!(
            "account {id} existed and is gone from Azure; the operator does not silently create an empty account in its place. {fix}"
        ));
    }
    match &f.restorable_deleted {
        Ok(deleted) if deleted.is_empty() => Ok(()),
        Ok(deleted) => Err(format!(
            "an account named {name} was deleted ({}) and Azure can still restore it; the operator does not create an empty account under its name. {fix}",
            deleted.join(", ")
        )),
        Err(why) => Err(format!(
            "whether an account named {name} was deleted and is still restorable could not be read ({why}); the operator creates nothing until it can. {fix}"
        )),
    }
}

// ------------------------------------------------------------------ grants

/// What removing one Get/WrapKey/UnwrapKey grant depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRemovalFacts<'a> {
    pub principal: &'a str,
    pub vault_id: &'a str,
    /// The principal is Cosmos DB's first party: one principal for every
    /// first-party account of the tenant on this vault.
    pub first_party: bool,
    /// The namespace may act on the vault (tenancy policy, now).
    pub vault_allowed: bool,
    /// The operator made the grant (it was not found in place before).
    pub made_by_operator: bool,
    /// A binding of the namespace names this vault in its spec and opts in
    /// to removing grants (`spec.grantRemoval: RemoveWhenUnused`).
    pub opted_in: bool,
    /// Another live resource of the cluster needs the principal on the vault.
    pub needed_in_cluster: bool,
    /// Accounts in Azure (every subscription that could be read) using the
    /// principal with a key of this vault.
    pub used_in_azure: AzureUse,
}

/// Removes a grant only when the operator made it, the vault's binding opted
/// in, and nothing in the cluster or in Azure uses it.
pub fn grant_removal(f: &GrantRemovalFacts<'_>) -> Result<(), String> {
    let who = f.principal;
    if !f.vault_allowed {
        return Err(format!(
            "the vault is outside this namespace's tenancy scopes: the grant for principal {who} is not the namespace's to remove"
        ));
    }
    if !f.made_by_operator {
        return Err(format!(
            "the grant for principal {who} was in place before the operator: it is not the operator's to remove"
        ));
    }
    if !f.opted_in {
        let why = if f.first_party {
            "the first-party grant serves every first-party account of the tenant on this vault"
        } else {
            "a grant may serve other resources (accounts in other subscriptions, other services' keys)"
        };
        return Err(format!(
            "grants are kept by default ({why}); to remove grants nothing uses, set spec.grantRemoval to RemoveWhenUnused on the KeyVaultBinding of this vault"
        ));
    }
    if f.needed_in_cluster {
        return Err(format!(
            "another resource of this cluster still needs principal {who} on this vault"
        ));
    }
    match &f.used_in_azure {
        AzureUse::Unused => Ok(()),
        AzureUse::UsedBy(what) => Err(format!("Azure shows {what} using it")),
        AzureUse::Unknown(why) => Err(format!(
            "whether anything else uses it could not be proven: {why}"
        )),
    }
}

// ------------------------------------------------------------ key versions

/// What disabling a previous key version depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionDisableFacts<'a> {
    pub key_uri: &'a str,
    pub version: &'a str,
    /// A binding of the namespace names this key in its spec.
    pub managed: bool,
    /// The namespace may act on the key's vault (tenancy policy, now).
    pub vault_allowed: bool,
    /// Key Vault's latest version of the key, read now (`None`: unreadable).
    pub latest: Option<&'a str>,
    /// Accounts Azure shows using this very version now.
    pub used_in_azure: AzureUse,
    /// Another resource of the cluster uses it or keeps it for its backups.
    pub needed_in_cluster: bool,
    /// When this resource stopped using the version, as its status recorded it.
    pub retired_at: Timestamp,
    /// When Key Vault created the key's latest version (`None`: unreadable).
    /// No account leaves a version before a newer one exists, so the version
    /// counts as retired no earlier than this, whatever a status says.
    pub latest_created: Option<Timestamp>,
    /// The grace period the spec asks for after a rotation.
    pub grace_hours: i64,
    /// The restore windows that may reach back to the version, in hours, each
    /// with where it comes from (the spec, Azure's backup policy of this
    /// account and of every account Azure shows on the key); an error when one
    /// could not be read.
    pub windows: Result<Vec<(String, i64)>, String>,
    /// Deleted accounts Azure keeps restorable to a time before the version
    /// retired (any of them may have used it), or why they could not be read.
    pub restorable_deleted: Result<Vec<String>, String>,
    pub now: Timestamp,
}

/// What to do with a previous key version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionVerdict {
    Disable,
    /// Not before this time (the longest restore window that may need it).
    KeepUntil(Timestamp, String),
    /// Kept for now, with why; looked at again later.
    Keep(String),
}

/// Disables a version only when it is no longer the key's latest, no account
/// uses it, and no backup that Azure may still restore can need it.
pub fn version_disable(f: &VersionDisableFacts<'_>) -> VersionVerdict {
    let (uri, v) = (f.key_uri, f.version);
    if !f.managed {
        return VersionVerdict::Keep(format!(
            "no KeyVaultBinding in this namespace names {uri} in its spec: the operator only disables versions of keys a binding here manages; disable it yourself if it is no longer needed"
        ));
    }
    if !f.vault_allowed {
        return VersionVerdict::Keep(format!(
            "the vault of {uri} is outside this namespace's tenancy scopes"
        ));
    }
    match f.latest {
        None => {
            return VersionVerdict::Keep(format!("the latest version of {uri} could not be read"));
        }
        Some(latest) if latest.eq_ignore_ascii_case(v) => {
            return VersionVerdict::Keep(format!(
                "{v} is the key's latest version: disabling it would revoke every account on the key"
            ));
        }
        Some(_) => {}
    }
    if f.needed_in_cluster {
        return VersionVerdict::Keep(
            "another resource of this cluster uses it or keeps it for its backups".to_owned(),
        );
    }
    match &f.used_in_azure {
        AzureUse::Unused => {}
        AzureUse::UsedBy(what) => {
            return VersionVerdict::Keep(format!("Azure shows {what} using it"));
        }
        AzureUse::Unknown(why) => {
            return VersionVerdict::Keep(format!(
                "whether an account uses it could not be read: {why}"
            ));
        }
    }
    let windows = match &f.windows {
        Ok(w) => w,
        Err(why) => {
            return VersionVerdict::Keep(format!(
                "a restore window that may need it could not be read: {why}"
            ));
        }
    };
    let (source, hours) = windows
        .iter()
        .map(|(s, h)| (s.as_str(), *h))
        .chain(std::iter::once(("the grace period", f.grace_hours)))
        .max_by_key(|(_, h)| *h)
        .unwrap_or(("the grace period", f.grace_hours));
    let Some(replaced) = f.latest_created else {
        return VersionVerdict::Keep(format!(
            "when Key Vault created the latest version of {uri} could not be read"
        ));
    };
    let retired = replaced.max(f.retired_at);
    let until = retired
        .checked_add(SignedDuration::from_hours(hours))
        .unwrap_or(retired);
    if f.now < until {
        return VersionVerdict::KeepUntil(
            until,
            format!("kept {hours} h after it stopped being used ({source})"),
        );
    }
    match &f.restorable_deleted {
        Ok(deleted) if deleted.is_empty() => VersionVerdict::Disable,
        Ok(deleted) => VersionVerdict::Keep(format!(
            "Azure can restore deleted account(s) {} to a time before {v} was retired, and their backups may need it",
            deleted.join(", ")
        )),
        Err(why) => VersionVerdict::Keep(format!(
            "whether a deleted account that Azure can still restore needs it could not be read: {why}"
        )),
    }
}

// ------------------------------------------------------------- settling

/// What a destructive step's outcome says, as an event: a warning marks
/// something left in place that a person may want to look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    pub reason: &'static str,
    pub note: String,
    pub warning: bool,
}

/// The event for what a grant removal did.
pub fn settle_revoke(outcome: RevokeOutcome, principal: &str, vault_id: &str) -> Settled {
    let (reason, note, warning) = match outcome {
        RevokeOutcome::Removed => (
            "RemovedKeyAccess",
            format!("removed the grant the operator made for principal {principal} on {vault_id}"),
            false,
        ),
        RevokeOutcome::AlreadyGone => (
            "RemovedKeyAccess",
            format!("the grant for principal {principal} on {vault_id} was already gone"),
            false,
        ),
        RevokeOutcome::Kept(why) => (
            "GrantKept",
            format!("left the grant for principal {principal} on {vault_id} in place: {why}"),
            true,
        ),
    };
    Settled {
        reason,
        note,
        warning,
    }
}

/// Records in the status what disabling a version did, and says it as an
/// event. A version left enabled is looked at again an hour later (each look
/// reads every account), or when the window that kept it ends, if later.
pub fn settle_disable(
    status: &mut CosmosAccountCMKStatus,
    key_uri: &str,
    version: &str,
    outcome: DisableOutcome,
    until: Option<Timestamp>,
    now: Timestamp,
) -> Settled {
    let why = match outcome {
        DisableOutcome::Disabled | DisableOutcome::AlreadyDisabled => {
            return Settled {
                reason: "DisabledPreviousKeyVersion",
                note: format!(
                    "disabled key version {version} of {key_uri}, past its grace period and backup window and used by no account"
                ),
                warning: false,
            };
        }
        DisableOutcome::Kept(why) => why,
    };
    if let Some(r) = status
        .retained_key_versions
        .iter_mut()
        .find(|r| same_id(&r.key_uri, key_uri) && r.version == version)
    {
        r.disabled = false;
        r.kept_because = Some(why.clone());
        let hour_later = now
            .checked_add(SignedDuration::from_hours(1))
            .unwrap_or(now);
        r.safe_to_disable_after = Time(until.map_or(hour_later, |t| t.max(hour_later)));
    }
    if status.previous_key_version.as_deref() == Some(version) {
        status.previous_version_disabled = false;
    }
    Settled {
        reason: "KeyVersionKept",
        note: format!(
            "left key version {version} of {key_uri} enabled: {why}; checked again in an hour"
        ),
        warning: true,
    }
}

#[cfg(test)]
#[path = "destructive_tests.rs"]
mod tests;
