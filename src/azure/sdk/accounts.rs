//! Cosmos DB accounts: read, and start create / staged update / delete as
//! long-running operations. Requests go out once through the SDK's `send()`;
//! the generated `.await` LRO loop would re-send the PUT, so it is never used.

use azure_core::{Method, Url};
use serde_json::{Map, Value, json};

use super::account_settings::{merged_tags, settings_body, settings_of};
use super::http::Answer;
use super::{SdkAzure, cosmosdb};
use crate::api::AzureErrorRecord;
use crate::api::{
    BackupPolicy, BackupPolicyType, ContinuousTier, Location, OperationKind, PendingOperation,
};
use crate::azure::errors::AzureError;
use crate::azure::key_uri::KeyUri;
use crate::azure::port::{AccountChange, AccountRef, NewAccount};
use crate::azure::rate_limit::CallKind;
use crate::reconcile::account::AccountFacts;
use crate::reconcile::ownership;
use crate::reconcile::spec_drift::BackupFacts;
use std::collections::BTreeMap;

impl SdkAzure {
    async fn account_json(&self, op: &str, a: &AccountRef) -> Result<Option<Answer>, AzureError> {
        let client = self.inner.cosmos.database_accounts_client();
        self.call(op, &a.subscription_id, CallKind::Read, async {
            Self::sdk(
                op,
                true,
                client
                    .get(&a.subscription_id, &a.resource_group, &a.name)
                    .send(),
            )
            .await
        })
        .await
    }

    pub(super) async fn account_facts(
        &self,
        account: &AccountRef,
    ) -> Result<Option<AccountFacts>, AzureError> {
        const OP: &str = "GetAccount";
        let Some(a) = self.account_json(OP, account).await? else {
            return Ok(None);
        };
        // Without `tags` the account would read as nobody's (ownership is
        // undecidable); without `properties` there is nothing to read.
        // `identity` may be absent for an account that has none (ARM omits
        // optional blocks), so it is only checked where it matters: when
        // present it must be an object, and when absent the default identity
        // must not name one (see `identity_consistent`).
        for block in ["properties", "tags"] {
            if !a.body.get(block).is_some_and(Value::is_object) {
                let what = format!("`{block}` object");
                return Err(super::missing_in_answer(OP, a.status, &what));
            }
        }
        if let Err(why) = identity_consistent(&a.body) {
            return Err(unusable_read(OP, a.status, &why));
        }
        Ok(Some(facts_from_json(&a.body)))
    }

    pub(super) async fn start_create(
        &self,
        new: &NewAccount,
    ) -> Result<PendingOperation, AzureError> {
        const OP: &str = "CreateAccount";
        let key_uri = self.versionless(OP, &new.key_uri)?;
        let params: cosmosdb::models::DatabaseAccountCreateUpdateParameters =
            super::model(OP, create_body(new, &key_uri))?;
        // The SDK's model checks the documented shape, but its `Tags` type is an
        // empty struct that drops every tag: the body goes out raw, tags added back.
        let mut body = serde_json::to_value(&params).map_err(|e| AzureError::Rejected {
            operation: OP.to_owned(),
            status: 400,
            code: "InvalidRequest".into(),
            message: format!("cannot build the request: {e}"),
        })?;
        body["tags"] = json!(new.tags);
        let a = &new.account;
        // A create must never overwrite an account that appeared since the
        // read that found none (ARM's conditional create; an RP that ignores
        // it is no worse off).
        let url = self.account_url(OP, a, "")?;
        let answer = self
            .call(OP, &a.subscription_id, CallKind::Write, async {
                self.inner
                    .arm
                    .send_with(Method::Put, url, Some(&body), &[("if-none-match", "*")])
                    .await
                    .map_err(|e| super::http::map_error(OP, e))
            })
            .await?;
        Ok(self.pending(OperationKind::CreateAccount, a, Some(answer)))
    }

    pub(super) async fn start_update(
        &self,
        account: &AccountRef,
        change: &AccountChange,
    ) -> Result<PendingOperation, AzureError> {
        let kind = change.operation();
        let op = kind.as_str();
        let body = match change {
            AccountChange::EnableSystemIdentity | AccountChange::AddUserAssignedIdentity(_) => {
                // ARM replaces the identity block: carry the existing identities over.
                let current = self.account_now(op, account).await?;
                let identity = identity_with(&current.body, change)
                    .map_err(|why| unusable_read(op, current.status, &why))?;
                json!({"identity": identity})
            }
            AccountChange::SetDefaultIdentity(v) => {
                json!({"properties": {"defaultIdentity": v}})
            }
            AccountChange::SetKeyUri(uri) => {
                json!({"properties": {"keyVaultKeyUri": self.versionless(op, uri)?}})
            }
            AccountChange::SetLocations(locations) => {
                // ARM replaces the region list: re-read it now, and write only
                // when it differs from the new list by the one region meant, so
                // a region added meanwhile by someone else is never dropped.
                let current = self.account_now(op, account).await?;
                let have = locations_of(&current.body["properties"]);
                one_region_apart(&have, locations)
                    .map_err(|why| unusable_read(op, current.status, &why))?;
                json!({"properties": {"locations": locations_body(locations)}})
            }
            AccountChange::SetBackupPolicy(policy) => {
                json!({"properties": {"backupPolicy": backup_body(policy)}})
            }
            AccountChange::SetSettings(update) => {
                let mut body = json!({"properties": settings_body(&update.settings)});
                if !update.tags.is_empty() || update.owner.is_some() {
                    // ARM replaces the whole tag set: carry every tag over, read now.
                    let kept = self.tags_now(op, account).await?;
                    let mut tags = merged_tags(&kept, &update.tags);
                    if let Some(owner) = &update.owner {
                        tags = ownership::with_owner(&tags, owner);
                    }
                    body["tags"] = json!(tags);
                }
                // Raw, in one PATCH: the SDK's update model drops tags, and a
                // deny assignment judges the account as the whole PATCH leaves it.
                let answer = self.arm_write(op, account, Method::Patch, &body).await?;
                return Ok(self.pending(kind, account, Some(answer)));
            }
            AccountChange::ChangeFailoverPriorities(locations) => {
                // Its own operation (ARM refuses a write-region change in an update).
                let body = json!({"failoverPolicies": locations.iter().map(|l| json!({
                        "locationName": l.location_name,
                        "failoverPriority": l.failover_priority,
                    })).collect::<Vec<_>>()});
                let answer = self
                    .arm_request(op, account, "/failoverPriorityChange", Method::Post, &body)
                    .await?;
                return Ok(self.pending(kind, account, Some(answer)));
            }
            AccountChange::SetOwner(owner) => {
                // ARM replaces the whole tag set: carry every other tag over, read now.
                let kept = self.tags_now(op, account).await?;
                let tags = ownership::with_owner(&kept, owner);
                // Raw: the SDK's update model drops tags.
                let answer = self
                    .arm_write(op, account, Method::Patch, &json!({"tags": tags}))
                    .await?;
                return Ok(self.pending(kind, account, Some(answer)));
            }
        };
        let params: cosmosdb::models::DatabaseAccountUpdateParameters = super::model(op, body)?;
        let client = self.inner.cosmos.database_accounts_client();
        let a = account;
        let answer = self
            .call(op, &a.subscription_id, CallKind::Write, async {
                Self::sdk(
                    op,
                    false,
                    client
                        .update(&a.subscription_id, &a.resource_group, &a.name, params)
                        .send(),
                )
                .await
            })
            .await?;
        Ok(self.pending(kind, a, answer))
    }

    pub(super) async fn start_delete(
        &self,
        account: &AccountRef,
    ) -> Result<Option<PendingOperation>, AzureError> {
        const OP: &str = "DeleteAccount";
        let a = account;
        let client = self.inner.cosmos.database_accounts_client();
        let answer = self
            .call(OP, &a.subscription_id, CallKind::Write, async {
                Self::sdk_delete(
                    OP,
                    client
                        .delete(&a.subscription_id, &a.resource_group, &a.name)
                        .send(),
                )
                .await
            })
            .await?;
        Ok(match answer {
            Some(ans) if ans.status == 202 || super::lro::poll_url(&ans.headers).is_some() => {
                Some(self.pending(OperationKind::DeleteAccount, a, Some(ans)))
            }
            _ => None, // 200/204: gone already; 404: never there
        })
    }

    /// Every account of a subscription, following `nextLink` (bounded).
    pub(super) async fn list_accounts(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<AccountFacts>, AzureError> {
        const OP: &str = "ListAccounts";
        let first = format!(
            "{}subscriptions/{subscription_id}/providers/Microsoft.DocumentDB/databaseAccounts?api-version={}",
            self.inner.cloud.resource_manager,
            super::lro::COSMOS_API
        );
        let items = self.list_values(OP, subscription_id, first).await?;
        Ok(items.iter().map(facts_from_json).collect())
    }

    /// The account name of a restorable source account.
    pub(super) async fn restorable_name(
        &self,
        source_id: &str,
    ) -> Result<Option<String>, AzureError> {
        const OP: &str = "GetRestorableAccount";
        let segments: Vec<&str> = source_id.trim_matches('/').split('/').collect();
        let shaped = segments.len() == 8
            && segments[0].eq_ignore_ascii_case("subscriptions")
            && segments[6].eq_ignore_ascii_case("restorableDatabaseAccounts");
        if !shaped {
            return Err(AzureError::Rejected {
                operation: OP.to_owned(),
                status: 400,
                code: "InvalidRestoreSource".into(),
                message: format!("{source_id:?} is not a restorable database account id"),
            });
        }
        let url = Url::parse(&format!(
            "{}{}?api-version={}",
            self.inner.cloud.resource_manager,
            source_id.trim_start_matches('/'),
            super::lro::COSMOS_API
        ))
        .map_err(|e| AzureError::Rejected {
            operation: OP.to_owned(),
            status: 400,
            code: "InvalidRestoreSource".into(),
            message: format!("cannot build the URL: {e}"),
        })?;
        self.call(OP, segments[1], CallKind::Read, async {
            match self.inner.arm.send(Method::Get, url, None).await {
                Ok(a) => Ok(a
                    .body
                    .pointer("/properties/accountName")
                    .and_then(Value::as_str)
                    .map(str::to_owned)),
                Err(e) if super::http::is_status(&e, 404) => Ok(None),
                Err(e) => Err(super::http::map_error(OP, e)),
            }
        })
        .await
    }

    /// The account read now, for a write that must carry over what it holds.
    async fn account_now(&self, op: &str, account: &AccountRef) -> Result<Answer, AzureError> {
        self.account_json(op, account)
            .await?
            .ok_or_else(|| AzureError::NotFound {
                operation: op.to_owned(),
                message: format!("account {} does not exist", account.name),
            })
    }

    /// The tags a tag write must carry over (ARM replaces the whole set), read now.
    async fn tags_now(
        &self,
        op: &str,
        account: &AccountRef,
    ) -> Result<BTreeMap<String, String>, AzureError> {
        let current = self.account_now(op, account).await?;
        tags_to_keep(&current.body).map_err(|why| unusable_read(op, current.status, &why))
    }

    /// A write to the account sent as JSON, outside the SDK's models.
    async fn arm_write(
        &self,
        op: &str,
        a: &AccountRef,
        method: Method,
        body: &Value,
    ) -> Result<Answer, AzureError> {
        self.arm_request(op, a, "", method, body).await
    }

    /// A write to the account, or to one of its actions (`suffix`, e.g.
    /// `/failoverPriorityChange`), sent as JSON outside the SDK's models.
    async fn arm_request(
        &self,
        op: &str,
        a: &AccountRef,
        suffix: &str,
        method: Method,
        body: &Value,
    ) -> Result<Answer, AzureError> {
        let url = self.account_url(op, a, suffix)?;
        self.arm_send(
            op,
            &a.subscription_id,
            CallKind::Write,
            method,
            url,
            Some(body),
        )
        .await
    }

    fn account_url(&self, op: &str, a: &AccountRef, suffix: &str) -> Result<Url, AzureError> {
        Url::parse(&format!(
            "{}{}{suffix}?api-version={}",
            self.inner.cloud.resource_manager,
            a.id().trim_start_matches('/'),
            super::lro::COSMOS_API
        ))
        .map_err(|e| AzureError::Rejected {
            operation: op.to_owned(),
            status: 400,
            code: "InvalidRequest".into(),
            message: format!("cannot build the account URL: {e}"),
        })
    }

    /// The operation to persist: its `Azure-AsyncOperation` (or `Location`) URL,
    /// or the account itself when Azure gave neither.
    fn pending(
        &self,
        kind: OperationKind,
        a: &AccountRef,
        answer: Option<Answer>,
    ) -> PendingOperation {
        let poll_url = answer
            .as_ref()
            .and_then(|ans| super::lro::poll_url(&ans.headers))
            .unwrap_or_else(|| {
                format!(
                    "{}{}?api-version={}",
                    self.inner.cloud.resource_manager,
                    a.id().trim_start_matches('/'),
                    super::lro::COSMOS_API
                )
            });
        let retry_after_ms = answer
            .as_ref()
            .and_then(|ans| self.bounded_retry_after(&ans.headers))
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        PendingOperation {
            kind,
            poll_url,
            retry_after_ms,
            started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ),
        }
    }

    /// The versionless form of a key URI valid in this cloud.
    fn versionless(&self, op: &str, uri: &str) -> Result<String, AzureError> {
        KeyUri::parse(uri, &self.inner.cloud.vault_hosts)
            .map(|k| k.versionless())
            .map_err(|e| AzureError::Rejected {
                operation: op.to_owned(),
                status: 400,
                code: "InvalidKeyUri".into(),
                message: e.to_string(),
            })
    }
}

/// The PUT body of a new account, in Azure's documented shape.
pub(super) fn create_body(new: &NewAccount, key_uri: &str) -> Value {
    let write_region = new
        .locations
        .iter()
        .min_by_key(|l| l.failover_priority)
        .map(|l| l.location_name.clone())
        .unwrap_or_default();
    let mut props = json!({
        "databaseAccountOfferType": "Standard",
        "locations": locations_body(&new.locations),
        "capabilities": new.capabilities.iter().map(|c| json!({"name": c})).collect::<Vec<_>>(),
        "keyVaultKeyUri": key_uri,
        "defaultIdentity": new.default_identity,
    });
    // Periodic with Azure's defaults needs no policy in the request.
    let b = &new.backup;
    if b.type_ == BackupPolicyType::Continuous
        || b.periodic_interval_minutes.is_some()
        || b.periodic_retention_hours.is_some()
    {
        props["backupPolicy"] = backup_body(b);
    }
    if let Some(p) = props.as_object_mut() {
        p.extend(settings_body(&new.settings));
    }
    if let Some(r) = &new.restore {
        props["createMode"] = json!("Restore");
        props["restoreParameters"] = json!({
            "restoreMode": "PointInTime",
            "restoreSource": r.source_account_id,
            "restoreTimestampInUtc": r.timestamp,
        });
    }
    let mut body = json!({
        "location": write_region,
        "kind": new.kind,
        "tags": new.tags,
        "properties": props,
    });
    if let Some(id) = &new.user_assigned_identity {
        body["identity"] =
            json!({"type": "UserAssigned", "userAssignedIdentities": {id.as_str(): {}}});
    }
    body
}

/// Regions in Azure's shape.
fn locations_body(locations: &[Location]) -> Value {
    json!(
        locations
            .iter()
            .map(|l| json!({
                "locationName": l.location_name,
                "failoverPriority": l.failover_priority,
                "isZoneRedundant": l.is_zone_redundant,
            }))
            .collect::<Vec<_>>()
    )
}

fn tier_name(tier: ContinuousTier) -> &'static str {
    match tier {
        ContinuousTier::Continuous7Days => "Continuous7Days",
        ContinuousTier::Continuous30Days => "Continuous30Days",
    }
}

/// A backup policy in Azure's shape; unset periodic values get Azure's defaults.
fn backup_body(b: &BackupPolicy) -> Value {
    match b.type_ {
        BackupPolicyType::Continuous => {
            let mut v = json!({"type": "Continuous"});
            if let Some(tier) = b.continuous_tier {
                v["continuousModeProperties"] = json!({"tier": tier_name(tier)});
            }
            v
        }
        BackupPolicyType::Periodic => json!({"type": "Periodic", "periodicModeProperties": {
            "backupIntervalInMinutes": b.periodic_interval_minutes
                .unwrap_or(crate::api::DEFAULT_PERIODIC_INTERVAL_MINUTES),
            "backupRetentionIntervalInHours": b.periodic_retention_hours
                .unwrap_or(crate::api::DEFAULT_PERIODIC_RETENTION_HOURS),
        }}),
    }
}

/// The backup policy Azure reports; `None` without a recognisable `type`.
fn backup_of(p: &Value) -> Option<BackupFacts> {
    let b = p.get("backupPolicy")?;
    let type_ = match b.get("type").and_then(Value::as_str)? {
        t if t.eq_ignore_ascii_case("Continuous") => BackupPolicyType::Continuous,
        t if t.eq_ignore_ascii_case("Periodic") => BackupPolicyType::Periodic,
        _ => return None,
    };
    let int = |ptr: &str| {
        b.pointer(ptr)
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
    };
    let continuous_tier = match b
        .pointer("/continuousModeProperties/tier")
        .and_then(Value::as_str)
    {
        Some(t) if t.eq_ignore_ascii_case("Continuous7Days") => {
            Some(ContinuousTier::Continuous7Days)
        }
        Some(t) if t.eq_ignore_ascii_case("Continuous30Days") => {
            Some(ContinuousTier::Continuous30Days)
        }
        _ => None,
    };
    Some(BackupFacts {
        type_,
        continuous_tier,
        periodic_interval_minutes: int("/periodicModeProperties/backupIntervalInMinutes"),
        periodic_retention_hours: int("/periodicModeProperties/backupRetentionIntervalInHours"),
        migrating: b
            .pointer("/migrationState/status")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("InProgress")),
    })
}

/// The regions Azure reports (`locations`); entries without a name are skipped.
fn locations_of(p: &Value) -> Vec<Location> {
    p.get("locations")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|l| {
                    Some(Location {
                        location_name: l.get("locationName")?.as_str()?.to_owned(),
                        failover_priority: l
                            .get("failoverPriority")
                            .and_then(Value::as_i64)
                            .and_then(|v| i32::try_from(v).ok())?,
                        is_zone_redundant: l
                            .get("isZoneRedundant")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `next` differs from the regions Azure holds now by exactly one
/// region added or removed (a read without regions never qualifies).
fn one_region_apart(have: &[Location], next: &[Location]) -> Result<(), String> {
    use crate::reconcile::spec_drift::region_key;
    let keys = |l: &[Location]| -> std::collections::BTreeSet<String> {
        l.iter().map(|l| region_key(&l.location_name)).collect()
    };
    let (have_keys, next_keys) = (keys(have), keys(next));
    let changed = have_keys.symmetric_difference(&next_keys).count();
    if have.is_empty() || changed != 1 {
        return Err(format!(
            "the account's regions are now [{}], not one region apart from [{}]: they changed since they were read",
            have_keys.into_iter().collect::<Vec<_>>().join(", "),
            next_keys.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

/// A read that cannot safely be the base of a write that replaces a block.
fn unusable_read(op: &str, status: u16, why: &str) -> AzureError {
    AzureError::InvalidResponse {
        operation: op.to_owned(),
        status,
        message: format!("{why}; nothing was written, so nothing the account holds can be lost"),
    }
}

/// The identity block after `change`, keeping every identity the account has.
/// ARM replaces the whole block, so a read without it (or one that does not
/// say plainly which identities the account has) is refused: writing from it
/// could drop identities the account still needs.
fn identity_with(account: &Value, change: &AccountChange) -> Result<Value, String> {
    identity_consistent(account)?;
    let none = Map::from_iter([("type".to_owned(), json!("None"))]);
    let ident = match account.get("identity") {
        None => &none,
        Some(v) => v
            .as_object()
            .ok_or("the account read's `identity` is not an object")?,
    };
    let kind = ident
        .get("type")
        .and_then(Value::as_str)
        .ok_or("the account read's `identity` has no `type`")?;
    let (mut system, mut user_type) = (false, false);
    for part in kind.split(',').map(str::trim) {
        match part.to_ascii_lowercase().as_str() {
            "systemassigned" => system = true,
            "userassigned" => user_type = true,
            "none" => {}
            _ => {
                return Err(format!(
                    "the account read's identity type {kind:?} is unknown"
                ));
            }
        }
    }
    let mut users: Vec<String> = match ident.get("userAssignedIdentities") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        Some(_) => {
            return Err("the account read's `userAssignedIdentities` is not an object".into());
        }
    };
    if user_type == users.is_empty() {
        return Err(format!(
            "the account read's identity type {kind:?} and its {} user-assigned identities disagree",
            users.len()
        ));
    }
    match change {
        AccountChange::EnableSystemIdentity => system = true,
        AccountChange::AddUserAssignedIdentity(id)
            if !users.iter().any(|u| u.eq_ignore_ascii_case(id)) =>
        {
            users.push(id.clone());
        }
        _ => {}
    }
    let type_ = match (system, users.is_empty()) {
        (true, true) => "SystemAssigned",
        (true, false) => "SystemAssigned,UserAssigned",
        (false, false) => "UserAssigned",
        (false, true) => "None",
    };
    let mut out = json!({"type": type_});
    if !users.is_empty() {
        let map: Map<String, Value> = users.into_iter().map(|u| (u, json!({}))).collect();
        out["userAssignedIdentities"] = Value::Object(map);
    }
    Ok(out)
}

/// An account read may lack `identity` only when it has none: a read without it
/// whose `defaultIdentity` names a system- or user-assigned identity is
/// contradictory, and writing from it could drop the identity the key needs.
fn identity_consistent(account: &Value) -> Result<(), String> {
    match account.get("identity") {
        Some(Value::Object(_)) => Ok(()),
        Some(_) => Err("the account read's `identity` is not an object".into()),
        None => {
            let default = account
                .pointer("/properties/defaultIdentity")
                .and_then(Value::as_str)
                .unwrap_or("FirstPartyIdentity");
            if default.eq_ignore_ascii_case("FirstPartyIdentity") {
                Ok(())
            } else {
                Err(format!(
                    "the account read has no `identity` block, yet its defaultIdentity is {default}"
                ))
            }
        }
    }
}

/// The tags a tag write must carry over (ARM replaces the whole set). A read
/// without `tags`, or with a value that is not a string, is refused rather
/// than written back smaller.
fn tags_to_keep(account: &Value) -> Result<BTreeMap<String, String>, String> {
    let tags = account
        .get("tags")
        .ok_or("the account read has no `tags`")?
        .as_object()
        .ok_or("the account read's `tags` is not an object")?;
    tags.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_owned())),
            None => Err(format!("the account read's tag {k:?} is not a string")),
        })
        .collect()
}

/// The principal of the identity `defaultIdentity` names, from the identity block.
fn default_identity_principal(v: &Value) -> Option<String> {
    let default = v.pointer("/properties/defaultIdentity")?.as_str()?;
    let principal = |x: &Value| x.get("principalId")?.as_str().map(str::to_owned);
    if default.eq_ignore_ascii_case("SystemAssignedIdentity") {
        return principal(v.get("identity")?);
    }
    let (kind, id) = default.split_once('=')?;
    if !kind.eq_ignore_ascii_case("UserAssignedIdentity") {
        return None;
    }
    v.pointer("/identity/userAssignedIdentities")?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(id))
        .and_then(|(_, x)| principal(x))
}

/// The account's tags (string values only, as ARM keeps them).
fn tags_of(v: &Value) -> BTreeMap<String, String> {
    v.get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The adapter-neutral view of an account.
pub(super) fn facts_from_json(v: &Value) -> AccountFacts {
    let p = &v["properties"];
    let s = |x: Option<&Value>| x.and_then(Value::as_str).map(str::to_owned);
    let status = s(p.get("customerManagedKeyStatus"));
    AccountFacts {
        id: s(v.get("id")).unwrap_or_default(),
        provisioning_state: s(p.get("provisioningState")).unwrap_or_default(),
        document_endpoint: s(p.get("documentEndpoint")),
        key_vault_key_uri: s(p.get("keyVaultKeyUri")),
        // A version, or (in some api-versions) the versioned key URI: keep the version.
        key_version_in_use: s(p.get("keyVaultKeyUriVersion"))
            .map(|k| {
                k.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .filter(|k| !k.is_empty()),
        default_identity: s(p.get("defaultIdentity")),
        system_principal_id: s(v.pointer("/identity/principalId")),
        user_assigned_ids: v
            .pointer("/identity/userAssignedIdentities")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        revoked: status.as_deref().and_then(revocation),
        customer_managed_key_status: status,
        tags: tags_of(v),
        default_identity_principal: default_identity_principal(v),
        kind: s(v.get("kind")),
        capabilities: p.get("capabilities").and_then(Value::as_array).map(|list| {
            list.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        }),
        backup: backup_of(p),
        locations: locations_of(p),
        settings: settings_of(p),
    }
}

/// Reads a revocation out of `customerManagedKeyStatus`. Azure words it "Access to
/// your account is currently revoked because ... unable to ... the customer managed
/// key; ... cmk-troubleshooting-guide#<anchor> (<substatus>)"; the healthy value is
/// "Access to the configured customer managed key confirmed."
pub(super) fn revocation(status: &str) -> Option<AzureErrorRecord> {
    let lower = status.to_ascii_lowercase();
    if !lower.contains("revoked") {
        return None;
    }
    Some(AzureErrorRecord {
        operation: "GetAccount".into(),
        http_status: 403,
        sub_status: revocation_sub_status(status),
        code: Some("CustomerManagedKeyRevoked".into()),
        message: Some(status.to_owned()),
        time: Some(k8s_openapi::jiff::Timestamp::now().to_string()),
    })
}

/// The substatus in a status text: a 40xx code (after `#`, in parentheses, or after
/// `Substatus:`), else the troubleshooting guide's anchor.
fn revocation_sub_status(status: &str) -> Option<i32> {
    let mut numbers = status
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| t.len() == 4)
        .filter_map(|t| t.parse::<i32>().ok())
        .filter(|n| (4000..4100).contains(n));
    if let Some(n) = numbers.next_back() {
        return Some(n);
    }
    let lower = status.to_ascii_lowercase();
    let anchors = [
        ("azure-active-directory-token-acquisition-error", 4000),
        ("unable-to-access-key-vault", 4002),
        ("key-vault-access-denied", 4002),
        ("azure-key-vault-resource-not-found", 4003),
        ("key-not-found", 4003),
        ("invalid-azure-cosmos-db-default-identity", 4000),
    ];
    anchors
        .iter()
        .find(|(a, _)| lower.contains(a))
        .map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackupPolicy, ContinuousTier, Location, RestoreSource};
    use azure_mgmt_cosmosdb::package_preview_2024_09::models;

    fn new_account() -> NewAccount {
        NewAccount {
            account: AccountRef {
                subscription_id: "s".into(),
                resource_group: "rg".into(),
                name: "acct".into(),
            },
            kind: "GlobalDocumentDB".into(),
            locations: vec![
                Location {
                    location_name: "eastus2".into(),
                    failover_priority: 1,
                    is_zone_redundant: false,
                },
                Location {
                    location_name: "westus".into(),
                    failover_priority: 0,
                    is_zone_redundant: true,
                },
            ],
            capabilities: vec!["EnableCassandra".into()],
            key_uri: "https://kv.vault.azure.net/keys/k".into(),
            default_identity: "UserAssignedIdentity=/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id".into(),
            user_assigned_identity: Some("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id".into()),
            backup: BackupPolicy {
                type_: BackupPolicyType::Continuous,
                continuous_tier: Some(ContinuousTier::Continuous7Days),
                ..Default::default()
            },
            restore: Some(RestoreSource {
                source_account_id: Some("/subscriptions/s/providers/Microsoft.DocumentDB/locations/westus/restorableDatabaseAccounts/abc".into()),
                timestamp: Some("2026-01-31T12:00:00Z".into()),
            }),
            tags: [("cosmoscmk.io-name".to_owned(), "orders".to_owned())].into(),
            settings: Default::default(),
        }
    }

    /// The SDK model must carry every field of the body (nothing silently dropped).
    #[test]
    fn create_body_survives_the_sdk_model() {
        let body = create_body(&new_account(), "https://kv.vault.azure.net/keys/k");
        assert_eq!(body["location"], "westus");
        // Sent raw beside the model, which drops tags.
        assert_eq!(body["tags"]["cosmoscmk.io-name"], "orders");
        let m: models::DatabaseAccountCreateUpdateParameters =
            serde_json::from_value(body.clone()).unwrap();
        let back = serde_json::to_value(&m).unwrap();
        let want = body;
        // The model serialises only what it knows; compare the documented fields.
        for path in [
            "/kind",
            "/location",
            "/identity/type",
            "/properties/databaseAccountOfferType",
            "/properties/locations",
            "/properties/capabilities",
            "/properties/keyVaultKeyUri",
            "/properties/defaultIdentity",
            "/properties/backupPolicy/type",
            "/properties/backupPolicy/continuousModeProperties/tier",
            "/properties/createMode",
            "/properties/restoreParameters/restoreMode",
            "/properties/restoreParameters/restoreSource",
        ] {
            assert_eq!(back.pointer(path), want.pointer(path), "{path} in {back}");
        }
        assert!(
            back.pointer("/identity/userAssignedIdentities")
                .and_then(Value::as_object)
                .is_some_and(|m| m.len() == 1),
            "{back}"
        );
        let ts = back
            .pointer("/properties/restoreParameters/restoreTimestampInUtc")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(ts.starts_with("2026-01-31T12:00:00"), "{back}");
    }

    #[test]
    fn update_bodies_survive_the_sdk_model() {
        let current =
            json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {"/x/a": {}}}});
        let ident = identity_with(&current, &AccountChange::EnableSystemIdentity).unwrap();
        assert_eq!(ident["type"], "SystemAssigned,UserAssigned");
        let body = json!({"identity": ident});
        let m: models::DatabaseAccountUpdateParameters = serde_json::from_value(body).unwrap();
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["identity"]["type"], "SystemAssigned,UserAssigned");
        assert!(
            back["identity"]["userAssignedIdentities"]["/x/a"].is_object(),
            "{back}"
        );
        for body in [
            json!({"properties": {"defaultIdentity": "SystemAssignedIdentity"}}),
            json!({"properties": {"keyVaultKeyUri": "https://kv.vault.azure.net/keys/k"}}),
        ] {
            let m: models::DatabaseAccountUpdateParameters =
                serde_json::from_value(body.clone()).unwrap();
            assert_eq!(
                serde_json::to_value(&m).unwrap()["properties"],
                body["properties"]
            );
        }
        let added = identity_with(
            &json!({"identity": {"type": "None"}}),
            &AccountChange::AddUserAssignedIdentity("/x/b".into()),
        )
        .unwrap();
        assert_eq!(
            added,
            json!({"type": "UserAssigned", "userAssignedIdentities": {"/x/b": {}}})
        );
    }

    /// A read that does not say plainly which identities the account has is
    /// never the base of an identity write (ARM would drop the rest).
    #[test]
    fn identity_writes_refuse_reads_that_could_drop_identities() {
        let add = AccountChange::AddUserAssignedIdentity("/x/b".into());
        // No block at all is an account without identities, unless its default
        // identity names one.
        assert_eq!(
            identity_with(&json!({}), &AccountChange::EnableSystemIdentity).unwrap(),
            json!({"type": "SystemAssigned"})
        );
        for (read, why) in [
            (
                json!({"properties": {"defaultIdentity": "UserAssignedIdentity=/x/a"}}),
                "no `identity`",
            ),
            (
                json!({"properties": {"defaultIdentity": "SystemAssignedIdentity"}}),
                "no `identity`",
            ),
            (json!({"identity": null}), "not an object"),
            (json!({"identity": "SystemAssigned"}), "not an object"),
            (json!({"identity": {}}), "no `type`"),
            (json!({"identity": {"type": 3}}), "no `type`"),
            (json!({"identity": {"type": "Sometimes"}}), "unknown"),
            (json!({"identity": {"type": "UserAssigned"}}), "disagree"),
            (
                json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {}}}),
                "disagree",
            ),
            (
                json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": ["/x/a"]}}),
                "not an object",
            ),
            (
                json!({"identity": {"type": "SystemAssigned", "userAssignedIdentities": {"/x/a": {}}}}),
                "disagree",
            ),
        ] {
            for change in [&AccountChange::EnableSystemIdentity, &add] {
                let err = identity_with(&read, change).unwrap_err();
                assert!(err.contains(why), "{read}: {err}");
            }
        }
        // Whole reads keep every identity, whatever the spelling of the type.
        let read = json!({"identity": {"type": "SystemAssigned, UserAssigned",
            "principalId": "p", "userAssignedIdentities": {"/x/a": {"principalId": "q"}}}});
        let out = identity_with(&read, &add).unwrap();
        assert_eq!(out["type"], "SystemAssigned,UserAssigned");
        let users = out["userAssignedIdentities"].as_object().unwrap();
        assert!(
            users.contains_key("/x/a") && users.contains_key("/x/b"),
            "{out}"
        );
        let out = identity_with(
            &json!({"identity": {"type": "None", "userAssignedIdentities": null}}),
            &AccountChange::EnableSystemIdentity,
        )
        .unwrap();
        assert_eq!(out, json!({"type": "SystemAssigned"}));
    }

    /// The owner-tag write carries every tag over, or is refused.
    #[test]
    fn tag_writes_refuse_reads_that_could_drop_tags() {
        let kept = tags_to_keep(&json!({"tags": {"team": "a", "cost": "b"}})).unwrap();
        assert_eq!(kept.len(), 2);
        assert!(tags_to_keep(&json!({"tags": {}})).unwrap().is_empty());
        for (read, why) in [
            (json!({"id": "/x"}), "no `tags`"),
            (json!(null), "no `tags`"),
            (json!({"tags": null}), "not an object"),
            (json!({"tags": ["team"]}), "not an object"),
            (
                json!({"tags": {"team": "a", "n": 3}}),
                "\"n\" is not a string",
            ),
        ] {
            let err = tags_to_keep(&read).unwrap_err();
            assert!(err.contains(why), "{read}: {err}");
        }
    }

    #[test]
    fn revocation_is_read_from_the_status_text() {
        assert!(revocation("Access to the configured customer managed key confirmed.").is_none());
        let sim = "Access to your account is currently revoked because the Azure Cosmos DB service is unable to access the customer managed key; for more details about this error and how to restore access to your account please visit https://learn.microsoft.com/en-us/azure/cosmos-db/cmk-troubleshooting-guide#4002";
        assert_eq!(revocation(sim).unwrap().sub_status, Some(4002));
        let azure = "Access to your account is currently revoked because the Azure Cosmos DB service is unable to obtain the AAD authentication token for the account's default identity; for more details about this error and how to restore access to your account please visit https://learn.microsoft.com/en-us/azure/cosmos-db/cmk-troubleshooting-guide#azure-active-directory-token-acquisition-error (4000).";
        assert_eq!(revocation(azure).unwrap().sub_status, Some(4000));
        let anchor_only = "Access to your account is currently revoked ... cmk-troubleshooting-guide#azure-key-vault-resource-not-found";
        assert_eq!(revocation(anchor_only).unwrap().sub_status, Some(4003));
    }

    #[test]
    fn the_default_identity_principal_is_read_from_the_identity_block() {
        let ua = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u";
        let f = |default: &str| {
            facts_from_json(&json!({
                "identity": {"type": "SystemAssigned,UserAssigned", "principalId": "sys",
                    "userAssignedIdentities": {ua: {"principalId": "ua-p"}}},
                "properties": {"defaultIdentity": default}
            }))
            .default_identity_principal
        };
        assert_eq!(f("SystemAssignedIdentity").as_deref(), Some("sys"));
        assert_eq!(
            f(&format!("UserAssignedIdentity={}", ua.to_uppercase())).as_deref(),
            Some("ua-p")
        );
        assert_eq!(f("FirstPartyIdentity"), None);
        assert_eq!(f("UserAssignedIdentity=/other"), None);
    }

    #[test]
    fn facts_keep_the_version_in_use() {
        let f = facts_from_json(&json!({
            "id": "/x", "identity": {"type": "SystemAssigned", "principalId": "p"},
            "properties": {"provisioningState": "Succeeded", "keyVaultKeyUriVersion": "https://kv.vault.azure.net/keys/k/0123"}
        }));
        assert_eq!(f.key_version_in_use.as_deref(), Some("0123"));
        assert_eq!(f.system_principal_id.as_deref(), Some("p"));
    }

    #[test]
    fn facts_read_regions_backup_and_the_migration() {
        let f = facts_from_json(&json!({
            "id": "/x", "kind": "GlobalDocumentDB",
            "properties": {
                "locations": [
                    {"locationName": "West US", "failoverPriority": 1, "isZoneRedundant": true},
                    {"locationName": "East US", "failoverPriority": 0},
                    {"failoverPriority": 2}
                ],
                "capabilities": [{"name": "EnableCassandra"}],
                "backupPolicy": {"type": "Periodic",
                    "periodicModeProperties": {"backupIntervalInMinutes": 60, "backupRetentionIntervalInHours": 48},
                    "migrationState": {"status": "InProgress", "targetType": "Continuous"}}
            }
        }));
        assert_eq!(f.locations.len(), 2, "an entry without a name is skipped");
        assert!(
            f.locations
                .iter()
                .any(|l| l.location_name == "West US" && l.is_zone_redundant)
        );
        assert_eq!(f.capabilities, Some(vec!["EnableCassandra".to_owned()]));
        let b = f.backup.expect("backup");
        assert!(b.migrating);
        assert_eq!(
            (b.periodic_interval_minutes, b.periodic_retention_hours),
            (Some(60), Some(48))
        );
        let bare = facts_from_json(&json!({"id": "/x", "properties": {}}));
        assert_eq!(
            (bare.backup, bare.capabilities, bare.kind),
            (None, None, None)
        );
        assert!(
            bare.locations.is_empty(),
            "absent, never read as \"no regions\""
        );
    }

    #[test]
    fn region_and_backup_bodies_survive_the_sdk_model() {
        let locations = vec![Location {
            location_name: "eastus".into(),
            failover_priority: 0,
            is_zone_redundant: true,
        }];
        let continuous = BackupPolicy {
            type_: BackupPolicyType::Continuous,
            continuous_tier: Some(ContinuousTier::Continuous7Days),
            ..Default::default()
        };
        for body in [
            json!({"properties": {"locations": locations_body(&locations)}}),
            json!({"properties": {"backupPolicy": backup_body(&continuous)}}),
            json!({"properties": {"backupPolicy": backup_body(&BackupPolicy::default())}}),
        ] {
            let params: cosmosdb::models::DatabaseAccountUpdateParameters =
                crate::azure::sdk::model("t", body.clone()).expect("the SDK model takes it");
            let sent = serde_json::to_value(&params).unwrap();
            for (k, v) in body["properties"].as_object().unwrap() {
                assert_eq!(&sent["properties"][k], v, "{k} goes out as built");
            }
        }
    }

    #[test]
    fn a_region_write_goes_only_one_region_apart_from_what_azure_holds_now() {
        let l = |n: &str| Location {
            location_name: n.into(),
            failover_priority: 0,
            is_zone_redundant: false,
        };
        let (east, west, north) = (l("East US"), l("westus"), l("North Europe"));
        assert!(
            one_region_apart(std::slice::from_ref(&east), &[l("eastus"), west.clone()]).is_ok()
        );
        assert!(
            one_region_apart(&[east.clone(), west.clone()], std::slice::from_ref(&east)).is_ok()
        );
        // Someone added North Europe after the decision: the write would drop it.
        let added_meanwhile = [east.clone(), north.clone()];
        assert!(one_region_apart(&added_meanwhile, &[east.clone(), west]).is_err());
        // Removing one region from what Azure holds now is still one apart.
        assert!(one_region_apart(&added_meanwhile, std::slice::from_ref(&east)).is_ok());
        assert!(
            one_region_apart(&[], &[east]).is_err(),
            "a read without regions"
        );
    }
}
