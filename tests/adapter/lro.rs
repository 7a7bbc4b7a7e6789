//! Long-running operations across an operator restart, and the client-side
//! rate limiter keeping a burst under its budget.

use crate::adapter_support;
use crate::sim_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_support::*;
use cmk_operator::api::{OperationKind, PendingOperation};
use cmk_operator::azure::rate_limit::{Budget, RateLimiter};
use cmk_operator::azure::{AzureError, AzurePort, SdkAzure};
use cmk_operator::reconcile::account::OperationState;
use sim_support::*;

#[tokio::test]
async fn a_restarted_operator_resumes_polling_instead_of_creating_again() {
    let sim = start().await;
    sim.set_lro_duration(Duration::from_millis(600));
    let fp = first_party(&sim);
    let key_uri = seed_vault_and_key(&sim, good_vault(&sim, "kv-lro", &[&fp]), "cmk");
    sim.reset_counters();

    // Operator #1 starts the create and persists the operation (as the status would), then dies.
    let persisted = {
        let azure = adapter(&sim);
        let op = azure
            .create_account(&new_account("acct-lro", &key_uri))
            .await
            .unwrap();
        serde_json::to_string(&op).unwrap()
    };

    // Operator #2: a new adapter (new credential, new limiter) with only the persisted record.
    let op: PendingOperation = serde_json::from_str(&persisted).unwrap();
    let azure = adapter(&sim);
    let mut seen_in_progress = false;
    let state = loop {
        match azure.poll(&op).await.unwrap() {
            OperationState::InProgress => {
                seen_in_progress = true;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            done => break done,
        }
    };
    assert_eq!(state, OperationState::Succeeded);
    assert!(
        seen_in_progress,
        "the operation was still running when polling resumed"
    );
    assert_eq!(
        azure
            .get_account(&account("acct-lro"))
            .await
            .unwrap()
            .unwrap()
            .provisioning_state,
        "Succeeded"
    );
    // Exactly one create went out, and nothing else was written.
    assert_eq!(sim.count("DatabaseAccounts_CreateOrUpdate"), 1);
    let writes: Vec<_> = sim
        .ledger()
        .into_iter()
        .filter(|e| e.method != "GET" && e.operation != "Token")
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].operation, "DatabaseAccounts_CreateOrUpdate");
    assert!(sim.count("OperationsStatus_Get") >= 2);
    assert_eq!(sim.count("Token"), 2, "each operator got its own token");
}

#[tokio::test]
async fn poll_urls_off_the_arm_endpoint_get_no_token() {
    let sim = start().await;
    let azure = adapter(&sim);
    let op = PendingOperation {
        kind: OperationKind::CreateAccount,
        poll_url: "http://169.254.169.254/subscriptions/x/providers/Microsoft.DocumentDB/locations/westus/operationsStatus/1".into(),
        started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        retry_after_ms: None,
    };
    let err = azure.poll(&op).await.unwrap_err();
    assert!(
        matches!(&err, AzureError::Rejected { code, .. } if code == "InvalidPollUrl"),
        "{err}"
    );
    assert_eq!(sim.count("Token"), 0);
}

#[tokio::test]
async fn a_burst_stays_within_the_subscription_budget() {
    let sim = start().await;
    let limiter = Arc::new(RateLimiter::new(
        Budget {
            per_second: 10.0,
            burst: 5.0,
        },
        Budget {
            per_second: 1.0,
            burst: 1.0,
        },
    ));
    let azure = SdkAzure::new(settings(&sim, limiter.clone(), Duration::from_secs(10))).unwrap();
    // Another credential reference shares the same budget.
    let other = azure.with_credential(client_secret(&sim)).unwrap();
    let start = Instant::now();
    let calls = (0..25).map(|i| {
        let a = if i % 2 == 0 {
            azure.clone()
        } else {
            other.clone()
        };
        async move { a.get_account(&account(&format!("burst-{i}"))).await }
    });
    let results = futures::future::join_all(calls).await;
    let took = start.elapsed();
    assert!(results.iter().all(|r| matches!(r, Ok(None))));
    // 5 at once, then 10 per second: the 20 others need about 2 s.
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert_eq!(sim.count_status("DatabaseAccounts_Get", 404), 25);
    assert_eq!(sim.count_status("DatabaseAccounts_Get", 429), 0);
    // Reads did not use the write budget: one write still goes out at once
    // (the rate limiter's own tests pin the separate buckets; this is a
    // loose end-to-end check for a loaded machine).
    let start = Instant::now();
    let _ = azure.delete_account(&account("burst-0")).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
}
