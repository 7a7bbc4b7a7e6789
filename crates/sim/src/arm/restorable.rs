//! `Microsoft.DocumentDB/.../restorableDatabaseAccounts`: the continuous-backup
//! accounts a restore can start from, live and deleted (restorable.json
//! 2025-10-15: `RestorableDatabaseAccounts_ListByLocation`, `_GetByLocation`,
//! `_List`; examples `CosmosDBRestorableDatabaseAccountList.json`,
//! `CosmosDBRestorableDatabaseAccountNoLocationList.json`).
//!
//! Retention (Learn, "Continuous backup with point-in-time restore in Azure
//! Cosmos DB"): 7 or 30 days by the tier of continuous backup, no further
//! back than the account's creation; restoring a deleted account is one of
//! the feature's scenarios. The simulator ages a deleted account's backups
//! as a live one's: it can be restored to a time between
//! max(creation, now − window) and its deletion, so it stays listed (with
//! `deletionTime`) until `window` after its deletion and is then forgotten.
//! How long Azure keeps listing it is not documented there; this follows
//! from the window.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::lro::{self, normalize_location};
use crate::errors::{ApiError, Style};
use crate::server::{App, Req, json_resp};
use crate::state::{Account, DeletedAccount, State, now_ms, now_rfc3339};

const TYPE: &str = "Microsoft.DocumentDB/locations/restorableDatabaseAccounts";

/// The restore window of a tier, in simulated retention days.
pub fn window_ms(app: &App, tier: &str) -> i64 {
    let days = if tier.eq_ignore_ascii_case("Continuous7Days") {
        7
    } else {
        30
    };
    app.retention_day_ms().saturating_mul(days)
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now_rfc3339())
}

/// Keeps a deleted account restorable when it had continuous backup.
pub fn remember_deleted(state: &mut State, account: Account, deleted_ms: i64) {
    if !account.continuous() {
        return;
    }
    state.deleted_accounts.insert(
        account.instance_id.to_ascii_lowercase(),
        DeletedAccount {
            account,
            deleted_at: rfc3339(deleted_ms),
            deleted_ms,
        },
    );
}

/// Forgets deleted accounts whose restore window has passed.
pub fn prune(app: &App, state: &mut State) {
    let now = now_ms();
    state
        .deleted_accounts
        .retain(|_, d| now.saturating_sub(d.deleted_ms) < window_ms(app, d.account.backup_tier()));
}

/// A restorable account, live or deleted.
pub struct Source<'a> {
    pub account: &'a Account,
    /// When it was deleted (Unix ms and RFC 3339); `None` while it lives.
    pub deleted: Option<(i64, &'a str)>,
}

impl Source<'_> {
    /// The earliest restore time: its creation or the start of its window.
    pub fn oldest_ms(&self, app: &App) -> i64 {
        let window = window_ms(app, self.account.backup_tier());
        self.account.created_ms.max(now_ms().saturating_sub(window))
    }
    /// `oldestRestorableTime`: the creation time as recorded while the
    /// window reaches back to it (no precision lost).
    pub fn oldest(&self, app: &App) -> String {
        let ms = self.oldest_ms(app);
        if ms <= self.account.created_ms {
            self.account.created_at.clone()
        } else {
            rfc3339(ms)
        }
    }
    /// The latest restore time: its deletion, or now.
    pub fn latest_ms(&self) -> i64 {
        self.deleted.map_or_else(now_ms, |(ms, _)| ms)
    }
    /// The source's key in `State::accounts` (lower-cased account id).
    pub fn key(&self) -> String {
        self.account.id().to_ascii_lowercase()
    }
}

/// Every restorable account: live continuous accounts, then deleted ones.
pub fn sources(state: &State) -> Vec<Source<'_>> {
    let live = state
        .accounts
        .values()
        .filter(|a| a.continuous())
        .map(|account| Source {
            account,
            deleted: None,
        });
    let deleted = state.deleted_accounts.values().map(|d| Source {
        account: &d.account,
        deleted: Some((d.deleted_ms, d.deleted_at.as_str())),
    });
    live.chain(deleted).collect()
}

/// The restorable account with this instance id.
pub fn find<'a>(state: &'a State, instance: &str) -> Option<Source<'a>> {
    sources(state)
        .into_iter()
        .find(|s| s.account.instance_id.eq_ignore_ascii_case(instance))
}

/// A `RestorableDatabaseAccountGetResult`.
fn item_json(app: &App, s: &Source<'_>) -> Value {
    let a = s.account;
    let loc = normalize_location(&a.location);
    let display = super::cosmos::display_location(&a.location);
    let mut region = json!({
        "locationName": display,
        "regionalDatabaseAccountInstanceId": a.instance_id,
        "creationTime": a.created_at,
    });
    let mut props = json!({
        "accountName": a.name,
        "creationTime": a.created_at,
        "oldestRestorableTime": s.oldest(app),
        "apiType": a.api_type(),
    });
    if let Some((_, at)) = s.deleted {
        props["deletionTime"] = json!(at);
        region["deletionTime"] = json!(at);
    }
    props["restorableLocations"] = json!([region]);
    json!({
        "id": format!(
            "/subscriptions/{}/providers/Microsoft.DocumentDB/locations/{loc}/restorableDatabaseAccounts/{}",
            a.subscription_id, a.instance_id
        ),
        "name": a.instance_id,
        "type": TYPE,
        "location": display,
        "properties": props,
    })
}

/// The restorable accounts of a subscription, optionally in one location.
fn items(app: &App, sub: &str, loc: Option<&str>) -> Vec<Value> {
    let mut state = app.state();
    lro::advance(&mut state);
    prune(app, &mut state);
    let loc = loc.map(normalize_location);
    sources(&state)
        .iter()
        .filter(|s| s.account.subscription_id.eq_ignore_ascii_case(sub))
        .filter(|s| {
            loc.as_ref()
                .is_none_or(|l| normalize_location(&s.account.location) == *l)
        })
        .map(|s| item_json(app, s))
        .collect()
}

/// `GET .../locations/{loc}/restorableDatabaseAccounts[/{instanceId}]`.
pub fn by_location(
    app: &App,
    req: &Req,
    sub: &str,
    loc: &str,
    instance: Option<&str>,
) -> Result<Response, ApiError> {
    if req.method.as_str() != "GET" {
        return Ok(crate::server::method_not_allowed(Style::Arm));
    }
    let items = items(app, sub, Some(loc));
    let Some(i) = instance else {
        return Ok(json_resp(StatusCode::OK, json!({"value": items})));
    };
    items
        .into_iter()
        .find(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(i))
        })
        .map(|v| json_resp(StatusCode::OK, v))
        .ok_or_else(|| {
            ApiError::arm(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("Restorable database account '{i}' was not found."),
            )
        })
}

/// `GET /subscriptions/{s}/providers/Microsoft.DocumentDB/restorableDatabaseAccounts`:
/// every location's, one page (the spec declares `nextLinkName: null`).
pub fn list_subscription(app: &App, req: &Req, sub: &str) -> Result<Response, ApiError> {
    if req.method.as_str() != "GET" {
        return Ok(crate::server::method_not_allowed(Style::Arm));
    }
    let items = items(app, sub, None);
    Ok(json_resp(StatusCode::OK, json!({"value": items})))
}
