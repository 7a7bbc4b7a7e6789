//! Simulator configuration: identities of the simulated tenant and timings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a simulator instance needs to start. `Default` suits demos
/// (LRO of a few seconds); [`SimConfig::for_tests`] suits fast tests.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address of the HTTPS listener that serves every host name (ARM, login,
    /// every vault) and the admin API. Clients reach it by resolving Azure's
    /// host names to it (docs/simulator.md).
    pub listen: SocketAddr,
    /// Where to write the simulator's CA certificate (PEM) for clients to trust.
    pub ca_file: Option<PathBuf>,
    /// The simulated Entra ID tenant.
    pub tenant_id: String,
    /// How long a Cosmos DB long-running operation takes before it succeeds.
    pub lro_duration: Duration,
    /// Lifetime of issued bearer tokens (`expires_in`).
    pub token_lifetime: Duration,
    /// Object id of the Azure Cosmos DB first-party service principal in the tenant.
    pub cosmos_first_party_object_id: String,
    /// Application id of the Azure Cosmos DB first-party application.
    pub cosmos_first_party_app_id: String,
    /// A service principal seeded at start so tests and demos can log in at once.
    pub operator_client_id: String,
    pub operator_client_secret: String,
    pub operator_object_id: String,
    /// Whether resource providers count as registered when nothing was seeded.
    pub providers_registered_by_default: bool,
    /// Time after access to the key returns before a revoked account recovers
    /// (about an hour in Azure).
    pub revocation_recovery: Duration,
    /// Role assignments given to the operator's principal at start:
    /// (scope, role definition GUID). By default Owner at the root scope `/`,
    /// so the default principal may do everything, as before ARM
    /// authorization existed; a test that proves a narrower role empties this
    /// and seeds its own assignments.
    pub operator_role_assignments: Vec<(String, String)>,
    /// How long one day of continuous-backup retention lasts: a deleted
    /// Continuous7Days account stays restorable for 7 of them, a
    /// Continuous30Days one for 30. A real day by default; tests shorten it
    /// (also at run time: `SimHandle::set_retention_day`, `_admin/config`).
    pub retention_day: Duration,
    /// How long one day of a key rotation policy lasts (`rotateAfter`,
    /// `expiryTime`, ...): a real day by default; tests shorten it to see a
    /// schedule play out (also at run time: `SimHandle::set_key_day`,
    /// `_admin/config` `keyDayMs`).
    pub key_day: Duration,
    /// Accounts per page of the subscription-wide account list
    /// (`DatabaseAccounts_List`); further pages are reached by `nextLink`.
    pub list_page_size: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            ca_file: None,
            tenant_id: "72f988bf-0000-4000-8000-00000000a001".into(),
            lro_duration: Duration::from_secs(5),
            token_lifetime: Duration::from_secs(3599),
            cosmos_first_party_object_id: "c7a5b7e2-0000-4000-8000-00000000c05d".into(),
            cosmos_first_party_app_id: "a232010e-820c-4083-83bb-3ace5fc29d0b".into(),
            operator_client_id: "0e7c5b1a-0000-4000-8000-0000000000c1".into(),
            operator_client_secret: "sim-operator-secret".into(),
            operator_object_id: "0e7c5b1a-0000-4000-8000-0000000000a1".into(),
            providers_registered_by_default: true,
            operator_role_assignments: vec![("/".into(), super::roles::OWNER.into())],
            revocation_recovery: Duration::from_secs(60),
            retention_day: Duration::from_secs(24 * 60 * 60),
            key_day: Duration::from_secs(24 * 60 * 60),
            // Large: the Cosmos DB spec declares this list unpaged
            // (`x-ms-pageable.nextLinkName: null`), so stock clients read one page.
            list_page_size: 1000,
        }
    }
}

impl SimConfig {
    /// Ephemeral port, millisecond LROs, immediate recovery, and account
    /// lists paged by two (the operator's adapter follows `nextLink`).
    pub fn for_tests() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            lro_duration: Duration::from_millis(60),
            revocation_recovery: Duration::ZERO,
            list_page_size: 2,
            ..Self::default()
        }
    }
}
