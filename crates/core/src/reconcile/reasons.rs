//! Condition reasons: stable CamelCase words, part of the public contract
//! (README "Condition reasons"), so dashboards and alerts can match on them.

// Both kinds: the namespace may not act on what the resource targets
// (the operator's tenancy policy); no Azure call was made.
pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
// Both kinds: the tenancy policy file cannot be read or parsed, so nothing is
// allowed until it is fixed; no Azure call was made.
pub const TENANCY_POLICY_UNUSABLE: &str = "TenancyPolicyUnusable";

// KeyVaultBinding
pub const VAULT_NOT_FOUND: &str = "VaultNotFound";
pub const SOFT_DELETE_DISABLED: &str = "SoftDeleteDisabled";
pub const PURGE_PROTECTION_DISABLED: &str = "PurgeProtectionDisabled";
pub const VAULT_NETWORK_CLOSED: &str = "VaultNetworkClosed";
pub const PERMISSION_MODEL_MISMATCH: &str = "PermissionModelMismatch";
pub const KEY_NOT_FOUND: &str = "KeyNotFound";
pub const KEY_DISABLED: &str = "KeyDisabled";
pub const KEY_NOT_RSA: &str = "KeyNotRsa";
pub const CREATING_KEY: &str = "CreatingKey";
pub const KEY_READY: &str = "KeyReady";
// KeyExpiring condition of a binding.
pub const WITHIN_NOTIFY_WINDOW: &str = "WithinNotifyWindow";
pub const NO_ROTATION_BEFORE_EXPIRY: &str = "NoRotationBeforeExpiry";
pub const KEY_EXPIRED: &str = "KeyExpired";
pub const EXPIRY_FAR: &str = "ExpiryFar";

// CosmosAccountCMK
pub const BINDING_NOT_FOUND: &str = "BindingNotFound";
pub const BINDING_NOT_READY: &str = "BindingNotReady";
pub const VAULT_READY: &str = "VaultReady";
pub const PROVIDER_NOT_REGISTERED: &str = "ProviderNotRegistered";
pub const IDENTITY_NOT_FOUND: &str = "IdentityNotFound";
pub const GRANTING_ACCESS: &str = "GrantingAccess";
pub const ACCESS_GRANTED: &str = "AccessGranted";
pub const WAITING_FOR_IDENTITY_GRANT: &str = "WaitingForIdentityGrant";
pub const CREATING_ACCOUNT: &str = "CreatingAccount";
pub const UPDATING_ACCOUNT: &str = "UpdatingAccount";
pub const ACCOUNT_EXISTS_WITHOUT_CMK: &str = "AccountExistsWithoutCmk";
pub const ACCOUNT_MISSING: &str = "AccountMissing";
pub const ACCOUNT_PROVISIONING_FAILED: &str = "AccountProvisioningFailed";
pub const ACCOUNT_READY: &str = "AccountReady";
pub const DRIFT_DETECTED: &str = "DriftDetected";
pub const KEY_REVOKED: &str = "KeyRevoked";
pub const KEY_VERSION_TRACKED: &str = "KeyVersionTracked";
pub const KEY_ROTATED: &str = "KeyRotated";
pub const PREVIOUS_VERSION_DISABLED: &str = "PreviousVersionDisabled";
pub const WAITING: &str = "Waiting";
pub const READY: &str = "Ready";
pub const NOT_READY: &str = "NotReady";
pub const OWNED_BY_ANOTHER_RESOURCE: &str = "OwnedByAnotherResource";
pub const OWNED_BY_ANOTHER_CLUSTER: &str = "OwnedByAnotherCluster";
pub const UPDATING_OWNER_TAGS: &str = "UpdatingOwnerTags";
pub const ACCOUNT_NOT_OWNED: &str = "AccountNotOwned";
pub const ADOPTION_NEEDS_CONSENT: &str = "AdoptionNeedsConsent";
pub const ADOPTING_ACCOUNT: &str = "AdoptingAccount";
pub const WAITING_FOR_SYSTEM_IDENTITY: &str = "WaitingForSystemIdentity";
pub const RESTORE_REUSES_SOURCE_IDENTITY: &str = "RestoreReusesSourceIdentity";
pub const RESTORE_KEY_VERSION_DISABLED: &str = "RestoreKeyVersionDisabled";
pub const DELETION_BLOCKED: &str = "DeletionBlocked";
// Converging the rest of the spec (regions, backup policy).
pub const ADDING_REGION: &str = "AddingRegion";
pub const REMOVING_REGION: &str = "RemovingRegion";
pub const CHANGING_FAILOVER_PRIORITIES: &str = "ChangingFailoverPriorities";
pub const UPDATING_BACKUP_POLICY: &str = "UpdatingBackupPolicy";
pub const MIGRATING_TO_CONTINUOUS_BACKUP: &str = "MigratingToContinuousBackup";
pub const CHANGE_REFUSED: &str = "ChangeRefused";
// The settings Azure Policy looks at (network, local auth, TLS) and the user's tags.
pub const UPDATING_ACCOUNT_SETTINGS: &str = "UpdatingAccountSettings";
// Both kinds: Azure Policy denied a write (403 `RequestDisallowedByPolicy`);
// the message names the policy, its assignment and the spec field to set.
pub const DISALLOWED_BY_POLICY: &str = "DisallowedByPolicy";
