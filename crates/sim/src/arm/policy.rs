//! Azure Policy deny assignments over Cosmos DB account writes.
//!
//! ARM evaluates a write against the assignments whose scope holds the
//! resource before the resource provider sees it: a create as the request
//! body, a PATCH as the account it would leave (request merged into the
//! account). A `Deny` assignment that matches answers 403
//! `RequestDisallowedByPolicy`.
//!
//! The definitions are Azure's built-ins, by their real ids and rules
//! (Azure/azure-policy, built-in-policies/policyDefinitions, commit 8f5ad30):
//! `Cosmos DB/Cosmos_PrivateNetworkAccess_AuditDeny.json` (1.0.0),
//! `Cosmos DB/Cosmos_DisableLocalAuth_AuditDeny.json` (1.1.0),
//! `Cosmos DB/Cosmos_CMK_Deny.json` (1.1.0), `Tags/RequireTag_Deny.json`
//! (1.0.1). The answer's shape is Azure's: MicrosoftDocs/azure-docs
//! articles/automation/enforce-job-execution-hybrid-worker.md (commit
//! 866d237) for `target`, the "Policy identifiers" message and
//! `additionalInfo`; the "Reasons: ..." message with a non-compliance
//! message as recorded in Azure/azure-sdk-for-java PR 45273 (2025, the local
//! auth policy on a Cosmos DB account).
//!
//! Assignments are added through the admin API (`/_admin/policyAssignments`).

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::state::{State, has_capability, scope_covers};

const ACCOUNT_TYPE: &str = "Microsoft.DocumentDB/databaseAccounts";
/// "Require a tag on resources": the one definition with a required parameter.
const REQUIRE_TAG: &str = "871b6d14-10aa-478d-b590-94f262ecfa99";

/// A built-in definition the simulator evaluates.
struct Definition {
    guid: &'static str,
    display_name: &'static str,
    /// Effects the definition's `effect` parameter allows (the tag policy has
    /// none: it always denies).
    effects: &'static [&'static str],
    /// The expressions Azure reports for a violation, given the resource.
    rule: fn(&Resource<'_>, &Assignment) -> Option<Vec<Value>>,
}

const DEFINITIONS: &[Definition] = &[
    Definition {
        guid: "797b37f7-06b8-444c-b1ad-fc62867f335a",
        display_name: "Azure Cosmos DB should disable public network access",
        effects: &["Audit", "Deny", "Disabled"],
        rule: public_network_enabled,
    },
    Definition {
        guid: "5450f5bd-9c72-4390-a9c4-a7aba4edfdd2",
        display_name: "Cosmos DB database accounts should have local authentication methods disabled",
        effects: &["Audit", "Deny", "Disabled"],
        rule: local_auth_enabled,
    },
    Definition {
        guid: "1f905d99-2ab7-462c-a6b0-f709acca6c8f",
        display_name: "Azure Cosmos DB accounts should use customer-managed keys to encrypt data at rest",
        effects: &["Audit", "Deny", "Disabled"],
        rule: no_customer_managed_key,
    },
    Definition {
        guid: REQUIRE_TAG,
        display_name: "Require a tag on resources",
        effects: &["Deny"],
        rule: tag_missing,
    },
];

fn definition(id: &str) -> Option<&'static Definition> {
    let guid = id.trim_end_matches('/').rsplit('/').next()?;
    DEFINITIONS
        .iter()
        .find(|d| d.guid.eq_ignore_ascii_case(guid))
}

/// A policy assignment, as the admin API takes and shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// The assignment's name (the last segment of its id).
    #[serde(default)]
    pub name: String,
    /// `/subscriptions/{s}` or `/subscriptions/{s}/resourceGroups/{rg}`.
    pub scope: String,
    /// `/providers/Microsoft.Authorization/policyDefinitions/{guid}` (a built-in).
    pub policy_definition_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `Deny`, `Audit` or `Disabled` (the definition's `effect` parameter); only
    /// `Deny` refuses writes.
    #[serde(default = "deny")]
    pub effect: String,
    /// Parameters as ARM writes them: `{"tagName": {"value": "costCenter"}}`.
    #[serde(default)]
    pub parameters: Value,
    /// The assignment's `nonComplianceMessages[0].message`, which Azure puts
    /// in the refusal's message as "Reasons: '...'".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_compliance_message: Option<String>,
}

fn deny() -> String {
    "Deny".to_owned()
}

impl Assignment {
    pub fn id(&self) -> String {
        format!(
            "{}/providers/Microsoft.Authorization/policyAssignments/{}",
            self.scope.trim_end_matches('/'),
            self.name
        )
    }

    fn tag_name(&self) -> Option<&str> {
        self.parameters.pointer("/tagName/value")?.as_str()
    }

    /// The assignment as the admin API shows it.
    pub fn json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        v["id"] = json!(self.id());
        if let Some(d) = definition(&self.policy_definition_id) {
            v["policyDefinitionDisplayName"] = json!(d.display_name);
        }
        v
    }
}

/// Checks and stores an assignment named `name`; the shape ARM would refuse
/// is refused here too.
pub fn put(state: &mut State, name: &str, mut a: Assignment) -> Result<Value, ApiError> {
    let bad = |m: String| ApiError::arm(StatusCode::BAD_REQUEST, "InvalidPolicyAssignment", m);
    let segs: Vec<&str> = a.scope.trim_matches('/').split('/').collect();
    let scoped = segs.len() == 2 && segs[0].eq_ignore_ascii_case("subscriptions")
        || segs.len() == 4
            && segs[0].eq_ignore_ascii_case("subscriptions")
            && segs[2].eq_ignore_ascii_case("resourceGroups");
    if !scoped {
        return Err(bad(format!(
            "The scope '{}' is not a subscription (/subscriptions/{{id}}) or a resource group (/subscriptions/{{id}}/resourceGroups/{{name}}).",
            a.scope
        )));
    }
    let d = definition(&a.policy_definition_id).ok_or_else(|| {
        ApiError::arm(
            StatusCode::NOT_FOUND,
            "PolicyDefinitionNotFound",
            format!(
                "The policy definition '{}' could not be found. The simulator knows the built-ins {}.",
                a.policy_definition_id,
                DEFINITIONS
                    .iter()
                    .map(|d| format!("{} ({})", d.guid, d.display_name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let Some(effect) = d.effects.iter().find(|e| e.eq_ignore_ascii_case(&a.effect)) else {
        return Err(bad(format!(
            "The value '{}' is not allowed for policy parameter 'effect' in policy definition '{}'. The allowed values are '{}'.",
            a.effect,
            d.guid,
            d.effects.join(", ")
        )));
    };
    if d.guid == REQUIRE_TAG && a.tag_name().is_none_or(str::is_empty) {
        return Err(bad(format!(
            "The policy assignment is missing the required parameter 'tagName' of policy definition '{}'.",
            d.guid
        )));
    }
    a.effect = (*effect).to_owned();
    a.name = name.to_owned();
    a.policy_definition_id = format!(
        "/providers/Microsoft.Authorization/policyDefinitions/{}",
        d.guid
    );
    let v = a.json();
    state
        .policy_assignments
        .insert(a.id().to_ascii_lowercase(), a);
    Ok(v)
}

/// The account a write would leave, as the rules read it.
pub struct Resource<'a> {
    /// ARM id of the account.
    pub id: &'a str,
    pub name: &'a str,
    pub tags: &'a Value,
    pub properties: &'a Value,
}

/// Refuses the write when a `Deny` assignment over the account's scope
/// matches it; every such assignment is named.
pub fn enforce(state: &State, r: &Resource<'_>) -> Result<(), ApiError> {
    let mut hits: Vec<(&Assignment, &Definition, Vec<Value>)> = Vec::new();
    for a in state.policy_assignments.values() {
        if !a.effect.eq_ignore_ascii_case("Deny") || !scope_covers(&a.scope, r.id) {
            continue;
        }
        let Some(d) = definition(&a.policy_definition_id) else {
            continue;
        };
        if let Some(expressions) = (d.rule)(r, a) {
            hits.push((a, d, expressions));
        }
    }
    if hits.is_empty() {
        return Ok(());
    }
    let reasons: Vec<&str> = hits
        .iter()
        .filter_map(|(a, _, _)| a.non_compliance_message.as_deref())
        .collect();
    let message = if reasons.is_empty() {
        // Written out in Azure's member order (name before id).
        let q = |s: &str| Value::String(s.to_owned()).to_string();
        let identifiers: Vec<String> = hits
            .iter()
            .map(|(a, d, _)| {
                format!(
                    r#"{{"policyAssignment":{{"name":{},"id":{}}},"policyDefinition":{{"name":{},"id":{}}}}}"#,
                    q(a.display_name.as_deref().unwrap_or(&a.name)),
                    q(&a.id()),
                    q(d.display_name),
                    q(&a.policy_definition_id)
                )
            })
            .collect();
        format!(
            "Resource '{}' was disallowed by policy. Policy identifiers: '[{}]'.",
            r.name,
            identifiers.join(",")
        )
    } else {
        format!(
            "Resource '{}' was disallowed by policy. Reasons: '{}'. See error details for policy resource IDs.",
            r.name,
            reasons.join("', '")
        )
    };
    let info: Vec<Value> = hits
        .iter()
        .map(|(a, d, expressions)| {
            json!({
                "type": "PolicyViolation",
                "info": {
                    "policyDefinitionDisplayName": d.display_name,
                    "evaluationDetails": {"evaluatedExpressions": expressions},
                    "policyDefinitionId": a.policy_definition_id,
                    "policyDefinitionName": d.guid,
                    "policyDefinitionEffect": a.effect,
                    "policyAssignmentId": a.id(),
                    "policyAssignmentName": a.name,
                    "policyAssignmentDisplayName": a.display_name.clone().unwrap_or_else(|| a.name.clone()),
                    "policyAssignmentScope": a.scope,
                    "policyAssignmentParameters": if a.parameters.is_object() { a.parameters.clone() } else { json!({}) },
                }
            })
        })
        .collect();
    Err(
        ApiError::arm(StatusCode::FORBIDDEN, "RequestDisallowedByPolicy", message)
            .detail("target", json!(r.name))
            .detail("additionalInfo", Value::Array(info)),
    )
}

/// `{"result", "expressionKind": "Field", ...}` as Azure lists an evaluated expression.
fn expression(field: &str, path: &str, value: Option<&Value>, target: Value, op: &str) -> Value {
    let mut e = json!({
        "result": "True",
        "expressionKind": "Field",
        "expression": field,
        "path": path,
        "targetValue": target,
        "operator": op,
    });
    if let Some(v) = value {
        e["expressionValue"] = v.clone();
    }
    e
}

fn type_matches() -> Value {
    json!({
        "result": "True",
        "expressionKind": "Field",
        "expression": "type",
        "path": "type",
        "expressionValue": ACCOUNT_TYPE,
        "targetValue": ACCOUNT_TYPE,
        "operator": "Equals",
    })
}

/// `publicNetworkAccess` notEquals `Disabled` (a missing value is not `Disabled`).
fn public_network_enabled(r: &Resource<'_>, _: &Assignment) -> Option<Vec<Value>> {
    let v = r.properties.get("publicNetworkAccess");
    let disabled = v
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("Disabled"));
    (!disabled).then(|| {
        vec![
            type_matches(),
            expression(
                "Microsoft.DocumentDB/databaseAccounts/publicNetworkAccess",
                "properties.publicNetworkAccess",
                v,
                json!("Disabled"),
                "NotEquals",
            ),
        ]
    })
}

/// API capabilities the local-auth policy (1.1.0) leaves alone.
const API_CAPABILITIES: [&str; 4] = [
    "EnableMongo",
    "EnableCassandra",
    "EnableTable",
    "EnableGremlin",
];

/// `disableLocalAuth` notEquals true, on an account none of whose capabilities
/// is an API capability (`capabilities[*].name` notIn the list).
fn local_auth_enabled(r: &Resource<'_>, _: &Assignment) -> Option<Vec<Value>> {
    let v = r.properties.get("disableLocalAuth");
    if v.and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let api = API_CAPABILITIES
        .iter()
        .any(|cap| has_capability(r.properties, cap));
    (!api).then(|| {
        vec![
            type_matches(),
            expression(
                "Microsoft.DocumentDB/databaseAccounts/disableLocalAuth",
                "properties.disableLocalAuth",
                v,
                json!("True"),
                "NotEquals",
            ),
            expression(
                "Microsoft.DocumentDB/databaseAccounts/capabilities[*].name",
                "properties.capabilities[*].name",
                None,
                json!(API_CAPABILITIES),
                "NotIn",
            ),
        ]
    })
}

/// `keyVaultKeyUri` exists false.
fn no_customer_managed_key(r: &Resource<'_>, _: &Assignment) -> Option<Vec<Value>> {
    let has = r
        .properties
        .get("keyVaultKeyUri")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    (!has).then(|| {
        vec![
            expression(
                "Microsoft.DocumentDB/databaseAccounts/keyVaultKeyUri",
                "properties.keyVaultKeyUri",
                None,
                json!("false"),
                "Exists",
            ),
            type_matches(),
        ]
    })
}

/// `tags[<tagName>]` exists false (tag names compare case-insensitively).
fn tag_missing(r: &Resource<'_>, a: &Assignment) -> Option<Vec<Value>> {
    let name = a.tag_name()?;
    let present = r
        .tags
        .as_object()
        .is_some_and(|t| t.keys().any(|k| k.eq_ignore_ascii_case(name)));
    (!present).then(|| {
        vec![json!({
            "result": "True",
            "expressionKind": "Field",
            "expression": format!("tags[{name}]"),
            "path": format!("tags[{name}]"),
            "targetValue": "false",
            "operator": "Exists",
        })]
    })
}
