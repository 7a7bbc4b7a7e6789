//! Azure Resource Manager: routing, authentication and api-version checks.

pub mod account_changes;
pub mod account_rules;
pub mod api_versions;
pub mod authz;
pub mod cosmos;
mod cosmos_locations;
pub mod identities;
pub mod lro;
pub mod policy;
pub mod providers;
pub mod regions;
pub mod restorable;
pub mod role_assignments;
pub mod role_definitions;
pub mod subscriptions;
pub mod vaults;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{self, ARM_AUDIENCE};
use super::errors::ApiError;
use super::server::{App, Req};

/// What an ARM path addresses.
#[derive(Debug)]
pub enum Target {
    Provider {
        sub: String,
        ns: String,
        register: bool,
    },
    OperationStatus {
        sub: String,
        loc: String,
        id: String,
        results: bool,
    },
    Restorable {
        sub: String,
        loc: String,
        instance: Option<String>,
    },
    /// `GET /subscriptions/{s}/providers/Microsoft.DocumentDB/restorableDatabaseAccounts`.
    SubscriptionRestorable {
        sub: String,
    },
    /// `GET /subscriptions/{s}/providers/Microsoft.DocumentDB/locations[/{loc}]`.
    CosmosLocations {
        sub: String,
        loc: Option<String>,
    },
    /// `GET /subscriptions`: the subscriptions the caller can see.
    Subscriptions,
    Accounts {
        sub: String,
        rg: String,
        name: Option<String>,
        extra: Vec<String>,
    },
    /// `GET /subscriptions/{s}/providers/Microsoft.DocumentDB/databaseAccounts`.
    SubscriptionAccounts {
        sub: String,
    },
    /// `HEAD /providers/Microsoft.DocumentDB/databaseAccountNames/{name}`.
    AccountNameExists {
        name: String,
    },
    Vault {
        sub: String,
        rg: String,
        name: String,
        extra: Vec<String>,
    },
    FederatedCredential {
        sub: String,
        rg: String,
        name: String,
        fic: Option<String>,
    },
    Identity {
        sub: String,
        rg: String,
        name: String,
    },
    RoleAssignment {
        scope: String,
        name: Option<String>,
    },
    RoleDefinition {
        scope: String,
        name: Option<String>,
    },
    Unknown {
        ns: Option<String>,
    },
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

pub fn classify(segs: &[String]) -> Target {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    if let Some(i) = (0..s.len().saturating_sub(2)).rev().find(|&i| {
        eq(s[i], "providers")
            && eq(s[i + 1], "Microsoft.Authorization")
            && eq(s[i + 2], "roleAssignments")
    }) && s.len() <= i + 4
    {
        return Target::RoleAssignment {
            scope: format!("/{}", s[..i].join("/")),
            name: s.get(i + 3).map(|x| (*x).to_owned()),
        };
    }
    if let Some(i) = (0..s.len().saturating_sub(2)).rev().find(|&i| {
        eq(s[i], "providers")
            && eq(s[i + 1], "Microsoft.Authorization")
            && eq(s[i + 2], "roleDefinitions")
    }) && s.len() <= i + 4
    {
        return Target::RoleDefinition {
            scope: format!("/{}", s[..i].join("/")),
            name: s.get(i + 3).map(|x| (*x).to_owned()),
        };
    }
    let own = |x: &str| x.to_owned();
    match s.as_slice() {
        [first] if eq(first, "subscriptions") => Target::Subscriptions,
        [p, ns, ty, name]
            if eq(p, "providers")
                && eq(ns, "Microsoft.DocumentDB")
                && eq(ty, "databaseAccountNames") =>
        {
            Target::AccountNameExists { name: own(name) }
        }
        [_, sub, p, ns] if eq(p, "providers") => Target::Provider {
            sub: own(sub),
            ns: own(ns),
            register: false,
        },
        [_, sub, p, ns, r] if eq(p, "providers") && eq(r, "register") => Target::Provider {
            sub: own(sub),
            ns: own(ns),
            register: true,
        },
        [_, sub, p, ns, l, loc, kind, id]
            if eq(p, "providers")
                && eq(ns, "Microsoft.DocumentDB")
                && eq(l, "locations")
                && (eq(kind, "operationsStatus") || eq(kind, "operationResults")) =>
        {
            Target::OperationStatus {
                sub: own(sub),
                loc: own(loc),
                id: own(id),
                results: eq(kind, "operationResults"),
            }
        }
        [_, sub, p, ns, ty]
            if eq(p, "providers")
                && eq(ns, "Microsoft.DocumentDB")
                && eq(ty, "databaseAccounts") =>
        {
            Target::SubscriptionAccounts { sub: own(sub) }
        }
        [_, sub, p, ns, l, rest @ ..]
            if eq(p, "providers")
                && eq(ns, "Microsoft.DocumentDB")
                && eq(l, "locations")
                && rest.len() <= 1 =>
        {
            Target::CosmosLocations {
                sub: own(sub),
                loc: rest.first().map(|x| own(x)),
            }
        }
        [_, sub, p, ns, ty]
            if eq(p, "providers")
                && eq(ns, "Microsoft.DocumentDB")
                && eq(ty, "restorableDatabaseAccounts") =>
        {
            Target::SubscriptionRestorable { sub: own(sub) }
        }
        [_, sub, p, ns, l, loc, r, rest @ ..]
            if eq(p, "providers")
                && eq(ns, "Microsoft.DocumentDB")
                && eq(l, "locations")
                && eq(r, "restorableDatabaseAccounts")
                && rest.len() <= 1 =>
        {
            Target::Restorable {
                sub: own(sub),
                loc: own(loc),
                instance: rest.first().map(|x| own(x)),
            }
        }
        [_, sub, g, rg, p, ns, ty, rest @ ..] if eq(g, "resourceGroups") && eq(p, "providers") => {
            let name = rest.first().map(|x| own(x));
            let extra: Vec<String> = rest.iter().skip(1).map(|x| own(x)).collect();
            if eq(ns, "Microsoft.DocumentDB") && eq(ty, "databaseAccounts") {
                Target::Accounts {
                    sub: own(sub),
                    rg: own(rg),
                    name,
                    extra,
                }
            } else if eq(ns, "Microsoft.KeyVault") && eq(ty, "vaults") && name.is_some() {
                Target::Vault {
                    sub: own(sub),
                    rg: own(rg),
                    name: name.unwrap_or_default(),
                    extra,
                }
            } else if eq(ns, "Microsoft.ManagedIdentity")
                && eq(ty, "userAssignedIdentities")
                && name.is_some()
                && extra.is_empty()
            {
                Target::Identity {
                    sub: own(sub),
                    rg: own(rg),
                    name: name.unwrap_or_default(),
                }
            } else if eq(ns, "Microsoft.ManagedIdentity")
                && eq(ty, "userAssignedIdentities")
                && name.is_some()
                && extra
                    .first()
                    .is_some_and(|e| eq(e, "federatedIdentityCredentials"))
                && extra.len() <= 2
            {
                Target::FederatedCredential {
                    sub: own(sub),
                    rg: own(rg),
                    name: name.unwrap_or_default(),
                    fic: extra.get(1).cloned(),
                }
            } else {
                Target::Unknown { ns: Some(own(ns)) }
            }
        }
        _ => Target::Unknown { ns: None },
    }
}

/// Operation names follow the REST specs' operationIds.
pub fn operation_name(t: &Target, m: &Method) -> &'static str {
    match (t, m.as_str()) {
        (Target::Provider { register: true, .. }, _) => "Providers_Register",
        (Target::Provider { .. }, _) => "Providers_Get",
        (Target::OperationStatus { results: false, .. }, _) => "OperationsStatus_Get",
        (Target::OperationStatus { .. }, _) => "OperationResults_Get",
        (Target::Restorable { instance: None, .. }, _) => {
            "RestorableDatabaseAccounts_ListByLocation"
        }
        (Target::Restorable { .. }, _) => "RestorableDatabaseAccounts_GetByLocation",
        (Target::SubscriptionRestorable { .. }, _) => "RestorableDatabaseAccounts_List",
        (Target::CosmosLocations { loc: None, .. }, _) => "Locations_List",
        (Target::CosmosLocations { .. }, _) => "Locations_Get",
        (Target::Subscriptions, _) => "Subscriptions_List",
        (Target::Accounts { name: None, .. }, _) => "DatabaseAccounts_ListByResourceGroup",
        (Target::SubscriptionAccounts { .. }, _) => "DatabaseAccounts_List",
        (Target::AccountNameExists { .. }, _) => "DatabaseAccounts_CheckNameExists",
        (Target::Accounts { extra, .. }, "POST")
            if extra.len() == 1 && extra[0].eq_ignore_ascii_case("failoverPriorityChange") =>
        {
            "DatabaseAccounts_FailoverPriorityChange"
        }
        (Target::Accounts { extra, .. }, _) if !extra.is_empty() => "DatabaseAccounts_Other",
        (Target::Accounts { .. }, "GET") => "DatabaseAccounts_Get",
        (Target::Accounts { .. }, "PUT") => "DatabaseAccounts_CreateOrUpdate",
        (Target::Accounts { .. }, "PATCH") => "DatabaseAccounts_Update",
        (Target::Accounts { .. }, "DELETE") => "DatabaseAccounts_Delete",
        (Target::Accounts { .. }, _) => "DatabaseAccounts_Other",
        (Target::Vault { extra, .. }, _) if !extra.is_empty() => "Vaults_UpdateAccessPolicy",
        (Target::Vault { .. }, "GET") => "Vaults_Get",
        (Target::Vault { .. }, "PUT") => "Vaults_CreateOrUpdate",
        (Target::Vault { .. }, _) => "Vaults_Other",
        (Target::FederatedCredential { fic: None, .. }, _) => "FederatedIdentityCredentials_List",
        (Target::FederatedCredential { .. }, "GET") => "FederatedIdentityCredentials_Get",
        (Target::FederatedCredential { .. }, "PUT") => {
            "FederatedIdentityCredentials_CreateOrUpdate"
        }
        (Target::FederatedCredential { .. }, "DELETE") => "FederatedIdentityCredentials_Delete",
        (Target::FederatedCredential { .. }, _) => "FederatedIdentityCredentials_Other",
        (Target::Identity { .. }, "GET") => "UserAssignedIdentities_Get",
        (Target::Identity { .. }, "PUT") => "UserAssignedIdentities_CreateOrUpdate",
        (Target::Identity { .. }, _) => "UserAssignedIdentities_Other",
        (Target::RoleAssignment { name: None, .. }, _) => "RoleAssignments_ListForScope",
        (Target::RoleAssignment { .. }, "GET") => "RoleAssignments_Get",
        (Target::RoleAssignment { .. }, "PUT") => "RoleAssignments_Create",
        (Target::RoleAssignment { .. }, "DELETE") => "RoleAssignments_Delete",
        (Target::RoleAssignment { .. }, _) => "RoleAssignments_Other",
        (Target::RoleDefinition { name: None, .. }, _) => "RoleDefinitions_List",
        (Target::RoleDefinition { .. }, "GET") => "RoleDefinitions_Get",
        (Target::RoleDefinition { .. }, "PUT") => "RoleDefinitions_CreateOrUpdate",
        (Target::RoleDefinition { .. }, "DELETE") => "RoleDefinitions_Delete",
        (Target::RoleDefinition { .. }, _) => "RoleDefinitions_Other",
        (Target::Unknown { .. }, _) => "Arm_Unknown",
    }
}

/// The api-version of an ARM request, or Azure's refusal. `location` is the
/// request's location for tracked types (None for global types).
fn check_api_version(
    req: &Req,
    allowed: &[&str],
    type_name: &str,
    location: Option<&str>,
) -> Result<String, ApiError> {
    let v = required_api_version(req)?;
    if allowed.contains(&v) {
        Ok(v.to_owned())
    } else {
        Err(api_versions::refuse_arm(v, allowed, type_name, location))
    }
}

fn required_api_version(req: &Req) -> Result<&str, ApiError> {
    req.q("api-version").ok_or_else(|| {
        ApiError::arm(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    })
}

/// The location ARM names in `NoRegisteredProviderFound` for a tracked
/// resource: the body's `location`, else the stored resource's, else "global".
fn tracked_location(app: &App, req: &Req) -> String {
    if let Some(loc) = serde_json::from_slice::<serde_json::Value>(&req.body)
        .ok()
        .and_then(|b| {
            b.get("location")
                .and_then(|l| l.as_str())
                .map(str::to_owned)
        })
        .filter(|l| !l.is_empty())
    {
        return loc;
    }
    let id = format!(
        "/{}",
        req.segs
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("/")
    )
    .to_ascii_lowercase();
    let state = app.state();
    state
        .accounts
        .get(&id)
        .map(|a| a.location.clone())
        .or_else(|| state.vaults.get(&id).map(|v| v.location.clone()))
        .or_else(|| state.identities.get(&id).map(|i| i.location.clone()))
        .unwrap_or_else(|| "global".to_owned())
}

pub fn handle(app: &Arc<App>, req: &Req, target: Target) -> (Response, Option<String>) {
    let claims = match auth::authenticate(app, &req.origin, &req.headers, ARM_AUDIENCE) {
        Ok(c) => c,
        Err(e) => return (e.into_response(), None),
    };
    let caller = Some(claims.oid.clone());
    let result = (|| -> Result<Response, ApiError> {
        authz::authorize(app, req, &target, &claims.oid)?;
        match target {
            Target::Provider { sub, ns, register } => {
                // Microsoft.Resources' own endpoint: its own refusal.
                let v = required_api_version(req)?;
                if !api_versions::PROVIDERS.contains(&v) {
                    return Err(api_versions::refuse_resources(v, api_versions::PROVIDERS));
                }
                providers::handle(app, req, &sub, &ns, register)
            }
            Target::AccountNameExists { name } => {
                check_api_version(req, api_versions::COSMOS, "databaseAccountNames", None)?;
                cosmos::name_exists(app, req, &name)
            }
            Target::OperationStatus {
                sub,
                loc,
                id,
                results,
            } => {
                check_api_version(
                    req,
                    api_versions::COSMOS,
                    "locations/operationsStatus",
                    None,
                )?;
                lro::status(app, req, &sub, &loc, &id, results)
            }
            Target::SubscriptionAccounts { sub } => {
                let v = check_api_version(req, api_versions::COSMOS, "databaseAccounts", None)?;
                cosmos::list_subscription(app, req, &sub, &v)
            }
            Target::Restorable { sub, loc, instance } => {
                check_api_version(
                    req,
                    api_versions::COSMOS,
                    "locations/restorableDatabaseAccounts",
                    None,
                )?;
                restorable::by_location(app, req, &sub, &loc, instance.as_deref())
            }
            Target::SubscriptionRestorable { sub } => {
                check_api_version(
                    req,
                    api_versions::COSMOS,
                    "restorableDatabaseAccounts",
                    None,
                )?;
                restorable::list_subscription(app, req, &sub)
            }
            Target::CosmosLocations { sub, loc } => {
                check_api_version(req, api_versions::COSMOS, "locations", None)?;
                let cloud = match req.origin.cloud.name {
                    "AzureChinaCloud" => regions::Cloud::China,
                    "AzureUSGovernment" => regions::Cloud::UsGovernment,
                    _ => regions::Cloud::Public,
                };
                cosmos_locations::handle(&sub, loc.as_deref(), cloud)
            }
            Target::Subscriptions => {
                // Microsoft.Resources' own endpoint: its own refusal.
                let v = required_api_version(req)?;
                if !api_versions::SUBSCRIPTIONS.contains(&v) {
                    return Err(api_versions::refuse_resources(
                        v,
                        api_versions::SUBSCRIPTIONS,
                    ));
                }
                subscriptions::list(app, req, &claims.oid)
            }
            Target::Accounts {
                sub,
                rg,
                name,
                extra,
            } => {
                let loc = name.as_ref().map(|_| tracked_location(app, req));
                let v = check_api_version(
                    req,
                    api_versions::COSMOS,
                    "databaseAccounts",
                    loc.as_deref(),
                )?;
                if let (Some(name), [action]) = (&name, extra.as_slice())
                    && action.eq_ignore_ascii_case("failoverPriorityChange")
                    && req.method.as_str() == "POST"
                {
                    return cosmos::failover_priority_change(app, req, &sub, &rg, name, &v);
                }
                if !extra.is_empty() {
                    return Err(ApiError::arm(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        "This simulator models database accounts only, not their child resources.",
                    ));
                }
                cosmos::handle(app, req, &sub, &rg, name.as_deref(), &v)
            }
            Target::Vault {
                sub,
                rg,
                name,
                extra,
            } => {
                let loc = tracked_location(app, req);
                check_api_version(req, api_versions::KEYVAULT_MGMT, "vaults", Some(&loc))?;
                vaults::handle(app, req, &sub, &rg, &name, &extra)
            }
            Target::FederatedCredential { sub, rg, name, fic } => {
                check_api_version(
                    req,
                    api_versions::MANAGED_IDENTITY,
                    "userAssignedIdentities/federatedIdentityCredentials",
                    None,
                )?;
                identities::handle_federated(app, req, &sub, &rg, &name, fic.as_deref())
            }
            Target::Identity { sub, rg, name } => {
                let loc = tracked_location(app, req);
                check_api_version(
                    req,
                    api_versions::MANAGED_IDENTITY,
                    "userAssignedIdentities",
                    Some(&loc),
                )?;
                identities::handle(app, req, &sub, &rg, &name)
            }
            Target::RoleAssignment { scope, name } => {
                check_api_version(req, api_versions::ROLE_ASSIGNMENTS, "roleAssignments", None)?;
                role_assignments::handle(app, req, &scope, name.as_deref(), &claims)
            }
            Target::RoleDefinition { scope, name } => {
                check_api_version(req, api_versions::ROLE_DEFINITIONS, "roleDefinitions", None)?;
                role_definitions::handle(app, req, &scope, name.as_deref())
            }
            Target::Unknown { ns } => Err(match ns {
                Some(ns) => ApiError::arm(
                    StatusCode::BAD_REQUEST,
                    "NoRegisteredProviderFound",
                    format!(
                        "No registered resource provider found for namespace '{ns}' in this simulator."
                    ),
                ),
                None => ApiError::arm(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("No route for '{}'.", req.path),
                ),
            }),
        }
    })();
    (result.unwrap_or_else(IntoResponse::into_response), caller)
}

/// ARM's 404 for a missing resource.
pub fn not_found(type_: &str, name: &str, rg: &str) -> ApiError {
    ApiError::arm(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource '{type_}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}
