//! The `KeyVaultBinding` state machine: vault facts in, next action and status out.
//! Pure: no I/O, time is an argument.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::reasons as r;
use crate::api::conditions::{self, FALSE, READY, TRUE};
use crate::api::{
    KeyType, KeyVaultBindingSpec, KeyVaultBindingStatus, PermissionModel, Phase, VaultPreflight,
};

/// What the vault's management plane says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultFacts {
    pub vault_uri: String,
    pub soft_delete: bool,
    pub purge_protection: bool,
    /// `publicNetworkAccess` is `Enabled`.
    pub public_network_access: bool,
    /// `networkAcls.defaultAction` is `Deny`.
    pub firewall_deny_by_default: bool,
    /// `networkAcls.bypass` includes `AzureServices`.
    pub bypass_azure_services: bool,
    /// `enableRbacAuthorization`.
    pub rbac_authorization: bool,
}

/// What the key's data plane says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyFacts {
    Missing,
    Present {
        version: String,
        enabled: bool,
        key_type: String,
        /// The version's `attributes.created`, when Key Vault says.
        created: Option<Timestamp>,
        /// The version's `attributes.exp`, when it has one.
        expires: Option<Timestamp>,
    },
}

/// Everything the binding decision needs.
#[derive(Clone, Debug)]
pub struct BindingObserved<'a> {
    pub spec: &'a KeyVaultBindingSpec,
    pub generation: Option<i64>,
    pub status: &'a KeyVaultBindingStatus,
    /// `None` when the vault does not exist (or the operator may not read it).
    pub vault: Option<VaultFacts>,
    /// Only consulted once the vault passed the preflight.
    pub key: Option<KeyFacts>,
    pub now: Time,
}

/// The one Azure write a binding can ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingAction {
    /// Create the key; `small` asks for a warning event (below the recommended 3072 bits).
    CreateKey {
        name: String,
        key_type: KeyType,
        size: i32,
        small: bool,
    },
}

/// The decision: the status to hold and at most one action.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingDecision {
    pub status: KeyVaultBindingStatus,
    pub action: Option<BindingAction>,
}

/// The network rule of the seed: public access, or a firewall that lets trusted
/// Azure services through. `None` when usable, else why not.
pub fn network_problem(v: &VaultFacts) -> Option<&'static str> {
    if !v.public_network_access {
        Some(
            "the vault allows no public network access; a vault reachable only through private endpoints cannot hold Cosmos DB keys: enable public network access with the firewall's 'Allow trusted Microsoft services' exception",
        )
    } else if v.firewall_deny_by_default && !v.bypass_azure_services {
        Some(
            "the vault firewall denies by default without the trusted-services bypass, so Cosmos DB cannot reach the key: set networkAcls.bypass to AzureServices",
        )
    } else {
        None
    }
}

/// Decides the binding's next step.
pub fn decide(o: &BindingObserved<'_>) -> BindingDecision {
    let mut status = o.status.clone();
    status.observed_generation = o.generation;
    let fail = |mut status: KeyVaultBindingStatus, phase, reason: &str, message: String| {
        status.phase = phase;
        conditions::set_condition(
            &mut status.conditions,
            conditions::condition(READY, FALSE, reason, message, o.generation, o.now.clone()),
        );
        BindingDecision {
            status,
            action: None,
        }
    };

    let Some(vault) = &o.vault else {
        return fail(
            status,
            Phase::Failed,
            r::VAULT_NOT_FOUND,
            format!(
                "Key Vault {} was not found (or the operator's identity may not read it): check spec.vaultResourceId and grant the operator Reader on the vault",
                o.spec.vault_resource_id
            ),
        );
    };
    status.vault_uri = Some(vault.vault_uri.clone());
    let failure = if !vault.soft_delete {
        Some((r::SOFT_DELETE_DISABLED, "soft delete is disabled on the vault; Cosmos DB requires it: enable soft delete (az keyvault update --enable-soft-delete true)".to_owned()))
    } else if !vault.purge_protection {
        Some((r::PURGE_PROTECTION_DISABLED, "purge protection is disabled on the vault; Cosmos DB requires it: enable it (az keyvault update --enable-purge-protection true; it cannot be turned off again)".to_owned()))
    } else {
        network_problem(vault).map(|m| (r::VAULT_NETWORK_CLOSED, m.to_owned()))
    };
    status.preflight = Some(VaultPreflight {
        soft_delete_enabled: vault.soft_delete,
        purge_protection_enabled: vault.purge_protection,
        public_network_access: if vault.public_network_access {
            "Enabled"
        } else {
            "Disabled"
        }
        .to_owned(),
        trusted_services_bypass: vault.bypass_azure_services,
        failure: failure.as_ref().map(|(_, m)| m.clone()),
    });
    if let Some((reason, message)) = failure {
        return fail(status, Phase::Failed, reason, message);
    }

    let vault_model = if vault.rbac_authorization {
        PermissionModel::Rbac
    } else {
        PermissionModel::AccessPolicy
    };
    if o.spec.permission_model != PermissionModel::Auto && o.spec.permission_model != vault_model {
        return fail(
            status,
            Phase::Failed,
            r::PERMISSION_MODEL_MISMATCH,
            format!(
                "spec.permissionModel is {:?} but the vault uses {:?} (enableRbacAuthorization={}); only one model is active on a vault: set permissionModel to Auto or change the vault",
                o.spec.permission_model, vault_model, vault.rbac_authorization
            ),
        );
    }
    status.permission_model = Some(vault_model);
    status.key_uri = Some(format!(
        "{}/keys/{}",
        vault.vault_uri.trim_end_matches('/'),
        o.spec.key.name
    ));

    match &o.key {
        None | Some(KeyFacts::Missing) if o.spec.key.create_if_missing => {
            status.phase = Phase::Provisioning;
            let message = format!(
                "creating {:?} key {} ({} bits)",
                o.spec.key.key_type, o.spec.key.name, o.spec.key.size
            );
            conditions::set_condition(
                &mut status.conditions,
                conditions::condition(
                    READY,
                    FALSE,
                    r::CREATING_KEY,
                    message,
                    o.generation,
                    o.now.clone(),
                ),
            );
            let action = BindingAction::CreateKey {
                name: o.spec.key.name.clone(),
                key_type: o.spec.key.key_type,
                size: o.spec.key.size,
                small: o.spec.key.size < 3072,
            };
            BindingDecision {
                status,
                action: Some(action),
            }
        }
        None | Some(KeyFacts::Missing) => fail(
            status,
            Phase::Failed,
            r::KEY_NOT_FOUND,
            format!(
                "key {} does not exist in the vault and spec.key.createIfMissing is false: create it, or set createIfMissing",
                o.spec.key.name
            ),
        ),
        Some(KeyFacts::Present { key_type, .. }) if !key_type.starts_with("RSA") => fail(
            status,
            Phase::Failed,
            r::KEY_NOT_RSA,
            format!(
                "key {} is of type {key_type}; Cosmos DB needs an RSA or RSA-HSM key: point spec.key.name at an RSA key",
                o.spec.key.name
            ),
        ),
        Some(KeyFacts::Present {
            version,
            enabled: false,
            ..
        }) => {
            status.key_version = Some(version.clone());
            fail(
                status,
                Phase::Revoked,
                r::KEY_DISABLED,
                format!(
                    "the latest version {version} of key {} is disabled, which revokes every account using it: re-enable it in the vault",
                    o.spec.key.name
                ),
            )
        }
        Some(KeyFacts::Present { version, .. }) => {
            status.key_version = Some(version.clone());
            status.phase = Phase::Ready;
            let message = format!(
                "key {} version {version} is ready ({:?} model)",
                o.spec.key.name, vault_model
            );
            conditions::set_condition(
                &mut status.conditions,
                conditions::condition(
                    READY,
                    TRUE,
                    r::KEY_READY,
                    message,
                    o.generation,
                    o.now.clone(),
                ),
            );
            BindingDecision {
                status,
                action: None,
            }
        }
    }
}

/// Whether `key_uri` (versionless or versioned) is the key the binding's spec
/// names: the vault's name is the first label of the key's host (Key Vault
/// derives a vault's URI from its globally unique name) and the key's name is
/// the spec's. A key URI in a binding's status is a record anyone who may
/// patch `/status` can change; only a key this spec names is used or touched.
pub fn spec_names_key(spec: &KeyVaultBindingSpec, key_uri: &str) -> bool {
    let Some(rest) = key_uri.strip_prefix("https://") else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let vault_name = spec
        .vault_resource_id
        .trim_end_matches('/')
        .rsplit('/')
        .next();
    let mut segments = path.trim_end_matches('/').split('/');
    let host_label = host.split(['.', ':']).next();
    host_label.is_some_and(|h| vault_name.is_some_and(|v| h.eq_ignore_ascii_case(v)))
        && segments
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("keys"))
        && segments
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case(&spec.key.name))
        && segments.count() <= 1
}
