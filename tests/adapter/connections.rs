//! The transport keeps connections alive and reuses them, and retries once
//! an idempotent request lost with a connection the peer had dropped while
//! idle (the simulator plays the load balancer that forgot the flow).

use std::sync::Arc;
use std::time::Duration;

use azure_core::{HttpClient, Method, Request, Url};
use cmk_operator::azure::AzurePort;
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::SimHandle;

use crate::adapter_support::{account, adapter};
use crate::sim_support::{RG, SUB, start};

const ARM_AUDIENCE: &str = "https://management.azure.com";

fn account_url(name: &str, action: &str) -> Url {
    Url::parse(&format!(
        "https://management.azure.com/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/{name}{action}?api-version=2024-09-01-preview"
    ))
    .expect("url")
}

fn request(sim: &SimHandle, method: Method, url: Url) -> Request {
    let (_, _, operator) = sim.operator_credentials();
    let mut req = Request::new(url, method);
    let token = sim.issue_token(&operator, ARM_AUDIENCE, 3600);
    req.insert_header("authorization", format!("Bearer {token}"));
    req
}

/// One call through `http`; `Ok(status)` when anything answered.
async fn call(http: &Arc<dyn HttpClient>, req: &Request) -> azure_core::Result<u16> {
    let resp = http.execute_request(req).await?;
    let status = u16::from(resp.status());
    let _ = resp.into_body().collect().await;
    Ok(status)
}

#[tokio::test]
async fn sequential_adapter_calls_share_connections() {
    let sim = start().await;
    let azure = adapter(&sim);
    let calls = 20;
    for i in 0..calls {
        let found = azure.get_account(&account(&format!("absent-{i}"))).await;
        assert!(matches!(found, Ok(None)), "call {i}: {found:?}");
    }
    // One to the token endpoint, one to ARM (a pool per host name); a
    // transport without reuse opens one per call.
    let opened = sim.connections_accepted();
    assert!(
        opened <= 3,
        "{opened} connections for {calls} sequential calls"
    );
}

#[tokio::test]
async fn a_get_on_a_connection_dropped_while_idle_is_retried_once() {
    let sim = start().await;
    let http = sim.http_client();
    let get = request(&sim, Method::Get, account_url("absent", ""));
    assert_eq!(call(&http, &get).await.expect("first call"), 404);
    assert_eq!(sim.connections_accepted(), 1);

    sim.set_idle_connection_limit(Some(Duration::from_millis(100)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = call(&http, &get).await.expect("answered through the retry");
    assert_eq!(status, 404);
    assert_eq!(
        sim.requests_dropped_idle(),
        1,
        "the pooled connection was used"
    );
    assert_eq!(
        sim.connections_accepted(),
        2,
        "one retry, on a new connection"
    );
}

#[tokio::test]
async fn a_post_on_a_connection_dropped_while_idle_is_not_retried() {
    let sim = start().await;
    let http = sim.http_client();
    let get = request(&sim, Method::Get, account_url("absent", ""));
    assert_eq!(call(&http, &get).await.expect("first call"), 404);

    sim.set_idle_connection_limit(Some(Duration::from_millis(100)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut post = request(&sim, Method::Post, account_url("absent", "/listKeys"));
    post.set_body(b"{}".to_vec());
    let lost = call(&http, &post).await;
    assert!(lost.is_err(), "no answer to give: {lost:?}");
    assert_eq!(sim.requests_dropped_idle(), 1);
    assert_eq!(sim.connections_accepted(), 1, "not sent again");
}
