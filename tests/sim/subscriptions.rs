//! `GET /subscriptions` (Subscriptions_List, Microsoft.Resources
//! subscriptions.json 2022-12-01): the subscriptions the caller's role
//! assignments reach, for any valid ARM token.

use crate::sim_support;

use std::sync::Arc;

use azure_core::Method;
use azure_core::auth::TokenCredential;
use cmk_operator::sim::{Seed, SeedRoleAssignment, roles};
use serde_json::json;
use sim_support::*;

const SUB_A: &str = "00000000-0000-0000-0000-00000000a0a0";
const SUB_B: &str = "00000000-0000-0000-0000-00000000b0b0";
const SUB_C: &str = "00000000-0000-0000-0000-00000000c0c0";

fn assignment(scope: &str, principal: &str) -> SeedRoleAssignment {
    SeedRoleAssignment {
        scope: scope.into(),
        role_definition_id: roles::READER.into(),
        principal_id: principal.into(),
        principal_type: Some("ServicePrincipal".into()),
        name: None,
        ..Default::default()
    }
}

#[tokio::test]
async fn subscriptions_are_those_the_callers_assignments_reach() {
    let sim = start().await;
    // Principals ARM knows: user-assigned identities' service principals.
    let principals = seed_principals(&sim, &["me", "other", "nobody"]);
    let (me, other, nobody) = (&principals[0], &principals[1], &principals[2]);
    sim.seed(&Seed {
        role_assignments: vec![
            assignment(&format!("/subscriptions/{SUB_B}/resourceGroups/rg-x"), me),
            assignment(&format!("/subscriptions/{SUB_A}"), me),
            assignment(&format!("/subscriptions/{SUB_A}/resourceGroups/rg-y"), me),
            assignment(&format!("/subscriptions/{SUB_C}"), other),
        ],
        ..Default::default()
    })
    .unwrap();
    let cred: Arc<dyn TokenCredential> = Arc::new(StaticToken(sim.issue_token(
        me,
        "https://management.azure.com",
        600,
    )));
    let url = format!("{}subscriptions?api-version=2022-12-01", sim.arm_endpoint());
    let (status, list) = send(&sim, &cred, ARM_SCOPE, Method::Get, &url, None).await;
    assert_eq!(status, 200, "{list}");
    let tenant = sim.tenant_id().to_owned();
    assert_eq!(
        list,
        json!({"value": [
            {"id": format!("/subscriptions/{SUB_A}"), "subscriptionId": SUB_A, "displayName": format!("Simulated subscription {SUB_A}"), "state": "Enabled", "tenantId": tenant},
            {"id": format!("/subscriptions/{SUB_B}"), "subscriptionId": SUB_B, "displayName": format!("Simulated subscription {SUB_B}"), "state": "Enabled", "tenantId": tenant},
        ]})
    );
    assert_eq!(sim.count_status("Subscriptions_List", 200), 1);

    // Reader rights are not what it takes: a principal with no assignment gets an empty list.
    let nobody: Arc<dyn TokenCredential> = Arc::new(StaticToken(sim.issue_token(
        nobody,
        "https://management.azure.com",
        600,
    )));
    let (status, list) = send(&sim, &nobody, ARM_SCOPE, Method::Get, &url, None).await;
    assert_eq!((status, list), (200, json!({"value": []})));

    // Still a Microsoft.Resources endpoint: its api-versions, and a token is needed.
    let (status, err) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Get,
        &format!("{}subscriptions?api-version=2099-01-01", sim.arm_endpoint()),
        None,
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("InvalidApiVersionParameter"))
    );
    let expired: Arc<dyn TokenCredential> = Arc::new(StaticToken(sim.issue_token(
        me,
        "https://management.azure.com",
        -60,
    )));
    let (status, _) = send(&sim, &expired, ARM_SCOPE, Method::Get, &url, None).await;
    assert_eq!(status, 401);
}
