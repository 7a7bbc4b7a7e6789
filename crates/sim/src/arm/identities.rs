//! `Microsoft.ManagedIdentity/userAssignedIdentities`: GET (and PUT for setup).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::errors::{ApiError, Style};
use crate::server::{App, Req, json_resp};
use crate::state::{UserAssignedIdentity, new_guid};

const TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";

pub fn identity_json(app: &App, i: &UserAssignedIdentity) -> Value {
    json!({
        "id": i.id(),
        "name": i.name,
        "type": TYPE,
        "location": i.location,
        "tags": if i.tags.is_null() { json!({}) } else { i.tags.clone() },
        "properties": {
            "tenantId": app.config.tenant_id,
            "principalId": i.principal_id,
            "clientId": i.client_id,
            "isolationScope": "None",
        },
    })
}

pub fn handle(app: &App, req: &Req, sub: &str, rg: &str, name: &str) -> Result<Response, ApiError> {
    let probe = UserAssignedIdentity {
        subscription_id: sub.into(),
        resource_group: rg.into(),
        name: name.into(),
        location: String::new(),
        client_id: String::new(),
        principal_id: String::new(),
        tags: Value::Null,
        federated_credentials: Vec::new(),
    };
    let k = probe.id().to_ascii_lowercase();
    match req.method.as_str() {
        "GET" => {
            let state = app.state();
            let i = state
                .identities
                .get(&k)
                .ok_or_else(|| super::not_found(TYPE, name, rg))?;
            Ok(json_resp(StatusCode::OK, identity_json(app, i)))
        }
        "PUT" => {
            let body = req.json(Style::Arm)?;
            let location = body
                .get("location")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::arm(
                        StatusCode::BAD_REQUEST,
                        "LocationRequired",
                        "The location property is required for this definition.",
                    )
                })?;
            let mut state = app.state();
            let created = !state.identities.contains_key(&k);
            let entry = state
                .identities
                .entry(k)
                .or_insert_with(|| UserAssignedIdentity {
                    location: location.into(),
                    client_id: new_guid(),
                    principal_id: new_guid(),
                    ..probe
                });
            if let Some(t) = body.get("tags") {
                entry.tags = t.clone();
            }
            let v = identity_json(app, entry);
            Ok(json_resp(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                v,
            ))
        }
        _ => Ok(crate::server::method_not_allowed(Style::Arm)),
    }
}

fn fic_json(i: &UserAssignedIdentity, f: &crate::state::FederatedCredential) -> Value {
    let name = f.name.clone().unwrap_or_default();
    json!({
        "id": format!("{}/federatedIdentityCredentials/{name}", i.id()),
        "name": name,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
        "properties": {
            "issuer": f.issuer,
            "subject": f.subject,
            "audiences": if f.audiences.is_empty() { vec!["api://AzureADTokenExchange".to_owned()] } else { f.audiences.clone() },
        },
    })
}

/// `.../userAssignedIdentities/{name}/federatedIdentityCredentials[/{fic}]`:
/// the trust the token endpoint checks workload-identity assertions against.
pub fn handle_federated(
    app: &App,
    req: &Req,
    sub: &str,
    rg: &str,
    name: &str,
    fic: Option<&str>,
) -> Result<Response, ApiError> {
    let id = format!("/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}").to_ascii_lowercase();
    let mut state = app.state();
    let ident = state
        .identities
        .get_mut(&id)
        .ok_or_else(|| super::not_found(TYPE, name, rg))?;
    let Some(fic) = fic else {
        if req.method.as_str() != "GET" {
            return Ok(crate::server::method_not_allowed(Style::Arm));
        }
        let value: Vec<Value> = ident
            .federated_credentials
            .iter()
            .filter(|f| f.name.is_some())
            .map(|f| fic_json(ident, f))
            .collect();
        return Ok(json_resp(StatusCode::OK, json!({"value": value})));
    };
    let pos = ident.federated_credentials.iter().position(|f| {
        f.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(fic))
    });
    let not_found = || {
        ApiError::arm(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("Federated identity credential '{fic}' was not found on identity '{name}'."),
        )
    };
    match req.method.as_str() {
        "GET" => {
            let f = pos
                .map(|i| &ident.federated_credentials[i])
                .ok_or_else(not_found)?;
            Ok(json_resp(StatusCode::OK, fic_json(ident, f)))
        }
        "PUT" => {
            let body = req.json(Style::Arm)?;
            let p = body.get("properties").cloned().unwrap_or(Value::Null);
            let issuer = p.get("issuer").and_then(Value::as_str).unwrap_or_default();
            let subject = p.get("subject").and_then(Value::as_str).unwrap_or_default();
            let audiences: Vec<String> = p
                .get("audiences")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if !issuer.starts_with("https://") {
                return Err(ApiError::bad_request(
                    "The federated identity credential 'issuer' must be an https URL.",
                ));
            }
            if subject.is_empty() {
                return Err(ApiError::bad_request(
                    "The federated identity credential 'subject' is required.",
                ));
            }
            if audiences.len() != 1 {
                return Err(ApiError::bad_request(
                    "The federated identity credential needs exactly one audience.",
                ));
            }
            let cred = crate::state::FederatedCredential {
                issuer: issuer.to_owned(),
                subject: subject.to_owned(),
                name: Some(fic.to_owned()),
                audiences,
            };
            let clash = ident
                .federated_credentials
                .iter()
                .enumerate()
                .any(|(i, f)| {
                    Some(i) != pos && f.issuer == cred.issuer && f.subject == cred.subject
                });
            if clash {
                return Err(ApiError::arm(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "A federated identity credential with the same issuer and subject already exists on this identity.",
                ));
            }
            let created = match pos {
                Some(i) => {
                    ident.federated_credentials[i] = cred.clone();
                    false
                }
                None => {
                    if ident.federated_credentials.len() >= 20 {
                        return Err(ApiError::bad_request(
                            "An identity can have at most 20 federated identity credentials.",
                        ));
                    }
                    ident.federated_credentials.push(cred.clone());
                    true
                }
            };
            let v = fic_json(ident, &cred);
            Ok(json_resp(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                v,
            ))
        }
        "DELETE" => match pos {
            Some(i) => {
                ident.federated_credentials.remove(i);
                Ok(StatusCode::OK.into_response())
            }
            None => Ok(StatusCode::NO_CONTENT.into_response()),
        },
        _ => Ok(crate::server::method_not_allowed(Style::Arm)),
    }
}
