//! Shared helpers for the adapter tests: the real `SdkAzure` pointed at the
//! in-process simulator over HTTPS under Azure's host names.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use cmk_operator::api::{BackupPolicy, Location, PendingOperation};
use cmk_operator::azure::rate_limit::{Budget, RateLimiter};
use cmk_operator::azure::{
    AccountRef, AzurePort, AzureSettings, CredentialSource, NewAccount, SdkAzure,
};
use cmk_operator::embedded::SimCloud;
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
        cloud: sim.cloud(),
        credential: client_secret(sim),
        call_timeout: timeout,
        max_retry_after: cmk_operator::azure::sdk::DEFAULT_MAX_RETRY_AFTER,
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
        tags: Default::default(),
        settings: Default::default(),
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

/// Enables or disables a key version straight through Key Vault's data plane, as
/// a person would (the adapter itself never disables a key's latest version).
pub async fn set_key_version_enabled(sim: &SimHandle, key_uri: &str, version: &str, enabled: bool) {
    let (_, _, operator) = sim.operator_credentials();
    let token = sim.issue_token(&operator, "https://vault.azure.net", 3600);
    let url = azure_core::Url::parse(&format!(
        "{}/{version}?api-version=7.6",
        key_uri.trim_end_matches('/')
    ))
    .expect("url");
    let mut req = azure_core::Request::new(url, azure_core::Method::Patch);
    req.insert_header("authorization", format!("Bearer {token}"));
    req.insert_header("content-type", "application/json");
    req.set_body(
        serde_json::to_vec(&serde_json::json!({"attributes": {"enabled": enabled}})).expect("json"),
    );
    let resp = sim.http_client().execute_request(&req).await.expect("http");
    assert_eq!(u16::from(resp.status()), 200, "key version updated");
}
