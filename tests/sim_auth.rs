//! Entra ID token endpoint (azure_identity 0.21 ClientSecretCredential and
//! WorkloadIdentityCredential) and the 401 challenges of ARM and Key Vault.

mod sim_support;

use std::sync::Arc;

use azure_core::auth::TokenCredential;
use azure_core::{Method, Request, Url};
use azure_identity::{ClientSecretCredential, WorkloadIdentityCredential};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::{FederatedCredential, Seed, SeedIdentity};
use serde_json::json;
use sim_support::*;

const ISSUER: &str = "https://oidc.prod-aks.azure.com/tenant/issuer";
const SUBJECT: &str = "system:serviceaccount:cmk-system:cmk-operator";

fn assertion(aud: &str, sub: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let exp = jiff::Timestamp::now().as_second() + 600;
    let p = URL_SAFE_NO_PAD
        .encode(json!({"aud": [aud], "iss": ISSUER, "sub": sub, "exp": exp}).to_string());
    format!("{h}.{p}.c2lnbmF0dXJl")
}

#[tokio::test]
async fn client_secret_tokens_and_errors() {
    let sim = start().await;
    let cred = credential(&sim);
    let tok = cred.get_token(&[ARM_SCOPE]).await.unwrap();
    let left = tok.expires_on - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(55) && left <= time::Duration::hours(1),
        "{left}"
    );

    let base = Url::parse(&sim.authority_host()).unwrap();
    let (id, _, _) = sim.operator_credentials();
    let wrong = ClientSecretCredential::new(
        sim.http_client(),
        base.clone(),
        sim.tenant_id().into(),
        id.clone(),
        "nope".into(),
    );
    assert!(wrong.get_token(&[ARM_SCOPE]).await.is_err());
    assert_eq!(sim.count_status("Token", 401), 1);
    let unknown = ClientSecretCredential::new(
        sim.http_client(),
        base.clone(),
        sim.tenant_id().into(),
        "unknown-client".into(),
        "x".into(),
    );
    assert!(unknown.get_token(&[ARM_SCOPE]).await.is_err());
    assert!(
        cred.get_token(&["https://storage.azure.com/.default"])
            .await
            .is_err()
    );
    let other_tenant = ClientSecretCredential::new(
        sim.http_client(),
        base,
        "other-tenant".into(),
        id,
        "x".into(),
    );
    assert!(other_tenant.get_token(&[ARM_SCOPE]).await.is_err());
    assert_eq!(sim.count_status("Token", 400), 3);
}

#[tokio::test]
async fn workload_identity_federated_assertion() {
    let sim = start().await;
    let out = sim
        .seed(&Seed {
            identities: vec![SeedIdentity {
                federated_credentials: vec![FederatedCredential {
                    issuer: ISSUER.into(),
                    subject: SUBJECT.into(),
                    ..Default::default()
                }],
                ..uai("operator-wi")
            }],
            ..Default::default()
        })
        .unwrap();
    let client_id = out["identities"][0]["clientId"]
        .as_str()
        .unwrap()
        .to_owned();
    let principal = out["identities"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = Url::parse(&sim.authority_host()).unwrap();
    let wi: Arc<dyn TokenCredential> = Arc::new(WorkloadIdentityCredential::new(
        sim.http_client(),
        base.clone(),
        sim.tenant_id().into(),
        client_id.clone(),
        assertion("api://AzureADTokenExchange", SUBJECT),
    ));
    // The token works against ARM, and Key Vault sees the identity's principal.
    let client = cosmos_with(&sim, wi.clone(), azure_core::RetryOptions::none());
    let err = client
        .database_accounts_client()
        .get(SUB, RG, "none")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 404);
    // Key Vault sees the identity's own principal: no grant, then a grant.
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-wi", &[])],
        keys: vec![key("kv-wi", "k")],
        ..Default::default()
    })
    .unwrap();
    let kc = KeyReader::new(&sim, &sim.vault_uri("kv-wi").unwrap(), wi.clone());
    let err = kc.get("k").await.unwrap_err();
    let (status, _, msg) = http_err(&err);
    assert_eq!(status, 403);
    assert!(msg.contains(&format!("oid={principal}")), "{msg}");
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-wi", &[&principal])],
        ..Default::default()
    })
    .unwrap();
    kc.get("k").await.unwrap();

    let wrong_sub = WorkloadIdentityCredential::new(
        sim.http_client(),
        base.clone(),
        sim.tenant_id().into(),
        client_id.clone(),
        assertion(
            "api://AzureADTokenExchange",
            "system:serviceaccount:other:sa",
        ),
    );
    assert!(wrong_sub.get_token(&[ARM_SCOPE]).await.is_err());
    let wrong_aud = WorkloadIdentityCredential::new(
        sim.http_client(),
        base,
        sim.tenant_id().into(),
        client_id,
        assertion("api://other", SUBJECT),
    );
    assert!(wrong_aud.get_token(&[ARM_SCOPE]).await.is_err());
}

#[tokio::test]
async fn missing_expired_and_wrong_audience_tokens_get_401_challenges() {
    let sim = start().await;
    let (_, _, oid) = sim.operator_credentials();
    // Expired token through the SDK.
    let expired = Arc::new(StaticToken(sim.issue_token(
        &oid,
        "https://management.azure.com",
        -10,
    )));
    let err = cosmos_with(&sim, expired, azure_core::RetryOptions::none())
        .database_accounts_client()
        .get(SUB, RG, "a")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 401);
    assert_eq!(http_err(&err).1, "ExpiredAuthenticationToken");
    // Vault token on ARM.
    let vault_tok = Arc::new(StaticToken(sim.issue_token(
        &oid,
        "https://vault.azure.net",
        600,
    )));
    let err = cosmos_with(&sim, vault_tok.clone(), azure_core::RetryOptions::none())
        .database_accounts_client()
        .get(SUB, RG, "a")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).1, "InvalidAuthenticationTokenAudience");
    // Forged token.
    let forged = Arc::new(StaticToken("simtok.eyJ4IjoxfQ.00".into()));
    let err = cosmos_with(&sim, forged, azure_core::RetryOptions::none())
        .database_accounts_client()
        .get(SUB, RG, "a")
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).1, "InvalidAuthenticationToken");

    // No Authorization header at all: ARM and Key Vault challenges.
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-auth", &[])],
        keys: vec![key("kv-auth", "k")],
        ..Default::default()
    })
    .unwrap();
    let http = sim.http_client();
    let arm_url = format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/a?api-version=2025-10-15",
        sim.arm_endpoint()
    );
    let resp = http
        .execute_request(&Request::new(Url::parse(&arm_url).unwrap(), Method::Get))
        .await
        .unwrap();
    assert_eq!(u16::from(resp.status()), 401);
    let challenge = resp
        .headers()
        .get_optional_string(&azure_core::headers::WWW_AUTHENTICATE)
        .unwrap();
    assert!(
        challenge.starts_with("Bearer authorization_uri="),
        "{challenge}"
    );
    let kv_url = format!(
        "{}keys/k?api-version=7.6",
        sim.vault_uri("kv-auth").unwrap()
    );
    let resp = http
        .execute_request(&Request::new(Url::parse(&kv_url).unwrap(), Method::Get))
        .await
        .unwrap();
    assert_eq!(u16::from(resp.status()), 401);
    let challenge = resp
        .headers()
        .get_optional_string(&azure_core::headers::WWW_AUTHENTICATE)
        .unwrap();
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization=\"{}{}\", resource=\"https://vault.azure.net\"",
            sim.authority_host(),
            sim.tenant_id()
        )
    );
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "Unauthorized");

    // ARM token on Key Vault, read as the SDK's KeyClient reads.
    let arm_tok = Arc::new(StaticToken(sim.issue_token(
        &oid,
        "https://management.azure.com",
        600,
    )));
    let kc = KeyReader::new(&sim, &sim.vault_uri("kv-auth").unwrap(), arm_tok);
    let err = kc.get("k").await.unwrap_err();
    assert_eq!(
        http_err(&err),
        (401, "Unauthorized".into(), http_err(&err).2)
    );
    // The discovery document points at the token endpoint.
    let disc = format!(
        "{}{}/v2.0/.well-known/openid-configuration",
        sim.authority_host(),
        sim.tenant_id()
    );
    let resp = http
        .execute_request(&Request::new(Url::parse(&disc).unwrap(), Method::Get))
        .await
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap()).unwrap();
    assert!(
        body["token_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/oauth2/v2.0/token")
    );
}

#[tokio::test]
async fn federated_identity_credentials_through_azure_mgmt_msi() {
    let sim = start().await;
    let out = sim
        .seed(&Seed {
            identities: vec![uai("wi-arm")],
            ..Default::default()
        })
        .unwrap();
    let client_id = out["identities"][0]["clientId"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = Url::parse(&sim.authority_host()).unwrap();
    let wi = WorkloadIdentityCredential::new(
        sim.http_client(),
        base,
        sim.tenant_id().into(),
        client_id,
        assertion("api://AzureADTokenExchange", SUBJECT),
    );
    assert!(
        wi.get_token(&[ARM_SCOPE]).await.is_err(),
        "no federated credential yet"
    );

    let fics = msi(&sim).federated_identity_credentials_client();
    // The msi 2024-11-30 example body.
    let params: msi_sdk::models::FederatedIdentityCredential = serde_json::from_value(json!({
        "properties": {"issuer": ISSUER, "subject": SUBJECT, "audiences": ["api://AzureADTokenExchange"]}
    }))
    .unwrap();
    let created = fics
        .create_or_update(SUB, RG, "wi-arm", "ficResourceName", params)
        .await
        .unwrap();
    assert_eq!(created.properties.unwrap().subject, SUBJECT);
    wi.get_token(&[ARM_SCOPE]).await.unwrap();
    let got = fics
        .get(SUB, RG, "wi-arm", "ficResourceName")
        .await
        .unwrap();
    assert_eq!(got.properties.unwrap().issuer, ISSUER);
    let cred = credential(&sim);
    let url = format!(
        "{}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/wi-arm/federatedIdentityCredentials/ficResourceName?api-version=2024-11-30",
        sim.arm_endpoint()
    );
    let (_, raw) = send(&sim, &cred, ARM_SCOPE, Method::Get, &url, None).await;
    assert_shape(&raw, &fixture("federated_identity_credential.json"), "fic");
    // A bad issuer is refused; deleting the credential stops new tokens.
    let bad: msi_sdk::models::FederatedIdentityCredential = serde_json::from_value(json!({
        "properties": {"issuer": "http://plain", "subject": SUBJECT, "audiences": ["api://AzureADTokenExchange"]}
    }))
    .unwrap();
    let err = fics
        .create_or_update(SUB, RG, "wi-arm", "bad", bad)
        .await
        .unwrap_err();
    assert_eq!(http_err(&err).0, 400);
    fics.delete(SUB, RG, "wi-arm", "ficResourceName")
        .send()
        .await
        .unwrap();
    wi.clear_cache().await.unwrap();
    assert!(wi.get_token(&[ARM_SCOPE]).await.is_err());
}
