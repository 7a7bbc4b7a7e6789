//! ARM lists that follow `nextLink`: the accounts of a subscription, the
//! accounts Azure can restore (deleted ones among them), and the
//! subscriptions the caller can read. The safety checks before a destructive
//! call read these; a list cut short is an error, never a shorter answer.

use std::sync::Arc;

use azure_core::{Method, Url};
use futures::future::{BoxFuture, FutureExt, Shared};
use serde_json::Value;

use super::SdkAzure;
use crate::azure::errors::AzureError;
use crate::azure::rate_limit::CallKind;
use crate::reconcile::destructive::RestorableAccount;

/// A restorable-accounts list being read, shared by the callers that join it.
pub(super) type RestorableRead =
    Shared<BoxFuture<'static, Result<Arc<Vec<RestorableAccount>>, AzureError>>>;

/// `Subscriptions_List` (Microsoft.Resources, stable).
const SUBSCRIPTIONS_API: &str = "2022-12-01";
/// The limiter's bucket for calls that belong to no subscription.
const TENANT_BUCKET: &str = "tenant";

fn rejected(op: &str, status: u16, code: &str, message: String) -> AzureError {
    AzureError::Rejected {
        operation: op.to_owned(),
        status,
        code: code.into(),
        message,
    }
}

impl SdkAzure {
    /// Every item of an ARM list, following `nextLink` on the resource
    /// manager's own host only (bounded).
    pub(super) async fn list_values(
        &self,
        op: &str,
        bucket: &str,
        first: String,
    ) -> Result<Vec<Value>, AzureError> {
        const MAX_PAGES: usize = 100;
        let arm = Url::parse(&self.inner.cloud.resource_manager).ok();
        let mut next = Some(first);
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let Some(link) = next.take() else {
                return Ok(out);
            };
            let url = Url::parse(&link).map_err(|e| {
                rejected(
                    op,
                    400,
                    "InvalidRequest",
                    format!("cannot build the list URL: {e}"),
                )
            })?;
            if arm.as_ref().and_then(Url::host_str) != url.host_str() {
                let msg = "the list's nextLink points at another host".to_owned();
                return Err(rejected(op, 502, "UnexpectedNextLink", msg));
            }
            let page = self
                .arm_send(op, bucket, CallKind::Read, Method::Get, url, None)
                .await?;
            let Some(items) = page.body.get("value").and_then(Value::as_array) else {
                return Err(super::missing_in_answer(op, page.status, "`value` array"));
            };
            out.extend(items.iter().cloned());
            next = page
                .body
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
                .map(str::to_owned);
        }
        let msg = format!("the list has more than {MAX_PAGES} pages");
        Err(rejected(op, 502, "TooManyPages", msg))
    }

    /// `RestorableDatabaseAccounts_List`: every account of the subscription
    /// Azure can restore, live or deleted.
    ///
    /// Each account about to be created reads this list (Azure's memory of a
    /// deleted account of its name decides), so a thousand creations in a
    /// subscription were a thousand lists, a fifth of its ARM reads. A caller
    /// that finds a list of its subscription *in flight* (sent, its answer
    /// not yet received) joins it rather than sending another: an answer a
    /// call's latency older than its own would be, at most. A finished answer
    /// is never reused.
    pub(super) async fn restorable_list(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<RestorableAccount>, AzureError> {
        let read = {
            let mut reads = self
                .inner
                .restorable_reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = subscription_id.to_ascii_lowercase();
            match reads.get(&key) {
                Some(read) if read.peek().is_none() => read.clone(),
                _ => {
                    let me = self.clone();
                    let sub = subscription_id.to_owned();
                    let read = async move { me.restorable_read(&sub).await.map(Arc::new) }
                        .boxed()
                        .shared();
                    reads.insert(key, read.clone());
                    read
                }
            }
        };
        read.await.map(|list| list.as_ref().clone())
    }

    async fn restorable_read(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<RestorableAccount>, AzureError> {
        const OP: &str = "ListRestorableAccounts";
        let first = format!(
            "{}subscriptions/{subscription_id}/providers/Microsoft.DocumentDB/restorableDatabaseAccounts?api-version={}",
            self.inner.cloud.resource_manager,
            super::lro::COSMOS_API
        );
        let items = self.list_values(OP, subscription_id, first).await?;
        items.iter().map(|v| restorable_from_json(OP, v)).collect()
    }

    /// `Subscriptions_List`: the subscriptions the caller can read.
    pub(super) async fn subscription_list(&self) -> Result<Vec<String>, AzureError> {
        const OP: &str = "ListSubscriptions";
        let first = format!(
            "{}subscriptions?api-version={SUBSCRIPTIONS_API}",
            self.inner.cloud.resource_manager
        );
        let items = self.list_values(OP, TENANT_BUCKET, first).await?;
        items
            .iter()
            .map(|v| {
                v.get("subscriptionId")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| super::missing_in_answer(OP, 200, "`subscriptionId`"))
            })
            .collect()
    }
}

/// A restorable account as the port reports it; a deleted account without its
/// name could not be matched, so an item without one is an error.
fn restorable_from_json(op: &str, v: &Value) -> Result<RestorableAccount, AzureError> {
    let p = v.get("properties");
    let text = |k: &str| {
        p.and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let name = text("accountName")
        .ok_or_else(|| super::missing_in_answer(op, 200, "`properties.accountName`"))?;
    Ok(RestorableAccount {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        account_name: name,
        creation_time: text("creationTime"),
        deletion_time: text("deletionTime"),
        oldest_restorable_time: text("oldestRestorableTime"),
    })
}
