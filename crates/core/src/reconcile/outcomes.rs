//! The values Azure's side answers the controller with: a staged account
//! change and what a destructive call did. Plain data (the port in the
//! operator crate carries them), so the core's rules and tests can name them.

use crate::api::{BackupPolicy, Location, OperationKind};
use crate::reconcile::ownership::Owner;
use crate::reconcile::settings_drift::SettingsUpdate;

/// One staged change to an existing account (Azure rejects bundling them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountChange {
    EnableSystemIdentity,
    AddUserAssignedIdentity(String),
    SetDefaultIdentity(String),
    SetKeyUri(String),
    /// Writes the owner's tags, keeping every other tag the account has.
    SetOwner(Owner),
    /// The regions the account is to have (one added or removed), in priority order.
    SetLocations(Vec<Location>),
    /// Every region with its new failover priority (`failoverPriorityChange`).
    ChangeFailoverPriorities(Vec<Location>),
    /// A new backup policy (migration to continuous, tier, interval, retention).
    SetBackupPolicy(BackupPolicy),
    /// The settings that differ and the user's tags (others kept), in one PATCH.
    SetSettings(SettingsUpdate),
}

impl AccountChange {
    /// The long-running operation this change starts.
    pub fn operation(&self) -> OperationKind {
        match self {
            Self::EnableSystemIdentity => OperationKind::EnableSystemIdentity,
            Self::AddUserAssignedIdentity(_) => OperationKind::AddUserAssignedIdentity,
            Self::SetDefaultIdentity(_) => OperationKind::SetDefaultIdentity,
            Self::SetKeyUri(_) => OperationKind::SetKeyUri,
            Self::SetOwner(_) => OperationKind::SetOwner,
            Self::SetLocations(_) => OperationKind::SetLocations,
            Self::ChangeFailoverPriorities(_) => OperationKind::ChangeFailoverPriorities,
            Self::SetBackupPolicy(_) => OperationKind::SetBackupPolicy,
            Self::SetSettings(_) => OperationKind::SetAccountSettings,
        }
    }
}

/// What removing a grant did. The grant is re-read from Azure first, and only
/// removed when it still is exactly what the operator made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    Removed,
    /// Nothing to remove (the vault, assignment or entry is gone).
    AlreadyGone,
    /// Left in place, with why (e.g. the entry holds permissions the operator did not add).
    Kept(String),
}

/// What disabling a key version did; Azure is read first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisableOutcome {
    Disabled,
    AlreadyDisabled,
    /// Left enabled, with why (e.g. it is the key's latest version).
    Kept(String),
}
