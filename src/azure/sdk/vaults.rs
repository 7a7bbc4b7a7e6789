//! Vault properties, provider registration and user-assigned identities (ARM reads).

use azure_core::Method;
use serde_json::Value;

use super::SdkAzure;
use super::ids::ResourceId;
use crate::azure::errors::AzureError;
use crate::azure::rate_limit::CallKind;
use crate::reconcile::binding::VaultFacts;

/// api-version of `GET /subscriptions/{s}/providers/{ns}` (no SDK crate of ours has it).
const PROVIDERS_API: &str = "2021-04-01";

impl SdkAzure {
    pub(super) async fn vault_facts(
        &self,
        vault_id: &str,
    ) -> Result<Option<VaultFacts>, AzureError> {
        const OP: &str = "GetVault";
        let id = ResourceId::parse(OP, vault_id, "Microsoft.KeyVault", "vaults")?;
        let vaults = self.inner.vaults.vaults_client();
        let answer = self
            .call(OP, &id.subscription, CallKind::Read, async {
                Self::sdk(
                    OP,
                    true,
                    vaults
                        .get(&id.resource_group, &id.name, &id.subscription)
                        .send(),
                )
                .await
            })
            .await?;
        let Some(a) = answer else { return Ok(None) };
        // Absent flags take Azure's defaults, so a body without `properties`
        // would read as "purge protection off": refused instead.
        if !a.body.get("properties").is_some_and(Value::is_object) {
            return Err(super::missing_in_answer(
                OP,
                a.status,
                "`properties` object",
            ));
        }
        Ok(Some(vault_from_json(&a.body)))
    }

    pub(super) async fn cosmos_provider_registered(
        &self,
        subscription_id: &str,
    ) -> Result<bool, AzureError> {
        const OP: &str = "GetProvider";
        let key = subscription_id.to_ascii_lowercase();
        let known = |r: &std::sync::Mutex<std::collections::HashSet<String>>| {
            r.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&key)
        };
        if known(&self.inner.registered) {
            return Ok(true);
        }
        let turn = self
            .inner
            .registration_reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = turn.lock().await;
        if known(&self.inner.registered) {
            return Ok(true);
        }
        let mut url = self.arm_url(
            OP,
            &format!("subscriptions/{subscription_id}/providers/Microsoft.DocumentDB"),
        )?;
        url.query_pairs_mut()
            .append_pair("api-version", PROVIDERS_API);
        let answer = self
            .arm_send(OP, subscription_id, CallKind::Read, Method::Get, url, None)
            .await?;
        let registered = answer
            .body
            .get("registrationState")
            .and_then(Value::as_str)
            .ok_or_else(|| super::missing_in_answer(OP, answer.status, "`registrationState`"))?
            .eq_ignore_ascii_case("Registered");
        if registered {
            self.inner
                .registered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key);
        }
        Ok(registered)
    }

    pub(super) async fn identity_principal(
        &self,
        identity_id: &str,
    ) -> Result<Option<String>, AzureError> {
        const OP: &str = "GetIdentity";
        let id = ResourceId::parse(
            OP,
            identity_id,
            "Microsoft.ManagedIdentity",
            "userAssignedIdentities",
        )?;
        let client = self.inner.msi.user_assigned_identities_client();
        let answer = self
            .call(OP, &id.subscription, CallKind::Read, async {
                Self::sdk(
                    OP,
                    true,
                    client
                        .get(&id.subscription, &id.resource_group, &id.name)
                        .send(),
                )
                .await
            })
            .await?;
        Ok(answer.and_then(|a| {
            a.body
                .pointer("/properties/principalId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }))
    }

    /// `{resource_manager}{path}`.
    pub(super) fn arm_url(
        &self,
        operation: &str,
        path: &str,
    ) -> Result<azure_core::Url, AzureError> {
        let base = &self.inner.cloud.resource_manager;
        azure_core::Url::parse(base)
            .and_then(|b| b.join(path.trim_start_matches('/')))
            .map_err(|e| AzureError::Rejected {
                operation: operation.to_owned(),
                status: 400,
                code: "InvalidUrl".into(),
                message: format!("cannot form an ARM URL from {base:?} and {path:?}: {e}"),
            })
    }
}

/// The CMK-relevant vault properties, with Azure's documented defaults for absent ones.
pub(super) fn vault_from_json(v: &Value) -> VaultFacts {
    let p = &v["properties"];
    let flag = |name: &str, default: bool| p.get(name).and_then(Value::as_bool).unwrap_or(default);
    let acls = p.get("networkAcls");
    VaultFacts {
        vault_uri: p
            .get("vaultUri")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        // Soft delete is on by default (and can no longer be turned off).
        soft_delete: flag("enableSoftDelete", true),
        purge_protection: flag("enablePurgeProtection", false),
        // Absent means Enabled.
        public_network_access: !p
            .get("publicNetworkAccess")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("Disabled")),
        firewall_deny_by_default: acls
            .and_then(|a| a.get("defaultAction"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("Deny")),
        // `bypass` defaults to AzureServices.
        bypass_azure_services: acls
            .and_then(|a| a.get("bypass"))
            .and_then(Value::as_str)
            .is_none_or(|s| {
                s.split(',')
                    .any(|b| b.trim().eq_ignore_ascii_case("AzureServices"))
            }),
        rbac_authorization: flag("enableRbacAuthorization", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_properties_take_azure_defaults() {
        let f = vault_from_json(
            &json!({"properties": {"vaultUri": "https://kv.vault.azure.net/", "enablePurgeProtection": true}}),
        );
        assert!(f.soft_delete && f.purge_protection && f.public_network_access);
        assert!(!f.firewall_deny_by_default && f.bypass_azure_services && !f.rbac_authorization);
        let f = vault_from_json(&json!({"properties": {
            "publicNetworkAccess": "Disabled",
            "networkAcls": {"defaultAction": "Deny", "bypass": "None"},
            "enableRbacAuthorization": true
        }}));
        assert!(
            !f.public_network_access
                && f.firewall_deny_by_default
                && !f.bypass_azure_services
                && f.rbac_authorization
        );
    }
}
