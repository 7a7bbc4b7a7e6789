//! Seeding the world (admin API and Rust handle): principals, identities,
//! vaults, keys, role assignments, provider registrations.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::arm::role_assignments::put_assignment;
use super::arm::vaults::put_vault;
use super::errors::ApiError;
use super::hosts::Origin;
use super::keyvault::keys::create_version;
use super::server::App;
use super::state::{
    AppRegistration, FederatedCredential, ProviderRegistration, RoleAssignment,
    UserAssignedIdentity, new_guid, now_ms, now_rfc3339,
};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Seed {
    pub apps: Vec<AppRegistration>,
    pub identities: Vec<SeedIdentity>,
    pub vaults: Vec<SeedVault>,
    pub keys: Vec<SeedKey>,
    pub role_assignments: Vec<SeedRoleAssignment>,
    pub providers: Vec<SeedProvider>,
    /// Custom role definitions (created or replaced), before the assignments.
    pub role_definitions: Vec<SeedRoleDefinition>,
}

/// A custom role: `name` is its GUID, `scope` where it is created
/// (`/subscriptions/{s}`), `properties` as in ARM's PUT body (`roleName`,
/// `permissions`, `assignableScopes`, …).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedRoleDefinition {
    pub scope: String,
    pub name: String,
    pub properties: Value,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedIdentity {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub location: Option<String>,
    pub client_id: Option<String>,
    pub principal_id: Option<String>,
    pub federated_credentials: Vec<FederatedCredential>,
}

/// A vault; `properties` are ARM vault properties (`enableSoftDelete`,
/// `enablePurgeProtection`, `enableRbacAuthorization`, `accessPolicies`,
/// `networkAcls`, `publicNetworkAccess`, ...). `tenantId` and `sku` default.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedVault {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub location: Option<String>,
    pub properties: Map<String, Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedKey {
    pub vault: String,
    pub name: String,
    /// "RSA" (default) or "RSA-HSM".
    pub kty: Option<String>,
    /// Default 3072.
    pub key_size: Option<u32>,
    /// Number of versions to create (default 1).
    pub versions: Option<u32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedRoleAssignment {
    pub scope: String,
    /// Role GUID or full role definition id.
    pub role_definition_id: String,
    pub principal_id: String,
    pub principal_type: Option<String>,
    pub name: Option<String>,
    /// An ABAC condition on the assignment (conditionVersion "2.0").
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub condition_version: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedProvider {
    pub subscription_id: String,
    pub namespace: String,
    /// "Registered" or "NotRegistered".
    pub registration_state: String,
}

fn push(list: &mut Value, item: Value) {
    if let Some(v) = list.as_array_mut() {
        v.push(item);
    }
}

/// Applies a seed; answers what was created (ids, vault URIs, kids, principal ids).
pub fn apply(app: &Arc<App>, seed: &Seed) -> Result<Value, ApiError> {
    let mut state = app.state();
    let mut out =
        json!({"apps": [], "identities": [], "vaults": [], "keys": [], "roleAssignments": []});
    for a in &seed.apps {
        state
            .apps
            .insert(a.client_id.to_ascii_lowercase(), a.clone());
        push(
            &mut out["apps"],
            json!({"clientId": a.client_id, "objectId": a.object_id}),
        );
    }
    for i in &seed.identities {
        let ident = UserAssignedIdentity {
            subscription_id: i.subscription_id.clone(),
            resource_group: i.resource_group.clone(),
            name: i.name.clone(),
            location: i.location.clone().unwrap_or_else(|| "westus".into()),
            client_id: i.client_id.clone().unwrap_or_else(new_guid),
            principal_id: i.principal_id.clone().unwrap_or_else(new_guid),
            tags: json!({}),
            federated_credentials: i.federated_credentials.clone(),
        };
        push(
            &mut out["identities"],
            json!({"id": ident.id(), "clientId": ident.client_id, "principalId": ident.principal_id}),
        );
        state
            .identities
            .insert(ident.id().to_ascii_lowercase(), ident);
    }
    for v in &seed.vaults {
        let loc = v.location.clone().unwrap_or_else(|| "westus".into());
        let (vault, _) = put_vault(
            app,
            &mut state,
            &v.subscription_id,
            &v.resource_group,
            &v.name,
            &loc,
            json!({}),
            &v.properties,
        )?;
        push(
            &mut out["vaults"],
            json!({"id": vault.id(), "vaultUri": Origin::default().vault_uri(&vault.name)}),
        );
    }
    for k in &seed.keys {
        let vault = state.vault_by_name(&k.vault).cloned().ok_or_else(|| {
            ApiError::bad_request(format!(
                "seed key '{}': vault '{}' not found",
                k.name, k.vault
            ))
        })?;
        let body = json!({"kty": k.kty.clone().unwrap_or_else(|| "RSA".into()), "key_size": k.key_size.unwrap_or(3072)});
        let mut kid = String::new();
        for _ in 0..k.versions.unwrap_or(1).max(1) {
            let (key, kv) = create_version(&mut state, &vault, &k.name, &body)?;
            kid = format!(
                "{}keys/{}/{}",
                Origin::default().vault_uri(&vault.name),
                key.name,
                kv.version
            );
        }
        push(
            &mut out["keys"],
            json!({"kid": kid, "versionlessUri": format!("{}keys/{}", Origin::default().vault_uri(&vault.name), k.name)}),
        );
    }
    for d in &seed.role_definitions {
        let role = super::arm::role_definitions::parse_body(
            &d.scope,
            &d.name,
            &json!({"properties": d.properties}),
        )?;
        super::arm::role_definitions::put_custom(&mut state, role)?;
    }
    for r in &seed.role_assignments {
        let ra = RoleAssignment {
            name: r.name.clone().unwrap_or_else(new_guid),
            scope: r.scope.trim_end_matches('/').to_owned(),
            role_definition_id: r.role_definition_id.clone(),
            principal_id: r.principal_id.clone(),
            principal_type: r.principal_type.clone(),
            created_at: now_rfc3339(),
            condition: r.condition.clone(),
            condition_version: r
                .condition
                .as_ref()
                .map(|_| r.condition_version.clone().unwrap_or_else(|| "2.0".into())),
        };
        let id = ra.id();
        put_assignment(app, &mut state, ra)?;
        push(&mut out["roleAssignments"], json!(id));
    }
    for p in &seed.providers {
        state.providers.insert(
            format!("{}/{}", p.subscription_id, p.namespace).to_ascii_lowercase(),
            ProviderRegistration {
                state: p.registration_state.clone(),
                since_ms: now_ms(),
            },
        );
    }
    Ok(out)
}
