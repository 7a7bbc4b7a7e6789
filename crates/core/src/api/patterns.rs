//! Regular expressions (RE2, as the API server evaluates them) for Azure names
//! and ARM resource ids. Kept in one place so the CRD schema, the docs and the
//! tests agree on what Azure accepts.

/// Subscription ids are GUIDs.
pub const SUBSCRIPTION_ID: &str =
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// Resource group: 1-90 of letters and digits (Unicode, as Azure allows), `-_.()`,
/// not ending in a period. RE2's `\w` is ASCII-only, hence the classes.
pub const RESOURCE_GROUP: &str = r"^[-\p{L}\p{N}_.()]{0,89}[-\p{L}\p{N}_()]$";

/// Cosmos DB account name: 3-44 lowercase letters, digits and hyphens, not starting or ending with a hyphen.
pub const ACCOUNT_NAME: &str = r"^[a-z0-9][a-z0-9-]{1,42}[a-z0-9]$";

/// Azure region, display name ("East US 2") or programmatic name ("eastus2").
pub const LOCATION: &str = r"^[A-Za-z][A-Za-z0-9 ]{0,48}[A-Za-z0-9]$";

/// Key Vault object name: 1-127 letters, digits and hyphens.
pub const KEY_NAME: &str = r"^[0-9a-zA-Z-]{1,127}$";

/// Capability names such as `EnableCassandra` or `EnableServerless`.
pub const CAPABILITY: &str = r"^[A-Za-z][A-Za-z0-9]{0,63}$";

/// Kubernetes object name (DNS subdomain) for references within the namespace.
pub const K8S_NAME: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// UTC timestamp in RFC 3339 with the `Z` designator.
pub const UTC_TIMESTAMP: &str =
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$";

#[cfg(test)]
const GUID: &str = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";

/// ARM id of a Key Vault: `/subscriptions/{guid}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}`.
pub const VAULT_ID: &str = concat!(
    r"^/subscriptions/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    r"/(?i:resourceGroups)/[-\p{L}\p{N}_.()]{0,89}[-\p{L}\p{N}_()]",
    r"/(?i:providers/Microsoft\.KeyVault/vaults)/[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$"
);

/// ARM id of a user-assigned managed identity.
pub const USER_ASSIGNED_IDENTITY_ID: &str = concat!(
    r"^/subscriptions/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    r"/(?i:resourceGroups)/[-\p{L}\p{N}_.()]{0,89}[-\p{L}\p{N}_()]",
    r"/(?i:providers/Microsoft\.ManagedIdentity/userAssignedIdentities)/[a-zA-Z0-9][-\w]{2,127}$"
);

/// ARM id of a restorable (continuous-backup) database account.
pub const RESTORABLE_ACCOUNT_ID: &str = concat!(
    r"^/subscriptions/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    r"/(?i:providers/Microsoft\.DocumentDB/locations)/[A-Za-z0-9 ]{1,50}",
    r"/(?i:restorableDatabaseAccounts)/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
);

#[cfg(test)]
mod tests {
    use super::GUID;

    #[test]
    fn guid_fragment_matches_the_inlined_copies() {
        // The ids inline the GUID pattern because `concat!` needs literals; keep them in step.
        for id in [
            super::VAULT_ID,
            super::USER_ASSIGNED_IDENTITY_ID,
            super::RESTORABLE_ACCOUNT_ID,
        ] {
            assert!(id.contains(GUID), "{id} must embed the GUID pattern");
        }
        assert_eq!(super::SUBSCRIPTION_ID, format!("^{GUID}$"));
    }
}
