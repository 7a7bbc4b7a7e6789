//! Credential modes through the adapter: client secret and workload identity
//! (a federated token file that the kubelet rotates).

use crate::adapter_support;
use crate::sim_support;

use std::path::PathBuf;
use std::time::Duration;

use adapter_support::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cmk_operator::azure::{AzureError, AzurePort, CredentialSource, SdkAzure};
use cmk_operator::reconcile::binding::KeyFacts;
use cmk_operator::sim::{FederatedCredential, Seed, SeedIdentity, SeedRoleAssignment};
use serde_json::json;
use sim_support::*;

const ISSUER: &str = "https://oidc.prod-aks.azure.com/tenant/issuer";
const SUBJECT: &str = "system:serviceaccount:cmk-system:cmk-operator";

/// A projected service-account token as AKS writes it (the simulator checks claims, not signatures).
pub fn assertion(sub: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let exp = jiff::Timestamp::now().as_second() + 600;
    let p = URL_SAFE_NO_PAD.encode(
        json!({"aud": ["api://AzureADTokenExchange"], "iss": ISSUER, "sub": sub, "exp": exp})
            .to_string(),
    );
    format!("{h}.{p}.c2lnbmF0dXJl")
}

fn token_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cmk-adapter-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("azure-identity-token")
}

#[tokio::test]
async fn client_secret_tokens_are_cached() {
    let sim = start().await;
    let azure = adapter(&sim);
    for _ in 0..3 {
        assert!(azure.provider_registered(SUB).await.unwrap());
    }
    assert_eq!(sim.count("Token"), 1, "one token for three ARM calls");
    // A second adapter for another credential reference shares the limiter, not the token.
    let other = azure.with_credential(client_secret(&sim)).unwrap();
    assert!(other.provider_registered(SUB).await.unwrap());
    assert_eq!(sim.count("Token"), 2);
}

#[tokio::test]
async fn workload_identity_reads_the_rotated_token_file() {
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
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-wi", &[&principal])],
        keys: vec![key("kv-wi", "k")],
        // ARM authorizes by role: Reader on the subscription reads the vault
        // and the provider.
        role_assignments: vec![SeedRoleAssignment {
            scope: format!("/subscriptions/{SUB}"),
            role_definition_id: cmk_operator::sim::roles::READER.into(),
            principal_id: principal.clone(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .unwrap();
    let file = token_file("wi");
    std::fs::write(&file, assertion(SUBJECT)).unwrap();
    let mut s = settings(&sim, roomy_limiter(), Duration::from_secs(5));
    s.credential = CredentialSource::WorkloadIdentity {
        tenant_id: sim.tenant_id().into(),
        client_id,
        token_file: file.clone(),
    };
    let azure = SdkAzure::new(s).unwrap();
    let vault = azure.get_vault(&vault_id("kv-wi")).await.unwrap().unwrap();
    assert!(azure.provider_registered(SUB).await.unwrap());
    assert_eq!(sim.count_status("Token", 200), 1, "the ARM token is cached");

    // The file now holds a token Entra refuses: the next new token (Key Vault's) fails...
    std::fs::write(&file, assertion("system:serviceaccount:other:sa")).unwrap();
    let err = azure.get_key(&vault.vault_uri, "k").await.unwrap_err();
    assert!(matches!(err, AzureError::Authentication { .. }), "{err}");
    // ...and once the kubelet writes a good one, it is picked up without a restart.
    std::fs::write(&file, assertion(SUBJECT)).unwrap();
    assert!(matches!(
        azure.get_key(&vault.vault_uri, "k").await.unwrap(),
        KeyFacts::Present { enabled: true, .. }
    ));
    // Key Vault saw the workload identity's own principal (its grant is what let it in).
    assert_eq!(sim.count_status("KeyVault_GetKey", 200), 1);

    // A missing file is a clear authentication error.
    let _ = std::fs::remove_file(&file);
    let fresh = azure
        .with_credential(CredentialSource::WorkloadIdentity {
            tenant_id: sim.tenant_id().into(),
            client_id: "x".into(),
            token_file: file.clone(),
        })
        .unwrap();
    let err = fresh.provider_registered(SUB).await.unwrap_err();
    assert!(err.to_string().contains("federated token file"), "{err}");
    let _ = std::fs::remove_dir(file.parent().unwrap());
}
