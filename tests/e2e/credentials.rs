//! Per-namespace credentials: a resource may name a Secret in its own
//! namespace holding a service principal, and the operator acts as it.

use std::collections::BTreeMap;

use cmk_operator::sim::{AppRegistration, Seed, SeedRoleAssignment, SeedVault};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;

use crate::support::*;

const TEAM_CLIENT: &str = "5eed0000-0000-4000-8000-0000000000c7";
const TEAM_OBJECT: &str = "5eed0000-0000-4000-8000-0000000000a7";

/// Seeds a team vault that only the team's own service principal
/// (TEAM_CLIENT) may use, with Reader on it (ARM reads the vault); returns
/// its ARM id.
pub fn seed_team_vault(env: &Env) -> String {
    let vault_id = format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/team-a-vault"
    );
    env.sim
        .seed(&Seed {
            apps: vec![AppRegistration {
                client_id: TEAM_CLIENT.into(),
                object_id: TEAM_OBJECT.into(),
                client_secret: Some("team-secret".into()),
                federated_credentials: vec![],
                display_name: Some("team-a".into()),
            }],
            vaults: vec![SeedVault {
                subscription_id: SUB.into(),
                resource_group: RG.into(),
                name: "team-a-vault".into(),
                location: Some("eastus".into()),
                properties: json!({
                    "enableSoftDelete": true,
                    "enablePurgeProtection": true,
                    "accessPolicies": [{"tenantId": env.sim.tenant_id(), "objectId": TEAM_OBJECT, "permissions": {"keys": ["all"]}}],
                })
                .as_object()
                .cloned()
                .unwrap(),
            }],
            role_assignments: vec![SeedRoleAssignment {
                scope: vault_id.clone(),
                role_definition_id: cmk_operator::sim::roles::READER.into(),
                principal_id: TEAM_OBJECT.into(),
                principal_type: Some("ServicePrincipal".into()),
                name: None,
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
    vault_id
}

/// Creates the Secret `team-a-azure` (the team's service principal) in the test namespace.
pub async fn create_team_secret(env: &Env) {
    let data = BTreeMap::from([
        ("tenantId".to_owned(), env.sim.tenant_id().to_owned()),
        ("clientId".to_owned(), TEAM_CLIENT.to_owned()),
        ("clientSecret".to_owned(), "team-secret".to_owned()),
    ]);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("team-a-azure".into()),
            ..Default::default()
        },
        string_data: Some(data),
        ..Default::default()
    };
    Api::<Secret>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// Waits until the binding `orders-key` is KeyReady with its key created as
/// the team's service principal (not the operator's identity).
pub async fn key_created_as_the_team(env: &Env) {
    env.binding_reason("orders-key", "KeyReady").await;
    let created = env
        .sim
        .ledger()
        .into_iter()
        .find(|l| l.operation == "KeyVault_CreateKey")
        .expect("the key was created");
    assert_eq!(
        created.caller.as_deref(),
        Some(TEAM_OBJECT),
        "the key was created as the team's service principal"
    );
}

#[tokio::test]
async fn a_binding_acts_as_the_service_principal_of_its_namespace_secret() {
    let env = Env::start("creds").await;
    let vault = seed_team_vault(&env);
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"vaultResourceId": vault, "credentialRef": {"secretName": "team-a-azure"}}}),
    )
    .await;
    let b = env
        .binding_reason("orders-key", "CredentialRefInvalid")
        .await;
    let message = cmk_operator::api::conditions::find(&b.status.unwrap().conditions, "Ready")
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains("team-a-azure") && message.contains("not found"),
        "{message}"
    );

    create_team_secret(&env).await;
    key_created_as_the_team(&env).await;
}
