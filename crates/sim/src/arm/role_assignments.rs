//! `Microsoft.Authorization/roleAssignments` at any scope: PUT, GET, DELETE, list.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Claims;
use crate::errors::{ApiError, Style};
use crate::server::{App, Req, json_resp};
use crate::state::{RoleAssignment, State, now_rfc3339};

pub fn assignment_json(ra: &RoleAssignment) -> Value {
    let mut v = json!({
        "id": ra.id(),
        "name": ra.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": ra.role_definition_id,
            "principalId": ra.principal_id,
            "principalType": ra.principal_type,
            "scope": if ra.scope.is_empty() { "/" } else { ra.scope.as_str() },
            "createdOn": ra.created_at,
            "updatedOn": ra.created_at,
        },
    });
    if let Some(c) = &ra.condition {
        v["properties"]["condition"] = json!(c);
        v["properties"]["conditionVersion"] = json!(ra.condition_version);
    }
    v
}

/// Validates and stores a role assignment; `Ok(true)` when newly created.
pub fn put_assignment(app: &App, state: &mut State, ra: RoleAssignment) -> Result<bool, ApiError> {
    if uuid::Uuid::parse_str(&ra.name).is_err() {
        return Err(ApiError::arm(
            StatusCode::BAD_REQUEST,
            "InvalidRoleAssignmentId",
            format!(
                "The role assignment ID '{}' is not valid. The role assignment ID must be a GUID.",
                ra.name
            ),
        ));
    }
    let guid = ra.role_guid();
    if state.role_permission(&guid).is_none() {
        return Err(ApiError::arm(
            StatusCode::BAD_REQUEST,
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{guid}' does not exist."),
        ));
    }
    if !state.principal_exists(&ra.principal_id, &app.config.cosmos_first_party_object_id) {
        return Err(ApiError::arm(
            StatusCode::BAD_REQUEST,
            "PrincipalNotFound",
            format!(
                "Principal {} does not exist in the directory {}. Check that you have the correct principal ID.",
                ra.principal_id.replace('-', ""),
                app.config.tenant_id
            ),
        ));
    }
    let k = ra.id().to_ascii_lowercase();
    if let Some(existing) = state.role_assignments.get(&k) {
        if existing.principal_id.eq_ignore_ascii_case(&ra.principal_id)
            && existing.role_guid() == guid
        {
            return Ok(false);
        }
        return Err(ApiError::arm(
            StatusCode::BAD_REQUEST,
            "RoleAssignmentUpdateNotPermitted",
            "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
        ));
    }
    let scope_l = ra.scope.trim_end_matches('/').to_ascii_lowercase();
    if state.role_assignments.values().any(|o| {
        o.scope.trim_end_matches('/').eq_ignore_ascii_case(&scope_l)
            && o.principal_id.eq_ignore_ascii_case(&ra.principal_id)
            && o.role_guid() == guid
    }) {
        return Err(ApiError::arm(
            StatusCode::CONFLICT,
            "RoleAssignmentExists",
            "The role assignment already exists.",
        ));
    }
    state.role_assignments.insert(k, ra);
    Ok(true)
}

pub fn handle(
    app: &App,
    req: &Req,
    scope: &str,
    name: Option<&str>,
    _claims: &Claims,
) -> Result<Response, ApiError> {
    let mut state = app.state();
    let Some(name) = name else {
        if req.method.as_str() != "GET" {
            return Ok(crate::server::method_not_allowed(Style::Arm));
        }
        // At and above the scope, as ARM lists them.
        let s = scope.trim_end_matches('/').to_ascii_lowercase();
        let value: Vec<Value> = state
            .role_assignments
            .values()
            .filter(|ra| {
                let rs = ra.scope.trim_end_matches('/').to_ascii_lowercase();
                s == rs || s.starts_with(&format!("{rs}/")) || rs.starts_with(&format!("{s}/"))
            })
            .filter(|ra| {
                req.q("$filter").is_none_or(|f| {
                    !f.contains("principalId")
                        || f.to_ascii_lowercase()
                            .contains(&ra.principal_id.to_ascii_lowercase())
                })
            })
            .map(assignment_json)
            .collect();
        return Ok(json_resp(StatusCode::OK, json!({"value": value})));
    };
    let k = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{}",
        scope.trim_end_matches('/'),
        name
    )
    .to_ascii_lowercase();
    let not_found = || {
        ApiError::arm(
            StatusCode::NOT_FOUND,
            "RoleAssignmentNotFound",
            format!("The role assignment '{name}' is not found."),
        )
    };
    match req.method.as_str() {
        "GET" => {
            let ra = state.role_assignments.get(&k).ok_or_else(not_found)?;
            Ok(json_resp(StatusCode::OK, assignment_json(ra)))
        }
        "PUT" => {
            let body = req.json(Style::Arm)?;
            let p = body.get("properties").cloned().unwrap_or(Value::Null);
            let role = p
                .get("roleDefinitionId")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::arm(
                        StatusCode::BAD_REQUEST,
                        "InvalidRoleDefinitionId",
                        "properties.roleDefinitionId is required.",
                    )
                })?;
            let principal = p
                .get("principalId")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::arm(
                        StatusCode::BAD_REQUEST,
                        "InvalidPrincipalId",
                        "properties.principalId is required.",
                    )
                })?;
            let ra = RoleAssignment {
                name: name.to_owned(),
                scope: scope.trim_end_matches('/').to_owned(),
                role_definition_id: role.to_owned(),
                principal_id: principal.to_owned(),
                principal_type: p
                    .get("principalType")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                created_at: now_rfc3339(),
                condition: p
                    .get("condition")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                // Without a version, a condition is "2.0" (Role Assignments
                // - Create, conditionVersion; conditions-role-assignments-rest).
                condition_version: p.get("condition").and_then(Value::as_str).map(|_| {
                    p.get("conditionVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("2.0")
                        .to_owned()
                }),
            };
            let created = put_assignment(app, &mut state, ra)?;
            let stored = state.role_assignments.get(&k).ok_or_else(not_found)?;
            Ok(json_resp(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                assignment_json(stored),
            ))
        }
        "DELETE" => match state.role_assignments.remove(&k) {
            Some(ra) => Ok(json_resp(StatusCode::OK, assignment_json(&ra))),
            None => Ok(StatusCode::NO_CONTENT.into_response()),
        },
        _ => Ok(crate::server::method_not_allowed(Style::Arm)),
    }
}
