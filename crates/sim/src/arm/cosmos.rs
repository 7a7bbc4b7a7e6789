//! `Microsoft.DocumentDB/databaseAccounts`: create/update/patch/get/delete/list,
//! CMK enforcement, identities, revocation, restore.

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::account_changes;
use super::account_rules;
use super::lro::{self, Links, normalize_location};
use crate::cmk_rules::{self, STATUS_OK};
use crate::errors::{ApiError, Style};
use crate::server::{App, Req, json_resp};
use crate::state::{Account, AccountIdentity, OpKind, State, new_guid, now_ms, now_rfc3339};

const TYPE: &str = "Microsoft.DocumentDB/databaseAccounts";
/// What `defaultIdentity` reads once the identity it named is removed.
pub const UNDEFINED_IDENTITY: &str = "Undefined";

/// Properties the service computes; ignored when a client sends them.
const READ_ONLY: &[&str] = &[
    "provisioningState",
    "documentEndpoint",
    "writeLocations",
    "readLocations",
    "failoverPolicies",
    "privateEndpointConnections",
    "instanceId",
    "keyVaultKeyUriVersion",
    "customerManagedKeyStatus",
    "keysMetadata",
    "restoreParameters_",
    "systemData",
];

fn key(sub: &str, rg: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.documentdb/databaseaccounts/{name}").to_ascii_lowercase()
}

pub fn display_location(loc: &str) -> String {
    super::regions::display(loc)
}

fn with_headers(mut resp: Response, headers: Vec<(String, String)>) -> Response {
    for (k, v) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

/// The accounts whose (lower-case) ids start with `prefix`: a resource group's
/// list, one page.
pub fn list(app: &Arc<App>, req: &Req, prefix: &str) -> Result<Response, ApiError> {
    if req.method.as_str() != "GET" {
        return Ok(crate::server::method_not_allowed(Style::Arm));
    }
    let (value, _) = list_page(app, prefix, None, usize::MAX);
    Ok(json_resp(StatusCode::OK, json!({"value": value})))
}

/// Up to `size` accounts under `prefix` whose keys sort after `after`, and
/// the key of the last one when more follow.
fn list_page(
    app: &App,
    prefix: &str,
    after: Option<&str>,
    size: usize,
) -> (Vec<Value>, Option<String>) {
    let mut state = app.state();
    lro::advance(&mut state);
    let keys: Vec<String> = state
        .accounts
        .keys()
        .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
        .cloned()
        .collect();
    let more = keys.len() > size;
    let mut value = Vec::new();
    let mut last = None;
    for k in keys.into_iter().take(size) {
        refresh_cmk(app, &mut state, &k);
        if let Some(a) = state.accounts.get(&k) {
            value.push(account_json(app, &state, a));
        }
        last = Some(k);
    }
    (value, last.filter(|_| more))
}

/// `GET /subscriptions/{s}/providers/Microsoft.DocumentDB/databaseAccounts`:
/// pages of `list_page_size` accounts, each but the last with a `nextLink`
/// carrying an opaque `$skipToken` (ARM's paging contract: the client follows
/// `nextLink` as given until a page has none).
pub fn list_subscription(
    app: &Arc<App>,
    req: &Req,
    sub: &str,
    api_version: &str,
) -> Result<Response, ApiError> {
    if req.method.as_str() != "GET" {
        return Ok(crate::server::method_not_allowed(Style::Arm));
    }
    let after =
        match req.q("$skipToken") {
            None => None,
            Some(t) => Some(skip_token_decode(t).ok_or_else(|| {
                ApiError::bad_request(format!("The skip token '{t}' is invalid."))
            })?),
        };
    let prefix = format!("/subscriptions/{sub}/").to_ascii_lowercase();
    let size = app.config.list_page_size.max(1);
    let (value, last) = list_page(app, &prefix, after.as_deref(), size);
    let mut body = json!({"value": value});
    if let Some(last) = last {
        body["nextLink"] = json!(format!(
            "{}subscriptions/{sub}/providers/Microsoft.DocumentDB/databaseAccounts?api-version={api_version}&$skipToken={}",
            req.origin.arm_base(),
            skip_token_encode(&last)
        ));
    }
    Ok(json_resp(StatusCode::OK, body))
}

fn skip_token_encode(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn skip_token_decode(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// `HEAD /providers/Microsoft.DocumentDB/databaseAccountNames/{name}`.
pub fn name_exists(app: &Arc<App>, req: &Req, name: &str) -> Result<Response, ApiError> {
    if req.method.as_str() != "HEAD" {
        return Ok(crate::server::method_not_allowed(Style::Arm));
    }
    let state = app.state();
    Ok(account_rules::name_exists_status(&state, name).into_response())
}

pub fn handle(
    app: &Arc<App>,
    req: &Req,
    sub: &str,
    rg: &str,
    name: Option<&str>,
    api_version: &str,
) -> Result<Response, ApiError> {
    let Some(name) = name else {
        return list(app, req, &key(sub, rg, ""));
    };
    let mut state = app.state();
    lro::advance(&mut state);
    let k = key(sub, rg, name);
    match req.method.as_str() {
        "GET" => {
            refresh_cmk(app, &mut state, &k);
            let a = state
                .accounts
                .get(&k)
                .ok_or_else(|| super::not_found(TYPE, name, rg))?;
            Ok(json_resp(StatusCode::OK, account_json(app, &state, a)))
        }
        "PUT" => {
            if state.accounts.contains_key(&k) && create_only(req) {
                return Err(exists_precondition(name));
            }
            let body = req.json(Style::Arm)?;
            let links = Links::new(req, api_version);
            if state.accounts.contains_key(&k) {
                update(app, links, &mut state, &k, &body, true)
            } else {
                create(app, links, &mut state, sub, rg, name, &body)
            }
        }
        "PATCH" => {
            let body = req.json(Style::Arm)?;
            if !state.accounts.contains_key(&k) {
                return Err(super::not_found(TYPE, name, rg));
            }
            update(
                app,
                Links::new(req, api_version),
                &mut state,
                &k,
                &body,
                false,
            )
        }
        "DELETE" => {
            let Some(a) = state.accounts.get(&k).cloned() else {
                return Ok(StatusCode::NO_CONTENT.into_response());
            };
            let op = match (&a.pending_op, a.provisioning_state.as_str()) {
                (Some(op), "Deleting") => op.clone(),
                _ => {
                    let op = lro::start(app, &mut state, OpKind::Delete, &k, sub, &a.location);
                    if let Some(acc) = state.accounts.get_mut(&k) {
                        acc.provisioning_state = "Deleting".into();
                        acc.pending_op = Some(op.clone());
                    }
                    op
                }
            };
            let headers = lro::headers(Links::new(req, api_version), &state, &op);
            Ok(with_headers(StatusCode::ACCEPTED.into_response(), headers))
        }
        _ => Ok(crate::server::method_not_allowed(Style::Arm)),
    }
}

/// `If-None-Match: *`: create only. ARM's RPC ("ETags for Resources") has
/// the resource provider answer 412 when the resource exists; Cosmos DB's
/// spec declares no such header for `DatabaseAccounts_CreateOrUpdate` and
/// accounts carry no `etag`, so whether Azure honours it is not documented
/// (docs/simulator.md, fidelity table).
fn create_only(req: &Req) -> bool {
    req.headers
        .get_all(axum::http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*")
}

fn exists_precondition(name: &str) -> ApiError {
    ApiError::arm(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
        format!(
            "The database account '{name}' already exists and the request's If-None-Match header is '*': the create-only condition failed."
        ),
    )
}

fn valid_name(name: &str) -> bool {
    (3..=44).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Parses the `identity` block, creating a system-assigned principal when newly enabled.
fn parse_identity(
    state: &State,
    v: Option<&Value>,
    current: Option<&AccountIdentity>,
) -> Result<AccountIdentity, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(current.cloned().unwrap_or_else(|| AccountIdentity {
            type_: "None".into(),
            ..Default::default()
        }));
    };
    let type_raw = v.get("type").and_then(Value::as_str).unwrap_or("None");
    let type_ = match type_raw.replace(' ', "").to_ascii_lowercase().as_str() {
        "none" => "None",
        "systemassigned" => "SystemAssigned",
        "userassigned" => "UserAssigned",
        "systemassigned,userassigned" => "SystemAssigned,UserAssigned",
        _ => {
            return Err(ApiError::bad_request(format!(
                "Invalid identity type '{type_raw}'. Allowed values are 'SystemAssigned', 'UserAssigned', 'SystemAssigned,UserAssigned' and 'None'."
            )));
        }
    };
    let mut ident = AccountIdentity {
        type_: type_.into(),
        ..Default::default()
    };
    if ident.has_system() {
        ident.system_principal_id = current
            .and_then(|c| c.system_principal_id.clone())
            .or_else(|| Some(new_guid()));
    }
    if type_.contains("UserAssigned") {
        let map = v
            .get("userAssignedIdentities")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if map.is_empty() {
            return Err(ApiError::bad_request(
                "The identity type 'UserAssigned' requires at least one entry in 'userAssignedIdentities'.",
            ));
        }
        for (id, val) in map {
            if val.is_null() {
                continue; // ARM removes an identity set to null
            }
            if state.identity_by_id(&id).is_none() {
                return Err(ApiError::arm(
                    StatusCode::BAD_REQUEST,
                    "FailedIdentityOperation",
                    format!(
                        "Identity operation for resource failed: user-assigned identity '{id}' was not found."
                    ),
                ));
            }
            ident.user_assigned.push(id);
        }
    }
    Ok(ident)
}

fn strip_read_only(props: &Value) -> Map<String, Value> {
    let mut m = props.as_object().cloned().unwrap_or_default();
    for k in READ_ONLY {
        m.remove(*k);
    }
    m
}

fn create(
    app: &App,
    links: Links<'_>,
    state: &mut State,
    sub: &str,
    rg: &str,
    name: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    if !body.is_object() {
        return Err(ApiError::arm(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content must be a JSON object.",
        ));
    }
    let location = body
        .get("location")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::arm(
                StatusCode::BAD_REQUEST,
                "LocationRequired",
                "The location property is required for this definition.",
            )
        })?;
    if !valid_name(name) {
        return Err(ApiError::bad_request(format!(
            "DatabaseAccount name '{name}' is invalid. The name can contain only lowercase letters, numbers and the '-' character, must be between 3 and 44 characters long, and cannot start or end with '-'."
        )));
    }
    if !super::providers::registered(app, state, sub, "Microsoft.DocumentDB") {
        return Err(ApiError::arm(
            StatusCode::CONFLICT,
            "MissingSubscriptionRegistration",
            "The subscription is not registered to use namespace 'Microsoft.DocumentDB'. See https://aka.ms/rps-not-found for how to register subscriptions.",
        ));
    }
    super::regions::check(location, TYPE)?;
    account_rules::name_free(state, &key(sub, rg, name), name)?;
    let props_in = body
        .get("properties")
        .filter(|p| p.is_object())
        .ok_or_else(|| {
            ApiError::bad_request(
                "The 'properties' object is required to create a database account.",
            )
        })?;
    // ARM judges the request against Azure Policy before the resource
    // provider sees it.
    super::policy::enforce(
        state,
        &super::policy::Resource {
            id: &format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{TYPE}/{name}"),
            name,
            tags: body.get("tags").unwrap_or(&json!({})),
            properties: props_in,
        },
    )?;
    account_rules::settings_valid(props_in)?;
    let mut props = strip_read_only(props_in);
    let has_cmk = props
        .get("keyVaultKeyUri")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if let Some(uri) = props.get("keyVaultKeyUri").and_then(Value::as_str) {
        account_rules::versionless_key_uri(uri)?;
    }
    if props
        .get("databaseAccountOfferType")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(ApiError::bad_request(
            "The 'databaseAccountOfferType' property is required; the only valid value is 'Standard'.",
        ));
    }
    let locations = props
        .get("locations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if locations.is_empty() {
        return Err(ApiError::bad_request(if has_cmk {
            "The 'locations' property must be set explicitly to create a database account with customer-managed keys (keyVaultKeyUri)."
        } else {
            "The 'locations' property is required and must contain at least one location."
        }));
    }
    if locations.iter().any(|l| {
        l.get("locationName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    }) {
        return Err(ApiError::bad_request(
            "Every entry of 'locations' needs a 'locationName'.",
        ));
    }
    account_rules::locations_known(location, &locations)?;
    let zero = locations
        .iter()
        .filter(|l| {
            l.get("failoverPriority")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                == 0
        })
        .count();
    if zero != 1 {
        return Err(ApiError::bad_request(
            "Exactly one location must have failoverPriority 0 (the write region).",
        ));
    }
    let identity = parse_identity(state, body.get("identity"), None)?;

    // Restore of a continuous account: the source must exist and be continuous,
    // the timestamp inside its retention.
    let create_mode = props
        .get("createMode")
        .and_then(Value::as_str)
        .unwrap_or("Default")
        .to_owned();
    let mut restored_from = None;
    if create_mode.eq_ignore_ascii_case("Restore") {
        super::restorable::prune(app, state);
        let source = restore_checks(app, state, &mut props, &identity)?;
        // The identity list shows only the identities the request names
        // (recorded: azure-cli test_cosmosdb_system_identity_restore.yaml,
        // 2023); the source's metadata carried with a reused identity stays
        // hidden, bound to the source (seed FAQ).
        let reused: Vec<String> = identity
            .user_assigned
            .iter()
            .filter(|u| source.identities.iter().any(|s| s.eq_ignore_ascii_case(u)))
            .cloned()
            .collect();
        restored_from = Some(crate::state::RestoredFrom {
            source: source.key,
            carried_identities: reused,
            source_instance_id: Some(source.instance_id),
        });
    }
    let has_cmk = props
        .get("keyVaultKeyUri")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let default_identity = props
        .get("defaultIdentity")
        .and_then(Value::as_str)
        .unwrap_or("FirstPartyIdentity")
        .to_owned();
    let continuous = props
        .get("backupPolicy")
        .and_then(|b| b.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("Continuous"));
    if has_cmk && continuous && !default_identity.starts_with("UserAssignedIdentity=") {
        return Err(ApiError::bad_request(
            "Continuous backup with customer-managed keys requires a user-assigned identity at creation: set identity 'UserAssigned' and defaultIdentity 'UserAssignedIdentity=<identity resource id>'. The first-party identity is not supported with continuous backup.",
        ));
    }
    if props.contains_key("defaultIdentity") || has_cmk {
        let principal = cmk_rules::principal_for(app, state, &identity, &default_identity)?;
        if has_cmk {
            let uri = props
                .get("keyVaultKeyUri")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let faults = app.faults_snapshot();
            cmk_rules::check_access(state, &faults, &uri, &principal)?;
        }
    }
    let k = key(sub, rg, name);
    let acct = Account {
        subscription_id: sub.to_owned(),
        resource_group: rg.to_owned(),
        name: name.to_owned(),
        location: location.to_owned(),
        kind: body.get("kind").and_then(Value::as_str).map(str::to_owned),
        tags: body.get("tags").cloned().unwrap_or_else(|| json!({})),
        identity,
        properties: Value::Object(props),
        // "Creating" in the recorded create answers (azure-cli recordings,
        // replayed in tests/sim/replay/); cosmos-db.json's examples say
        // "Initializing" (undated).
        provisioning_state: "Creating".into(),
        instance_id: new_guid(),
        created_at: now_rfc3339(),
        created_ms: now_ms(),
        key_version_in_use: None,
        cmk: Default::default(),
        pending_op: None,
        migration: None,
        restored_from,
    };
    state.accounts.insert(k.clone(), acct);
    let op = lro::start(app, state, OpKind::Create, &k, sub, location);
    if let Some(a) = state.accounts.get_mut(&k) {
        a.pending_op = Some(op.clone());
    }
    // The create answer echoes the requested default identity, empty when the
    // request named none; Azure fills it in by the end of the operation. A
    // restore's answer says the first-party identity, no identity at all and
    // its regions' endpoints empty, whatever the request names (azure-cli
    // test_cosmosdb_system_identity_restore.yaml 2023, on a user-assigned
    // identity; test_cosmosdb_restore_using_create.yaml 2024, on none).
    let asked = props_default_identity(body);
    let restore = create_mode.eq_ignore_ascii_case("Restore");
    lro_answer(app, links, state, &k, &op, |answer| {
        if restore {
            answer["properties"]["defaultIdentity"] = json!("FirstPartyIdentity");
            answer["identity"] = json!({"type": "None"});
            for list in ["locations", "readLocations", "writeLocations"] {
                if let Some(Value::Array(regions)) = answer["properties"].get_mut(list) {
                    for r in regions {
                        r["documentEndpoint"] = json!("");
                    }
                }
            }
        } else {
            answer["properties"]["defaultIdentity"] = json!(asked);
        }
    })
}

fn props_default_identity(body: &Value) -> String {
    body.pointer("/properties/defaultIdentity")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// What a restore takes from its source account.
struct RestoreSource {
    /// The source's key in `State::accounts` (gone once it is deleted).
    key: String,
    instance_id: String,
    /// Its user-assigned identities: one the restore request names again
    /// stays bound to the source (not listed twice, not added otherwise).
    identities: Vec<String>,
}

/// Checks a restore request against its restorable source, live or deleted
/// (`restorableDatabaseAccounts`): continuous backup, a timestamp inside the
/// source's restore window.
fn restore_checks(
    app: &App,
    state: &State,
    props: &mut Map<String, Value>,
    identity: &AccountIdentity,
) -> Result<RestoreSource, ApiError> {
    let rp = props
        .get("restoreParameters")
        .cloned()
        .unwrap_or(Value::Null);
    let source = rp
        .get("restoreSource")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request(
                "restoreParameters.restoreSource is required when createMode is 'Restore'.",
            )
        })?;
    let instance = source
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let not_found = || {
        ApiError::arm(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("Restorable database account '{instance}' was not found."),
        )
    };
    let src = match super::restorable::find(state, &instance) {
        Some(s) => s,
        None => {
            // A live account without continuous backup is not restorable.
            if let Some(a) = state
                .accounts
                .values()
                .find(|a| a.instance_id.eq_ignore_ascii_case(&instance))
            {
                return Err(ApiError::bad_request(format!(
                    "Database account '{}' does not have continuous backup; point-in-time restore is not available.",
                    a.name
                )));
            }
            return Err(not_found());
        }
    };
    let ts_raw = rp
        .get("restoreTimestampInUtc")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request(
                "restoreParameters.restoreTimestampInUtc is required when createMode is 'Restore'.",
            )
        })?;
    let ts: jiff::Timestamp = ts_raw.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "restoreTimestampInUtc '{ts_raw}' is not a valid UTC timestamp."
        ))
    })?;
    // Answered in Azure's spelling: `…T02:25:26.000Z` asked reads back
    // `…T02:25:26Z` (azure-cli test_cosmosdb_restore_using_create.yaml, 2024).
    if let Some(Value::Object(rp)) = props.get_mut("restoreParameters") {
        rp.insert("restoreTimestampInUtc".into(), json!(ts.to_string()));
    }
    let ms = ts.as_millisecond();
    let (oldest, latest) = (src.oldest_ms(app), src.latest_ms());
    if ms < oldest || ms > latest {
        let stamp = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        return Err(ApiError::bad_request(format!(
            "The restore timestamp '{ts_raw}' is outside the restorable window of account '{}' (from {} to {}).",
            src.account.name,
            stamp(oldest),
            if src.deleted.is_some() {
                stamp(latest)
            } else {
                "now".to_owned()
            }
        )));
    }
    if let Some(uri) = src.account.key_uri() {
        // Identities of the source account do not carry over: the request needs its own.
        if identity.user_assigned.is_empty() {
            return Err(ApiError::bad_request(
                "Restoring an account that uses customer-managed keys requires a user-assigned identity in the restore request (source identities are not carried over).",
            ));
        }
        props
            .entry("keyVaultKeyUri")
            .or_insert_with(|| Value::String(uri.to_owned()));
    }
    restored_as_recorded(props, src.account);
    Ok(RestoreSource {
        key: src.key(),
        instance_id: src.account.instance_id.clone(),
        identities: src.account.identity.user_assigned.clone(),
    })
}

/// What a restored account reports beyond the request, as recorded
/// (azure-cli test_cosmosdb_system_identity_restore.yaml, 2023;
/// test_cosmosdb_restore_using_create.yaml, 2024): the source's continuous
/// backup policy unless the request names one, in `restoreParameters` the
/// source's region and the defaults of what the request left out, and the
/// values a restored account reads where a created one reads others
/// (`minimalTlsVersion` `Tls` beside its source's `Tls12` in the same 2024
/// transcript, an empty `analyticalStorageConfiguration`, `capacity`).
fn restored_as_recorded(props: &mut Map<String, Value>, source: &Account) {
    props.entry("minimalTlsVersion").or_insert(json!("Tls"));
    props
        .entry("analyticalStorageConfiguration")
        .or_insert(json!({}));
    props
        .entry("capacity")
        .or_insert(json!({"totalThroughputLimit": -1}));
    if !props.contains_key("backupPolicy") {
        let tier = source.backup_tier().to_owned();
        props.insert(
            "backupPolicy".into(),
            json!({"type": "Continuous", "continuousModeProperties": {"tier": tier}}),
        );
    }
    if let Some(Value::Object(rp)) = props.get_mut("restoreParameters") {
        rp.entry("sourceBackupLocation")
            .or_insert_with(|| json!(display_location(&source.location)));
        rp.entry("restoreWithTTLDisabled").or_insert(json!(false));
        rp.entry("databasesToRestore").or_insert(json!([]));
    }
}

/// `POST .../databaseAccounts/{name}/failoverPriorityChange`: a long-running
/// operation that reorders the regions (the write region among them).
pub fn failover_priority_change(
    app: &Arc<App>,
    req: &Req,
    sub: &str,
    rg: &str,
    name: &str,
    api_version: &str,
) -> Result<Response, ApiError> {
    let body = req.json(Style::Arm)?;
    let mut state = app.state();
    lro::advance(&mut state);
    let k = key(sub, rg, name);
    refresh_cmk(app, &mut state, &k);
    let cur = state
        .accounts
        .get(&k)
        .cloned()
        .ok_or_else(|| super::not_found(TYPE, name, rg))?;
    if cur.pending_op.is_some() || account_changes::migrating(&cur) {
        return Err(account_changes::busy(&cur.name));
    }
    if let Some(sub) = cur.cmk.revoked {
        return Err(revoked_error(&cur.name, sub));
    }
    let locations = account_changes::failover_priority_change(&cur, &body)?;
    let op = lro::start(
        app,
        &mut state,
        OpKind::Update,
        &k,
        &cur.subscription_id,
        &cur.location,
    );
    if let Some(a) = state.accounts.get_mut(&k) {
        if let Some(p) = a.properties.as_object_mut() {
            p.insert("locations".into(), locations);
        }
        a.provisioning_state = "Updating".into();
        a.pending_op = Some(op.clone());
    }
    let headers = lro::headers(Links::new(req, api_version), &state, &op);
    Ok(with_headers(StatusCode::ACCEPTED.into_response(), headers))
}

fn revoked_error(name: &str, sub: u32) -> ApiError {
    ApiError::arm(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!("Database account '{name}' is in revoked state because access to its customer-managed key was lost; only deletion and default identity updates are allowed. (Status: 403, Substatus: {sub})"),
    )
    .substatus(sub)
}

fn update(
    app: &App,
    links: Links<'_>,
    state: &mut State,
    k: &str,
    body: &Value,
    is_put: bool,
) -> Result<Response, ApiError> {
    if !body.is_object() {
        return Err(ApiError::arm(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content must be a JSON object.",
        ));
    }
    refresh_cmk(app, state, k);
    let cur = state
        .accounts
        .get(k)
        .cloned()
        .ok_or_else(|| super::not_found(TYPE, k, ""))?;
    if cur.pending_op.is_some() || account_changes::migrating(&cur) {
        return Err(account_changes::busy(&cur.name));
    }
    let patch = body
        .get("properties")
        .map(strip_read_only)
        .unwrap_or_default();
    // ARM judges a write by the account it would leave (the request merged
    // into the account), before the resource provider sees it.
    let mut merged = if is_put {
        Map::new()
    } else {
        cur.properties.as_object().cloned().unwrap_or_default()
    };
    merged.extend(patch.clone());
    super::policy::enforce(
        state,
        &super::policy::Resource {
            id: &cur.id(),
            name: &cur.name,
            tags: body.get("tags").unwrap_or(&cur.tags),
            properties: &Value::Object(merged),
        },
    )?;
    account_rules::settings_valid(&Value::Object(patch.clone()))?;
    // What actually changes.
    let changed: Vec<String> = patch
        .iter()
        .filter(|(key, v)| {
            cur.properties.get(key.as_str()) != Some(v)
                && !(key.as_str() == "defaultIdentity"
                    && v.as_str() == Some(cur.default_identity()))
        })
        .map(|(key, _)| key.clone())
        .collect();
    let identity_changed = match body.get("identity") {
        Some(v) if !v.is_null() => {
            let new = parse_identity(state, Some(v), Some(&cur.identity))?;
            new.type_ != cur.identity.type_ || {
                let mut a: Vec<String> = new
                    .user_assigned
                    .iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect();
                let mut b: Vec<String> = cur
                    .identity
                    .user_assigned
                    .iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect();
                a.sort();
                b.sort();
                a != b
            }
        }
        _ => false,
    };
    // A full PUT that leaves keyVaultKeyUri out would turn CMK off: refused.
    if is_put && cur.key_uri().is_some() && !patch.contains_key("keyVaultKeyUri") {
        return Err(ApiError::bad_request(
            "Customer-managed keys cannot be disabled on an account once enabled: the request omits keyVaultKeyUri.",
        ));
    }
    let key_changed = changed.iter().any(|c| c == "keyVaultKeyUri");
    let di_changed = changed.iter().any(|c| c == "defaultIdentity");
    let others = |skip: &str| -> Vec<String> {
        changed
            .iter()
            .filter(|c| c.as_str() != skip)
            .cloned()
            .chain(identity_changed.then(|| "identity".to_owned()))
            .collect()
    };
    if let Some(locations) = patch
        .get("locations")
        .filter(|_| changed.iter().any(|c| c == "locations"))
    {
        account_changes::check_locations(&cur, locations, &others("locations"))?;
        let list = locations.as_array().cloned().unwrap_or_default();
        account_rules::locations_known(&cur.location, &list)?;
    }
    let migration = match patch.get("backupPolicy") {
        Some(b) if changed.iter().any(|c| c == "backupPolicy") => {
            let di = patch
                .get("defaultIdentity")
                .and_then(Value::as_str)
                .unwrap_or(cur.default_identity());
            account_changes::check_backup(
                &cur,
                b,
                di,
                &others("backupPolicy"),
                // Ends with the update's operation: once it reports Succeeded,
                // reads show the new tier (recorded: azure-cli
                // test_cosmosdb_sql_migrate_periodic_to_continuous7days.yaml,
                // 2024). It used to outlive it, so a client trusting the
                // operation met a 412 on its next write.
                // Tests may move the end (SimHandle::set_migration_offset).
                app.lro_duration_ms() + app.migration_offset_ms(),
            )?
        }
        _ => None,
    };

    if let Some(sub) = cur.cmk.revoked {
        // With no default identity left ("Undefined") the way back starts by
        // assigning an identity, so that is allowed too.
        let identity_ok = !identity_changed || cur.default_identity() == UNDEFINED_IDENTITY;
        let only_di = identity_ok && changed.iter().all(|c| c == "defaultIdentity");
        if !only_di || (changed.is_empty() && !identity_changed) {
            return Err(revoked_error(&cur.name, sub));
        }
    }
    if key_changed {
        let new_uri = patch
            .get("keyVaultKeyUri")
            .and_then(Value::as_str)
            .unwrap_or_default();
        account_rules::versionless_key_uri(new_uri)?;
        if new_uri.is_empty() && cur.key_uri().is_some() {
            return Err(ApiError::bad_request(
                "Customer-managed keys cannot be disabled on an account once enabled.",
            ));
        }
        if changed.len() > 1 || identity_changed {
            return Err(ApiError::bad_request(format!(
                "Updating the customer-managed key (keyVaultKeyUri) cannot be combined with updates to other properties ({}). Update keyVaultKeyUri in its own request.",
                changed
                    .iter()
                    .filter(|c| c.as_str() != "keyVaultKeyUri")
                    .cloned()
                    .chain(identity_changed.then(|| "identity".to_owned()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut next = cur.clone();
    if identity_changed {
        next.identity = parse_identity(state, body.get("identity"), Some(&cur.identity))?;
    }
    let mut props = cur.properties.as_object().cloned().unwrap_or_default();
    if is_put {
        // A full PUT replaces client properties, but immutable ones stay.
        let mut replaced = patch.clone();
        for keep in ["createMode", "restoreParameters"] {
            if let Some(v) = props.get(keep) {
                replaced.insert(keep.into(), v.clone());
            }
        }
        props = replaced;
    } else {
        for (key, v) in &patch {
            props.insert(key.clone(), v.clone());
        }
    }
    // Identity and defaultIdentity changed together: Azure applies the identity
    // and silently keeps the old default identity.
    if identity_changed && di_changed {
        props.insert(
            "defaultIdentity".into(),
            Value::String(cur.default_identity().to_owned()),
        );
    }
    next.properties = Value::Object(props);
    let default_identity = next.default_identity().to_owned();
    if let Some(id) = cur.default_identity().strip_prefix("UserAssignedIdentity=")
        && default_identity == cur.default_identity()
        && !next
            .identity
            .user_assigned
            .iter()
            .any(|u| u.eq_ignore_ascii_case(id))
    {
        return Err(ApiError::bad_request(format!(
            "The identity '{id}' is the account's default identity and cannot be removed."
        )));
    }
    // Removing the system-assigned identity that is the default identity is
    // accepted; the default identity then reads "Undefined" (recorded in
    // azure-cli's test_cosmosdb_managed_service_identity.yaml, 2022).
    if default_identity.eq_ignore_ascii_case("SystemAssignedIdentity")
        && !next.identity.has_system()
        && let Some(p) = next.properties.as_object_mut()
    {
        p.insert("defaultIdentity".into(), json!(UNDEFINED_IDENTITY));
    }
    let default_identity = next.default_identity().to_owned();
    if let Some(t) = body.get("tags") {
        next.tags = t.clone();
    }
    if di_changed {
        account_changes::check_default_identity(&next, &default_identity)?;
    }
    if migration.is_some() {
        next.migration = migration;
    }
    if (di_changed && !identity_changed) || key_changed {
        let principal = cmk_rules::principal_for(app, state, &next.identity, &default_identity)?;
        if let Some(uri) = next.key_uri() {
            let faults = app.faults_snapshot();
            cmk_rules::check_access(state, &faults, uri, &principal)?;
            if next.cmk.revoked.is_some() {
                next.cmk.access_back_ms.get_or_insert(now_ms());
            }
        }
    }
    next.provisioning_state = "Updating".into();
    let op = lro::start(
        app,
        state,
        OpKind::Update,
        k,
        &cur.subscription_id,
        &cur.location,
    );
    next.pending_op = Some(op.clone());
    state.accounts.insert(k.to_owned(), next);
    // Azure answers an update with the account as it stood before the change,
    // marked Updating (every recorded PATCH in azure-cli's recordings): only
    // the operation and later reads show the new state.
    let mut before = cur;
    before.provisioning_state = "Updating".into();
    let before = account_json(app, state, &before);
    lro_answer(app, links, state, k, &op, |answer| *answer = before)
}

/// Re-evaluates key access: follows new versions of a versionless key, and
/// moves the account into or out of the revoked state.
pub fn refresh_cmk(app: &App, state: &mut State, k: &str) {
    let Some(a) = state.accounts.get(k).cloned() else {
        return;
    };
    let Some(uri) = a.key_uri().map(str::to_owned) else {
        return;
    };
    // Key Vault rotates on its schedule whether or not anyone reads the vault.
    crate::keyvault::rotation::apply_all(state, now_ms(), app.key_day_ms());
    let faults = app.faults_snapshot();
    let result = bound_to_deleted_source(state, &a)
        .and_then(|()| cmk_rules::principal_for(app, state, &a.identity, a.default_identity()))
        .and_then(|p| cmk_rules::check_access(state, &faults, &uri, &p));
    let recovery = app.config.revocation_recovery.as_millis() as i64;
    let Some(acct) = state.accounts.get_mut(k) else {
        return;
    };
    match result {
        Ok(res) => {
            if acct.cmk.revoked.is_some() {
                let back = *acct.cmk.access_back_ms.get_or_insert(now_ms());
                if now_ms() - back >= recovery {
                    acct.cmk.revoked = None;
                    acct.cmk.access_back_ms = None;
                }
            }
            if acct.cmk.revoked.is_none() {
                acct.key_version_in_use = Some(res.version_in_use);
                acct.cmk.status_message = Some(STATUS_OK.into());
            }
        }
        Err(e) if e.substatus == Some(4004) => {
            acct.cmk.status_message = Some(e.message);
        }
        Err(e) => {
            let sub = e.substatus.unwrap_or(4002);
            acct.cmk.revoked = Some(sub);
            acct.cmk.access_back_ms = None;
            acct.cmk.status_message = Some(cmk_rules::revoked_status(sub));
        }
    }
}

/// A restored account whose default identity was carried over from its source
/// loses it once the source is deleted: the identity's metadata is bound to the
/// source and is not renewed (seed FAQ). Azure reports it as a failed Entra ID
/// credential grant (substatus 4000).
fn bound_to_deleted_source(state: &State, a: &Account) -> Result<(), ApiError> {
    let Some(r) = &a.restored_from else {
        return Ok(());
    };
    let Some(id) = a.default_identity().strip_prefix("UserAssignedIdentity=") else {
        return Ok(());
    };
    let bound = r
        .carried_identities
        .iter()
        .any(|c| c.eq_ignore_ascii_case(id));
    let source_lives = state.accounts.get(&r.source).is_some_and(|src| {
        r.source_instance_id
            .as_deref()
            .is_none_or(|i| src.instance_id.eq_ignore_ascii_case(i))
    });
    if bound && !source_lives {
        return Err(ApiError::arm(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("The identity '{id}' was carried over from the restore source, which was deleted; its metadata is no longer renewed. Assign a new user-assigned identity to the account."),
        )
        .substatus(4000));
    }
    Ok(())
}

fn location_entries(a: &Account) -> Vec<Value> {
    let locs = a
        .properties
        .get("locations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Value> = locs
        .iter()
        .map(|l| {
            let name = l.get("locationName").and_then(Value::as_str).unwrap_or_default();
            let norm = normalize_location(name);
            json!({
                "id": format!("{}-{norm}", a.name),
                "locationName": display_location(name),
                "documentEndpoint": format!("https://{}-{norm}.documents.azure.com:443/", a.name),
                "provisioningState": a.provisioning_state,
                "failoverPriority": l.get("failoverPriority").and_then(Value::as_i64).unwrap_or(0),
                "isZoneRedundant": l.get("isZoneRedundant").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect();
    out.sort_by_key(|l| {
        l.get("failoverPriority")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    });
    out
}

fn identity_json(app: &App, state: &State, a: &Account) -> Value {
    let mut v = json!({"type": a.identity.type_});
    if let Some(p) = &a.identity.system_principal_id {
        v["principalId"] = json!(p);
    }
    // The tenant beside any identity, user-assigned ones alone included
    // (azure-cli test_cosmosdb_system_identity_restore.yaml, 2023: the create
    // answer and the restored account's reads; some reads leave it out).
    if !a.identity.type_.eq_ignore_ascii_case("None") {
        v["tenantId"] = json!(app.config.tenant_id);
    }
    if !a.identity.user_assigned.is_empty() {
        let mut m = Map::new();
        for id in &a.identity.user_assigned {
            let (client, principal) = state
                .identity_by_id(id)
                .map(|i| (i.client_id.clone(), i.principal_id.clone()))
                .unwrap_or_default();
            m.insert(
                id.clone(),
                json!({"clientId": client, "principalId": principal}),
            );
        }
        v["userAssignedIdentities"] = Value::Object(m);
    }
    v
}

/// The account as ARM returns it (2025-10-15 shape).
pub fn account_json(app: &App, state: &State, a: &Account) -> Value {
    let mut p = a.properties.as_object().cloned().unwrap_or_default();
    let locs = location_entries(a);
    p.insert("provisioningState".into(), json!(a.provisioning_state));
    p.insert(
        "documentEndpoint".into(),
        json!(format!("https://{}.documents.azure.com:443/", a.name)),
    );
    p.entry("databaseAccountOfferType")
        .or_insert(json!("Standard"));
    p.insert(
        "writeLocations".into(),
        json!(locs.iter().take(1).cloned().collect::<Vec<_>>()),
    );
    p.insert("readLocations".into(), json!(locs));
    p.insert("locations".into(), json!(locs));
    p.insert(
        "failoverPolicies".into(),
        json!(locs.iter().map(|l| json!({"id": l["id"], "locationName": l["locationName"], "failoverPriority": l["failoverPriority"]})).collect::<Vec<_>>()),
    );
    p.insert("defaultIdentity".into(), json!(a.default_identity()));
    if a.key_uri().is_some() {
        if let Some(v) = &a.key_version_in_use {
            p.insert("keyVaultKeyUriVersion".into(), json!(v));
        }
        if let Some(s) = &a.cmk.status_message {
            p.insert("customerManagedKeyStatus".into(), json!(s));
        }
    }
    p.insert("instanceId".into(), json!(a.instance_id));
    p.entry("createMode").or_insert(json!("Default"));
    p.entry("publicNetworkAccess").or_insert(json!("Enabled"));
    p.entry("enableFreeTier").or_insert(json!(false));
    p.entry("disableKeyBasedMetadataWriteAccess")
        .or_insert(json!(false));
    p.entry("isVirtualNetworkFilterEnabled")
        .or_insert(json!(false));
    // Defaults every recorded account answer carries (azure-cli recordings,
    // api-version 2021-10-15 onwards).
    for (field, default) in [
        ("enableAutomaticFailover", json!(false)),
        ("enableMultipleWriteLocations", json!(false)),
        ("enablePartitionKeyMonitor", json!(false)),
        ("virtualNetworkRules", json!([])),
        ("EnabledApiTypes", json!("Sql")),
        ("enableAnalyticalStorage", json!(false)),
        (
            "analyticalStorageConfiguration",
            json!({"schemaType": "WellDefined"}),
        ),
        ("networkAclBypass", json!("None")),
        ("disableLocalAuth", json!(false)),
        ("configurationOverrides", json!({})),
        ("cors", json!([])),
        ("capabilities", json!([])),
        ("ipRules", json!([])),
        ("networkAclBypassResourceIds", json!([])),
    ] {
        p.entry(field).or_insert(default);
    }
    // Each rule reads back with its flag (recorded: azure-cli
    // test_cosmosdb_network_rule_add.yaml, 2024, commit 02ca802), false when
    // the request left it out.
    if let Some(Value::Array(rules)) = p.get_mut("virtualNetworkRules") {
        for r in rules.iter_mut().filter_map(Value::as_object_mut) {
            r.entry("ignoreMissingVNetServiceEndpoint")
                .or_insert(json!(false));
        }
    }
    p.entry("consistencyPolicy").or_insert(json!({"defaultConsistencyLevel": "Session", "maxIntervalInSeconds": 5, "maxStalenessPrefix": 100}));
    newer_defaults(&mut p, a);
    let backup = match a.properties.get("backupPolicy") {
        Some(b) if b.get("type").and_then(Value::as_str) == Some("Continuous") => {
            let mut b = b.clone();
            if b.get("continuousModeProperties").is_none() {
                b["continuousModeProperties"] = json!({"tier": "Continuous30Days"});
            }
            b
        }
        Some(b) if b.is_object() => with_periodic_defaults(b.clone()),
        _ => with_periodic_defaults(json!({"type": "Periodic"})),
    };
    p.insert(
        "backupPolicy".into(),
        account_changes::reported_backup(a, backup),
    );
    let key_gen = json!({"generationTime": a.created_at});
    p.insert("keysMetadata".into(), json!({"primaryMasterKey": key_gen, "secondaryMasterKey": key_gen, "primaryReadonlyMasterKey": key_gen, "secondaryReadonlyMasterKey": key_gen}));
    json!({
        "id": a.id(),
        "name": a.name,
        "location": display_location(&a.location),
        "type": TYPE,
        "kind": a.kind.clone().unwrap_or_else(|| "GlobalDocumentDB".into()),
        "tags": a.tags,
        "identity": identity_json(app, state, a),
        "properties": Value::Object(p),
        "systemData": {"createdAt": a.created_at},
    })
}

/// Fields the 2023 and 2024 recordings carry (api-versions 2023-11-15,
/// 2024-11-15; azure-cli test_cosmosdb_system_identity_restore.yaml and
/// test_cosmosdb_sql_migrate_periodic_to_continuous7days.yaml).
/// `minimalTlsVersion` reads `Tls12` on created accounts in both years (a
/// restored one reads `Tls`: `restored_as_recorded`).
fn newer_defaults(p: &mut Map<String, Value>, a: &Account) {
    for (field, default) in [
        ("enableFullFidelityChangeFeed", json!(false)),
        ("enablePartitionMerge", json!(false)),
        ("enablePerRegionPerPartitionAutoscale", json!(false)),
        ("enableBurstCapacity", json!(false)),
        ("minimalTlsVersion", json!("Tls12")),
    ] {
        p.entry(field).or_insert(default);
    }
    // The SQL API's endpoint, beside documentEndpoint; not on MongoDB accounts.
    if !a
        .kind
        .as_deref()
        .is_some_and(|k| k.eq_ignore_ascii_case("MongoDB"))
    {
        p.entry("sqlEndpoint")
            .or_insert_with(|| json!(format!("https://{}.documents.azure.com:443/", a.name)));
    }
}

/// A periodic policy as Azure reports it: the client's own settings, and
/// Azure's defaults for what it left out (240 minutes, 8 hours, Geo). Every
/// recorded read carries all three, `backupStorageRedundancy` included
/// (issue 21, difference 8: it was missing when the client sent its own
/// interval or retention).
fn with_periodic_defaults(mut b: Value) -> Value {
    if b.get("type").and_then(Value::as_str) != Some("Periodic") {
        return b;
    }
    if !b
        .get("periodicModeProperties")
        .is_some_and(Value::is_object)
    {
        b["periodicModeProperties"] = json!({});
    }
    if let Some(p) = b
        .get_mut("periodicModeProperties")
        .and_then(Value::as_object_mut)
    {
        p.entry("backupIntervalInMinutes").or_insert(json!(240));
        p.entry("backupRetentionIntervalInHours")
            .or_insert(json!(8));
        p.entry("backupStorageRedundancy").or_insert(json!("Geo"));
    }
    b
}

/// The answer to an accepted account write: the account as it now stands
/// (CMK state refreshed) with the long-running operation's headers.
fn lro_answer(
    app: &App,
    links: Links<'_>,
    state: &mut State,
    k: &str,
    op: &str,
    shown: impl FnOnce(&mut Value),
) -> Result<Response, ApiError> {
    refresh_cmk(app, state, k);
    let a = state.accounts.get(k).ok_or_else(|| {
        ApiError::arm(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "account vanished",
        )
    })?;
    let mut body = account_json(app, state, a);
    shown(&mut body);
    Ok(with_headers(
        json_resp(StatusCode::OK, body),
        lro::headers(links, state, op),
    ))
}
