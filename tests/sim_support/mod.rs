//! Shared helpers for the simulator tests: start a simulator, build the real
//! Azure SDK (0.21 line) clients against it, compare shapes with fixtures.
#![allow(dead_code)]

use std::sync::Arc;

use azure_core::auth::{AccessToken, Secret, TokenCredential};
use azure_core::{Method, Request, RetryOptions, Url};
use azure_identity::ClientSecretCredential;
use cmk_operator::sim::{Seed, SeedIdentity, SeedKey, SeedVault, SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

/// The API packages compiled in (see docs/simulator.md for the api-versions they send).
pub use azure_mgmt_authorization::package_2022_04_01 as authz;
pub use azure_mgmt_cosmosdb::package_preview_2024_09 as cosmosdb;
pub use azure_mgmt_keyvault::package_preview_2022_02 as keyvault;
pub use azure_mgmt_msi::package_2023_01_31 as msi_sdk;

pub const SUB: &str = "00000000-0000-0000-0000-0000000000aa";
pub const RG: &str = "rg-cmk";
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
pub const KV_ROLE_CRYPTO_SERVICE_ENCRYPTION_USER: &str = "e147488a-f6f5-4113-8e2d-b22465e65bf6";
pub const KV_ROLE_ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";

pub async fn start() -> SimHandle {
    Simulator::start(SimConfig::for_tests())
        .await
        .expect("simulator starts")
}

/// A client-secret credential pointed at the simulator's token endpoint.
pub fn credential(sim: &SimHandle) -> Arc<dyn TokenCredential> {
    let (id, secret, _) = sim.operator_credentials();
    Arc::new(ClientSecretCredential::new(
        azure_core::new_http_client(),
        Url::parse(sim.base_url()).unwrap(),
        sim.tenant_id().to_owned(),
        id,
        secret,
    ))
}

/// A credential that always returns one fixed token (expired, wrong audience...).
#[derive(Debug)]
pub struct StaticToken(pub String);

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(&self, _scopes: &[&str]) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            Secret::new(self.0.clone()),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}

pub fn endpoint(sim: &SimHandle) -> Url {
    Url::parse(sim.base_url()).unwrap()
}

pub fn cosmos_with(
    sim: &SimHandle,
    cred: Arc<dyn TokenCredential>,
    retry: RetryOptions,
) -> cosmosdb::Client {
    cosmosdb::Client::builder(cred)
        .endpoint(endpoint(sim))
        .scopes(&[ARM_SCOPE])
        .retry(retry)
        .build()
        .unwrap()
}

pub fn cosmos(sim: &SimHandle) -> cosmosdb::Client {
    cosmos_with(sim, credential(sim), RetryOptions::none())
}

pub fn keyvault_mgmt(sim: &SimHandle) -> keyvault::Client {
    keyvault::Client::builder(credential(sim))
        .endpoint(endpoint(sim))
        .scopes(&[ARM_SCOPE])
        .retry(RetryOptions::none())
        .build()
        .unwrap()
}

pub fn authorization(sim: &SimHandle) -> authz::Client {
    authz::Client::builder(credential(sim))
        .endpoint(endpoint(sim))
        .scopes(&[ARM_SCOPE])
        .retry(RetryOptions::none())
        .build()
        .unwrap()
}

pub fn msi(sim: &SimHandle) -> msi_sdk::Client {
    msi_sdk::Client::builder(credential(sim))
        .endpoint(endpoint(sim))
        .scopes(&[ARM_SCOPE])
        .retry(RetryOptions::none())
        .build()
        .unwrap()
}

/// The 0.21 Key Vault client for a vault (host-style loopback URI).
pub fn key_client(sim: &SimHandle, vault: &str) -> azure_security_keyvault::KeyClient {
    let uri = sim.vault_uri(vault).expect("vault exists");
    azure_security_keyvault::KeyClient::new(&uri, credential(sim)).unwrap()
}

/// Sends one request through azure_core's own HTTP client with a bearer token
/// from `cred` — for the key operations the 0.21 Key Vault crate lacks
/// (create, versions, update, rotate, rotation policy) and LRO status polling.
pub async fn send(
    cred: &Arc<dyn TokenCredential>,
    scope: &str,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let token = cred.get_token(&[scope]).await.expect("token");
    let mut req = Request::new(Url::parse(url).unwrap(), method);
    req.insert_header("authorization", format!("Bearer {}", token.token.secret()));
    if let Some(b) = body {
        req.insert_header("content-type", "application/json");
        req.set_body(serde_json::to_vec(&b).unwrap());
    }
    let resp = azure_core::new_http_client()
        .execute_request(&req)
        .await
        .expect("http");
    let status = u16::from(resp.status());
    let bytes = resp.into_body().collect().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The scope the 0.21 Key Vault client derives for a loopback vault URI.
pub fn kv_scope(sim: &SimHandle, vault: &str) -> String {
    let uri = Url::parse(&sim.vault_uri(vault).unwrap()).unwrap();
    let host = uri.host_str().unwrap();
    let rest = host.split_once('.').map(|(_, r)| r).unwrap_or(host);
    format!("{}://{rest}/.default", uri.scheme())
}

pub fn identity_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

pub fn vault_id(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{name}")
}

/// A CMK-ready vault: soft delete, purge protection, access policy for `grantees`
/// with Get/WrapKey/UnwrapKey, plus full key rights for the operator.
pub fn good_vault(sim: &SimHandle, name: &str, grantees: &[&str]) -> SeedVault {
    let (_, _, operator) = sim.operator_credentials();
    let mut policies: Vec<Value> = grantees
        .iter()
        .map(|g| json!({"tenantId": sim.tenant_id(), "objectId": g, "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}}))
        .collect();
    policies.push(json!({"tenantId": sim.tenant_id(), "objectId": operator, "permissions": {"keys": ["all"]}}));
    SeedVault {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        name: name.into(),
        location: Some("westus".into()),
        properties: json!({
            "enableSoftDelete": true,
            "enablePurgeProtection": true,
            "accessPolicies": policies,
        })
        .as_object()
        .cloned()
        .unwrap(),
    }
}

pub fn key(vault: &str, name: &str) -> SeedKey {
    SeedKey {
        vault: vault.into(),
        name: name.into(),
        ..Default::default()
    }
}

pub fn uai(name: &str) -> SeedIdentity {
    SeedIdentity {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        name: name.into(),
        ..Default::default()
    }
}

/// Seeds one vault + key; returns the versionless key URI.
pub fn seed_vault_and_key(sim: &SimHandle, vault: SeedVault, key_name: &str) -> String {
    let vname = vault.name.clone();
    sim.seed(&Seed {
        vaults: vec![vault],
        keys: vec![key(&vname, key_name)],
        ..Default::default()
    })
    .unwrap();
    format!("{}keys/{key_name}", sim.vault_uri(&vname).unwrap())
}

pub fn first_party(sim: &SimHandle) -> String {
    sim.config().cosmos_first_party_object_id.clone()
}

/// Status, code and message of an SDK error.
pub fn http_err(e: &azure_core::Error) -> (u16, String, String) {
    let h = e
        .as_http_error()
        .unwrap_or_else(|| panic!("not an HTTP error: {e:?}"));
    (
        u16::from(h.status()),
        h.error_code().unwrap_or_default().to_owned(),
        h.error_message().unwrap_or_default().to_owned(),
    )
}

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/sim/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

/// Every field of `shape` exists in `actual` with the same JSON type
/// (recursively; arrays compare their first elements; `null` in the fixture
/// means "present, any type").
pub fn assert_shape(actual: &Value, shape: &Value, path: &str) {
    match (shape, actual) {
        (Value::Null, _) => {}
        (Value::Object(s), Value::Object(a)) => {
            for (k, sv) in s.iter().filter(|(k, _)| !k.starts_with('_')) {
                let av = a
                    .get(k)
                    .unwrap_or_else(|| panic!("missing field {path}.{k} in {actual}"));
                assert_shape(av, sv, &format!("{path}.{k}"));
            }
        }
        (Value::Array(s), Value::Array(a)) => {
            if let (Some(s0), Some(a0)) = (s.first(), a.first()) {
                assert_shape(a0, s0, &format!("{path}[0]"));
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_)) => {}
        _ => panic!("type mismatch at {path}: expected like {shape}, got {actual}"),
    }
}

/// Polls the account until its provisioningState is terminal.
pub async fn wait_account(
    client: &cosmosdb::Client,
    rg: &str,
    name: &str,
) -> cosmosdb::models::DatabaseAccountGetResults {
    for _ in 0..200 {
        let acct = client
            .database_accounts_client()
            .get(SUB, rg, name)
            .await
            .expect("get account");
        let st = acct
            .properties
            .as_ref()
            .and_then(|p| p.provisioning_state.clone())
            .unwrap_or_default();
        if st == "Succeeded" || st == "Failed" {
            return acct;
        }
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    panic!("account {name} never finished provisioning");
}
