//! The environment credential (what AKS workload identity injects). One test in
//! its own binary: it changes the process environment.

mod adapter_support;
mod sim_support;

use std::time::Duration;

use adapter_support::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cmk_operator::azure::{AzureError, AzurePort, AzureSettings, CredentialSource, SdkAzure};
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::{FederatedCredential, Seed, SeedIdentity, SeedRoleAssignment};
use serde_json::json;
use sim_support::*;

const VARS: [&str; 5] = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
];

fn set(pairs: &[(&str, &str)]) {
    for v in VARS {
        // SAFETY: this test binary has a single test, so no other thread reads the environment.
        unsafe { std::env::remove_var(v) };
    }
    for (k, v) in pairs {
        // SAFETY: as above.
        unsafe { std::env::set_var(k, v) };
    }
}

#[tokio::test]
async fn environment_secret_federated_file_and_missing_variables() {
    let sim = start().await;
    // The cloud's own authority host is another cloud's login (whose Entra
    // knows no public-cloud resource): only AZURE_AUTHORITY_HOST works.
    let mut cloud = sim.cloud();
    cloud.authority_host = "https://login.microsoftonline.us/".into();
    let settings = AzureSettings {
        cloud,
        credential: CredentialSource::Environment,
        call_timeout: Duration::from_secs(5),
        max_retry_after: cmk_operator::azure::sdk::DEFAULT_MAX_RETRY_AFTER,
        limiter: roomy_limiter(),
    };

    let (client_id, secret, _) = sim.operator_credentials();
    set(&[
        ("AZURE_TENANT_ID", sim.tenant_id()),
        ("AZURE_CLIENT_ID", &client_id),
        ("AZURE_CLIENT_SECRET", &secret),
        ("AZURE_AUTHORITY_HOST", &sim.authority_host()),
    ]);
    let azure = SdkAzure::new(settings.clone()).unwrap();
    assert!(azure.provider_registered(SUB).await.unwrap());

    // Workload identity as AKS injects it: a token file, no secret.
    let out = sim
        .seed(&Seed {
            identities: vec![SeedIdentity {
                federated_credentials: vec![FederatedCredential {
                    issuer: "https://oidc.example/issuer".into(),
                    subject: "system:serviceaccount:ns:sa".into(),
                    ..Default::default()
                }],
                ..uai("env-wi")
            }],
            ..Default::default()
        })
        .unwrap();
    let wi_client = out["identities"][0]["clientId"]
        .as_str()
        .unwrap()
        .to_owned();
    // ARM authorizes by role: Reader on the subscription reads the provider.
    sim.seed(&Seed {
        role_assignments: vec![SeedRoleAssignment {
            scope: format!("/subscriptions/{SUB}"),
            role_definition_id: cmk_operator::sim::roles::READER.into(),
            principal_id: out["identities"][0]["principalId"].as_str().unwrap().into(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .unwrap();
    let file = std::env::temp_dir().join(format!("cmk-adapter-env-{}", std::process::id()));
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
    let p = URL_SAFE_NO_PAD.encode(
        json!({"aud": ["api://AzureADTokenExchange"], "iss": "https://oidc.example/issuer",
               "sub": "system:serviceaccount:ns:sa", "exp": jiff::Timestamp::now().as_second() + 600})
        .to_string(),
    );
    std::fs::write(&file, format!("{h}.{p}.c2ln")).unwrap();
    set(&[
        ("AZURE_TENANT_ID", sim.tenant_id()),
        ("AZURE_CLIENT_ID", &wi_client),
        ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
        ("AZURE_AUTHORITY_HOST", &sim.authority_host()),
    ]);
    let azure = SdkAzure::new(settings.clone()).unwrap();
    assert!(azure.provider_registered(SUB).await.unwrap());
    assert_eq!(sim.count_status("Token", 200), 2);

    // Missing variables are named.
    set(&[("AZURE_CLIENT_ID", &client_id)]);
    let err = SdkAzure::new(settings).unwrap_err();
    assert!(matches!(err, AzureError::Authentication { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(
            "missing: AZURE_TENANT_ID, AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE"
        ),
        "{text}"
    );
    let _ = std::fs::remove_file(&file);
}
