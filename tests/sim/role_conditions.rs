//! Role assignment conditions (Azure ABAC) on `roleAssignments/write` and
//! `/delete`: the condition shipped in
//! deploy/azure/operator-role-assignment-condition.txt lets its holder assign
//! and remove Key Vault Crypto Service Encryption User and nothing else,
//! refused with ARM's ordinary 403 `AuthorizationFailed`.

use crate::sim_support;

use std::sync::Arc;

use azure_core::Method;
use azure_core::auth::TokenCredential;
use cmk_operator::sim::roles;
use cmk_operator::sim::{Seed, SeedRoleAssignment};
use serde_json::{Value, json};
use sim_support::*;

fn shipped_condition() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/azure/operator-role-assignment-condition.txt"),
    )
    .expect("the shipped condition")
}

fn assignment_url(sim: &cmk_operator::sim::SimHandle, scope: &str, name: &str) -> String {
    format!(
        "{}{}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01",
        sim.arm_endpoint(),
        scope.trim_start_matches('/'),
    )
}

fn assignment_body(role: &str, principal: &str) -> Value {
    json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
        "principalId": principal,
        "principalType": "ServicePrincipal",
    }})
}

#[tokio::test]
async fn a_condition_limits_which_role_may_be_assigned_and_removed() {
    let sim = start().await;
    let principals = seed_principals(&sim, &["delegate", "assignee"]);
    let (delegate, assignee) = (principals[0].clone(), principals[1].clone());
    let sub = format!("/subscriptions/{SUB}");
    let vault = vault_id("conditioned");
    let cred: Arc<dyn TokenCredential> = Arc::new(StaticToken(sim.issue_token(
        &delegate,
        "https://management.azure.com",
        600,
    )));

    // The delegate holds Role Based Access Control Administrator at the
    // subscription, with the shipped condition.
    let seeded = sim
        .seed(&Seed {
            role_assignments: vec![SeedRoleAssignment {
                scope: sub.clone(),
                role_definition_id: roles::RBAC_ADMINISTRATOR.into(),
                principal_id: delegate.clone(),
                principal_type: Some("ServicePrincipal".into()),
                condition: Some(shipped_condition()),
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
    // The assignment shows its condition, version 2.0 by default.
    let own = seeded["roleAssignments"][0].as_str().unwrap().to_owned();
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Get,
        &format!(
            "{}{}?api-version=2022-04-01",
            sim.arm_endpoint(),
            own.trim_start_matches('/')
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["conditionVersion"], "2.0");
    assert!(
        body["properties"]["condition"]
            .as_str()
            .unwrap()
            .contains("GuidEquals")
    );

    // Key Vault Crypto Service Encryption User: allowed.
    let allowed = assignment_url(&sim, &vault, "0b9c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3");
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &allowed,
        Some(assignment_body(
            roles::KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
            &assignee,
        )),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Any other role, Owner included, at any scope: ARM's 403, which does
    // not mention the condition.
    for (role, scope) in [
        (roles::OWNER, sub.as_str()),
        (roles::KEY_VAULT_ADMINISTRATOR, vault.as_str()),
        (roles::KEY_VAULT_CRYPTO_OFFICER, vault.as_str()),
        (roles::USER_ACCESS_ADMINISTRATOR, sub.as_str()),
    ] {
        let url = assignment_url(&sim, scope, "1c2d3e4f-5061-4728-9a3b-4c5d6e7f8091");
        let (status, body) = send(
            &sim,
            &cred,
            ARM_SCOPE,
            Method::Put,
            &url,
            Some(assignment_body(role, &assignee)),
        )
        .await;
        assert_eq!(status, 403, "{role}: {body}");
        assert_eq!(body["error"]["code"], "AuthorizationFailed");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("The client '{delegate}' with object id '{delegate}' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/write' over scope '{scope}/providers/Microsoft.Authorization/roleAssignments/1c2d3e4f-5061-4728-9a3b-4c5d6e7f8091' or the scope is invalid.")),
            "{message}"
        );
    }
    // A body without the role definition offers no attribute: refused.
    let url = assignment_url(&sim, &vault, "2d3e4f50-6172-4839-8a4b-5c6d7e8f9012");
    let (status, _) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &url,
        Some(json!({"properties": {"principalId": assignee}})),
    )
    .await;
    assert_eq!(status, 403);

    // Removing: its own kind of assignment yes, any other no (@Resource).
    let other = sim
        .seed(&Seed {
            role_assignments: vec![SeedRoleAssignment {
                scope: vault.clone(),
                role_definition_id: roles::KEY_VAULT_READER.into(),
                principal_id: assignee.clone(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap()["roleAssignments"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Delete,
        &format!(
            "{}{}?api-version=2022-04-01",
            sim.arm_endpoint(),
            other.trim_start_matches('/')
        ),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Microsoft.Authorization/roleAssignments/delete'")
    );
    let (status, body) = send(&sim, &cred, ARM_SCOPE, Method::Delete, &allowed, None).await;
    assert_eq!(status, 200, "{body}");
}
