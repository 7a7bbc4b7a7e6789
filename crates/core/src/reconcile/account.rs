//! The `CosmosAccountCMK` state machine:
//! vault-ready -> identity-granted -> account-created -> rotation-tracked.
//!
//! Pure: what the controller observed (the resource, its binding, Azure's
//! answers) goes in; the status to hold and at most one Azure action come out.
//! Writes are staged one per reconcile (identity, default identity, key URI,
//! backup policy, then regions one at a time) because Azure rejects CMK and
//! region changes bundled with other changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::destructive;
use super::ownership::{self, Owner, Ownership};
use super::reasons as r;
use super::settings_drift::{self, SettingsUpdate};
use super::sharing::Peers;
use super::spec_drift::{self, BackupFacts, Difference, Fix, Reported};
use crate::api::conditions::{
    self, ACCOUNT_CREATED, FALSE, IDENTITY_GRANTED, READY, ROTATION_TRACKED, TRUE, UNKNOWN,
    VAULT_READY,
};
use crate::api::{
    AccountIdentity, AccountSettings, AzureErrorRecord, BackupPolicy, CosmosAccountCMKSpec,
    CosmosAccountCMKStatus, Grant, IdentityType, Location, OperationKind, PermissionModel, Phase,
    ReconcilePolicy, RetainedKeyVersion, same_id,
};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// At most this many earlier key versions are tracked (oldest dropped first).
pub const MAX_RETAINED_VERSIONS: usize = 32;

/// The referenced binding, as the account needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingState {
    Missing,
    /// Its spec changed and its status has not caught up yet: a moment of a
    /// key change, not a fault, so the account reports it without a Warning.
    Updating,
    NotReady {
        message: String,
    },
    Ready {
        vault_id: String,
        key_uri: String,
        model: PermissionModel,
    },
}

/// An account as Azure reports it (adapter-neutral).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountFacts {
    pub id: String,
    pub provisioning_state: String,
    pub document_endpoint: Option<String>,
    pub key_vault_key_uri: Option<String>,
    pub key_version_in_use: Option<String>,
    pub default_identity: Option<String>,
    pub system_principal_id: Option<String>,
    /// Resource ids of the user-assigned identities on the account.
    pub user_assigned_ids: Vec<String>,
    pub customer_managed_key_status: Option<String>,
    /// The account's Azure tags (owner tags among them).
    pub tags: BTreeMap<String, String>,
    /// Principal of the system- or user-assigned identity `defaultIdentity` names
    /// (`None` for the first party, which the caller knows).
    pub default_identity_principal: Option<String>,
    /// Azure reports the key revoked (disabled version, or grant removed), with the substatus.
    pub revoked: Option<AzureErrorRecord>,
    /// The account's kind, when Azure reports it.
    pub kind: Option<String>,
    /// The account's capability names, when Azure reports them.
    pub capabilities: Option<Vec<String>>,
    /// The backup policy, when Azure reports it.
    pub backup: Option<BackupFacts>,
    /// The account's regions (empty when Azure did not report them).
    pub locations: Vec<Location>,
    /// The settings Azure Policy looks at, each `None` when Azure did not report it.
    pub settings: AccountSettings,
}

impl AccountFacts {
    fn reported(&self) -> Reported<'_> {
        Reported {
            kind: self.kind.as_deref(),
            capabilities: self.capabilities.as_deref(),
            backup: self.backup.as_ref(),
            locations: &self.locations,
        }
    }
}

/// Whether the account exists.
// One value per reconcile, never stored in bulk: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountState {
    NotFound,
    Found(AccountFacts),
}

/// The outcome of polling the pending long-running operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationState {
    InProgress,
    Succeeded,
    Failed(AzureErrorRecord),
}

/// Everything the account decision needs.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    pub spec: &'a CosmosAccountCMKSpec,
    pub generation: Option<i64>,
    pub status: &'a CosmosAccountCMKStatus,
    pub binding: BindingState,
    pub provider_registered: bool,
    /// Object id of the Cosmos DB first-party principal in this tenant.
    pub first_party_principal: &'a str,
    /// Principal id of `spec.identity.userAssignedIdentityId`, when it exists.
    pub user_assigned_principal: Option<String>,
    /// Principals that hold Get/WrapKey/UnwrapKey on the vault (of those the controller checked).
    pub granted: &'a [String],
    pub account: AccountState,
    /// Present when `status.pendingOperation` was polled.
    pub operation: Option<OperationState>,
    pub now: Timestamp,
    /// This resource, as the owner tags name it.
    pub me: Owner,
    /// The cluster id this installation used before (`--previous-cluster-id`).
    pub previous_cluster: Option<&'a str>,
    /// The `cosmoscmk.io/recreate-account` annotation's value.
    pub recreate: Option<String>,
    /// The `cosmoscmk.io/confirm-owner` annotation's value.
    pub confirm_owner: Option<String>,
    /// Deleted accounts of this name Azure keeps restorable (their deletion
    /// times), read when the account is missing; `None` when not read.
    pub restorable_deleted: Option<Result<Vec<String>, String>>,
    /// Every other `CosmosAccountCMK` in the cluster (from the cache), asked
    /// only when a decision needs them.
    pub peers: &'a dyn Peers,
    /// Gathered before a restore is started.
    pub restore: Option<RestoreFacts>,
}

/// What a restore's source looked like, gathered before the restore is started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreFacts {
    /// The source account's name (from the restorable account).
    pub source_name: Option<String>,
    /// User-assigned identities the source account has (in Azure, or names in its spec).
    pub source_identities: Vec<String>,
    /// The key version the source used at the restore time, when the operator
    /// tracked the source, and whether Key Vault has it enabled (`None`: gone).
    pub key_at_time: Option<(String, String, Option<bool>)>,
}

/// The key (versionless URI) and version an account used at time `t`, from the
/// versions its status tracked: the first one retired after `t`, else the one in use.
pub fn version_in_use_at(
    status: &CosmosAccountCMKStatus,
    t: Timestamp,
) -> Option<(String, String)> {
    status
        .retained_key_versions
        .iter()
        .find(|r| r.retired_at.as_ref().is_some_and(|at| at.0 > t))
        .map(|r| (r.key_uri.clone(), r.version.clone()))
        .or_else(|| {
            Some((
                status.key_vault_key_uri.clone()?,
                status.key_version_in_use.clone()?,
            ))
        })
}

/// What the create request carries; the adapter turns it into Azure's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateAccount {
    pub key_uri: String,
    /// `FirstPartyIdentity`, or `UserAssignedIdentity=<id>`.
    pub default_identity: String,
    pub user_assigned_identity: Option<String>,
    /// The tags the account is created with: the user's and the owner tags
    /// (which win).
    pub tags: BTreeMap<String, String>,
    /// The settings the spec sets (the rest left to Azure's defaults).
    pub settings: AccountSettings,
}

/// One Azure call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Grant {
        vault_id: String,
        model: PermissionModel,
        principal_id: String,
    },
    RevokeGrant {
        vault_id: String,
        grant: Grant,
    },
    CreateAccount(CreateAccount),
    /// Writes the owner tags on an adopted account (other tags kept).
    TagAccount(Owner),
    EnableSystemIdentity,
    AddUserAssignedIdentity(String),
    SetDefaultIdentity(String),
    SetKeyUri(String),
    /// Adds or removes one region (the list Azure is to hold, in priority order).
    SetLocations(Vec<Location>),
    /// Azure's `failoverPriorityChange`: every region with its new priority.
    ChangeFailoverPriorities(Vec<Location>),
    /// Migrates to continuous backup, or changes the tier, interval or retention.
    SetBackupPolicy(BackupPolicy),
    /// Network, local auth and TLS settings and the user's tags, in one PATCH.
    UpdateSettings(SettingsUpdate),
    DisableKeyVersion {
        key_uri: String,
        version: String,
    },
}

impl Action {
    /// Done when the call returns (no long-running operation to wait for).
    pub fn is_synchronous(&self) -> bool {
        matches!(
            self,
            Action::Grant { .. } | Action::RevokeGrant { .. } | Action::DisableKeyVersion { .. }
        )
    }
}

/// When to look again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// An operation is in flight: poll soon.
    Soon,
    /// Settled or waiting on the user: the periodic resync is enough.
    Resync,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: CosmosAccountCMKStatus,
    pub action: Option<Action>,
    pub requeue: Requeue,
}

/// `defaultIdentity` value Azure uses for the identity in the spec.
pub fn default_identity_value(identity: &AccountIdentity) -> String {
    match (identity.type_, &identity.user_assigned_identity_id) {
        (IdentityType::UserAssigned, Some(id)) => format!("UserAssignedIdentity={id}"),
        (IdentityType::SystemAssigned, _) => "SystemAssignedIdentity".to_owned(),
        _ => "FirstPartyIdentity".to_owned(),
    }
}

/// The principal whose grant a just-finished operation of `kind` proved, so it
/// need not be looked up again: Azure only creates an account with a customer-
/// managed key when the identity it is created with can wrap and unwrap that
/// key. A system-assigned account is created with the first party and granted
/// its own identity later, so nothing is proven for it.
pub fn proven_grant(
    kind: OperationKind,
    spec: &CosmosAccountCMKSpec,
    first_party: &str,
    ua: Option<&str>,
) -> Option<String> {
    if kind != OperationKind::CreateAccount {
        return None;
    }
    match spec.identity.type_ {
        IdentityType::FirstParty => Some(first_party.to_owned()),
        IdentityType::UserAssigned => ua.map(str::to_owned),
        IdentityType::SystemAssigned => None,
    }
}

/// Principals whose grants the controller must look up before deciding.
pub fn principals_to_check(
    o_spec: &CosmosAccountCMKSpec,
    account: &AccountState,
    first_party: &str,
    ua: Option<&str>,
) -> Vec<String> {
    let mut out = vec![first_party.to_owned()];
    match o_spec.identity.type_ {
        IdentityType::UserAssigned => out.extend(ua.map(str::to_owned)),
        IdentityType::SystemAssigned => {
            if let AccountState::Found(a) = account {
                out.extend(a.system_principal_id.clone());
            }
        }
        IdentityType::FirstParty => {}
    }
    out
}

/// The four stages, in order; each owns one condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Vault,
    Identity,
    Account,
    Rotation,
}

impl Stage {
    const ALL: [Stage; 4] = [
        Stage::Vault,
        Stage::Identity,
        Stage::Account,
        Stage::Rotation,
    ];

    fn condition(self) -> &'static str {
        match self {
            Stage::Vault => VAULT_READY,
            Stage::Identity => IDENTITY_GRANTED,
            Stage::Account => ACCOUNT_CREATED,
            Stage::Rotation => ROTATION_TRACKED,
        }
    }
}

/// A stage either goes on with what it found, or ends the reconcile here.
type Flow<T> = ControlFlow<Decision, T>;

/// Builder for the decision, so each stage reads as one line per condition.
struct Out<'a> {
    o: &'a Observed<'a>,
    status: CosmosAccountCMKStatus,
    /// Observe-only: what an earlier stage found missing (reported with the
    /// account's differences instead of stopping there).
    gaps: Vec<String>,
    /// Said with Ready: the account's ownership is not confirmed for a delete.
    owner_note: Option<String>,
}

impl Out<'_> {
    fn set(&mut self, type_: &str, status: &str, reason: &str, message: impl Into<String>) {
        let now = Time(self.o.now);
        let c = conditions::condition(type_, status, reason, message, self.o.generation, now);
        conditions::set_condition(&mut self.status.conditions, c);
    }

    /// Blocked on something the user or Azure must change; looked at again on resync.
    fn waiting(&mut self, at: Stage, reason: &str, message: String) -> Decision {
        self.blocked(at, Phase::Waiting, reason, message, None, Requeue::Resync)
    }

    /// Failed until the user fixes something; looked at again on resync.
    fn failed(&mut self, at: Stage, reason: &str, message: String) -> Decision {
        self.blocked(at, Phase::Failed, reason, message, None, Requeue::Resync)
    }

    /// Stage `at` needs `action`; polled soon.
    fn acting(&mut self, at: Stage, reason: &str, message: String, action: Action) -> Decision {
        self.blocked(
            at,
            Phase::Provisioning,
            reason,
            message,
            Some(action),
            Requeue::Soon,
        )
    }

    /// Azure is busy with the account; polled soon.
    fn busy(&mut self, reason: &str, message: String) -> Decision {
        let (phase, requeue) = (Phase::Provisioning, Requeue::Soon);
        self.blocked(Stage::Account, phase, reason, message, None, requeue)
    }

    /// Marks the stages after a blocked one Unknown, and Ready False.
    fn blocked(
        &mut self,
        at: Stage,
        phase: Phase,
        reason: &str,
        message: String,
        action: Option<Action>,
        requeue: Requeue,
    ) -> Decision {
        self.set(at.condition(), FALSE, reason, message.clone());
        for later in Stage::ALL.into_iter().filter(|s| *s > at) {
            let waiting = format!("waiting for {}", at.condition());
            self.set(later.condition(), UNKNOWN, r::WAITING, waiting);
        }
        self.set(READY, FALSE, reason, message);
        self.status.phase = phase;
        Decision {
            status: std::mem::take(&mut self.status),
            action,
            requeue,
        }
    }
}

/// The binding's key, as the later stages use it.
struct Key {
    vault_id: String,
    key_uri: String,
    model: PermissionModel,
}

/// Decides the account's next step: a short driver over the named stages.
pub fn decide<'a>(o: &'a Observed<'a>) -> Decision {
    let mut status = o.status.clone();
    status.observed_generation = o.generation;
    let mut out = Out {
        o,
        status,
        gaps: Vec::new(),
        owner_note: None,
    };
    match drive(&mut out) {
        ControlFlow::Continue(d) | ControlFlow::Break(d) => d,
    }
}

fn drive(out: &mut Out<'_>) -> Flow<Decision> {
    settle_operation(out)?;
    report_revocation(out)?;
    let key = vault_stage(out)?;
    let account = match &out.o.account {
        AccountState::Found(a) => Some(a),
        AccountState::NotFound => None,
    };
    // Ownership, before any write (a grant included): the account's owner tags
    // in Azure decide, never the status.
    if let Some(a) = account
        && let Some(d) = ownership_gate(out, a, &key.key_uri)
    {
        return ControlFlow::Break(d);
    }
    let principal = identity_stage(out, &key, account)?;
    let Some(a) = account else {
        let want_default = default_identity_value(&out.o.spec.identity);
        let manage = out.o.spec.reconcile_policy == ReconcilePolicy::Manage;
        return ControlFlow::Break(create_or_report_missing(
            out,
            key.key_uri,
            want_default,
            manage,
        ));
    };
    account_stage(out, &key, a, &principal)?;
    ControlFlow::Continue(rotation_stage(out, a, &key))
}

/// A finished (or failed) long-running operation is settled before anything else.
fn settle_operation(out: &mut Out<'_>) -> Flow<()> {
    let o = out.o;
    match &o.operation {
        Some(OperationState::InProgress) => {
            let kind = o
                .status
                .pending_operation
                .as_ref()
                .map_or("operation", |p| p.kind.as_str())
                .to_owned();
            let msg = format!("waiting for Azure to finish {kind}");
            // A creation stays "creating" while Azure works on it: the same
            // reason is no new event (one per account at 10,000 was 10 % of
            // the events the API server took).
            let creating = o
                .status
                .pending_operation
                .as_ref()
                .is_some_and(|p| p.kind == OperationKind::CreateAccount);
            let reason = match creating {
                true => r::CREATING_ACCOUNT,
                false => r::UPDATING_ACCOUNT,
            };
            return ControlFlow::Break(out.busy(reason, msg));
        }
        Some(OperationState::Succeeded) => out.status.pending_operation = None,
        Some(OperationState::Failed(err)) => {
            out.status.pending_operation = None;
            out.status.last_azure_error = Some(err.clone());
            let msg = format!(
                "Azure failed the operation: {}; the operator retries with backoff",
                err.message
                    .clone()
                    .unwrap_or_else(|| err.code.clone().unwrap_or_default())
            );
            return ControlFlow::Break(out.failed(
                Stage::Account,
                r::ACCOUNT_PROVISIONING_FAILED,
                msg,
            ));
        }
        None => {}
    }
    ControlFlow::Continue(())
}

/// A revoked account is reported before anything else (the binding is likely
/// not Ready either, for the same cause), and nothing is written meanwhile.
fn report_revocation(out: &mut Out<'_>) -> Flow<()> {
    let o = out.o;
    let spec = o.spec;
    let AccountState::Found(a) = &o.account else {
        return ControlFlow::Continue(());
    };
    let Some(err) = &a.revoked else {
        return ControlFlow::Continue(());
    };
    // The same revocation seen again keeps its first time: a new time on
    // every resync would be a status write per revoked account per resync.
    let same = o.status.last_azure_error.as_ref().is_some_and(|l| {
        AzureErrorRecord {
            time: l.time.clone(),
            ..err.clone()
        } == *l
    });
    if !same {
        out.status.last_azure_error = Some(err.clone());
    }
    out.status.customer_managed_key_status = a.customer_managed_key_status.clone();
    // Nothing stays True that is no longer known: the binding is judged
    // again, and whether the grant holds is exactly what is in doubt.
    match &o.binding {
        BindingState::Ready { key_uri, .. } => out.set(
            VAULT_READY,
            TRUE,
            r::VAULT_READY,
            format!("key {key_uri} is ready"),
        ),
        _ => out.set(
            VAULT_READY,
            FALSE,
            r::BINDING_NOT_READY,
            format!(
                "KeyVaultBinding {} is not Ready",
                spec.key_vault_binding_ref.name
            ),
        ),
    }
    out.set(
        IDENTITY_GRANTED,
        UNKNOWN,
        r::KEY_REVOKED,
        "Azure reports the key revoked: whether the identity's grant holds is not known",
    );
    let msg = format!(
        "Azure reports the key revoked (substatus {}): the account only accepts deletion; re-enable the key version or restore the grant and the account recovers. The operator makes no change meanwhile",
        err.sub_status
            .map_or_else(|| "unknown".to_owned(), |s| s.to_string())
    );
    ControlFlow::Break(out.blocked(
        Stage::Account,
        Phase::Revoked,
        r::KEY_REVOKED,
        msg,
        None,
        Requeue::Resync,
    ))
}

/// Stage 1 (`VaultReady`): the referenced binding is Ready, with its key.
fn vault_stage(out: &mut Out<'_>) -> Flow<Key> {
    let name = &out.o.spec.key_vault_binding_ref.name;
    let key = match &out.o.binding {
        BindingState::Missing => {
            let msg = format!(
                "KeyVaultBinding {name} not found in this namespace: create it or fix spec.keyVaultBindingRef"
            );
            return ControlFlow::Break(out.waiting(Stage::Vault, r::BINDING_NOT_FOUND, msg));
        }
        BindingState::Updating => {
            let msg = format!(
                "KeyVaultBinding {name} is applying its latest change; the account follows once it is Ready"
            );
            return ControlFlow::Break(out.blocked(
                Stage::Vault,
                Phase::Provisioning,
                r::BINDING_NOT_READY,
                msg,
                None,
                Requeue::Resync,
            ));
        }
        BindingState::NotReady { message } => {
            let msg = format!("KeyVaultBinding {name} is not Ready: {message}");
            return ControlFlow::Break(out.waiting(Stage::Vault, r::BINDING_NOT_READY, msg));
        }
        BindingState::Ready {
            vault_id,
            key_uri,
            model,
        } => Key {
            vault_id: vault_id.clone(),
            key_uri: key_uri.clone(),
            model: *model,
        },
    };
    let msg = format!("key {} is ready", key.key_uri);
    out.set(VAULT_READY, TRUE, r::VAULT_READY, msg);
    ControlFlow::Continue(key)
}

/// Stage 2 (`IdentityGranted`): the identity that will use the key holds the
/// grant. Its principal, or empty while the system identity does not exist yet.
fn identity_stage(out: &mut Out<'_>, key: &Key, account: Option<&AccountFacts>) -> Flow<String> {
    let o = out.o;
    let spec = o.spec;
    let manage = spec.reconcile_policy == ReconcilePolicy::Manage;
    if !o.provider_registered {
        let msg = "resource provider Microsoft.DocumentDB is not registered in the subscription: register it (az provider register --namespace Microsoft.DocumentDB)".to_owned();
        return ControlFlow::Break(out.waiting(Stage::Identity, r::PROVIDER_NOT_REGISTERED, msg));
    }
    let principal = match spec.identity.type_ {
        IdentityType::FirstParty => Some(o.first_party_principal.to_owned()),
        IdentityType::UserAssigned => match &o.user_assigned_principal {
            Some(p) => Some(p.clone()),
            None => {
                let id = spec
                    .identity
                    .user_assigned_identity_id
                    .clone()
                    .unwrap_or_default();
                let msg = format!(
                    "user-assigned identity {id} was not found: create it, or fix spec.identity.userAssignedIdentityId"
                );
                return ControlFlow::Break(out.failed(Stage::Identity, r::IDENTITY_NOT_FOUND, msg));
            }
        },
        // The account's own identity only exists after the account: the first
        // party creates it. An existing account is never granted the first party
        // for this (that would widen access): its system identity is enabled
        // first, then granted.
        IdentityType::SystemAssigned => match account {
            None => Some(o.first_party_principal.to_owned()),
            Some(a) => a.system_principal_id.clone(),
        },
    };
    match &principal {
        Some(principal) => {
            if let Some(d) = grant_stage(out, principal, &key.vault_id, key.model, manage) {
                return ControlFlow::Break(d);
            }
        }
        None => out.set(
            IDENTITY_GRANTED,
            FALSE,
            r::WAITING_FOR_SYSTEM_IDENTITY,
            "the account's system-assigned identity does not exist yet: it is enabled first, then granted",
        ),
    }
    ControlFlow::Continue(principal.unwrap_or_default())
}

/// Stage 3 (`AccountCreated`): the account exists, is settled in Azure and
/// matches the spec; otherwise the next write, or why there is none.
fn account_stage(out: &mut Out<'_>, key: &Key, a: &AccountFacts, principal: &str) -> Flow<()> {
    let o = out.o;
    let spec = o.spec;
    let manage = spec.reconcile_policy == ReconcilePolicy::Manage;
    let want_default = default_identity_value(&spec.identity);
    out.status.account_id = Some(a.id.clone());
    out.status.document_endpoint = a.document_endpoint.clone();
    out.status.key_vault_key_uri = a.key_vault_key_uri.clone();
    out.status.default_identity = a.default_identity.clone();
    out.status.customer_managed_key_status = a.customer_managed_key_status.clone();
    if !principal.is_empty() {
        out.status.identity_principal_id = Some(principal.to_owned());
    }

    if a.provisioning_state == "Failed" {
        let msg = format!(
            "account {} is in provisioning state Failed in Azure: inspect it in the portal",
            spec.account_name
        );
        return ControlFlow::Break(out.failed(Stage::Account, r::ACCOUNT_PROVISIONING_FAILED, msg));
    }
    if let Some(d) = wait_for_azure(out, a) {
        return ControlFlow::Break(d);
    }

    // Azure is migrating the backup to continuous: other updates wait for it.
    if a.backup.as_ref().is_some_and(|b| b.migrating) {
        let msg = format!(
            "Azure is migrating account {}'s backup to continuous; the operator waits for it to finish",
            spec.account_name
        );
        return ControlFlow::Break(out.busy(r::MIGRATING_TO_CONTINUOUS_BACKUP, msg));
    }

    // Every difference between the spec and the account: corrected one write
    // at a time (identity, default identity, key, backup, regions), or, when
    // one is refused, none written and all named.
    // The settings first: a deny assignment refuses every other write to an
    // account that does not comply, and these make it comply.
    let mut diffs: Vec<Difference> = settings_drift::difference(&a.settings, &a.tags, spec)
        .map(|(what, update)| Difference {
            what,
            fix: Fix::Change(Action::UpdateSettings(update), r::UPDATING_ACCOUNT_SETTINGS),
        })
        .into_iter()
        .collect();
    diffs.extend(cmk_differences(
        a,
        spec,
        &want_default,
        &key.key_uri,
        principal.is_empty(),
    ));
    adopt_region_record(out, a);
    let managed = out.status.managed_regions.clone();
    diffs.extend(spec_drift::differences(a.reported(), spec, &managed));
    if let Some(d) = converge(out, &diffs, manage) {
        return ControlFlow::Break(d);
    }

    let msg = format!(
        "account {} uses key {} through {want_default}",
        spec.account_name, key.key_uri
    );
    out.set(ACCOUNT_CREATED, TRUE, r::ACCOUNT_READY, msg);
    // Optional clean-up after the switch away from the first party.
    if let Some(action) = first_party_cleanup(out, &key.vault_id, manage) {
        let msg = "removing the first-party identity's grant, made by the operator and needed by no other resource".to_owned();
        return ControlFlow::Break(out.acting(Stage::Rotation, r::UPDATING_ACCOUNT, msg, action));
    }
    ControlFlow::Continue(())
}

/// Accounts created before regions were recorded: the regions the spec names
/// now are the ones this resource made.
fn adopt_region_record(out: &mut Out<'_>, a: &AccountFacts) {
    if !out.status.managed_regions.is_empty() || !out.status.created_by_operator {
        return;
    }
    let spec = out.o.spec;
    let key = |n: &str| spec_drift::region_key(n);
    out.status.managed_regions = a
        .locations
        .iter()
        .map(|l| key(&l.location_name))
        .filter(|k| spec.locations.iter().any(|w| key(&w.location_name) == *k))
        .collect();
}

/// Stage 4 (`RotationTracked`), then Ready.
fn rotation_stage(out: &mut Out<'_>, a: &AccountFacts, key: &Key) -> Decision {
    let action = track_rotation(out, a, &key.key_uri);
    let mut msg = format!(
        "account {} is encrypted with its customer-managed key",
        out.o.spec.account_name
    );
    if let Some(note) = out.owner_note.take() {
        msg = format!("{msg}; {note}");
    }
    out.set(READY, TRUE, r::READY, msg);
    out.status.phase = Phase::Ready;
    out.status.last_azure_error = None;
    Decision {
        requeue: if action.is_some() {
            Requeue::Soon
        } else {
            Requeue::Resync
        },
        status: std::mem::take(&mut out.status),
        action,
    }
}

/// Azure still creates or updates the account (any state but Succeeded or
/// Failed: `Creating` in every recorded create answer, `Updating` in every
/// recorded PATCH answer): a write now would be refused with 412, so none is
/// made until it settles.
fn wait_for_azure(out: &mut Out<'_>, a: &AccountFacts) -> Option<Decision> {
    match a.provisioning_state.as_str() {
        "Succeeded" | "Failed" => None,
        other => {
            let msg = format!("account {} is {other} in Azure", out.o.spec.account_name);
            Some(out.busy(r::UPDATING_ACCOUNT, msg))
        }
    }
}

/// Writes the owner tags, once Azure no longer holds the account.
fn tag_owner(out: &mut Out<'_>, a: &AccountFacts, reason: &str, msg: String) -> Decision {
    if let Some(d) = wait_for_azure(out, a) {
        return d;
    }
    let tag = Action::TagAccount(out.o.me.clone());
    out.acting(Stage::Account, reason, msg, tag)
}

/// Stops at an account this resource may not write to: one owned by another
/// resource, or an unowned one not (or not fully) adopted. Adopting writes the
/// owner tags before anything else, recording the key version the account used.
fn ownership_gate(out: &mut Out<'_>, a: &AccountFacts, key_uri: &str) -> Option<Decision> {
    let o = out.o;
    let spec = o.spec;
    let manage = spec.reconcile_policy == ReconcilePolicy::Manage;
    match ownership::classify(&a.tags, &o.me, o.previous_cluster) {
        Ownership::Mine => None,
        Ownership::MineUnconfirmed { tagged_uid } => {
            let confirmed = o.confirm_owner.as_deref() == Some(tagged_uid.as_str());
            if confirmed && manage {
                let msg = format!(
                    "ownership of account {} confirmed: writing its owner tags with this resource's uid",
                    spec.account_name
                );
                return Some(tag_owner(out, a, r::UPDATING_OWNER_TAGS, msg));
            }
            // Managed as before; only a deletion waits for the confirmation.
            out.owner_note = Some(format!(
                "its owner tags name another object with this name (uid {tagged_uid}): a Delete policy is not carried out until {}={tagged_uid} confirms this resource owns it",
                crate::api::CONFIRM_OWNER_ANNOTATION
            ));
            None
        }
        Ownership::MineUnderPreviousId if manage => {
            let msg = format!(
                "account {} carries this resource's owner tags under the previous cluster id: moving them to cluster id {}",
                spec.account_name, o.me.cluster
            );
            Some(tag_owner(out, a, r::UPDATING_OWNER_TAGS, msg))
        }
        Ownership::MineUnderPreviousId => None,
        Ownership::OtherCluster(owner) => {
            let msg = format!(
                "account {} belongs to {owner} (its owner tags in Azure say so): another cluster manages it, and this one makes no change to it. If both clusters sync the same manifests, give each its own cluster id; to move the account here, see README 'Moving a cluster id'",
                spec.account_name
            );
            Some(out.failed(Stage::Account, r::OWNED_BY_ANOTHER_CLUSTER, msg))
        }
        Ownership::Other(owner) => {
            let msg = format!(
                "account {} belongs to {} (its owner tags in Azure say so): this resource makes no change to it; use another accountName, or delete this resource",
                spec.account_name,
                owner.as_seen_from(&o.me)
            );
            Some(out.failed(Stage::Account, r::OWNED_BY_ANOTHER_RESOURCE, msg))
        }
        // Observing changes nothing: an unowned account can be reported.
        Ownership::Unowned if !manage => None,
        Ownership::Unowned if !spec.adopt_existing_account => {
            let (reason, msg) = if a.key_vault_key_uri.is_none() {
                (
                    r::ACCOUNT_EXISTS_WITHOUT_CMK,
                    format!(
                        "account {} already exists without a customer-managed key and was not created by this resource; enabling CMK is irreversible, so the operator only does it when spec.adoptExistingAccount is true",
                        spec.account_name
                    ),
                )
            } else {
                (
                    r::ACCOUNT_NOT_OWNED,
                    format!(
                        "account {} already exists and was not created by this resource (it has no owner tags): the operator changes nothing; set spec.adoptExistingAccount to true to manage it, or use another accountName",
                        spec.account_name
                    ),
                )
            };
            Some(out.failed(Stage::Account, reason, msg))
        }
        Ownership::Unowned => {
            let consent = &spec.adoption_consent;
            let want_default = default_identity_value(&spec.identity);
            let mut missing = Vec::new();
            if let Some(have) = &a.key_vault_key_uri
                && !same_id(have, key_uri)
                && !consent.replace_key
            {
                missing.push(format!(
                    "it uses key {have}, not {key_uri}: set spec.adoptionConsent.replaceKey to true to move it (the version in use stays recorded for its backups)"
                ));
            }
            if let Some(have) = &a.default_identity
                && !have.eq_ignore_ascii_case(&want_default)
                && !consent.replace_identity
            {
                missing.push(format!(
                    "its default identity is {have}, not {want_default}: set spec.adoptionConsent.replaceIdentity to true to switch it"
                ));
            }
            if !missing.is_empty() {
                let msg = format!(
                    "adopting account {} would change it without consent; {}",
                    spec.account_name,
                    missing.join("; ")
                );
                return Some(out.failed(Stage::Account, r::ADOPTION_NEEDS_CONSENT, msg));
            }
            // Judged before claimed: an account the spec can never be made to
            // match is not tagged (a later Delete would delete it) nor granted.
            if let Some(why) = adoption_infeasible(o, a) {
                let msg = format!(
                    "account {} is not adopted: {why}. Nothing was written to it; fix the spec (or the account) first",
                    spec.account_name
                );
                return Some(out.failed(Stage::Account, r::CHANGE_REFUSED, msg));
            }
            // The version in use now may be needed by the account's backups after
            // the move to this resource's key.
            if let (Some(uri), Some(version)) = (&a.key_vault_key_uri, &a.key_version_in_use)
                && !same_id(uri, key_uri)
            {
                let reason = "in use when the account was adopted; its backups may need it";
                retain_version(out, uri, version, reason);
            }
            // Settings the spec sets go out with the owner tags: a deny
            // assignment would refuse a tag write to an account that does not
            // comply yet, however the spec means to fix it.
            if let Some((what, mut update)) = settings_drift::difference(&a.settings, &a.tags, spec)
            {
                update.owner = Some(o.me.clone());
                let msg = format!(
                    "adopting account {}: writing its owner tags ({}) with the settings the spec sets ({what})",
                    spec.account_name, o.me
                );
                let action = Action::UpdateSettings(update);
                return Some(out.acting(Stage::Account, r::ADOPTING_ACCOUNT, msg, action));
            }
            let msg = format!(
                "adopting account {}: writing its owner tags ({})",
                spec.account_name, o.me
            );
            Some(tag_owner(out, a, r::ADOPTING_ACCOUNT, msg))
        }
    }
}

/// Why the spec can never be carried out on an account that is to be adopted
/// (so it is neither tagged nor granted), if it cannot.
fn adoption_infeasible(o: &Observed<'_>, a: &AccountFacts) -> Option<String> {
    let spec = o.spec;
    if !o.provider_registered {
        return Some(
            "resource provider Microsoft.DocumentDB is not registered in the subscription"
                .to_owned(),
        );
    }
    if spec.identity.type_ == IdentityType::UserAssigned && o.user_assigned_principal.is_none() {
        let id = spec
            .identity
            .user_assigned_identity_id
            .as_deref()
            .unwrap_or("");
        return Some(format!("user-assigned identity {id} was not found"));
    }
    let refused: Vec<String> = spec_drift::differences(a.reported(), spec, &[])
        .into_iter()
        .filter_map(|d| match d.fix {
            Fix::Refused(rule) => Some(format!("{}: {rule}", d.what)),
            Fix::Change(..) => None,
        })
        .collect();
    (!refused.is_empty()).then(|| refused.join("; "))
}

/// Stage 2 for a known principal: granted, or the grant to make.
fn grant_stage(
    out: &mut Out<'_>,
    principal: &str,
    vault_id: &str,
    model: PermissionModel,
    manage: bool,
) -> Option<Decision> {
    let o = out.o;
    // Records without a vault predate it being recorded: they were made on this
    // resource's vault. Removal re-checks the grant in Azure anyway.
    for g in &mut out.status.grants {
        if g.vault_id.is_none() {
            g.vault_id = Some(vault_id.to_owned());
        }
    }
    if !o.granted.iter().any(|g| g.eq_ignore_ascii_case(principal)) {
        let model_name = if model == PermissionModel::Rbac {
            "role Key Vault Crypto Service Encryption User"
        } else {
            "an access policy"
        };
        if !manage {
            // Reported, and the account is still read and compared.
            let msg = format!(
                "principal {principal} holds no Get/WrapKey/UnwrapKey grant ({model_name}); observe-only policy: grant it yourself"
            );
            out.set(
                IDENTITY_GRANTED,
                FALSE,
                r::WAITING_FOR_IDENTITY_GRANT,
                msg.clone(),
            );
            out.gaps.push(msg);
            return None;
        }
        let msg =
            format!("granting principal {principal} Get/WrapKey/UnwrapKey through {model_name}");
        let grant = Action::Grant {
            vault_id: vault_id.to_owned(),
            model,
            principal_id: principal.to_owned(),
        };
        return Some(out.acting(Stage::Identity, r::GRANTING_ACCESS, msg, grant));
    }
    // A grant the operator made for another resource is shared: hold its record
    // too, so whichever resource goes last removes it.
    let recorded = out
        .status
        .grants
        .iter()
        .any(|g| g.is_for(vault_id, principal));
    if !recorded && let Some(shared) = o.peers.shared_grant(vault_id, principal) {
        out.status.grants.push(shared);
    }
    out.set(
        IDENTITY_GRANTED,
        TRUE,
        r::ACCESS_GRANTED,
        format!("principal {principal} holds Get/WrapKey/UnwrapKey"),
    );
    None
}

/// No account in Azure: create it, unless it existed before (then it is reported
/// missing and re-created only when the user asks).
fn create_or_report_missing(
    out: &mut Out<'_>,
    key_uri: String,
    want_default: String,
    manage: bool,
) -> Decision {
    let o = out.o;
    let spec = o.spec;
    if !manage {
        let msg = format!(
            "account {} does not exist; observe-only policy creates nothing",
            spec.account_name
        );
        return out.waiting(Stage::Account, r::ACCOUNT_MISSING, msg);
    }
    let asked = o
        .recreate
        .as_ref()
        .filter(|t| o.status.recreate_token.as_ref() != Some(*t));
    let facts = destructive::CreationFacts {
        account_name: &spec.account_name,
        recorded: o.status.account_id.as_deref(),
        restorable_deleted: o
            .restorable_deleted
            .clone()
            .unwrap_or_else(|| Err("not read".to_owned())),
        recreate_asked: asked.is_some(),
    };
    if let Err(msg) = destructive::account_creation(&facts) {
        return out.failed(Stage::Account, r::ACCOUNT_MISSING, msg);
    }
    if let Some(token) = asked {
        out.status.recreate_token = Some(token.clone());
        out.status.account_id = None;
        out.status.key_version_in_use = None;
    }
    if let Some(d) = restore_gate(out) {
        return d;
    }
    let ua = spec.identity.user_assigned_identity_id.clone();
    let create = CreateAccount {
        key_uri,
        default_identity: if ua.is_some() {
            want_default
        } else {
            "FirstPartyIdentity".to_owned()
        },
        user_assigned_identity: ua,
        tags: ownership::with_owner(&settings_drift::user_tags(spec), &o.me),
        settings: spec.settings(),
    };
    let msg = format!(
        "creating account {} with key {}",
        spec.account_name, create.key_uri
    );
    out.status.created_by_operator = true;
    out.status.managed_regions = spec
        .locations
        .iter()
        .map(|l| spec_drift::region_key(&l.location_name))
        .collect();
    out.acting(
        Stage::Account,
        r::CREATING_ACCOUNT,
        msg,
        Action::CreateAccount(create),
    )
}

/// Refuses a restore that is doomed: one reusing the source's user-assigned
/// identity (the restored account carries the source's identity metadata and
/// goes bad once the source is deleted), or one to a time whose key version is
/// disabled.
fn restore_gate(out: &mut Out<'_>) -> Option<Decision> {
    let o = out.o;
    let spec = o.spec;
    let (Some(restore), Some(facts)) = (&spec.restore, &o.restore) else {
        return None;
    };
    let source = facts.source_name.as_deref().unwrap_or("the source account");
    if let Some(ua) = &spec.identity.user_assigned_identity_id
        && facts
            .source_identities
            .iter()
            .any(|s| s.eq_ignore_ascii_case(ua))
    {
        let msg = format!(
            "the restore would use identity {ua}, which {source} also uses: the restored account carries the source's identity metadata and stops working once the source is deleted; create a new user-assigned identity for the restored account and set it in spec.identity.userAssignedIdentityId"
        );
        return Some(out.failed(Stage::Account, r::RESTORE_REUSES_SOURCE_IDENTITY, msg));
    }
    if let Some((uri, version, enabled)) = &facts.key_at_time
        && *enabled != Some(true)
    {
        let state = if enabled.is_some() {
            "disabled"
        } else {
            "gone"
        };
        let at = restore.timestamp.as_deref().unwrap_or("the restore time");
        let msg = format!(
            "{source} used key version {version} of {uri} at {at}, and that version is {state} in Key Vault: the restored data could not be decrypted; re-enable the version (or restore to a later time) before restoring"
        );
        return Some(out.failed(Stage::Account, r::RESTORE_KEY_VERSION_DISABLED, msg));
    }
    None
}

/// Differences in the key and the identity, in the order they are written.
/// Until the identity the key needs exists (and is granted), only enabling it
/// is a change; the rest are listed for reporting.
fn cmk_differences(
    a: &AccountFacts,
    spec: &CosmosAccountCMKSpec,
    want_default: &str,
    key_uri: &str,
    identity_missing: bool,
) -> Vec<Difference> {
    let change = |what: String, action: Action| Difference {
        what,
        fix: Fix::Change(action, r::UPDATING_ACCOUNT),
    };
    let mut out = Vec::new();
    match spec.identity.type_ {
        IdentityType::UserAssigned => {
            let id = spec
                .identity
                .user_assigned_identity_id
                .clone()
                .unwrap_or_default();
            if !a
                .user_assigned_ids
                .iter()
                .any(|x| x.eq_ignore_ascii_case(&id))
            {
                out.push(change(
                    format!("identity {id} is not on the account"),
                    Action::AddUserAssignedIdentity(id.clone()),
                ));
            }
        }
        IdentityType::SystemAssigned if a.system_principal_id.is_none() => out.push(change(
            "the account has no system-assigned identity yet".to_owned(),
            Action::EnableSystemIdentity,
        )),
        _ => {}
    }
    // Nothing but enabling the identity happens before its grant.
    if identity_missing && out.is_empty() {
        return out;
    }
    let have = a.default_identity.as_deref().unwrap_or("");
    if !have.eq_ignore_ascii_case(want_default) {
        out.push(change(
            format!("defaultIdentity is {have:?}, the spec wants {want_default:?}"),
            Action::SetDefaultIdentity(want_default.to_owned()),
        ));
    }
    match a.key_vault_key_uri.as_deref().filter(|k| !k.is_empty()) {
        None => out.push(change(
            format!("the account has no customer-managed key; the spec wants {key_uri}"),
            Action::SetKeyUri(key_uri.to_owned()),
        )),
        Some(have) if !same_id(have, key_uri) => out.push(change(
            format!("keyVaultKeyUri is {have}, the spec wants {key_uri}"),
            Action::SetKeyUri(key_uri.to_owned()),
        )),
        Some(_) => {}
    }
    out
}

/// Settles the differences: observe-only reports them all; otherwise one Azure
/// refuses stops every write (all such named, with Azure's rule), else the first
/// change is made. `None` when the account matches the spec.
fn converge(out: &mut Out<'_>, diffs: &[Difference], manage: bool) -> Option<Decision> {
    if diffs.is_empty() && out.gaps.is_empty() {
        return None;
    }
    let spec = out.o.spec;
    if !manage {
        let all: Vec<String> = out
            .gaps
            .iter()
            .cloned()
            .chain(diffs.iter().map(|d| match &d.fix {
                Fix::Change(..) => d.what.clone(),
                Fix::Refused(rule) => format!("{} ({rule})", d.what),
            }))
            .collect();
        let msg = format!(
            "account {} differs from the spec in {} way(s): {}; the observe-only policy reports and changes nothing",
            spec.account_name,
            all.len(),
            all.join("; ")
        );
        return Some(out.failed(Stage::Account, r::DRIFT_DETECTED, msg));
    }
    let refused: Vec<String> = diffs
        .iter()
        .filter_map(|d| match &d.fix {
            Fix::Refused(rule) => Some(format!("{}: {rule}", d.what)),
            Fix::Change(..) => None,
        })
        .collect();
    if !refused.is_empty() {
        let msg = format!(
            "account {} cannot be made to match the spec: {}. The operator writes nothing to the account until the spec (or the account) is fixed",
            spec.account_name,
            refused.join("; ")
        );
        return Some(out.failed(Stage::Account, r::CHANGE_REFUSED, msg));
    }
    let (d, action, reason) = diffs.iter().find_map(|d| match &d.fix {
        Fix::Change(action, reason) => Some((d, action.clone(), *reason)),
        Fix::Refused(_) => None,
    })?;
    if let Action::SetLocations(next) = &action
        && let AccountState::Found(a) = &out.o.account
    {
        record_regions(&mut out.status.managed_regions, &a.locations, next);
    }
    let left = diffs.len() - 1;
    let msg = if left == 0 {
        format!("updating the account: {}", d.what)
    } else {
        format!(
            "updating the account: {} ({left} more change(s) after this one, one at a time as Azure requires)",
            d.what
        )
    };
    Some(out.acting(Stage::Account, reason, msg, action))
}

/// Keeps `status.managedRegions` in step with a region change: the region
/// added is recorded, the one removed forgotten.
fn record_regions(managed: &mut Vec<String>, have: &[Location], next: &[Location]) {
    let key = |l: &Location| spec_drift::region_key(&l.location_name);
    for l in next {
        if !have.iter().any(|h| key(h) == key(l)) && !managed.contains(&key(l)) {
            managed.push(key(l));
        }
    }
    managed.retain(|m| next.iter().any(|l| key(l) == *m) || !have.iter().any(|h| key(h) == *m));
}

/// With `removeFirstPartyGrant`, the first party's grant goes once the account
/// has switched away, if the operator made it (recorded, not found in place) and
/// no other live resource needs the first party on this vault.
fn first_party_cleanup(out: &mut Out<'_>, vault_id: &str, manage: bool) -> Option<Action> {
    let o = out.o;
    let spec = o.spec;
    if spec.identity.type_ == IdentityType::FirstParty
        || !spec.identity.remove_first_party_grant
        || !manage
    {
        return None;
    }
    let fp = o.first_party_principal;
    let i = out
        .status
        .grants
        .iter()
        .position(|g| g.is_for(vault_id, fp))?;
    if out.status.grants[i].entry_found || o.peers.grant_needed(vault_id, fp) {
        return None;
    }
    let grant = out.status.grants.remove(i);
    Some(Action::RevokeGrant {
        vault_id: vault_id.to_owned(),
        grant,
    })
}

/// Records a version the account stopped using, kept for its backups.
fn retain_version(out: &mut Out<'_>, key_uri: &str, version: &str, reason: &str) {
    let o = out.o;
    let grace = i64::from(o.spec.rotation.previous_version_grace_hours);
    let window = o.spec.backup_policy.restore_window_hours();
    let hours = grace.max(window);
    let safe = o
        .now
        .checked_add(SignedDuration::from_hours(hours))
        .unwrap_or(o.now);
    let list = &mut out.status.retained_key_versions;
    if list
        .iter()
        .any(|r| same_id(&r.key_uri, key_uri) && r.version == version)
    {
        return;
    }
    list.push(RetainedKeyVersion {
        key_uri: key_uri.trim_end_matches('/').to_owned(),
        version: version.to_owned(),
        reason: format!(
            "{reason}; kept {hours} h: max(grace period {grace} h, backup restore window {window} h)"
        ),
        retired_at: Some(Time(o.now)),
        safe_to_disable_after: Time(safe),
        disabled: false,
        kept_because: None,
    });
    if list.len() > MAX_RETAINED_VERSIONS {
        let drop = list.len() - MAX_RETAINED_VERSIONS;
        list.drain(..drop);
    }
}

fn track_rotation(out: &mut Out<'_>, a: &AccountFacts, key_uri: &str) -> Option<Action> {
    let o = out.o;
    let in_use = a.key_version_in_use.clone();
    let before = o.status.key_version_in_use.clone();
    if let (Some(new), Some(old)) = (&in_use, &before)
        && new != old
    {
        // The previous version may belong to the key used before a move to another key.
        let old_uri = o
            .status
            .key_vault_key_uri
            .clone()
            .unwrap_or_else(|| key_uri.to_owned());
        retain_version(out, &old_uri, old, "used until the last rotation");
        let safe = out
            .status
            .retained_key_versions
            .iter()
            .find(|r| &r.version == old)
            .map(|r| r.safe_to_disable_after.clone());
        out.status.previous_key_version = Some(old.clone());
        out.status.previous_key_uri = Some(old_uri);
        out.status.last_rotation_time = Some(Time(o.now));
        out.status.previous_version_safe_to_disable_after = safe;
        out.status.previous_version_disabled = false;
    }
    out.status.key_version_in_use = in_use.clone();
    let version = in_use.unwrap_or_else(|| "unknown".to_owned());
    let in_use_uri = a.key_vault_key_uri.clone().unwrap_or_default();
    let may_disable = o.spec.rotation.disable_previous_version
        && o.spec.reconcile_policy == ReconcilePolicy::Manage;
    // The first version due, unused here and needed by no other resource; the
    // controller re-checks it in Azure (latest version, accounts using it) first.
    let due = out.status.retained_key_versions.iter().position(|r| {
        let in_use_here = same_id(&r.key_uri, &in_use_uri) && r.version == version;
        let too_early = o.now < r.safe_to_disable_after.0;
        !(r.disabled || too_early || in_use_here || o.peers.version_needed(&r.key_uri, &r.version))
    });
    if may_disable && let Some(i) = due {
        let r = &mut out.status.retained_key_versions[i];
        r.disabled = true;
        let (uri, v) = (r.key_uri.clone(), r.version.clone());
        if out.status.previous_key_version.as_ref() == Some(&v) {
            out.status.previous_version_disabled = true;
        }
        out.set(
            ROTATION_TRACKED,
            TRUE,
            r::PREVIOUS_VERSION_DISABLED,
            format!("key version {version} in use; disabling version {v} of {uri}, past its grace period and backup window"),
        );
        return Some(Action::DisableKeyVersion {
            key_uri: uri,
            version: v,
        });
    }
    let Some(previous) = out.status.previous_key_version.clone() else {
        out.set(
            ROTATION_TRACKED,
            TRUE,
            r::KEY_VERSION_TRACKED,
            format!("key version {version} in use"),
        );
        return None;
    };
    let when = out
        .status
        .previous_version_safe_to_disable_after
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), |t| t.0.to_string());
    out.set(
        ROTATION_TRACKED,
        TRUE,
        r::KEY_ROTATED,
        format!("key version {version} in use; previous version {previous} is safe to disable after {when}"),
    );
    None
}
