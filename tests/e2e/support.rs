//! End-to-end harness: the real control plane (tests/common), an in-process
//! Azure simulator seeded with the example world, and the operator itself,
//! scoped to the test's own namespace so tests can run side by side.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use cmk_operator::api::{CosmosAccountCMK, KeyVaultBinding};
use cmk_operator::azure::cloud::Cloud;
use cmk_operator::azure::instrumented::Instrumented;
use cmk_operator::azure::rate_limit::RateLimiter;
use cmk_operator::azure::sdk::{AzureSettings, CredentialSource, SdkAzure};
use cmk_operator::controller::{self, Settings};
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::{SimConfig, SimHandle};
use cmk_operator::telemetry::Metrics;
use cmk_operator::tenancy::{NamespaceAllowance, TenancyPolicy};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::common;

pub const SUB: &str = cmk_operator::embedded::SUBSCRIPTION;
pub const RG: &str = cmk_operator::embedded::RESOURCE_GROUP;

/// One test's world.
pub struct Env {
    pub client: kube::Client,
    pub ns: String,
    pub sim: SimHandle,
    /// The cloud the operator addresses the simulator as (public unless
    /// [`Env::start_in`] names another).
    pub cloud: Cloud,
    pub settings: Settings,
    /// The client the operator runs with (the admin's unless a test narrows it).
    pub operator_client: kube::Client,
    /// What the running operator exports on `/metrics` (new at each start,
    /// as a new process's are).
    pub metrics: Arc<Metrics>,
    operator: Option<Operator>,
}

struct Operator {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Env {
    /// Namespace, simulator (example world, millisecond LROs) and a running operator.
    pub async fn start(prefix: &str) -> Env {
        Self::start_with(prefix, SimConfig::for_tests()).await
    }

    /// The same with a simulator configured by the test (e.g. an operator
    /// principal holding no role until the test seeds one).
    pub async fn start_with(prefix: &str, config: SimConfig) -> Env {
        Self::start_in(prefix, config, None).await
    }

    /// The same with the operator addressing the simulator as `cloud`
    /// (its hosts, audiences and vault suffix), as `--cloud` does.
    pub async fn start_in(prefix: &str, config: SimConfig, cloud: Option<Cloud>) -> Env {
        Self::start_tuned(prefix, config, cloud, |_| {}).await
    }

    /// The same with the operator's settings changed by `tune` before it starts
    /// (e.g. a long resync interval).
    pub async fn start_tuned(
        prefix: &str,
        config: SimConfig,
        cloud: Option<Cloud>,
        tune: impl FnOnce(&mut Settings),
    ) -> Env {
        let (client, ns) = common::test_namespace(prefix).await;
        let sim = cmk_operator::embedded::start(config)
            .await
            .expect("simulator starts");
        let cloud = match cloud {
            Some(c) => sim.cloud_as(c),
            None => sim.cloud(),
        };
        let mut settings = Settings {
            first_party_principal: sim.config().cosmos_first_party_object_id.clone(),
            resync: Duration::from_secs(2),
            poll: Duration::from_millis(100),
            resync_reads_per_second: 5.0,
            concurrency: 4,
            namespace: Some(ns.clone()),
            cluster_id: "e2e".to_owned(),
            previous_cluster_id: None,
            clock: Default::default(),
            tenancy: allow_namespace(&ns, &[&format!("/subscriptions/{SUB}")]).into(),
            shutdown_drain: Duration::from_secs(10),
            key_watch: Duration::ZERO,
            key_watch_reads_per_second: 2.0,
        };
        tune(&mut settings);
        let mut env = Env {
            operator_client: client.clone(),
            client,
            ns,
            sim,
            cloud,
            settings,
            metrics: Arc::default(),
            operator: None,
        };
        env.start_operator();
        env
    }

    fn azure(&self) -> SdkAzure {
        let (client_id, client_secret, _) = self.sim.operator_credentials();
        SdkAzure::new(AzureSettings {
            cloud: self.cloud.clone(),
            credential: CredentialSource::ClientSecret {
                tenant_id: self.sim.tenant_id().to_owned(),
                client_id,
                client_secret,
            },
            call_timeout: Duration::from_secs(10),
            max_retry_after: cmk_operator::azure::sdk::DEFAULT_MAX_RETRY_AFTER,
            limiter: Arc::new(RateLimiter::arm_defaults()),
        })
        .expect("adapter builds")
    }

    /// Starts (or restarts) the operator.
    pub fn start_operator(&mut self) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // As `run` without leader election: Azure calls counted, leading.
        self.metrics = Arc::default();
        self.metrics.set_leader(true);
        let fut = controller::run(
            self.operator_client.clone(),
            Instrumented::new(self.azure(), self.metrics.clone()),
            self.settings.clone(),
            self.metrics.clone(),
            async move {
                let _ = stopped.await;
            },
        );
        self.operator = Some(Operator {
            stop,
            task: tokio::spawn(fut),
        });
    }

    /// Kills the operator without a graceful shutdown, as SIGKILL would.
    pub fn kill_operator(&mut self) {
        if let Some(op) = self.operator.take() {
            op.task.abort();
        }
    }

    /// Stops the operator gracefully and waits for it.
    pub async fn stop_operator(&mut self) {
        if let Some(op) = self.operator.take() {
            let _ = op.stop.send(());
            let mut task = op.task;
            // Never return while it may still act: a test that starts another
            // operator next would otherwise run two at once.
            if tokio::time::timeout(Duration::from_secs(15), &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
    }

    /// Server-side applies a manifest (one document) into the test namespace,
    /// after a JSON merge patch (`null` removes a field).
    pub async fn apply_example(&self, file: &str, patch: Value) -> String {
        let path = common::repo_root().join("deploy/examples").join(file);
        let mut obj: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("example exists"))
                .expect("yaml");
        common::merge_patch(&mut obj, &patch);
        self.apply(obj).await
    }

    pub async fn apply(&self, mut obj: Value) -> String {
        obj["metadata"]["namespace"] = Value::String(self.ns.clone());
        let name = obj["metadata"]["name"].as_str().expect("named").to_owned();
        let pp = PatchParams::apply("e2e-test").force();
        match obj["kind"].as_str() {
            Some("KeyVaultBinding") => {
                self.bindings()
                    .patch(&name, &pp, &Patch::Apply(&obj))
                    .await
                    .expect("binding applied");
            }
            Some("CosmosAccountCMK") => {
                self.accounts()
                    .patch(&name, &pp, &Patch::Apply(&obj))
                    .await
                    .expect("account applied");
            }
            other => panic!("unexpected kind {other:?}"),
        }
        name
    }

    /// The vault URI (with its trailing `/`) of a binding's key, from its status.
    pub async fn binding_vault_uri(&self, binding: &str) -> String {
        let key_uri = self
            .bindings()
            .get(binding)
            .await
            .expect("binding exists")
            .status
            .and_then(|s| s.key_uri)
            .expect("the binding reports its key URI");
        format!("{}/", key_uri.rsplit_once("/keys/").expect("a key URI").0)
    }

    pub fn accounts(&self) -> Api<CosmosAccountCMK> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn bindings(&self) -> Api<KeyVaultBinding> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Waits (bounded) until `pred` holds for the object, returning it; panics with its last state.
    pub async fn wait<K>(
        &self,
        api: &Api<K>,
        name: &str,
        what: &str,
        pred: impl Fn(&K) -> bool,
    ) -> K
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug + serde::Serialize,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let last = api.get_opt(name).await.expect("get works");
            if let Some(obj) = &last
                && pred(obj)
            {
                return obj.clone();
            }
            if tokio::time::Instant::now() > deadline {
                let dump = serde_json::to_string_pretty(&last).unwrap_or_default();
                panic!("{name}: timed out waiting for {what}; last state:\n{dump}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the account's Ready condition has `reason`.
    pub async fn account_reason(&self, name: &str, reason: &str) -> CosmosAccountCMK {
        self.wait(
            &self.accounts(),
            name,
            &format!("Ready reason {reason}"),
            |a| ready_reason(a) == Some(reason.to_owned()),
        )
        .await
    }

    /// Waits until the binding's Ready condition has `reason`.
    pub async fn binding_reason(&self, name: &str, reason: &str) -> KeyVaultBinding {
        let api = self.bindings();
        self.wait(
            &api,
            name,
            &format!("Ready reason {reason}"),
            |b: &KeyVaultBinding| {
                b.status
                    .as_ref()
                    .and_then(|s| cmk_operator::api::conditions::find(&s.conditions, "Ready"))
                    .map(|c| c.reason.clone())
                    == Some(reason.to_owned())
            },
        )
        .await
    }

    /// The events about `name`, oldest first.
    pub async fn events_about(&self, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let mut events: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .expect("events listed")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        events.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        events
    }

    /// Reasons of the events about `name`, oldest first.
    pub async fn event_reasons(&self, name: &str) -> Vec<String> {
        let events = self.events_about(name).await;
        events.into_iter().filter_map(|e| e.reason).collect()
    }

    /// "reason: note" of the events about `name`, oldest first (for messages).
    pub async fn event_notes(&self, name: &str) -> Vec<String> {
        let events = self.events_about(name).await;
        events
            .into_iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default()
                )
            })
            .collect()
    }

    /// Number of simulator calls of `operation` (its REST operationId) so far.
    pub fn calls(&self, operation: &str) -> u64 {
        self.sim.count(operation)
    }

    /// Every mutating call the simulator saw (method, operation).
    pub fn writes(&self) -> Vec<String> {
        self.sim
            .ledger()
            .into_iter()
            .map(|l| format!("{} {}", l.method, l.operation))
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill_operator();
    }
}

/// A tenancy policy that lets `ns` act with the operator's identity on `scopes`.
pub fn allow_namespace(ns: &str, scopes: &[&str]) -> TenancyPolicy {
    TenancyPolicy {
        namespaces: vec![NamespaceAllowance {
            namespace: ns.to_owned(),
            operator_identity: true,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }],
    }
}

/// A tenancy policy file (for `cmk-operator run --tenancy-config`) that lets
/// `ns` act with the operator's identity on the example subscription.
/// The simulator's CA certificate in a file, for an operator process to trust.
pub fn simulator_ca_file(sim: &SimHandle, ns: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("cmk-simulator-ca-{ns}.pem"));
    std::fs::write(&path, sim.ca_pem()).expect("CA file written");
    path
}

pub fn tenancy_config_file(ns: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("cmk-tenancy-{ns}.yaml"));
    let yaml = format!(
        "namespaces:\n  - namespace: {ns}\n    operatorIdentity: true\n    scopes:\n      - /subscriptions/{SUB}\n"
    );
    std::fs::write(&path, yaml).expect("tenancy config written");
    path
}

/// A child process (an operator, an API server), killed when the test ends
/// however it ends.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Ready condition's reason.
pub fn ready_reason(a: &CosmosAccountCMK) -> Option<String> {
    a.status
        .as_ref()
        .and_then(|s| cmk_operator::api::conditions::find(&s.conditions, "Ready"))
        .map(|c| c.reason.clone())
}

/// Name of an object, for messages.
pub fn name_of<K: Resource>(k: &K) -> String {
    k.name_any()
}

impl Env {
    /// The operator's own adapter, for changes "behind the operator's back" in tests.
    pub fn backdoor(&self) -> SdkAzure {
        self.azure()
    }

    /// A raw ARM call with a token minted by the simulator (for what no port method does,
    /// such as creating an account without CMK).
    pub async fn arm(
        &self,
        method: azure_core::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (_, _, operator) = self.sim.operator_credentials();
        let token = self
            .sim
            .issue_token(&operator, "https://management.azure.com", 3600);
        let url = azure_core::Url::parse(&format!(
            "{}{}",
            self.sim.arm_endpoint(),
            path.trim_start_matches('/')
        ))
        .expect("url");
        let mut req = azure_core::Request::new(url, method);
        req.insert_header("authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            req.insert_header("content-type", "application/json");
            req.set_body(serde_json::to_vec(&b).expect("json"));
        }
        let resp = self
            .sim
            .http_client()
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

    /// The restorable id of a continuous account of the example subscription
    /// (in eastus), and a restore time a second after now (a whole second, as
    /// the restore timestamp is written).
    pub async fn restore_point(&self, account: &str) -> (String, String) {
        let (_, source) = self
            .arm(azure_core::Method::Get, &Env::account_path(account), None)
            .await;
        let instance = source["properties"]["instanceId"]
            .as_str()
            .expect("instanceId");
        let restorable = format!(
            "/subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/eastus/restorableDatabaseAccounts/{instance}"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let when = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        (restorable, when)
    }

    /// Whether Azure has the account (of the example subscription).
    pub async fn account_exists(&self, name: &str) -> bool {
        let (status, _) = self
            .arm(azure_core::Method::Get, &Env::account_path(name), None)
            .await;
        status == 200
    }

    /// ARM path of an account of the example subscription.
    pub fn account_path(name: &str) -> String {
        format!(
            "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/{name}?api-version=2025-10-15"
        )
    }
}

impl Env {
    /// Waits until the account object is gone from Kubernetes (finalizer done).
    pub async fn wait_gone(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self
            .accounts()
            .get_opt(name)
            .await
            .expect("get works")
            .is_some()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} still exists after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new version of the key `key_uri` names (`…/keys/{name}`), made as a
    /// person would (Key Vault rotation), through the operator's adapter.
    pub async fn new_key_version(&self, key_uri: &str) {
        use cmk_operator::azure::AzurePort;
        let (vault, name) = key_uri.rsplit_once("/keys/").expect("a key URI");
        self.backdoor()
            .create_key(
                &format!("{vault}/"),
                name.trim_end_matches('/'),
                cmk_operator::api::KeyType::Rsa,
                3072,
            )
            .await
            .expect("a new key version");
    }

    /// Re-enables a key version through the Key Vault data plane.
    pub async fn enable_key_version(&self, key_uri: &str, version: &str) {
        self.set_key_version_enabled(key_uri, version, true).await;
    }

    /// Enables or disables a key version as a person would, through Key Vault's
    /// data plane (the operator's adapter never disables a key's latest version).
    pub async fn set_key_version_enabled(&self, key_uri: &str, version: &str, enabled: bool) {
        self.update_key_version(key_uri, version, json!({"enabled": enabled}))
            .await;
    }

    /// Changes a key version's attributes (`enabled`, `exp`, ...) through Key
    /// Vault's data plane, as a person would.
    pub async fn update_key_version(&self, key_uri: &str, version: &str, attributes: Value) {
        let (_, _, operator) = self.sim.operator_credentials();
        let token = self
            .sim
            .issue_token(&operator, "https://vault.azure.net", 3600);
        let url =
            azure_core::Url::parse(&format!("{key_uri}/{version}?api-version=7.6")).expect("url");
        let mut req = azure_core::Request::new(url, azure_core::Method::Patch);
        req.insert_header("authorization", format!("Bearer {token}"));
        req.insert_header("content-type", "application/json");
        req.set_body(
            serde_json::to_vec(&serde_json::json!({ "attributes": attributes })).expect("json"),
        );
        let resp = self
            .sim
            .http_client()
            .execute_request(&req)
            .await
            .expect("http");
        assert_eq!(u16::from(resp.status()), 200, "key version updated");
    }
}

impl Env {
    /// Creates a first-party CMK account outside the operator (as a person,
    /// Terraform or another cluster would) and waits until Azure finished it.
    pub async fn create_foreign_account(
        &self,
        name: &str,
        key_uri: &str,
        tags: std::collections::BTreeMap<String, String>,
    ) {
        self.create_foreign_account_in(SUB, name, key_uri, tags, Default::default())
            .await;
    }

    /// The same in another subscription (its Cosmos DB provider registered first).
    pub async fn create_foreign_account_in(
        &self,
        subscription: &str,
        name: &str,
        key_uri: &str,
        tags: std::collections::BTreeMap<String, String>,
        backup: cmk_operator::api::BackupPolicy,
    ) {
        use cmk_operator::azure::AzurePort;
        if subscription != SUB {
            let path = format!(
                "/subscriptions/{subscription}/providers/Microsoft.DocumentDB/register?api-version=2025-04-01"
            );
            let (status, _) = self.arm(azure_core::Method::Post, &path, None).await;
            assert_eq!(status, 200, "provider registration in {subscription}");
            let get = format!(
                "/subscriptions/{subscription}/providers/Microsoft.DocumentDB?api-version=2025-04-01"
            );
            for _ in 0..100 {
                let (_, body) = self.arm(azure_core::Method::Get, &get, None).await;
                if body["registrationState"] == "Registered" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let azure = self.backdoor();
        let op = azure
            .create_account(&cmk_operator::azure::NewAccount {
                account: cmk_operator::azure::AccountRef {
                    subscription_id: subscription.into(),
                    resource_group: RG.into(),
                    name: name.into(),
                },
                kind: "GlobalDocumentDB".into(),
                locations: vec![cmk_operator::api::Location {
                    location_name: "eastus".into(),
                    failover_priority: 0,
                    is_zone_redundant: false,
                }],
                capabilities: vec![],
                key_uri: key_uri.into(),
                default_identity: "FirstPartyIdentity".into(),
                user_assigned_identity: None,
                backup,
                restore: None,
                tags,
                settings: Default::default(),
            })
            .await
            .expect("foreign account accepted");
        for _ in 0..100 {
            if azure.poll(&op).await.expect("poll")
                != cmk_operator::reconcile::account::OperationState::InProgress
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("foreign account {name} not created in 5 s");
    }
}
