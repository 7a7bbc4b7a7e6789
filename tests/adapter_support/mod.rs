//! Shared helpers for the adapter tests: the real `SdkAzure` pointed at the
//! in-process simulator over HTTP.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use cmk_operator::api::{BackupPolicy, Location, PendingOperation};
use cmk_operator::azure::cloud::Cloud;
use cmk_operator::azure::rate_limit::{Budget, RateLimiter};
use cmk_operator::azure::{
    AccountRef, AzurePort, AzureSettings, CredentialSource, NewAccount, SdkAzure,
};
use cmk_operator::reconcile::account::OperationState;
use cmk_operator::sim::SimHandle;

use crate::sim_support::{RG, SUB};

/// A limiter that never gets in the way.
pub fn roomy_limiter() -> Arc<RateLimiter> {
    let b = Budget {
        per_second: 10_000.0,
        burst: 10_000.0,
    };
    Arc::new(RateLimiter::new(b, b))
}

pub fn client_secret(sim: &SimHandle) -> CredentialSource {
    let (client_id, client_secret, _) = sim.operator_credentials();
    CredentialSource::ClientSecret {
        tenant_id: sim.tenant_id().to_owned(),
        client_id,
        client_secret,
    }
}

pub fn settings(sim: &SimHandle, limiter: Arc<RateLimiter>, timeout: Duration) -> AzureSettings {
    AzureSettings {
        cloud: Cloud::simulator(sim.base_url()),
        credential: client_secret(sim),
        call_timeout: timeout,
        limiter,
    }
}

/// The adapter with the operator's client secret, a 5 s call timeout and no effective limit.
pub fn adapter(sim: &SimHandle) -> SdkAzure {
    SdkAzure::new(settings(sim, roomy_limiter(), Duration::from_secs(5))).expect("adapter")
}

pub fn account(name: &str) -> AccountRef {
    AccountRef {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        name: name.into(),
    }
}

/// A first-party-identity CMK account in West US.
pub fn new_account(name: &str, key_uri: &str) -> NewAccount {
    NewAccount {
        account: account(name),
        kind: "GlobalDocumentDB".into(),
        locations: vec![Location {
            location_name: "westus".into(),
            failover_priority: 0,
            is_zone_redundant: false,
        }],
        capabilities: vec![],
        key_uri: key_uri.into(),
        default_identity: "FirstPartyIdentity".into(),
        user_assigned_identity: None,
        backup: BackupPolicy::default(),
        restore: None,
    }
}

/// Polls until the operation leaves `InProgress`.
pub async fn finish(azure: &SdkAzure, op: &PendingOperation) -> OperationState {
    for _ in 0..400 {
        match azure.poll(op).await.expect("poll") {
            OperationState::InProgress => tokio::time::sleep(Duration::from_millis(10)).await,
            done => return done,
        }
    }
    panic!("operation {} never finished", op.poll_url);
}
