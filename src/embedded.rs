//! The embedded simulator of `cmk-operator run --azure simulator`: an
//! in-process Azure seeded with the world that `deploy/examples/` expects, so
//! a newcomer can run the operator with no Azure subscription.

use std::sync::Arc;

use serde_json::json;

use crate::azure::cloud::Cloud;
use crate::sim::{
    Seed, SeedIdentity, SeedRoleAssignment, SeedVault, SimConfig, SimError, SimHandle, Simulator,
};

/// The operator's view of a simulator: a cloud's host names resolved to its
/// address, and its CA trusted (the simulator crate knows nothing of the
/// operator's transport). The simulator serves every cloud's hosts.
pub trait SimCloud {
    /// The public cloud, resolved to the simulator.
    fn cloud(&self) -> Cloud;
    /// `cloud` (e.g. [`Cloud::us_government`]) resolved to the simulator.
    fn cloud_as(&self, cloud: Cloud) -> Cloud;
    /// An HTTP client that resolves Azure's host names (every cloud's) to the
    /// simulator and trusts only its CA.
    fn http_client(&self) -> Arc<dyn azure_core::HttpClient>;
}

impl SimCloud for SimHandle {
    fn cloud(&self) -> Cloud {
        Cloud::simulator(self.addr(), self.ca_pem())
    }
    fn cloud_as(&self, cloud: Cloud) -> Cloud {
        cloud.redirected(self.addr(), self.ca_pem())
    }
    fn http_client(&self) -> Arc<dyn azure_core::HttpClient> {
        crate::azure::sdk::http_client_for(&self.cloud())
            .expect("the simulator's own CA and address make a client")
    }
}

/// Subscription and resource group the examples use.
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-00000000c0de";
pub const RESOURCE_GROUP: &str = "cmk-demo";

/// Key Vault Crypto Officer (the data-plane role the README names): lets the
/// operator create, read and update keys in the RBAC vault.
const KEY_VAULT_CRYPTO_OFFICER: &str = crate::sim::roles::KEY_VAULT_CRYPTO_OFFICER;

/// Starts the simulator and seeds the example world: an access-policy vault and
/// an RBAC vault (both CMK-ready), and the user-assigned identities the examples name.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    let sim = Simulator::start(config).await?;
    sim.seed(&example_world(&sim))?;
    Ok(sim)
}

/// The seed for `deploy/examples/`.
pub fn example_world(sim: &SimHandle) -> Seed {
    let (_, _, operator) = sim.operator_credentials();
    let tenant = sim.tenant_id().to_owned();
    let vault = |name: &str, rbac: bool| {
        let mut properties = json!({
            "enableSoftDelete": true,
            "enablePurgeProtection": true,
            "enableRbacAuthorization": rbac,
            "sku": {"family": "A", "name": "premium"},
            "accessPolicies": if rbac { json!([]) } else {
                json!([{"tenantId": tenant, "objectId": operator, "permissions": {"keys": ["all"]}}])
            },
        });
        properties["publicNetworkAccess"] = json!("Enabled");
        SeedVault {
            subscription_id: SUBSCRIPTION.into(),
            resource_group: RESOURCE_GROUP.into(),
            name: name.into(),
            location: Some("eastus".into()),
            properties: properties.as_object().cloned().unwrap_or_default(),
        }
    };
    let identity = |name: &str| SeedIdentity {
        subscription_id: SUBSCRIPTION.into(),
        resource_group: RESOURCE_GROUP.into(),
        name: name.into(),
        location: Some("eastus".into()),
        ..Default::default()
    };
    let rbac_vault = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/cmk-demo-rbac"
    );
    Seed {
        vaults: vec![
            vault("cmk-demo-policies", false),
            vault("cmk-demo-rbac", true),
        ],
        identities: vec![
            identity("cmk-demo-billing-id"),
            identity("cmk-demo-ledger-id"),
            identity("cmk-demo-restore-id"),
        ],
        role_assignments: vec![SeedRoleAssignment {
            scope: rbac_vault,
            role_definition_id: KEY_VAULT_CRYPTO_OFFICER.into(),
            principal_id: operator,
            principal_type: Some("ServicePrincipal".into()),
            name: None,
            ..Default::default()
        }],
        ..Default::default()
    }
}
