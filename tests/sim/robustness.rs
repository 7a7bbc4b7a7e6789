//! Bad requests get Azure's error, never a panic or a hang.

use crate::sim_support;

use std::time::Duration;

use azure_core::{Method, Request, Url};
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::Seed;
use serde_json::Value;
use sim_support::*;

#[tokio::test]
async fn malformed_requests_get_error_bodies() {
    let sim = start().await;
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-rob", &[])],
        keys: vec![key("kv-rob", "k")],
        ..Default::default()
    })
    .unwrap();
    let (_, _, oid) = sim.operator_credentials();
    let arm = sim.issue_token(&oid, "https://management.azure.com", 600);
    let kv = sim.issue_token(&oid, "https://vault.azure.net", 600);
    let base = sim.arm_endpoint();
    let vault = sim.vault_uri("kv-rob").unwrap();
    let acct = format!(
        "{base}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/acct-rob"
    );
    let paths = [
        format!("{acct}?api-version=2025-10-15"),
        format!("{acct}/sqlDatabases/x?api-version=2025-10-15"),
        format!(
            "{base}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/kv-rob/accessPolicies/bogus?api-version=2024-11-01"
        ),
        format!(
            "{base}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Nope/things/x?api-version=2020-01-01"
        ),
        format!(
            "{base}subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/westus/operationsStatus/none?api-version=2025-10-15"
        ),
        format!(
            "{base}subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/not-a-guid?api-version=2022-04-01"
        ),
        format!(
            "{base}subscriptions/%ZZ/resourceGroups/%2F/providers/Microsoft.DocumentDB/databaseAccounts/%00?api-version=2025-10-15"
        ),
        format!("{base}nothing/here"),
        format!("{base}{}/oauth2/v2.0/token", sim.tenant_id()),
        format!("{vault}keys/k/create?api-version=7.6"),
        format!("{vault}keys/k/zzzz?api-version=7.6"),
        format!("{vault}keys/k/rotationpolicy?api-version=7.6"),
        format!("{vault}keys/k?api-version=9.9"),
        format!("{vault}keys?api-version=7.6"),
        format!("{vault}secrets/s?api-version=7.6"),
    ];
    let bodies: [&[u8]; 5] = [b"", b"{", b"[]", b"\"text\"", br#"{"properties": 5, "location": 7, "kty": 3, "identity": {"type": 9}, "lifetimeActions": "x"}"#];
    let methods = [
        Method::Get,
        Method::Put,
        Method::Patch,
        Method::Post,
        Method::Delete,
    ];
    let http = sim.http_client();
    for path in &paths {
        for m in &methods {
            for body in bodies {
                let mut req = Request::new(Url::parse(path).unwrap(), *m);
                let token = if path.starts_with(&vault) { &kv } else { &arm };
                req.insert_header("authorization", format!("Bearer {token}"));
                req.insert_header("content-type", "application/json");
                req.set_body(body.to_vec());
                let resp = tokio::time::timeout(Duration::from_secs(5), http.execute_request(&req))
                    .await
                    .expect("no hang")
                    .expect("answer");
                let status = u16::from(resp.status());
                let bytes = resp.into_body().collect().await.unwrap();
                assert!(
                    status < 500,
                    "{m:?} {path} {:?} -> {status} {}",
                    String::from_utf8_lossy(body),
                    String::from_utf8_lossy(&bytes)
                );
                if status >= 400 {
                    let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                        panic!(
                            "{m:?} {path} -> {status} non-JSON {}",
                            String::from_utf8_lossy(&bytes)
                        )
                    });
                    assert!(v.get("error").is_some(), "{m:?} {path} -> {v}");
                }
            }
        }
    }
    // Loose shapes inside otherwise valid bodies.
    let cred = credential(&sim);
    let ap = format!(
        "{base}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/kv-rob/accessPolicies/add?api-version=2024-11-01"
    );
    let weird = serde_json::json!({"properties": {"accessPolicies": [{"tenantId": "t", "objectId": "o", "permissions": "all"}, 5]}});
    let (status, body) = send(&sim, &cred, ARM_SCOPE, Method::Put, &ap, Some(weird)).await;
    assert_eq!(status, 400, "{body}");
    let rp = format!("{vault}keys/k/rotationpolicy?api-version=7.6");
    let kv_scope = kv_scope(&sim, "kv-rob");
    let (status, _) = send(
        &sim,
        &cred,
        &kv_scope,
        Method::Put,
        &rp,
        Some(serde_json::json!({"lifetimeActions": [], "attributes": "P2Y"})),
    )
    .await;
    assert_eq!(status, 400);
    let tok = format!("{base}_admin/token");
    let mut req = Request::new(Url::parse(&tok).unwrap(), Method::Post);
    req.set_body(r#"{"lifetimeSecs": 9223372036854775807}"#);
    assert_eq!(
        u16::from(http.execute_request(&req).await.unwrap().status()),
        200
    );
    // Still serving.
    cosmos(&sim)
        .database_accounts_client()
        .get(SUB, RG, "acct-rob")
        .await
        .unwrap_err();
}
