//! ARM authorization: every management request maps to an Azure RBAC action
//! at a scope, and passes only when the caller holds a role assignment at
//! that scope or above whose role definition (built-in, `sim::roles`, or
//! custom) allows the action.
//!
//! Azure's refusal, status 403 code `AuthorizationFailed`, worded as ARM
//! words it (quoted in MicrosoftDocs/azure-docs#66187, Azure/bicep#14976,
//! Azure-Samples/azure-search-openai-demo#848): "The client '{oid}' with
//! object id '{oid}' does not have authorization to perform action
//! '{action}' over scope '{scope}' or the scope is invalid. If access was
//! recently granted, please refresh your credentials." The scope is the
//! resource the request addresses (its path; for a POST action, the resource
//! the action is on), as in those quotes. Polls of an asynchronous operation
//! are authorized like any read, on the operation's own path (ARM docs,
//! "Status of asynchronous operations", permission for tracking async status;
//! the denied `operationResults/read` in Azure/bicep#14976): Cosmos DB's
//! `operationsStatus` URL is subscription-level, so a role assigned only on a
//! resource group cannot poll it.
//!
//! Role assignment conditions (ABAC, `crate::conditions`) are honoured: an
//! assignment whose condition does not hold for the request grants nothing
//! for it, and the refusal is the same `AuthorizationFailed`.
//!
//! Linked checks: assigning a user-assigned identity to an account also needs
//! `Microsoft.ManagedIdentity/userAssignedIdentities/assign/action` on the
//! identity (`LinkedAuthorizationFailed`, the Managed Identity Operator role's
//! purpose), and a restore needs
//! `Microsoft.DocumentDB/locations/restorableDatabaseAccounts/restore/action`
//! on the restorable source (Cosmos DB docs, "Manage permissions to restore
//! an Azure Cosmos DB account").

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::Target;
use crate::conditions::{AssignmentAttributes, Attributes};
use crate::errors::ApiError;
use crate::server::{App, Req};

pub const ASSIGN_IDENTITY: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action";
pub const RESTORE: &str =
    "Microsoft.DocumentDB/locations/restorableDatabaseAccounts/restore/action";

fn path_of(req: &Req) -> String {
    format!("/{}", req.segs.join("/"))
}

fn crud(m: &Method, base: &str) -> String {
    let verb = match m.as_str() {
        "PUT" | "PATCH" | "POST" => "write",
        "DELETE" => "delete",
        _ => "read",
    };
    format!("{base}/{verb}")
}

/// The action a request needs and the scope it is checked at; `None` for
/// what ARM does not authorize by role (tenant-level name checks) or what the
/// simulator does not route.
pub fn required(target: &Target, req: &Req) -> Option<(String, String)> {
    let m = &req.method;
    let path = path_of(req);
    Some(match target {
        Target::Provider {
            sub,
            ns,
            register: true,
        } => (
            format!("{ns}/register/action"),
            format!("/subscriptions/{sub}"),
        ),
        Target::Provider { .. } => (
            "Microsoft.Resources/subscriptions/providers/read".into(),
            path,
        ),
        Target::OperationStatus { results, .. } => (
            if *results {
                "Microsoft.DocumentDB/locations/operationResults/read".into()
            } else {
                "Microsoft.DocumentDB/locations/operationsStatus/read".into()
            },
            path,
        ),
        Target::CosmosLocations { .. } => ("Microsoft.DocumentDB/locations/read".into(), path),
        Target::Restorable { .. } | Target::SubscriptionRestorable { .. } => (
            "Microsoft.DocumentDB/locations/restorableDatabaseAccounts/read".into(),
            path,
        ),
        // Subscriptions_List needs only a valid ARM token: it answers what
        // the caller's own role assignments reach.
        Target::AccountNameExists { .. } | Target::Subscriptions | Target::Unknown { .. } => {
            return None;
        }
        Target::SubscriptionAccounts { .. } | Target::Accounts { name: None, .. } => {
            ("Microsoft.DocumentDB/databaseAccounts/read".into(), path)
        }
        Target::Accounts {
            sub,
            rg,
            name: Some(name),
            extra,
        } => {
            let account = format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DocumentDB/databaseAccounts/{name}"
            );
            match extra.as_slice() {
                [] => (crud(m, "Microsoft.DocumentDB/databaseAccounts"), account),
                [action] if m.as_str() == "POST" => (
                    format!("Microsoft.DocumentDB/databaseAccounts/{action}/action"),
                    account,
                ),
                _ => return None,
            }
        }
        Target::Vault { extra, .. } if !extra.is_empty() => (
            "Microsoft.KeyVault/vaults/accessPolicies/write".into(),
            path,
        ),
        Target::Vault { .. } => (crud(m, "Microsoft.KeyVault/vaults"), path),
        Target::FederatedCredential { .. } => (
            crud(
                m,
                "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
            ),
            path,
        ),
        Target::Identity { .. } => (
            crud(m, "Microsoft.ManagedIdentity/userAssignedIdentities"),
            path,
        ),
        Target::RoleAssignment { .. } => (crud(m, "Microsoft.Authorization/roleAssignments"), path),
        Target::RoleDefinition { .. } => (crud(m, "Microsoft.Authorization/roleDefinitions"), path),
    })
}

/// Whether `oid` may perform `action` at `scope`.
pub fn may(app: &App, oid: &str, action: &str, scope: &str) -> bool {
    may_with(app, oid, action, scope, &Attributes::default())
}

/// Whether `oid` may perform `action` at `scope` for a request with `attrs`
/// (what role assignment conditions look at).
pub fn may_with(app: &App, oid: &str, action: &str, scope: &str, attrs: &Attributes) -> bool {
    app.state().principal_may_act(oid, scope, action, attrs)
}

/// The attributes a role assignment write (its body) or delete (the stored
/// assignment at `path`) offers to conditions.
fn assignment_attributes(app: &App, req: &Req, target: &Target, path: &str) -> Attributes {
    let mut attrs = Attributes::default();
    if !matches!(target, Target::RoleAssignment { name: Some(_), .. }) {
        return attrs;
    }
    match req.method.as_str() {
        "PUT" => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let text = |k: &str| {
                body.pointer(&format!("/properties/{k}"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            attrs.request = AssignmentAttributes {
                role_definition_id: text("roleDefinitionId").map(|id| {
                    id.rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                }),
                principal_id: text("principalId"),
                principal_type: text("principalType"),
            };
        }
        "DELETE" => {
            if let Some(ra) = app.state().role_assignments.get(&path.to_ascii_lowercase()) {
                attrs.resource = ra.condition_attributes();
            }
        }
        _ => {}
    }
    attrs
}

/// Azure's 403 `AuthorizationFailed`.
pub fn denied(oid: &str, action: &str, scope: &str) -> ApiError {
    ApiError::arm(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        format!(
            "The client '{oid}' with object id '{oid}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        ),
    )
}

/// Checks the request's own action, then the linked checks of an account write.
pub fn authorize(app: &App, req: &Req, target: &Target, oid: &str) -> Result<(), ApiError> {
    let Some((action, scope)) = required(target, req) else {
        return Ok(());
    };
    let attrs = assignment_attributes(app, req, target, &scope);
    if !may_with(app, oid, &action, &scope, &attrs) {
        return Err(denied(oid, &action, &scope));
    }
    if let Target::Accounts {
        name: Some(_),
        extra,
        ..
    } = target
        && extra.is_empty()
        && matches!(req.method.as_str(), "PUT" | "PATCH")
    {
        linked_checks(app, req, oid, &action, &scope)?;
    }
    Ok(())
}

fn linked_checks(
    app: &App,
    req: &Req,
    oid: &str,
    action: &str,
    scope: &str,
) -> Result<(), ApiError> {
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return Ok(());
    };
    let existing: Vec<String> = app
        .state()
        .accounts
        .get(&scope.to_ascii_lowercase())
        .map(|a| {
            a.identity
                .user_assigned
                .iter()
                .map(|u| u.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let mut missing: Vec<String> = Vec::new();
    if let Some(uai) = body
        .pointer("/identity/userAssignedIdentities")
        .and_then(Value::as_object)
    {
        for id in uai.keys() {
            if !existing.contains(&id.to_ascii_lowercase()) && !may(app, oid, ASSIGN_IDENTITY, id) {
                missing.push(id.clone());
            }
        }
    }
    if !missing.is_empty() {
        // ARM's linked-access refusal, as quoted in Azure/aad-pod-identity
        // #613, #443 and (several identities, comma-separated) #339.
        return Err(ApiError::arm(
            StatusCode::FORBIDDEN,
            "LinkedAuthorizationFailed",
            format!(
                "The client '{oid}' with object id '{oid}' has permission to perform action '{action}' on scope '{scope}'; however, it does not have permission to perform action '{ASSIGN_IDENTITY}' on the linked scope(s) '{}' or the linked scope(s) are invalid.",
                missing.join(",")
            ),
        ));
    }
    let restore = body
        .pointer("/properties/createMode")
        .and_then(Value::as_str)
        .is_some_and(|m| m.eq_ignore_ascii_case("Restore"));
    if restore
        && let Some(source) = body
            .pointer("/properties/restoreParameters/restoreSource")
            .and_then(Value::as_str)
        && !may(app, oid, RESTORE, source)
    {
        return Err(denied(oid, RESTORE, source));
    }
    Ok(())
}
