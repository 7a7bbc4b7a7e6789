//! `GET /subscriptions` (`Subscriptions_List`, Microsoft.Resources
//! `subscriptions.json` 2022-12-01): the subscriptions the caller can see.
//!
//! The simulator keeps no subscription registry: a subscription exists for a
//! caller when the caller holds a role assignment at it or below it (a
//! resource group, a resource). An assignment above every subscription (the
//! root scope `/`, a management group) reaches every subscription of the
//! tenant, as Azure's inherited assignments do: then every subscription the
//! simulated world names is listed.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::errors::{ApiError, Style};
use crate::server::{App, Req, json_resp};

/// The subscription id a scope lies in (`/subscriptions/{id}[/...]`).
fn subscription_of(scope: &str) -> Option<&str> {
    let mut segs = scope.split('/').filter(|s| !s.is_empty());
    match (segs.next(), segs.next()) {
        (Some(first), Some(id)) if first.eq_ignore_ascii_case("subscriptions") => Some(id),
        _ => None,
    }
}

pub fn list(app: &App, req: &Req, caller: &str) -> Result<Response, ApiError> {
    if req.method.as_str() != "GET" {
        return Ok(crate::server::method_not_allowed(Style::Arm));
    }
    // By lower-cased id (ARM ids are case-insensitive), spelled as first assigned.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let state = app.state();
    let mut add = |id: &str| {
        seen.entry(id.to_ascii_lowercase())
            .or_insert_with(|| id.to_owned());
    };
    let mut above_all = false;
    for ra in state.role_assignments.values() {
        if !ra.principal_id.eq_ignore_ascii_case(caller) {
            continue;
        }
        match subscription_of(&ra.scope) {
            Some(id) => add(id),
            None => above_all = true,
        }
    }
    if above_all {
        let named = state
            .accounts
            .values()
            .map(|a| a.subscription_id.as_str())
            .chain(state.vaults.values().map(|v| v.subscription_id.as_str()))
            .chain(
                state
                    .identities
                    .values()
                    .map(|i| i.subscription_id.as_str()),
            )
            .chain(
                state
                    .deleted_accounts
                    .values()
                    .map(|d| d.account.subscription_id.as_str()),
            )
            .chain(state.providers.keys().filter_map(|k| k.split('/').next()))
            .chain(
                state
                    .role_assignments
                    .values()
                    .filter_map(|r| subscription_of(&r.scope)),
            );
        for id in named {
            add(id);
        }
    }
    drop(state);
    let tenant = &app.config.tenant_id;
    let value: Vec<_> = seen
        .values()
        .map(|id| {
            json!({
                "id": format!("/subscriptions/{id}"),
                "subscriptionId": id,
                "displayName": format!("Simulated subscription {id}"),
                "state": "Enabled",
                "tenantId": tenant,
            })
        })
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"value": value})))
}

#[cfg(test)]
mod tests {
    use super::subscription_of;

    #[test]
    fn scopes_name_their_subscription() {
        assert_eq!(subscription_of("/subscriptions/abc"), Some("abc"));
        assert_eq!(
            subscription_of("/subscriptions/abc/resourceGroups/rg"),
            Some("abc")
        );
        assert_eq!(subscription_of("/"), None);
        assert_eq!(
            subscription_of("/providers/Microsoft.Management/managementGroups/mg"),
            None
        );
    }
}
