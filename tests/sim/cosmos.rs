//! Cosmos DB accounts through azure_mgmt_cosmosdb 0.21 (api-version
//! 2024-09-01-preview): create with LRO, get, list, patch, delete, shapes.

use crate::sim_support;

use azure_core::{Method, RetryOptions};
use cmk_operator::sim::{Seed, SeedProvider};
use cosmosdb::models::{DatabaseAccountCreateUpdateParameters, DatabaseAccountUpdateParameters};
use serde_json::{Value, json};
use sim_support::*;

fn create_params(extra_props: Value) -> DatabaseAccountCreateUpdateParameters {
    let mut props = json!({
        "databaseAccountOfferType": "Standard",
        "locations": [{"locationName": "westus", "failoverPriority": 0, "isZoneRedundant": false}],
    });
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra_props.as_object()) {
        for (k, v) in e {
            p.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(
        json!({"location": "westus", "kind": "GlobalDocumentDB", "properties": props}),
    )
    .unwrap()
}

#[tokio::test]
async fn create_polls_lro_then_get_list_patch_delete() {
    let sim = start().await;
    // Long enough to observe the in-progress states even on a loaded machine.
    sim.set_lro_duration(std::time::Duration::from_millis(400));
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();

    // send(&sim, ): the raw first answer carries the LRO headers.
    let resp = accounts
        .create_or_update(SUB, RG, "acct-one", create_params(json!({})))
        .send()
        .await
        .unwrap();
    let raw = resp.into_raw_response();
    assert_eq!(u16::from(raw.status()), 200);
    let async_op = raw
        .headers()
        .get_optional_string(&azure_core::headers::AZURE_ASYNCOPERATION)
        .expect("Azure-AsyncOperation");
    let location = raw
        .headers()
        .get_optional_string(&azure_core::headers::LOCATION)
        .expect("Location");
    assert!(
        async_op.contains("/providers/Microsoft.DocumentDB/locations/westus/operationsStatus/"),
        "{async_op}"
    );
    assert!(location.contains("/operationResults/"), "{location}");
    let body: Value = serde_json::from_slice(&raw.into_body().collect().await.unwrap()).unwrap();
    assert_eq!(body["properties"]["provisioningState"], "Creating");
    assert_shape(&body, &fixture("database_account.json"), "account");

    // Poll operationsStatus like ARM clients do: Enqueued/Dequeued then Succeeded.
    let cred = credential(&sim);
    let mut seen = Vec::new();
    for _ in 0..100 {
        let (status, op) = send(&sim, &cred, ARM_SCOPE, Method::Get, &async_op, None).await;
        assert_eq!(status, 200);
        let s = op["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == "Succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Succeeded"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s == "Enqueued" || s == "Dequeued"),
        "{seen:?}"
    );
    let (status, _) = send(&sim, &cred, ARM_SCOPE, Method::Get, &location, None).await;
    assert_eq!(status, 200);

    let got = accounts.get(SUB, RG, "acct-one").await.unwrap();
    let props = got.properties.unwrap();
    assert_eq!(props.provisioning_state.as_deref(), Some("Succeeded"));
    assert_eq!(
        props.default_identity.as_deref(),
        Some("FirstPartyIdentity")
    );
    assert_eq!(props.write_locations.len(), 1);
    assert_eq!(
        props.document_endpoint.as_deref(),
        Some("https://acct-one.documents.azure.com:443/")
    );

    // The IntoFuture of create_or_update returns at once on 200 (azure_core 0.21
    // reads a 200 as Succeeded); a second account via .await still works.
    let created = accounts
        .create_or_update(SUB, RG, "acct-two", create_params(json!({})))
        .await
        .unwrap();
    assert_eq!(
        created.properties.unwrap().provisioning_state.as_deref(),
        Some("Creating")
    );

    let page = accounts
        .list_by_resource_group(RG, SUB)
        .send()
        .await
        .unwrap()
        .into_body()
        .await
        .unwrap();
    let names: Vec<String> = page
        .value
        .iter()
        .filter_map(|a| a.arm_resource_properties.name.clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // An update while the create LRO of acct-two runs: 412 as Cosmos DB answers.
    // (The 0.21 `Tags` model is an empty struct: tags never reach the wire, so patch a property.)
    let patch: DatabaseAccountUpdateParameters =
        serde_json::from_value(json!({"properties": {"enableAnalyticalStorage": true}})).unwrap();
    {
        let err = accounts
            .update(SUB, RG, "acct-two", patch.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(http_err(&err).0, 412);
    }
    wait_account(&client, RG, "acct-two").await;
    let updated = accounts
        .update(SUB, RG, "acct-two", patch)
        .send()
        .await
        .unwrap()
        .into_body()
        .await
        .unwrap();
    // Azure answers with the account as it stood, marked Updating (recorded).
    let up = updated.properties.unwrap();
    assert_eq!(up.enable_analytical_storage, Some(false));
    assert_eq!(up.provisioning_state.as_deref(), Some("Updating"));
    wait_account(&client, RG, "acct-two").await;
    let after = accounts.get(SUB, RG, "acct-two").await.unwrap();
    assert_eq!(
        after.properties.unwrap().enable_analytical_storage,
        Some(true)
    );

    // DELETE answers 202 with headers; the SDK's own poller re-sends until 204.
    let del = accounts.delete(SUB, RG, "acct-one").send().await.unwrap();
    assert_eq!(u16::from(del.as_raw_response().status()), 202);
    // DELETE again while deleting: same operation, 202 again.
    assert_eq!(
        u16::from(
            accounts
                .delete(SUB, RG, "acct-one")
                .send()
                .await
                .unwrap()
                .as_raw_response()
                .status()
        ),
        202
    );
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let err = accounts.get(SUB, RG, "acct-one").await.unwrap_err();
    let (status, code, _) = http_err(&err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFound"));
    assert_eq!(sim.count_status("DatabaseAccounts_Get", 404), 1);
}

#[tokio::test]
async fn response_parses_into_sdk_model_with_identities() {
    let sim = start().await;
    sim.seed(&Seed {
        identities: vec![uai("id1")],
        ..Default::default()
    })
    .unwrap();
    let id1 = identity_id("id1");
    let mut params = create_params(json!({}));
    params.identity = Some(serde_json::from_value(json!({"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {id1.clone(): {}}})).unwrap());
    let client = cosmos(&sim);
    let acct = client
        .database_accounts_client()
        .create_or_update(SUB, RG, "acct-ids", params)
        .await
        .unwrap();
    let ident = acct.identity.unwrap();
    assert!(ident.principal_id.is_some());
    assert_eq!(ident.tenant_id.as_deref(), Some(sim.tenant_id()));
    let uais = ident.user_assigned_identities.unwrap();
    assert!(uais[&id1]["principalId"].as_str().is_some());
    assert!(uais[&id1]["clientId"].as_str().is_some());
}

#[tokio::test]
async fn bad_requests_get_arm_errors() {
    let sim = start().await;
    let client = cosmos(&sim);
    let accounts = client.database_accounts_client();
    // Missing location.
    let mut p = create_params(json!({}));
    p.arm_resource_properties.location = None;
    let err = accounts
        .create_or_update(SUB, RG, "acct-x", p)
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).1, "LocationRequired");
    // Invalid name.
    let err = accounts
        .create_or_update(SUB, RG, "Bad_Name", create_params(json!({})))
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 400);
    // Unknown identity.
    let mut p = create_params(json!({}));
    p.identity = Some(
        serde_json::from_value(
            json!({"type": "UserAssigned", "userAssignedIdentities": {identity_id("nope"): {}}}),
        )
        .unwrap(),
    );
    let err = accounts
        .create_or_update(SUB, RG, "acct-y", p)
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).1, "FailedIdentityOperation");
    // Malformed JSON and bad api-version, through azure_core directly.
    let cred = credential(&sim);
    let url = format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/acct-z",
        sim.arm_endpoint()
    );
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Get,
        &format!("{url}?api-version=2099-01-01"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("NoRegisteredProviderFound"))
    );
    let (status, body) = send(&sim, &cred, ARM_SCOPE, Method::Get, &url, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("MissingApiVersionParameter"))
    );
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &format!("{url}?api-version=2025-10-15"),
        Some(json!("not an object")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_shape(&body, &fixture("arm_error.json"), "error");
}

#[tokio::test]
async fn provider_registration_gates_creation() {
    let sim = start().await;
    sim.seed(&Seed {
        providers: vec![SeedProvider {
            subscription_id: SUB.into(),
            namespace: "Microsoft.DocumentDB".into(),
            registration_state: "NotRegistered".into(),
        }],
        ..Default::default()
    })
    .unwrap();
    let client = cosmos_with(&sim, credential(&sim), RetryOptions::none());
    let err = client
        .database_accounts_client()
        .create_or_update(SUB, RG, "acct-reg", create_params(json!({})))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        http_err(&err),
        (
            409,
            "MissingSubscriptionRegistration".into(),
            http_err(&err).2
        )
    );
    // Register (Providers_Register) and read the state (Providers_Get) through azure_core.
    let cred = credential(&sim);
    let url = format!(
        "{}subscriptions/{SUB}/providers/Microsoft.DocumentDB",
        sim.arm_endpoint()
    );
    let (status, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Post,
        &format!("{url}/register?api-version=2021-04-01"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["registrationState"].as_str()),
        (200, Some("Registering"))
    );
    tokio::time::sleep(sim.config().lro_duration * 2).await;
    let (_, body) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Get,
        &format!("{url}?api-version=2021-04-01"),
        None,
    )
    .await;
    assert_eq!(body["registrationState"], "Registered");
    assert_shape(&body, &fixture("provider.json"), "provider");
    client
        .database_accounts_client()
        .create_or_update(SUB, RG, "acct-reg", create_params(json!({})))
        .await
        .unwrap();
}

/// `If-None-Match: *` on the account PUT: create only. ARM's RPC ("ETags for
/// Resources") answers 412 when the resource exists; Cosmos DB's spec does not
/// declare the header (docs/simulator.md says how sure that is).
#[tokio::test]
async fn if_none_match_star_creates_only() {
    let sim = start().await;
    sim.set_lro_duration(std::time::Duration::from_millis(400));
    let cred = credential(&sim);
    let url = format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/acct-once?api-version=2025-10-15",
        sim.arm_endpoint()
    );
    let body = serde_json::to_value(create_params(json!({}))).unwrap();
    let create_only = [("if-none-match", "*")];
    let (status, created) = send_with_headers(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &url,
        Some(body.clone()),
        &create_only,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["properties"]["provisioningState"], "Creating");
    // Still being created: it exists.
    let (status, err) = send_with_headers(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &url,
        Some(body.clone()),
        &create_only,
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (412, Some("PreconditionFailed")),
        "{err}"
    );
    wait_account(&cosmos(&sim), RG, "acct-once").await;
    let (status, err) = send_with_headers(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &url,
        Some(body.clone()),
        &create_only,
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (412, Some("PreconditionFailed"))
    );
    assert_eq!(sim.count_status("DatabaseAccounts_CreateOrUpdate", 412), 2);
    // Without the header the same PUT updates.
    let (status, updated) = send(&sim, &cred, ARM_SCOPE, Method::Put, &url, Some(body)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["properties"]["provisioningState"], "Updating");
}
