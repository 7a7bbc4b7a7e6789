//! Key access for the principals Cosmos DB uses: vault access-policy entries or
//! RBAC role assignments. The operator only ever adds or removes its own grant.

use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use super::http::{self, Answer};
use super::ids::ResourceId;
use super::{SdkAzure, authz, keyvault};
use crate::api::{Grant, PermissionModel};
use crate::azure::errors::AzureError;
use crate::azure::port::RevokeOutcome;
use crate::azure::rate_limit::CallKind;

/// Key Vault Crypto Service Encryption User: get, wrapKey, unwrapKey — what Cosmos DB needs.
pub const ROLE_CRYPTO_SERVICE_ENCRYPTION_USER: &str = "e147488a-f6f5-4113-8e2d-b22465e65bf6";
/// Roles whose data actions include get, wrapKey and unwrapKey on keys.
const ROLES_WITH_KEY_ACCESS: &[&str] = &[
    ROLE_CRYPTO_SERVICE_ENCRYPTION_USER,
    "00482a5a-887f-4fb3-b363-3b7fe8e74483", // Key Vault Administrator
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", // Key Vault Crypto Officer
    "12338af0-0e69-4776-bea7-57ae8d297424", // Key Vault Crypto User
];
const KEY_PERMISSIONS: [&str; 3] = ["get", "wrapKey", "unwrapKey"];

/// Namespace of the role-assignment names this operator derives (UUID v5).
const GRANT_NAMESPACE: Uuid = Uuid::from_u128(0x6b1c_52e4_3f0a_4d8e_9a51_c0c5_cb7e_0a11);

/// The deterministic role-assignment name for (vault, principal): a retried
/// grant PUTs the same name, which ARM treats as idempotent.
pub fn role_assignment_name(vault_id: &str, principal_id: &str) -> String {
    let seed = format!(
        "{}|{}|{ROLE_CRYPTO_SERVICE_ENCRYPTION_USER}",
        vault_id.trim_end_matches('/').to_ascii_lowercase(),
        principal_id.to_ascii_lowercase()
    );
    Uuid::new_v5(&GRANT_NAMESPACE, seed.as_bytes()).to_string()
}

const VAULT_NS: &str = "Microsoft.KeyVault";

impl SdkAzure {
    /// The vault as ARM returns it (`None` when absent).
    async fn vault_json(&self, op: &str, id: &ResourceId) -> Result<Option<Answer>, AzureError> {
        let vaults = self.inner.vaults.vaults_client();
        self.call(op, &id.subscription, CallKind::Read, async {
            Self::sdk(
                op,
                true,
                vaults
                    .get(&id.resource_group, &id.name, &id.subscription)
                    .send(),
            )
            .await
        })
        .await
    }

    async fn vault_or_404(&self, op: &str, id: &ResourceId) -> Result<Value, AzureError> {
        self.vault_json(op, id)
            .await?
            .map(|a| a.body)
            .ok_or_else(|| AzureError::NotFound {
                operation: op.to_owned(),
                message: format!("Key Vault {} does not exist", id.name),
            })
    }

    pub(super) async fn principals_with_access(
        &self,
        vault_id: &str,
        model: PermissionModel,
        principals: &[String],
    ) -> Result<Vec<String>, AzureError> {
        const OP: &str = "GetGrants";
        let id = ResourceId::parse(OP, vault_id, VAULT_NS, "vaults")?;
        if principals.is_empty() {
            return Ok(Vec::new());
        }
        let mut vault = None;
        let rbac = match model {
            PermissionModel::Rbac => true,
            PermissionModel::AccessPolicy => false,
            PermissionModel::Auto => {
                let v = self.vault_or_404(OP, &id).await?;
                let rbac = rbac_enabled(&v);
                vault = Some(v);
                rbac
            }
        };
        if rbac {
            let assignments = self.role_assignments(OP, &id).await?;
            let scope = id.canonical(VAULT_NS, "vaults").to_ascii_lowercase();
            return Ok(principals
                .iter()
                .filter(|p| assignments.iter().any(|a| a.grants(p, &scope)))
                .cloned()
                .collect());
        }
        let vault = match vault {
            Some(v) => v,
            None => self.vault_or_404(OP, &id).await?,
        };
        Ok(principals
            .iter()
            .filter(|p| policy_grants(&vault, p))
            .cloned()
            .collect())
    }

    /// Role assignments at the vault scope or above (`atScope()`).
    async fn role_assignments(
        &self,
        op: &str,
        id: &ResourceId,
    ) -> Result<Vec<Assignment>, AzureError> {
        let scope = id.canonical(VAULT_NS, "vaults");
        let client = self.inner.authz.role_assignments_client();
        self.call(op, &id.subscription, CallKind::Read, async {
            let mut pages = client
                .list_for_scope(scope.trim_start_matches('/'))
                .filter("atScope()")
                .into_stream();
            let mut out = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| http::map_error(op, e))?;
                out.extend(page.value.into_iter().filter_map(|ra| {
                    let p = ra.properties?;
                    Some(Assignment {
                        scope: p.scope.unwrap_or_default(),
                        role_definition_id: p.role_definition_id,
                        principal_id: p.principal_id,
                    })
                }));
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn grant_access(
        &self,
        vault_id: &str,
        model: PermissionModel,
        principal_id: &str,
    ) -> Result<Grant, AzureError> {
        const OP: &str = "Grant";
        let id = ResourceId::parse(OP, vault_id, VAULT_NS, "vaults")?;
        let (model, vault) = self.resolve_model(OP, &id, model).await?;
        match model {
            PermissionModel::Rbac => self.grant_role(&id, principal_id).await,
            _ => {
                let vault = match vault {
                    Some(v) => v,
                    None => self.vault_or_404(OP, &id).await?,
                };
                // An entry already there (someone else's, with fewer permissions)
                // is added to, and so can never be removed or narrowed later.
                let entry_found = !policy_entries(&vault, principal_id).is_empty();
                self.access_policy(OP, &id, &vault, principal_id, "add")
                    .await?;
                Ok(Grant {
                    model: PermissionModel::AccessPolicy,
                    principal_id: principal_id.to_owned(),
                    vault_id: Some(vault_id.to_owned()),
                    role_assignment_id: None,
                    entry_found,
                })
            }
        }
    }

    async fn resolve_model(
        &self,
        op: &str,
        id: &ResourceId,
        model: PermissionModel,
    ) -> Result<(PermissionModel, Option<Value>), AzureError> {
        Ok(match model {
            PermissionModel::Auto => {
                let v = self.vault_or_404(op, id).await?;
                let m = if rbac_enabled(&v) {
                    PermissionModel::Rbac
                } else {
                    PermissionModel::AccessPolicy
                };
                (m, Some(v))
            }
            m => (m, None),
        })
    }

    async fn grant_role(&self, id: &ResourceId, principal_id: &str) -> Result<Grant, AzureError> {
        const OP: &str = "Grant";
        let scope = id.canonical(VAULT_NS, "vaults");
        let name = role_assignment_name(&scope, principal_id);
        let params: authz::models::RoleAssignmentCreateParameters = super::model(
            OP,
            json!({"properties": {
                "roleDefinitionId": format!(
                    "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_CRYPTO_SERVICE_ENCRYPTION_USER}",
                    id.subscription
                ),
                "principalId": principal_id,
                "principalType": "ServicePrincipal",
            }}),
        )?;
        let client = self.inner.authz.role_assignments_client();
        let result = self
            .call(OP, &id.subscription, CallKind::Write, async {
                Self::sdk(
                    OP,
                    false,
                    client
                        .create(scope.trim_start_matches('/'), &name, params)
                        .send(),
                )
                .await
            })
            .await;
        let role_assignment_id = match result {
            Ok(a) => Some(
                a.and_then(|a| a.body.get("id").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| {
                        format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}")
                    }),
            ),
            // The same role is already assigned under another name (by someone else):
            // access is there, and an assignment the operator did not make is never its to remove.
            Err(AzureError::Rejected {
                status: 409, code, ..
            }) if code.eq_ignore_ascii_case("RoleAssignmentExists") => None,
            Err(e) => return Err(e),
        };
        Ok(Grant {
            model: PermissionModel::Rbac,
            principal_id: principal_id.to_owned(),
            vault_id: Some(id.canonical(VAULT_NS, "vaults")),
            role_assignment_id,
            entry_found: false,
        })
    }

    /// `accessPolicies/{add|remove}` of exactly get/wrapKey/unwrapKey for one principal.
    async fn access_policy(
        &self,
        op: &str,
        id: &ResourceId,
        vault: &Value,
        principal_id: &str,
        kind: &str,
    ) -> Result<(), AzureError> {
        let tenant = vault
            .pointer("/properties/tenantId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let params: keyvault::models::VaultAccessPolicyParameters = super::model(
            op,
            json!({"properties": {"accessPolicies": [{
                "tenantId": tenant,
                "objectId": principal_id,
                "permissions": {"keys": KEY_PERMISSIONS},
            }]}}),
        )?;
        let vaults = self.inner.vaults.vaults_client();
        self.call(op, &id.subscription, CallKind::Write, async {
            Self::sdk(
                op,
                kind == "remove",
                vaults
                    .update_access_policy(
                        &id.resource_group,
                        &id.name,
                        kind,
                        params,
                        &id.subscription,
                    )
                    .send(),
            )
            .await
        })
        .await
        .map(drop)
    }

    pub(super) async fn revoke_access(
        &self,
        vault_id: &str,
        grant: &Grant,
    ) -> Result<RevokeOutcome, AzureError> {
        const OP: &str = "RevokeGrant";
        let id = ResourceId::parse(OP, vault_id, VAULT_NS, "vaults")?;
        if grant.entry_found {
            return Ok(RevokeOutcome::Kept(
                "the principal's access-policy entry was there before the operator added to it"
                    .into(),
            ));
        }
        match grant.model {
            PermissionModel::Rbac => {
                // No id: the access came from someone else's assignment; leave it.
                let Some(ra) = &grant.role_assignment_id else {
                    return Ok(RevokeOutcome::Kept(
                        "the access comes from a role assignment the operator did not make".into(),
                    ));
                };
                let Some(current) = self.role_assignment(&id, ra).await? else {
                    return Ok(RevokeOutcome::AlreadyGone);
                };
                let scope = id.canonical(VAULT_NS, "vaults");
                if let Some(why) = not_ours(&current, ra, &scope, &grant.principal_id) {
                    return Ok(RevokeOutcome::Kept(why));
                }
                let client = self.inner.authz.role_assignments_client();
                self.call(OP, &id.subscription, CallKind::Write, async {
                    Self::sdk_delete(OP, client.delete_by_id(ra.trim_start_matches('/')).send())
                        .await
                })
                .await
                .map(|_| RevokeOutcome::Removed)
            }
            _ => {
                let Some(vault) = self.vault_json(OP, &id).await? else {
                    return Ok(RevokeOutcome::AlreadyGone); // the vault is gone, and the entry with it
                };
                let entries = policy_entries(&vault.body, &grant.principal_id);
                if entries.is_empty() {
                    return Ok(RevokeOutcome::AlreadyGone);
                }
                if !entries.iter().all(|e| only_our_permissions(e)) {
                    return Ok(RevokeOutcome::Kept(format!(
                        "principal {}'s access-policy entry holds permissions the operator did not add",
                        grant.principal_id
                    )));
                }
                self.access_policy(OP, &id, &vault.body, &grant.principal_id, "remove")
                    .await
                    .map(|()| RevokeOutcome::Removed)
            }
        }
    }

    /// One role assignment by id, as ARM returns it (`None` when absent).
    async fn role_assignment(
        &self,
        vault: &ResourceId,
        ra_id: &str,
    ) -> Result<Option<Assignment>, AzureError> {
        const OP: &str = "GetRoleAssignment";
        let client = self.inner.authz.role_assignments_client();
        let answer = self
            .call(OP, &vault.subscription, CallKind::Read, async {
                Self::sdk(
                    OP,
                    true,
                    client.get_by_id(ra_id.trim_start_matches('/')).send(),
                )
                .await
            })
            .await?;
        Ok(answer.map(|a| {
            let p = &a.body["properties"];
            let s = |k: &str| {
                p.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Assignment {
                scope: s("scope"),
                role_definition_id: s("roleDefinitionId"),
                principal_id: s("principalId"),
            }
        }))
    }
}

/// Why a role assignment is not the one the operator made for (vault, principal),
/// if it is not: its name must be the operator's derived name, and its scope,
/// principal and role what the operator assigns.
fn not_ours(a: &Assignment, ra_id: &str, vault_scope: &str, principal: &str) -> Option<String> {
    let name = ra_id
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let role = a.role_definition_id.rsplit('/').next().unwrap_or_default();
    let checks = [
        (
            name.eq_ignore_ascii_case(&role_assignment_name(vault_scope, principal)),
            "its name is not the one the operator derives for this vault and principal",
        ),
        (
            a.scope
                .trim_end_matches('/')
                .eq_ignore_ascii_case(vault_scope.trim_end_matches('/')),
            "its scope is not the vault",
        ),
        (
            a.principal_id.eq_ignore_ascii_case(principal),
            "it is for another principal",
        ),
        (
            role.eq_ignore_ascii_case(ROLE_CRYPTO_SERVICE_ENCRYPTION_USER),
            "it assigns another role",
        ),
    ];
    checks
        .iter()
        .find(|(ok, _)| !ok)
        .map(|(_, why)| format!("role assignment {ra_id} was not made by the operator: {why}"))
}

/// The vault's access-policy entries for the bare object id `principal`.
fn policy_entries<'v>(vault: &'v Value, principal: &str) -> Vec<&'v Value> {
    vault
        .pointer("/properties/accessPolicies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|e| {
                    e.get("objectId")
                        .and_then(Value::as_str)
                        .is_some_and(|o| o.eq_ignore_ascii_case(principal))
                        && e.get("applicationId")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an entry holds nothing but (some of) get/wrapKey/unwrapKey on keys:
/// the shape the operator adds. Anything more is someone else's and stays.
fn only_our_permissions(entry: &Value) -> bool {
    let Some(perms) = entry.get("permissions").and_then(Value::as_object) else {
        return true;
    };
    perms.iter().all(|(kind, list)| {
        let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
        if kind == "keys" {
            items.iter().all(|k| {
                k.as_str()
                    .is_some_and(|k| KEY_PERMISSIONS.iter().any(|p| p.eq_ignore_ascii_case(k)))
            })
        } else {
            items.is_empty()
        }
    })
}

fn rbac_enabled(vault: &Value) -> bool {
    vault
        .pointer("/properties/enableRbacAuthorization")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Whether the vault's access policies give `principal` get, wrapKey and unwrapKey
/// (entries for the bare object id, possibly several; `all` counts for every permission).
fn policy_grants(vault: &Value, principal: &str) -> bool {
    let entries = policy_entries(vault, principal);
    let held = |perm: &str| {
        entries.iter().any(|e| {
            e.pointer("/permissions/keys")
                .and_then(Value::as_array)
                .is_some_and(|ks| {
                    ks.iter()
                        .filter_map(Value::as_str)
                        .any(|k| k.eq_ignore_ascii_case(perm) || k.eq_ignore_ascii_case("all"))
                })
        })
    };
    KEY_PERMISSIONS.iter().all(|p| held(p))
}

struct Assignment {
    scope: String,
    role_definition_id: String,
    principal_id: String,
}

impl Assignment {
    /// At the vault or a parent scope, for `principal`, with a role that has key access.
    fn grants(&self, principal: &str, vault_scope: &str) -> bool {
        let scope = self.scope.trim_end_matches('/').to_ascii_lowercase();
        let role = self
            .role_definition_id
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        self.principal_id.eq_ignore_ascii_case(principal)
            && (scope == vault_scope
                || scope == "/"
                || vault_scope.starts_with(&format!("{scope}/")))
            && ROLES_WITH_KEY_ACCESS.contains(&role.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_assignment_names_are_stable_and_distinct() {
        let a = role_assignment_name(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
            "P1",
        );
        assert_eq!(
            a,
            role_assignment_name(
                "/SUBSCRIPTIONS/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv/",
                "p1"
            )
        );
        assert_ne!(
            a,
            role_assignment_name(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
                "p2"
            )
        );
        assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }

    #[test]
    fn access_policies_need_all_three_permissions() {
        let v = json!({"properties": {"accessPolicies": [
            {"objectId": "a", "permissions": {"keys": ["get", "wrapKey"]}},
            {"objectId": "a", "permissions": {"keys": ["unwrapKey"]}},
            {"objectId": "b", "permissions": {"keys": ["get", "wrapKey"]}},
            {"objectId": "c", "permissions": {"keys": ["all"]}},
            {"objectId": "d", "applicationId": "x", "permissions": {"keys": ["all"]}},
        ]}});
        assert!(policy_grants(&v, "A"));
        assert!(!policy_grants(&v, "b"));
        assert!(policy_grants(&v, "c"));
        assert!(!policy_grants(&v, "d"));
    }

    #[test]
    fn only_the_operators_shape_of_entry_may_be_removed() {
        let e = |v: Value| only_our_permissions(&v);
        assert!(e(
            json!({"permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}})
        ));
        assert!(e(json!({"permissions": {"keys": ["Get"], "secrets": []}})));
        assert!(!e(
            json!({"permissions": {"keys": ["get", "wrapKey", "unwrapKey", "list"]}})
        ));
        assert!(!e(json!({"permissions": {"keys": ["all"]}})));
        assert!(!e(
            json!({"permissions": {"keys": ["get"], "secrets": ["get"]}})
        ));
    }

    #[test]
    fn a_role_assignment_is_ours_only_with_our_name_scope_principal_and_role() {
        let scope = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv";
        let name = role_assignment_name(scope, "p");
        let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
        let ours = Assignment {
            scope: scope.into(),
            role_definition_id: format!(
                "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{ROLE_CRYPTO_SERVICE_ENCRYPTION_USER}"
            ),
            principal_id: "P".into(),
        };
        assert_eq!(not_ours(&ours, &id, scope, "p"), None);
        let other_name = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/x");
        assert!(not_ours(&ours, &other_name, scope, "p").is_some());
        assert!(not_ours(&ours, &id, scope, "q").is_some());
        let wider = Assignment {
            scope: "/subscriptions/s".into(),
            ..ours
        };
        assert!(not_ours(&wider, &id, scope, "p").is_some());
    }

    #[test]
    fn role_assignments_count_at_or_above_the_vault() {
        let vault = "/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv";
        let ra = |scope: &str, role: &str| Assignment {
            scope: scope.into(),
            role_definition_id: format!(
                "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{role}"
            ),
            principal_id: "p".into(),
        };
        assert!(ra("/subscriptions/s", ROLE_CRYPTO_SERVICE_ENCRYPTION_USER).grants("p", vault));
        assert!(ra(vault, "00482a5a-887f-4fb3-b363-3b7fe8e74483").grants("P", vault));
        assert!(
            !ra(
                &format!("{vault}/keys/k"),
                ROLE_CRYPTO_SERVICE_ENCRYPTION_USER
            )
            .grants("p", vault)
        );
        assert!(!ra(vault, "21090545-7ca7-4776-b22c-e363652d74d2").grants("p", vault));
        assert!(!ra("/subscriptions/s2", ROLE_CRYPTO_SERVICE_ENCRYPTION_USER).grants("p", vault));
    }
}
