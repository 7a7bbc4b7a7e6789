//! Shared helpers for the simulator tests: start a simulator, build the real
//! Azure SDK (0.21 line) clients against it (over HTTPS, Azure's host names
//! resolved to the simulator, its CA trusted), compare shapes with fixtures.
#![allow(dead_code)]

use std::sync::Arc;

use azure_core::auth::{AccessToken, Secret, TokenCredential};
use azure_core::{
    ClientOptions, Context, Method, Pipeline, Request, RetryOptions, TransportOptions, Url,
};
use azure_identity::ClientSecretCredential;
use cmk_operator::embedded::SimCloud;
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

/// A client-secret credential pointed at the simulator's token endpoint
/// (`https://login.microsoftonline.com/`).
pub fn credential(sim: &SimHandle) -> Arc<dyn TokenCredential> {
    let (id, secret, _) = sim.operator_credentials();
    Arc::new(ClientSecretCredential::new(
        sim.http_client(),
        Url::parse(&sim.authority_host()).unwrap(),
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

/// `https://management.azure.com/`.
pub fn endpoint(sim: &SimHandle) -> Url {
    Url::parse(&sim.arm_endpoint()).unwrap()
}

/// The simulator's transport for an SDK client builder.
pub fn transport(sim: &SimHandle) -> TransportOptions {
    TransportOptions::new(sim.http_client())
}

pub fn cosmos_with(
    sim: &SimHandle,
    cred: Arc<dyn TokenCredential>,
    retry: RetryOptions,
) -> cosmosdb::Client {
    cosmosdb::Client::builder(cred)
        .endpoint(endpoint(sim))
        .transport(transport(sim))
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
        .transport(transport(sim))
        .scopes(&[ARM_SCOPE])
        .retry(RetryOptions::none())
        .build()
        .unwrap()
}

pub fn authorization(sim: &SimHandle) -> authz::Client {
    authz::Client::builder(credential(sim))
        .endpoint(endpoint(sim))
        .transport(transport(sim))
        .scopes(&[ARM_SCOPE])
        .retry(RetryOptions::none())
        .build()
        .unwrap()
}

pub fn msi(sim: &SimHandle) -> msi_sdk::Client {
    msi_sdk::Client::builder(credential(sim))
        .endpoint(endpoint(sim))
        .transport(transport(sim))
        .scopes(&[ARM_SCOPE])
        .retry(RetryOptions::none())
        .build()
        .unwrap()
}

/// Key reads as the 0.21 `KeyClient` sends them (`GET keys/{name}/{version}`
/// at its api-version, answer read as its `KeyVaultKey`), over the
/// simulator's transport: the 0.21 `KeyClient` cannot be given one (it always
/// builds azure_core's default client, which trusts only public CAs).
pub struct KeyReader {
    pipeline: Pipeline,
    vault: Url,
}

impl KeyReader {
    pub fn new(sim: &SimHandle, vault_uri: &str, cred: Arc<dyn TokenCredential>) -> Self {
        let auth = Arc::new(Bearer {
            cred,
            scope: "https://vault.azure.net/.default".into(),
        }) as Arc<dyn azure_core::Policy>;
        let options = ClientOptions::new(transport(sim)).retry(RetryOptions::none());
        KeyReader {
            pipeline: Pipeline::new(None, None, options, Vec::new(), vec![auth]),
            vault: Url::parse(vault_uri).unwrap(),
        }
    }

    pub async fn get(
        &self,
        name: &str,
    ) -> azure_core::Result<azure_security_keyvault::prelude::KeyVaultKey> {
        self.get_version(name, "").await
    }

    pub async fn get_version(
        &self,
        name: &str,
        version: &str,
    ) -> azure_core::Result<azure_security_keyvault::prelude::KeyVaultKey> {
        let mut url = self.vault.clone();
        url.set_path(&format!("keys/{name}/{version}"));
        url.query_pairs_mut()
            .append_pair("api-version", azure_security_keyvault::API_VERSION);
        let mut req = Request::new(url, Method::Get);
        self.pipeline
            .send(&Context::new(), &mut req)
            .await?
            .json()
            .await
    }
}

#[derive(Debug)]
struct Bearer {
    cred: Arc<dyn TokenCredential>,
    scope: String,
}

#[async_trait::async_trait]
impl azure_core::Policy for Bearer {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn azure_core::Policy>],
    ) -> azure_core::PolicyResult {
        let token = self.cred.get_token(&[&self.scope]).await?;
        request.insert_header("authorization", format!("Bearer {}", token.token.secret()));
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// Key reads for a vault with the operator's credential.
pub fn key_client(sim: &SimHandle, vault: &str) -> KeyReader {
    let uri = sim.vault_uri(vault).expect("vault exists");
    KeyReader::new(sim, &uri, credential(sim))
}

/// Sends one request through the simulator's HTTP client with a bearer token
/// from `cred` — for the key operations the 0.21 Key Vault crate lacks
/// (create, versions, update, rotate, rotation policy) and LRO status polling.
pub async fn send(
    sim: &SimHandle,
    cred: &Arc<dyn TokenCredential>,
    scope: &str,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    send_with_headers(sim, cred, scope, method, url, body, &[]).await
}

/// [`send`] with extra request headers (`If-None-Match`, ...).
pub async fn send_with_headers(
    sim: &SimHandle,
    cred: &Arc<dyn TokenCredential>,
    scope: &str,
    method: Method,
    url: &str,
    body: Option<Value>,
    headers: &[(&'static str, &str)],
) -> (u16, Value) {
    let token = cred.get_token(&[scope]).await.expect("token");
    let mut req = Request::new(Url::parse(url).unwrap(), method);
    req.insert_header("authorization", format!("Bearer {}", token.token.secret()));
    for (name, value) in headers {
        req.insert_header(*name, value.to_string());
    }
    if let Some(b) = body {
        req.insert_header("content-type", "application/json");
        req.set_body(serde_json::to_vec(&b).unwrap());
    }
    let resp = sim.http_client().execute_request(&req).await.expect("http");
    let status = u16::from(resp.status());
    let bytes = resp.into_body().collect().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The Key Vault scope (what the 0.21 Key Vault client derives from
/// `https://{vault}.vault.azure.net/`).
pub fn kv_scope(_sim: &SimHandle, _vault: &str) -> String {
    "https://vault.azure.net/.default".into()
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

/// Seeds user-assigned identities by name; returns their principal ids, in order.
pub fn seed_principals(sim: &SimHandle, names: &[&str]) -> Vec<String> {
    let out = sim
        .seed(&Seed {
            identities: names.iter().map(|n| uai(n)).collect(),
            ..Default::default()
        })
        .unwrap();
    (0..names.len())
        .map(|i| {
            out["identities"][i]["principalId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
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
