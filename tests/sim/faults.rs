//! Faults on demand, counters, ledger, and state save/load — through the SDKs.

use crate::sim_support;

use std::time::{Duration, Instant};

use azure_core::{Method, RetryOptions};
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::{
    ErrorFault, FaultConfig, HostileAnswer, HostileFault, LatencyFault, LroFault, LroMode, Seed,
    SimConfig, Simulator, ThrottleFault,
};
use serde_json::json;
use sim_support::cosmosdb::models::DatabaseAccountCreateUpdateParameters;
use sim_support::*;

fn params() -> DatabaseAccountCreateUpdateParameters {
    serde_json::from_value(json!({
        "location": "westus",
        "properties": {"databaseAccountOfferType": "Standard", "locations": [{"locationName": "westus", "failoverPriority": 0}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn latency_is_added_per_operation() {
    let sim = start().await;
    let client = cosmos(&sim);
    client
        .database_accounts_client()
        .get(SUB, RG, "warm")
        .await
        .unwrap_err();
    sim.set_faults(FaultConfig {
        latency: vec![LatencyFault {
            operation: "DatabaseAccounts_Get".into(),
            ms: 250,
        }],
        ..Default::default()
    });
    let t = Instant::now();
    client
        .database_accounts_client()
        .get(SUB, RG, "none")
        .await
        .unwrap_err();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn error_rate_per_operation_and_counters() {
    let sim = start().await;
    sim.set_faults(FaultConfig {
        errors: vec![ErrorFault {
            operation: "DatabaseAccounts_CreateOrUpdate".into(),
            rate: 1.0,
            status: 500,
            code: "InternalServerError".into(),
            count: Some(2),
        }],
        ..Default::default()
    });
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();
    for _ in 0..2 {
        let err = accounts
            .create_or_update(SUB, RG, "acct-err", params())
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            http_err(&err),
            (500, "InternalServerError".into(), http_err(&err).2)
        );
    }
    accounts
        .create_or_update(SUB, RG, "acct-err", params())
        .await
        .unwrap();
    assert_eq!(sim.count_status("DatabaseAccounts_CreateOrUpdate", 500), 2);
    assert_eq!(sim.count_status("DatabaseAccounts_CreateOrUpdate", 200), 1);
    let ledger = sim.ledger();
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.operation == "DatabaseAccounts_CreateOrUpdate")
            .count(),
        3
    );
    assert!(ledger.iter().all(|e| e.method != "GET"));
    // With the SDK's retry policy on, a 500 is retried transparently.
    sim.set_faults(FaultConfig {
        errors: vec![ErrorFault {
            operation: "DatabaseAccounts_Get".into(),
            rate: 1.0,
            status: 500,
            code: "InternalServerError".into(),
            count: Some(1),
        }],
        ..Default::default()
    });
    let retrying = cosmos_with(
        &sim,
        credential(&sim),
        RetryOptions::fixed(
            azure_core::FixedRetryOptions::default().delay(Duration::from_millis(10)),
        ),
    );
    retrying
        .database_accounts_client()
        .get(SUB, RG, "acct-err")
        .await
        .unwrap();
    assert_eq!(sim.count_status("DatabaseAccounts_Get", 500), 1);
}

#[tokio::test]
async fn throttling_bursts_carry_retry_after_and_quota_headers() {
    let sim = start().await;
    sim.set_faults(FaultConfig {
        throttle: vec![ThrottleFault {
            operation: "DatabaseAccounts_*".into(),
            count: 1,
            retry_after_secs: 1,
        }],
        ..Default::default()
    });
    let client = cosmos(&sim);
    let resp = client
        .database_accounts_client()
        .get(SUB, RG, "x")
        .send()
        .await;
    let err = resp.unwrap_err();
    let h = err.as_http_error().unwrap();
    assert_eq!(u16::from(h.status()), 429);
    assert_eq!(h.error_code(), Some("SubscriptionRequestsThrottled"));
    let text = format!("{h}");
    assert!(
        text.contains("retry-after")
            && text.contains("x-ms-ratelimit-remaining-subscription-reads"),
        "{text}"
    );
    // Normal answers count the remaining quota down.
    let ok = client
        .database_accounts_client()
        .list_by_resource_group(RG, SUB)
        .send()
        .await
        .unwrap();
    let remaining: u64 = ok
        .as_raw_response()
        .headers()
        .get_optional_str(&azure_core::headers::HeaderName::from_static(
            "x-ms-ratelimit-remaining-subscription-reads",
        ))
        .unwrap()
        .parse()
        .unwrap();
    assert!(remaining < 12000);
    // The SDK's default retry policy honours Retry-After and gets through.
    sim.set_faults(FaultConfig {
        throttle: vec![ThrottleFault {
            operation: "DatabaseAccounts_Get".into(),
            count: 1,
            retry_after_secs: 1,
        }],
        ..Default::default()
    });
    let retrying = cosmos_with(&sim, credential(&sim), RetryOptions::default());
    let t = Instant::now();
    let err = retrying
        .database_accounts_client()
        .get(SUB, RG, "x")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 404);
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(sim.count_status("DatabaseAccounts_Get", 429), 2);
}

#[tokio::test]
async fn lro_that_fails_or_stalls() {
    let sim = start().await;
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();
    sim.set_faults(FaultConfig {
        lro: Some(LroFault {
            mode: LroMode::Fail,
            count: Some(1),
        }),
        ..Default::default()
    });
    let raw = accounts
        .create_or_update(SUB, RG, "acct-fail", params())
        .send()
        .await
        .unwrap()
        .into_raw_response();
    let status_url = raw
        .headers()
        .get_optional_string(&azure_core::headers::AZURE_ASYNCOPERATION)
        .unwrap();
    let acct = wait_account(&client, RG, "acct-fail").await;
    assert_eq!(
        acct.properties.unwrap().provisioning_state.as_deref(),
        Some("Failed")
    );
    let cred = credential(&sim);
    let (_, op) = send(&sim, &cred, ARM_SCOPE, Method::Get, &status_url, None).await;
    assert_eq!(op["status"], "Failed");
    assert!(op["error"]["code"].is_string());

    sim.set_faults(FaultConfig {
        lro: Some(LroFault {
            mode: LroMode::Stall,
            count: None,
        }),
        ..Default::default()
    });
    let raw = accounts
        .create_or_update(SUB, RG, "acct-stall", params())
        .send()
        .await
        .unwrap()
        .into_raw_response();
    let status_url = raw
        .headers()
        .get_optional_string(&azure_core::headers::AZURE_ASYNCOPERATION)
        .unwrap();
    tokio::time::sleep(sim.config().lro_duration * 3).await;
    let (_, op) = send(&sim, &cred, ARM_SCOPE, Method::Get, &status_url, None).await;
    assert_eq!(op["status"], "Dequeued");
    let acct = accounts.get(SUB, RG, "acct-stall").await.unwrap();
    assert_eq!(
        acct.properties.unwrap().provisioning_state.as_deref(),
        Some("Creating")
    );
}

#[tokio::test]
async fn token_endpoint_outage() {
    let sim = start().await;
    sim.set_faults(FaultConfig {
        token_outage: true,
        ..Default::default()
    });
    let err = cosmos(&sim)
        .database_accounts_client()
        .get(SUB, RG, "x")
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("temporarily_unavailable")
            || sim.count_status("Token", 503) > 0,
        "{err:?}"
    );
    assert!(sim.count_status("Token", 503) >= 1);
    sim.clear_faults();
    let err = cosmos(&sim)
        .database_accounts_client()
        .get(SUB, RG, "x")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 404);
}

#[tokio::test]
async fn key_vault_unreachable_for_clients_and_for_cosmos() {
    let sim = start().await;
    let uri = seed_vault_and_key(
        &sim,
        good_vault(&sim, "kv-down", &[&first_party(&sim)]),
        "cmk",
    );
    sim.set_faults(FaultConfig {
        keyvault_unreachable: vec!["kv-down".into()],
        ..Default::default()
    });
    let cred = credential(&sim);
    let (status, body) = send(
        &sim,
        &cred,
        &kv_scope(&sim, "kv-down"),
        Method::Get,
        &format!("{uri}?api-version=7.6"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("ServiceUnavailable"))
    );
    let p: DatabaseAccountCreateUpdateParameters = serde_json::from_value(json!({
        "location": "westus",
        "properties": {"databaseAccountOfferType": "Standard", "locations": [{"locationName": "westus", "failoverPriority": 0}], "keyVaultKeyUri": uri}
    }))
    .unwrap();
    let err = cosmos(&sim)
        .database_accounts_client()
        .create_or_update(SUB, RG, "acct-down", p.clone())
        .send()
        .await
        .unwrap_err();
    let (status, _, msg) = http_err(&err);
    assert_eq!(status, 503);
    assert!(msg.contains("Substatus: 4004"), "{msg}");
    sim.clear_faults();
    cosmos(&sim)
        .database_accounts_client()
        .create_or_update(SUB, RG, "acct-down", p)
        .await
        .unwrap();
}

#[tokio::test]
async fn state_survives_save_and_load() {
    let dir = std::env::temp_dir().join(format!("sim-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let _ = std::fs::remove_file(&file);
    let sim = Simulator::start_with_state_file(SimConfig::for_tests(), Some(file.clone()))
        .await
        .unwrap();
    let uri = seed_vault_and_key(
        &sim,
        good_vault(&sim, "kv-keep", &[&first_party(&sim)]),
        "cmk",
    );
    sim.seed(&Seed {
        identities: vec![uai("keep")],
        ..Default::default()
    })
    .unwrap();
    cosmos(&sim)
        .database_accounts_client()
        .create_or_update(SUB, RG, "acct-keep", params())
        .await
        .unwrap();
    sim.shutdown().await.unwrap();
    assert!(file.exists());

    let sim = Simulator::start_with_state_file(SimConfig::for_tests(), Some(file.clone()))
        .await
        .unwrap();
    let acct = wait_account(&cosmos(&sim), RG, "acct-keep").await;
    assert_eq!(
        acct.properties.unwrap().provisioning_state.as_deref(),
        Some("Succeeded")
    );
    let kc = key_client(&sim, "kv-keep");
    let k = kc.get("cmk").await.unwrap();
    assert!(
        k.key
            .id
            .unwrap()
            .starts_with(&sim.vault_uri("kv-keep").unwrap())
    );
    let _ = uri;
    msi(&sim)
        .user_assigned_identities_client()
        .get(SUB, RG, "keep")
        .await
        .unwrap();
    sim.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn admin_api_over_http() {
    let sim = start().await;
    let http = sim.http_client();
    let put = |path: &str, body: serde_json::Value| {
        let mut r = azure_core::Request::new(
            azure_core::Url::parse(&format!("{}_admin/{path}", sim.base_url())).unwrap(),
            Method::Put,
        );
        r.insert_header("content-type", "application/json");
        r.set_body(body.to_string());
        r
    };
    let resp = http
        .execute_request(&put(
            "faults",
            json!({"throttle": [{"operation": "Token", "count": 1, "retryAfterSecs": 1}]}),
        ))
        .await
        .unwrap();
    assert_eq!(u16::from(resp.status()), 200);
    assert_eq!(sim.faults().throttle.len(), 1);
    let resp = http
        .execute_request(&put("config", json!({"lroDurationMs": 5})))
        .await
        .unwrap();
    assert_eq!(u16::from(resp.status()), 200);
    let get = azure_core::Request::new(
        azure_core::Url::parse(&format!("{}_admin/counters", sim.base_url())).unwrap(),
        Method::Get,
    );
    let resp = http.execute_request(&get).await.unwrap();
    assert_eq!(u16::from(resp.status()), 200);
    let mut seed = azure_core::Request::new(
        azure_core::Url::parse(&format!("{}_admin/seed", sim.base_url())).unwrap(),
        Method::Post,
    );
    seed.set_body(
        json!({"identities": [{"subscriptionId": SUB, "resourceGroup": RG, "name": "via-admin"}]})
            .to_string(),
    );
    let resp = http.execute_request(&seed).await.unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap()).unwrap();
    assert!(body["identities"][0]["principalId"].is_string());
}

/// One GET with the operator's token: status, `Retry-After`, raw body.
async fn raw_get(sim: &cmk_operator::sim::SimHandle, url: &str) -> (u16, Option<String>, Vec<u8>) {
    let token = credential(sim).get_token(&[ARM_SCOPE]).await.unwrap();
    let mut req = azure_core::Request::new(azure_core::Url::parse(url).unwrap(), Method::Get);
    req.insert_header("authorization", format!("Bearer {}", token.token.secret()));
    let resp = sim.http_client().execute_request(&req).await.unwrap();
    let status = u16::from(resp.status());
    let retry_after = resp
        .headers()
        .get_optional_string(&azure_core::headers::HeaderName::from_static("retry-after"));
    let body = resp.into_body().collect().await.unwrap().to_vec();
    (status, retry_after, body)
}

/// Hostile answers on demand (`FaultConfig::hostile`, also through the admin API).
#[tokio::test]
async fn hostile_answers_retry_after_garbage_truncated_huge_and_missing_fields() {
    let sim = start().await;
    let accounts = cosmos(&sim).database_accounts_client();
    accounts
        .create_or_update(SUB, RG, "acct-hostile", params())
        .await
        .unwrap();
    wait_account(&cosmos(&sim), RG, "acct-hostile").await;
    let url = format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/acct-hostile?api-version=2024-09-01-preview",
        sim.arm_endpoint()
    );
    let once = |answer: HostileAnswer| FaultConfig {
        hostile: vec![HostileFault {
            operation: "DatabaseAccounts_Get".into(),
            answer,
            count: Some(1),
        }],
        ..Default::default()
    };
    // Retry-After exactly as asked: huge, an HTTP date, garbage.
    for value in [
        "18446744073709551615",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "soon",
    ] {
        sim.set_faults(once(HostileAnswer::RetryAfter {
            value: value.into(),
        }));
        let (status, retry_after, _) = raw_get(&sim, &url).await;
        assert_eq!((status, retry_after.as_deref()), (429, Some(value)));
    }
    // Through the admin API as JSON: a 200 whose body is not JSON.
    let admin = azure_core::Url::parse(&format!("{}_admin/faults", sim.base_url())).unwrap();
    let mut put = azure_core::Request::new(admin, Method::Put);
    put.set_body(
        serde_json::to_vec(&json!({"hostile": [{
            "operation": "DatabaseAccounts_Get", "count": 1, "answer": {"kind": "Garbage"}
        }]}))
        .unwrap(),
    );
    let resp = sim.http_client().execute_request(&put).await.unwrap();
    assert_eq!(u16::from(resp.status()), 200);
    let (status, _, body) = raw_get(&sim, &url).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());

    let (_, _, whole) = raw_get(&sim, &url).await;
    let whole: serde_json::Value = serde_json::from_slice(&whole).unwrap();
    sim.set_faults(once(HostileAnswer::Truncated));
    let (status, _, body) = raw_get(&sim, &url).await;
    assert_eq!(status, 200);
    assert!(!body.is_empty() && serde_json::from_slice::<serde_json::Value>(&body).is_err());

    sim.set_faults(once(HostileAnswer::Huge { bytes: None }));
    let (status, _, body) = raw_get(&sim, &url).await;
    assert!(
        status == 200 && body.len() > 5 * 1024 * 1024,
        "{}",
        body.len()
    );
    let huge: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(huge["id"], whole["id"]);

    sim.set_faults(once(HostileAnswer::Omit {
        fields: vec!["identity".into(), "tags".into()],
    }));
    let (_, _, body) = raw_get(&sim, &url).await;
    let partial: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(partial.get("identity").is_none() && partial.get("tags").is_none());
    assert_eq!(partial["properties"], whole["properties"]);
    // Each was taken once: the next answer is whole again.
    let (status, _, body) = raw_get(&sim, &url).await;
    let again: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(status == 200 && again.get("identity").is_some() && again.get("tags").is_some());
    assert!(sim.faults().hostile.is_empty());
}
