//! `Microsoft.Authorization/roleDefinitions` (authorization-RoleDefinitionsCalls.json,
//! 2022-04-01): custom roles PUT/GET/DELETE at a subscription scope, built-in
//! roles readable at any scope, and the list at a scope (`$filter=roleName eq '…'`
//! or `type eq 'CustomRole'`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::errors::{ApiError, Style};
use crate::roles::{BUILT_IN_ROLES, BuiltInRole, Permission};
use crate::server::{App, Req, json_resp};
use crate::state::{CustomRole, State, now_rfc3339};

fn built_in_json(r: &BuiltInRole) -> Value {
    json!({
        "id": format!("/providers/Microsoft.Authorization/roleDefinitions/{}", r.id),
        "name": r.id,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": r.name,
            "type": "BuiltInRole",
            "description": r.description,
            "assignableScopes": ["/"],
            "permissions": [r.permission()],
        },
    })
}

pub fn custom_json(c: &CustomRole) -> Value {
    json!({
        "id": c.id(),
        "name": c.name,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": c.role_name,
            "type": "CustomRole",
            "description": c.description,
            "assignableScopes": c.assignable_scopes,
            "permissions": [c.permission],
            "createdOn": c.created_at,
            "updatedOn": c.created_at,
        },
    })
}

/// Validates and stores a custom role (PUT or seed); `Ok(true)` when new.
pub fn put_custom(state: &mut State, role: CustomRole) -> Result<bool, ApiError> {
    let bad = |msg: String| ApiError::arm(StatusCode::BAD_REQUEST, "InvalidRoleDefinition", msg);
    if uuid::Uuid::parse_str(&role.name).is_err() {
        return Err(ApiError::arm(
            StatusCode::BAD_REQUEST,
            "RoleDefinitionIdNotValidGuid",
            format!(
                "The role definition ID '{}' is not a valid GUID.",
                role.name
            ),
        ));
    }
    if crate::roles::built_in(&role.name).is_some() {
        return Err(bad("A built-in role definition cannot be changed.".into()));
    }
    if role.role_name.trim().is_empty() {
        return Err(bad("The role definition must have a roleName.".into()));
    }
    if role.assignable_scopes.is_empty() {
        return Err(bad(
            "The role definition must have at least one assignable scope.".into(),
        ));
    }
    let key = role.name.to_ascii_lowercase();
    if state.role_definitions.values().any(|o| {
        o.name.to_ascii_lowercase() != key && o.role_name.eq_ignore_ascii_case(&role.role_name)
    }) {
        return Err(ApiError::arm(
            StatusCode::CONFLICT,
            "RoleDefinitionWithSameNameExists",
            "A custom role with the same name already exists in this directory. Use a different name.",
        ));
    }
    Ok(state.role_definitions.insert(key, role).is_none())
}

/// Reads a role definition body (`properties.permissions`, …).
pub fn parse_body(scope: &str, name: &str, body: &Value) -> Result<CustomRole, ApiError> {
    let p = body.get("properties").cloned().unwrap_or(Value::Null);
    let permission: Permission = p
        .get("permissions")
        .and_then(|ps| ps.get(0))
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("properties.permissions: {e}")))?
        .unwrap_or_default();
    let scopes = p
        .get("assignableScopes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(CustomRole {
        name: name.to_owned(),
        scope: scope.trim_end_matches('/').to_owned(),
        role_name: p
            .get("roleName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        description: p
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        permission,
        assignable_scopes: scopes,
        created_at: now_rfc3339(),
    })
}

pub fn handle(app: &App, req: &Req, scope: &str, name: Option<&str>) -> Result<Response, ApiError> {
    let mut state = app.state();
    let Some(name) = name else {
        if req.method.as_str() != "GET" {
            return Ok(crate::server::method_not_allowed(Style::Arm));
        }
        let filter = req.q("$filter").unwrap_or_default().to_owned();
        let wanted_name = filter
            .split_once("roleName eq '")
            .and_then(|(_, r)| r.split_once('\''))
            .map(|(n, _)| n.to_owned());
        let custom_only = filter.contains("CustomRole");
        let name_ok = |n: &str| {
            wanted_name
                .as_deref()
                .is_none_or(|w| w.eq_ignore_ascii_case(n))
        };
        let mut value: Vec<Value> = Vec::new();
        if !custom_only {
            value.extend(
                BUILT_IN_ROLES
                    .iter()
                    .filter(|r| name_ok(r.name))
                    .map(built_in_json),
            );
        }
        value.extend(
            state
                .role_definitions
                .values()
                .filter(|c| name_ok(&c.role_name))
                .map(custom_json),
        );
        return Ok(json_resp(StatusCode::OK, json!({"value": value})));
    };
    let not_found = || {
        ApiError::arm(
            StatusCode::NOT_FOUND,
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{name}' does not exist."),
        )
    };
    match req.method.as_str() {
        "GET" => {
            if let Some(b) = crate::roles::built_in(name) {
                return Ok(json_resp(StatusCode::OK, built_in_json(b)));
            }
            let c = state
                .role_definitions
                .get(&name.to_ascii_lowercase())
                .ok_or_else(not_found)?;
            Ok(json_resp(StatusCode::OK, custom_json(c)))
        }
        "PUT" => {
            let body = req.json(Style::Arm)?;
            let role = parse_body(scope, name, &body)?;
            let created = put_custom(&mut state, role)?;
            let stored = state
                .role_definitions
                .get(&name.to_ascii_lowercase())
                .ok_or_else(not_found)?;
            Ok(json_resp(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                custom_json(stored),
            ))
        }
        "DELETE" => match state.role_definitions.remove(&name.to_ascii_lowercase()) {
            Some(c) => Ok(json_resp(StatusCode::OK, custom_json(&c))),
            None => Ok(StatusCode::NO_CONTENT.into_response()),
        },
        _ => Ok(crate::server::method_not_allowed(Style::Arm)),
    }
}
