//! Azure built-in role definitions the simulator knows, with their real ids
//! and permissions, and Azure RBAC's action matching.
//!
//! Source of every id and permission list: Microsoft Learn, "Azure built-in
//! roles" (learn.microsoft.com/azure/role-based-access-control/built-in-roles,
//! the General, Databases, Security and Identity pages), cross-checked for
//! the Key Vault roles against the role JSON Azure serves (as mirrored by
//! azure-rbac-catalog.org). Only the permissions matter here; descriptions
//! are abridged. Built-in roles evolve: these are the lists as documented
//! when this table was written.

use serde::{Deserialize, Serialize};

/// One permission block of a role (`permissions[0]` in Azure's JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Permission {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
}

/// A built-in role as the table below holds it.
pub struct BuiltInRole {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub actions: &'static [&'static str],
    pub not_actions: &'static [&'static str],
    pub data_actions: &'static [&'static str],
    pub not_data_actions: &'static [&'static str],
}

impl BuiltInRole {
    pub fn permission(&self) -> Permission {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
        Permission {
            actions: v(self.actions),
            not_actions: v(self.not_actions),
            data_actions: v(self.data_actions),
            not_data_actions: v(self.not_data_actions),
        }
    }
}

pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
pub const USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
pub const RBAC_ADMINISTRATOR: &str = "f58310d9-a9f6-439a-9e8d-f62e7b41a168";
pub const DOCUMENTDB_ACCOUNT_CONTRIBUTOR: &str = "5bd9cd88-fe45-4216-938b-f97437e15450";
pub const KEY_VAULT_CONTRIBUTOR: &str = "f25e0fa2-a7c8-4377-a976-54943a77a395";
pub const KEY_VAULT_ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
pub const KEY_VAULT_CRYPTO_OFFICER: &str = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603";
pub const KEY_VAULT_CRYPTO_USER: &str = "12338af0-0e69-4776-bea7-57ae8d297424";
pub const KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER: &str = "e147488a-f6f5-4113-8e2d-b22465e65bf6";
pub const KEY_VAULT_READER: &str = "21090545-7ca7-4776-b22c-e363652d74d2";
pub const MANAGED_IDENTITY_OPERATOR: &str = "f1a07417-d97a-45cb-824c-7a7467783830";

/// The control-plane actions the Key Vault data roles share.
const KV_DATA_ROLE_ACTIONS: &[&str] = &[
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/operations/read",
];

pub const BUILT_IN_ROLES: &[BuiltInRole] = &[
    BuiltInRole {
        id: OWNER,
        name: "Owner",
        description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        actions: &["*"],
        not_actions: &[],
        data_actions: &[],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: CONTRIBUTOR,
        name: "Contributor",
        description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
        ],
        data_actions: &[],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: READER,
        name: "Reader",
        description: "View all resources, but does not allow you to make any changes.",
        actions: &["*/read"],
        not_actions: &[],
        data_actions: &[],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: USER_ACCESS_ADMINISTRATOR,
        name: "User Access Administrator",
        description: "Lets you manage user access to Azure resources.",
        actions: &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        not_actions: &[],
        data_actions: &[],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: RBAC_ADMINISTRATOR,
        name: "Role Based Access Control Administrator",
        description: "Manage access to Azure resources by assigning roles using Azure RBAC.",
        actions: &[
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
        data_actions: &[],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: DOCUMENTDB_ACCOUNT_CONTRIBUTOR,
        name: "DocumentDB Account Contributor",
        description: "Can manage Azure Cosmos DB accounts.",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.DocumentDb/databaseAccounts/*",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Insights/diagnosticSettings/*",
            "Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action",
            "Microsoft.ResourceHealth/availabilityStatuses/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
            "Microsoft.Network/virtualNetworks/subnets/join/action",
        ],
        not_actions: &[],
        data_actions: &[],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: KEY_VAULT_CONTRIBUTOR,
        name: "Key Vault Contributor",
        description: "Manage key vaults, but does not allow you to assign roles in Azure RBAC, and does not allow you to access secrets, keys, or certificates.",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.KeyVault/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
        ],
        not_actions: &[
            "Microsoft.KeyVault/locations/deletedVaults/purge/action",
            "Microsoft.KeyVault/hsmPools/*",
            "Microsoft.KeyVault/managedHsms/*",
        ],
        data_actions: &[],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: KEY_VAULT_ADMINISTRATOR,
        name: "Key Vault Administrator",
        description: "Perform all data plane operations on a key vault and all objects in it, including certificates, keys, and secrets.",
        actions: KV_DATA_ROLE_ACTIONS,
        not_actions: &[],
        data_actions: &["Microsoft.KeyVault/vaults/*"],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: KEY_VAULT_CRYPTO_OFFICER,
        name: "Key Vault Crypto Officer",
        description: "Perform any action on the keys of a key vault, except manage permissions.",
        actions: KV_DATA_ROLE_ACTIONS,
        not_actions: &[],
        data_actions: &[
            "Microsoft.KeyVault/vaults/keys/*",
            "Microsoft.KeyVault/vaults/keyrotationpolicies/*",
        ],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: KEY_VAULT_CRYPTO_USER,
        name: "Key Vault Crypto User",
        description: "Perform cryptographic operations using keys.",
        actions: &[],
        not_actions: &[],
        data_actions: &[
            "Microsoft.KeyVault/vaults/keys/read",
            "Microsoft.KeyVault/vaults/keys/update/action",
            "Microsoft.KeyVault/vaults/keys/backup/action",
            "Microsoft.KeyVault/vaults/keys/encrypt/action",
            "Microsoft.KeyVault/vaults/keys/decrypt/action",
            "Microsoft.KeyVault/vaults/keys/wrap/action",
            "Microsoft.KeyVault/vaults/keys/unwrap/action",
            "Microsoft.KeyVault/vaults/keys/sign/action",
            "Microsoft.KeyVault/vaults/keys/verify/action",
        ],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
        name: "Key Vault Crypto Service Encryption User",
        description: "Read metadata of keys and perform wrap/unwrap operations.",
        actions: &[
            "Microsoft.EventGrid/eventSubscriptions/write",
            "Microsoft.EventGrid/eventSubscriptions/read",
            "Microsoft.EventGrid/eventSubscriptions/delete",
        ],
        not_actions: &[],
        data_actions: &[
            "Microsoft.KeyVault/vaults/keys/read",
            "Microsoft.KeyVault/vaults/keys/wrap/action",
            "Microsoft.KeyVault/vaults/keys/unwrap/action",
        ],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: KEY_VAULT_READER,
        name: "Key Vault Reader",
        description: "Read metadata of key vaults and its certificates, keys, and secrets.",
        actions: KV_DATA_ROLE_ACTIONS,
        not_actions: &[],
        data_actions: &[
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
        not_data_actions: &[],
    },
    BuiltInRole {
        id: MANAGED_IDENTITY_OPERATOR,
        name: "Managed Identity Operator",
        description: "Read and Assign User Assigned Identity",
        actions: &[
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
        data_actions: &[],
        not_data_actions: &[],
    },
];

/// The built-in role with this GUID.
pub fn built_in(guid: &str) -> Option<&'static BuiltInRole> {
    BUILT_IN_ROLES
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(guid))
}

/// Whether `pattern` (an entry of `actions` and the like) covers `action`.
/// Azure compares case-insensitively, and `*` stands for any string
/// ("Microsoft.DocumentDB/*", "*/read", "*"). Built-in roles also write
/// `.../userAssignedIdentities/*/read` for the identity's own
/// `.../userAssignedIdentities/read` (Managed Identity Operator's documented
/// effect), so a `/*/` also matches a single `/`.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let a = action.to_ascii_lowercase();
    glob(p.as_bytes(), a.as_bytes())
        || (p.contains("/*/") && glob(p.replace("/*/", "/").as_bytes(), a.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// Whether a permission block allows a control-plane `action`: some entry of
/// `actions` covers it and none of `notActions` does (notActions only
/// subtract from this same role; they deny nothing another role grants).
pub fn allows_action(p: &Permission, action: &str) -> bool {
    p.actions.iter().any(|a| action_matches(a, action))
        && !p.not_actions.iter().any(|a| action_matches(a, action))
}

/// The same for a data action.
pub fn allows_data_action(p: &Permission, action: &str) -> bool {
    p.data_actions.iter().any(|a| action_matches(a, action))
        && !p.not_data_actions.iter().any(|a| action_matches(a, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_azure_documents() {
        assert!(action_matches(
            "*",
            "Microsoft.DocumentDB/databaseAccounts/write"
        ));
        assert!(action_matches(
            "Microsoft.DocumentDb/databaseAccounts/*",
            "Microsoft.DocumentDB/databaseAccounts/write"
        ));
        assert!(action_matches("*/read", "Microsoft.KeyVault/vaults/read"));
        assert!(!action_matches("*/read", "Microsoft.KeyVault/vaults/write"));
        assert!(action_matches(
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"
        ));
        assert!(!action_matches(
            "Microsoft.DocumentDb/databaseAccounts/*",
            "Microsoft.DocumentDB/locations/operationsStatus/read"
        ));
    }

    #[test]
    fn not_actions_subtract() {
        let c = built_in(CONTRIBUTOR).unwrap().permission();
        assert!(allows_action(
            &c,
            "Microsoft.DocumentDB/databaseAccounts/write"
        ));
        assert!(!allows_action(
            &c,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(allows_action(
            &c,
            "Microsoft.Authorization/roleAssignments/read"
        ));
        let o = built_in(KEY_VAULT_CRYPTO_OFFICER).unwrap().permission();
        assert!(allows_action(&o, "Microsoft.KeyVault/vaults/read"));
        assert!(!allows_action(
            &o,
            "Microsoft.KeyVault/vaults/accessPolicies/write"
        ));
        assert!(allows_data_action(
            &o,
            "Microsoft.KeyVault/vaults/keys/create/action"
        ));
    }
}
