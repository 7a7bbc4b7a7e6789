//! Azure Policy deny assignments: a Cosmos DB account write that a `Deny`
//! assignment over its scope matches is answered 403
//! `RequestDisallowedByPolicy` in Azure's shape (target, the "Policy
//! identifiers" message, `additionalInfo` of type `PolicyViolation`); a
//! compliant write, an `Audit` assignment or one over another scope lets it
//! through; a PATCH is judged by the account it would leave.

use super::account_changes::settled;
use crate::sim_support;

use azure_core::Method;
use cmk_operator::embedded::SimCloud;
use serde_json::{Value, json};
use sim_support::*;

const PUBLIC: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/797b37f7-06b8-444c-b1ad-fc62867f335a";
const LOCAL_AUTH: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/5450f5bd-9c72-4390-a9c4-a7aba4edfdd2";
const TAG: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/871b6d14-10aa-478d-b590-94f262ecfa99";

/// An account call (no action suffix).
async fn call(
    sim: &cmk_operator::sim::SimHandle,
    method: Method,
    name: &str,
    body: Option<Value>,
) -> (u16, Value) {
    super::account_changes::call(sim, method, name, "", body).await
}

fn create_body(props: Value, tags: Value) -> Value {
    let mut p = json!({"databaseAccountOfferType": "Standard",
        "locations": [{"locationName": "westus", "failoverPriority": 0}]});
    p.as_object_mut()
        .unwrap()
        .extend(props.as_object().cloned().unwrap_or_default());
    json!({"location": "westus", "kind": "GlobalDocumentDB", "tags": tags, "properties": p})
}

/// Through the admin API, as a test harness or a person would.
async fn assign(sim: &cmk_operator::sim::SimHandle, name: &str, body: Value) -> (u16, Value) {
    let mut r = azure_core::Request::new(
        azure_core::Url::parse(&format!(
            "{}_admin/policyAssignments/{name}",
            sim.base_url()
        ))
        .unwrap(),
        Method::Put,
    );
    r.insert_header("content-type", "application/json");
    r.set_body(body.to_string());
    let resp = sim.http_client().execute_request(&r).await.unwrap();
    let status = u16::from(resp.status());
    let bytes = resp.into_body().collect().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_denied_create_answers_azures_refusal_shape() {
    let sim = start().await;
    let (status, a) = assign(
        &sim,
        "deny-public-cosmos",
        json!({"scope": format!("/subscriptions/{SUB}"), "policyDefinitionId": PUBLIC,
               "effect": "Deny", "displayName": "No public Cosmos DB"}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        a["id"],
        format!(
            "/subscriptions/{SUB}/providers/Microsoft.Authorization/policyAssignments/deny-public-cosmos"
        )
    );
    let (status, body) = call(
        &sim,
        Method::Put,
        "open-acct",
        Some(create_body(json!({}), json!({}))),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let err = &body["error"];
    assert_eq!(err["code"], "RequestDisallowedByPolicy");
    assert_eq!(err["target"], "open-acct");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Resource 'open-acct' was disallowed by policy. Policy identifiers: '[{"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            r#"{{"policyAssignment":{{"name":"No public Cosmos DB","id":"/subscriptions/{SUB}/providers/Microsoft.Authorization/policyAssignments/deny-public-cosmos"}},"policyDefinition":{{"name":"Azure Cosmos DB should disable public network access","id":"{PUBLIC}"}}}}]'."#
        )),
        "{msg}"
    );
    let info = &err["additionalInfo"][0];
    assert_eq!(info["type"], "PolicyViolation");
    let i = &info["info"];
    assert_eq!(i["policyDefinitionId"], PUBLIC);
    assert_eq!(
        i["policyDefinitionName"],
        "797b37f7-06b8-444c-b1ad-fc62867f335a"
    );
    assert_eq!(
        i["policyDefinitionDisplayName"],
        "Azure Cosmos DB should disable public network access"
    );
    assert_eq!(i["policyDefinitionEffect"], "Deny");
    assert_eq!(i["policyAssignmentName"], "deny-public-cosmos");
    assert_eq!(i["policyAssignmentDisplayName"], "No public Cosmos DB");
    assert_eq!(i["policyAssignmentScope"], format!("/subscriptions/{SUB}"));
    assert_eq!(i["policyAssignmentId"], a["id"]);
    let exprs = i["evaluationDetails"]["evaluatedExpressions"]
        .as_array()
        .unwrap();
    assert!(
        exprs
            .iter()
            .any(|e| e["path"] == "properties.publicNetworkAccess"
                && e["operator"] == "NotEquals"
                && e["targetValue"] == "Disabled"),
        "{exprs:?}"
    );
    // Nothing was created.
    assert_eq!(call(&sim, Method::Get, "open-acct", None).await.0, 404);

    // The compliant request goes through, and the settings read back as sent.
    let props = json!({"publicNetworkAccess": "Disabled", "minimalTlsVersion": "Tls12",
        "ipRules": [{"ipAddressOrRange": "23.43.230.120"}],
        "virtualNetworkRules": [{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a", "ignoreMissingVNetServiceEndpoint": true}],
        "isVirtualNetworkFilterEnabled": true, "networkAclBypass": "AzureServices",
        "networkAclBypassResourceIds": ["/subscriptions/s/resourcegroups/rg/providers/Microsoft.Synapse/workspaces/w"],
        "disableLocalAuth": true});
    let (status, body) = call(
        &sim,
        Method::Put,
        "closed-acct",
        Some(create_body(props.clone(), json!({}))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let a = settled(&sim, "closed-acct").await;
    for (k, v) in props.as_object().unwrap() {
        assert_eq!(&a["properties"][k], v, "{k}");
    }
    // A rule sent without its flag reads back with it false, as recorded.
    let (status, b) = call(
        &sim,
        Method::Patch,
        "closed-acct",
        Some(json!({"properties": {"virtualNetworkRules": [{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/b"}]}})),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let a = settled(&sim, "closed-acct").await;
    assert_eq!(
        a["properties"]["virtualNetworkRules"][0]["ignoreMissingVNetServiceEndpoint"],
        false
    );
}

#[tokio::test]
async fn a_patch_is_judged_by_the_account_it_would_leave() {
    let sim = start().await;
    let (status, b) = call(
        &sim,
        Method::Put,
        "later",
        Some(create_body(json!({}), json!({}))),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    settled(&sim, "later").await;
    // Assigned over the resource group after the account exists.
    sim.assign_policy(
        "deny-local-auth",
        json!({"scope": format!("/subscriptions/{SUB}/resourceGroups/{RG}"), "policyDefinitionId": LOCAL_AUTH, "effect": "Deny",
               "nonComplianceMessage": "Local authentication methods are not allowed."}),
    )
    .unwrap();
    // A change to something else leaves local auth on: refused, with the
    // assignment's own words ("Reasons"), as Azure does.
    let (status, b) = call(
        &sim,
        Method::Patch,
        "later",
        Some(json!({"properties": {"minimalTlsVersion": "Tls12"}})),
    )
    .await;
    assert_eq!(status, 403, "{b}");
    assert_eq!(
        b["error"]["message"],
        "Resource 'later' was disallowed by policy. Reasons: 'Local authentication methods are not allowed.'. See error details for policy resource IDs."
    );
    // The PATCH that complies goes through.
    let (status, b) = call(
        &sim,
        Method::Patch,
        "later",
        Some(json!({"properties": {"disableLocalAuth": true}})),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        settled(&sim, "later").await["properties"]["disableLocalAuth"],
        true
    );
}

#[tokio::test]
async fn audit_other_scopes_and_api_accounts_are_let_through() {
    let sim = start().await;
    sim.assign_policy(
        "audit-public",
        json!({"scope": format!("/subscriptions/{SUB}"), "policyDefinitionId": PUBLIC, "effect": "Audit"}),
    )
    .unwrap();
    sim.assign_policy(
        "other-rg",
        json!({"scope": format!("/subscriptions/{SUB}/resourceGroups/elsewhere"), "policyDefinitionId": PUBLIC}),
    )
    .unwrap();
    // Local auth 1.1.0 leaves accounts with an API capability alone.
    sim.assign_policy(
        "deny-local-auth",
        json!({"scope": format!("/subscriptions/{SUB}"), "policyDefinitionId": LOCAL_AUTH}),
    )
    .unwrap();
    let cassandra = create_body(
        json!({"capabilities": [{"name": "EnableCassandra"}]}),
        json!({}),
    );
    let (status, b) = call(&sim, Method::Put, "cassandra-acct", Some(cassandra)).await;
    assert_eq!(status, 200, "{b}");
    let (status, b) = call(
        &sim,
        Method::Put,
        "sql-acct",
        Some(create_body(json!({}), json!({}))),
    )
    .await;
    assert_eq!(status, 403, "{b}");
    assert_eq!(
        b["error"]["additionalInfo"].as_array().map(Vec::len),
        Some(1),
        "only the Deny assignment over this scope: {b}"
    );
}

#[tokio::test]
async fn a_required_tag_is_looked_for_case_insensitively() {
    let sim = start().await;
    sim.assign_policy(
        "need-cost-center",
        json!({"scope": format!("/subscriptions/{SUB}"), "policyDefinitionId": TAG,
               "parameters": {"tagName": {"value": "costCenter"}}}),
    )
    .unwrap();
    let (status, b) = call(
        &sim,
        Method::Put,
        "untagged",
        Some(create_body(json!({}), json!({}))),
    )
    .await;
    assert_eq!(status, 403, "{b}");
    let i = &b["error"]["additionalInfo"][0]["info"];
    assert_eq!(
        i["policyAssignmentParameters"]["tagName"]["value"],
        "costCenter"
    );
    assert_eq!(
        i["evaluationDetails"]["evaluatedExpressions"][0]["path"],
        "tags[costCenter]"
    );
    let (status, b) = call(
        &sim,
        Method::Put,
        "tagged",
        Some(create_body(json!({}), json!({"CostCenter": "42"}))),
    )
    .await;
    assert_eq!(status, 200, "{b}");
}

#[tokio::test]
async fn the_admin_api_refuses_what_azure_would() {
    let sim = start().await;
    let scope = format!("/subscriptions/{SUB}");
    let (status, b) = assign(&sim, "x", json!({"scope": scope, "policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/00000000-0000-0000-0000-000000000000"})).await;
    assert_eq!(
        (status, b["error"]["code"].as_str()),
        (404, Some("PolicyDefinitionNotFound")),
        "{b}"
    );
    let (status, b) = assign(
        &sim,
        "x",
        json!({"scope": scope, "policyDefinitionId": PUBLIC, "effect": "Modify"}),
    )
    .await;
    assert_eq!(status, 400, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The allowed values are 'Audit, Deny, Disabled'"),
        "{b}"
    );
    let (status, b) = assign(
        &sim,
        "x",
        json!({"scope": scope, "policyDefinitionId": TAG}),
    )
    .await;
    assert_eq!(status, 400, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("tagName"),
        "{b}"
    );
    let (status, b) = assign(&sim, "x", json!({"scope": "/providers/Microsoft.Management/managementGroups/mg", "policyDefinitionId": PUBLIC})).await;
    assert_eq!(status, 400, "{b}");
    // An invalid enumerated value is the resource provider's 400, not policy's.
    let (status, b) = call(
        &sim,
        Method::Put,
        "bad-enum",
        Some(create_body(
            json!({"publicNetworkAccess": "Sometimes"}),
            json!({}),
        )),
    )
    .await;
    assert_eq!(status, 400, "{b}");
}
