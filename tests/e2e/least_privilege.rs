//! The chart's RBAC is enough: the operator runs a whole scenario (lease,
//! watches, finalizer, status, events, deletion, a credentialRef Secret) with
//! nothing but the token of the chart's ServiceAccount.

use cmk_operator::leader::{self, LeaseSettings};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::azure_permissions;
use crate::common::rbac;
use crate::credentials;
use crate::support::*;
use cmk_operator::sim::roles as sim_roles;

/// Stops the test's operator and starts it again with nothing but the token
/// of the chart's ServiceAccount, the chart rendered with the same tenancy
/// policy the operator runs with (the test namespace), after taking the
/// chart's Lease as a replica would.
async fn restart_on_the_charts_rbac(env: &mut Env) {
    env.kill_operator();
    let identity = rbac::install_operator_identity_allowing(&env.ns, &[&env.ns]).await;
    let leases: Api<Lease> = Api::namespaced(identity.client.clone(), &env.ns);
    let lease = LeaseSettings {
        namespace: env.ns.clone(),
        name: identity.lease_name.clone(),
        identity: "replica-0".into(),
        lease_duration: std::time::Duration::from_secs(15),
        renew_deadline: std::time::Duration::from_secs(10),
        retry_period: std::time::Duration::from_secs(1),
    };
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        leader::acquire(&leases, &lease),
    )
    .await
    .expect("the ServiceAccount may take the lease");
    env.operator_client = identity.client.clone();
    env.start_operator();
}

#[tokio::test]
async fn a_full_scenario_runs_on_the_charts_rbac_alone() {
    let mut env = Env::start("least-privilege").await;
    restart_on_the_charts_rbac(&mut env).await;

    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example(
        "10-account-first-party.yaml",
        json!({"spec": {"deletionPolicy": "Delete"}}),
    )
    .await;
    env.account_reason("orders", "Ready").await;
    assert!(
        env.event_reasons("orders")
            .await
            .contains(&"CreatingAccount".to_owned()),
        "events are published"
    );

    env.accounts()
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("orders").await;
    assert_eq!(
        env.calls("DatabaseAccounts_Delete"),
        1,
        "the finalizer ran under the ServiceAccount"
    );
}

/// The Secret a credentialRef names is read under the chart's Role in the
/// namespace the tenancy policy allows (no ClusterRole rule on Secrets).
#[tokio::test]
async fn a_credential_ref_is_read_on_the_charts_rbac_alone() {
    let mut env = Env::start("least-privilege-creds").await;
    restart_on_the_charts_rbac(&mut env).await;
    let vault = credentials::seed_team_vault(&env);
    credentials::create_team_secret(&env).await;
    env.apply_example(
        "00-binding-access-policy.yaml",
        json!({"spec": {"vaultResourceId": vault, "credentialRef": {"secretName": "team-a-azure"}}}),
    )
    .await;
    credentials::key_created_as_the_team(&env).await;
}

/// Azure's side of least privilege: the operator's role assignment carries
/// the shipped ABAC condition (deploy/azure/operator-role-assignment-condition.txt),
/// so its `roleAssignments/write` and `/delete` cover Key Vault Crypto
/// Service Encryption User alone. The RBAC-vault path grants, reaches Ready
/// and removes its grant under it; any other role is refused to the same
/// principal with ARM's 403.
#[tokio::test]
async fn the_conditioned_azure_role_assignment_is_enough_and_narrows_what_may_be_assigned() {
    let env = azure_permissions::restricted_assignment(
        "abac",
        None,
        None,
        Some(azure_permissions::shipped_condition()),
    )
    .await;
    azure_permissions::user_assigned(&env).await;
    env.account_reason("billing", "Ready").await;
    assert!(
        env.calls("RoleAssignments_Create") >= 1,
        "the grant was made"
    );
    assert_eq!(env.sim.count_status("RoleAssignments_Create", 403), 0);

    // The same principal, assigning anything else: refused.
    let (_, _, operator) = env.sim.operator_credentials();
    let vault = format!(
        "/subscriptions/{SUB}/resourceGroups/cmk-demo/providers/Microsoft.KeyVault/vaults/cmk-demo-rbac"
    );
    for (scope, role) in [
        (format!("/subscriptions/{SUB}"), sim_roles::OWNER),
        (vault.clone(), sim_roles::KEY_VAULT_ADMINISTRATOR),
        (vault.clone(), sim_roles::KEY_VAULT_CRYPTO_OFFICER),
    ] {
        let path = format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b?api-version=2022-04-01"
        );
        let (status, body) = env
            .arm(
                azure_core::Method::Put,
                &path,
                Some(json!({"properties": {
                    "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
                    "principalId": operator,
                    "principalType": "ServicePrincipal",
                }})),
            )
            .await;
        assert_eq!(status, 403, "{role} at {scope}: {body}");
        assert_eq!(body["error"]["code"], "AuthorizationFailed");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("'Microsoft.Authorization/roleAssignments/write'"),
            "{body}"
        );
    }

    // Deletion removes the operator's own grant: `/delete` passes the
    // condition's @Resource half.
    env.accounts()
        .delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("billing").await;
    assert_eq!(env.calls("RoleAssignments_Delete"), 1);
    assert_eq!(env.sim.count_status("RoleAssignments_Delete", 403), 0);
}
