//! The sovereign clouds end to end: the operator addresses the simulator as
//! Azure US Government or Azure China (that cloud's ARM and login hosts, token
//! audiences and vault suffix, as `--cloud` does against Azure), and the seed's
//! first-party and user-assigned paths reach Ready, with only the shipped
//! role, without one request leaving that cloud.

use std::process::{Command, Stdio};

use cmk_operator::api::{OperationKind, PendingOperation};
use cmk_operator::azure::cloud::Cloud;
use cmk_operator::azure::{AzureError, AzurePort};
use serde_json::json;

use crate::azure_permissions::restricted_in;
use crate::common;
use crate::support::*;

/// Whether `host` is one of `cloud`'s: its ARM or login host, or a vault under its suffix.
fn on_cloud(cloud: &Cloud, host: &str) -> bool {
    let (names, suffix) = cloud.hosts();
    names.iter().any(|n| n == host)
        || host
            .strip_suffix(suffix)
            .is_some_and(|v| v.ends_with('.') && v.len() > 1)
}

fn host_of(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Every request so far went to `cloud`'s hosts with `cloud`'s audiences.
fn assert_stayed_on(env: &Env, cloud: &Cloud) {
    let audiences = [
        String::new(),
        cloud.arm_audience.clone(),
        cloud.key_vault_audience.clone(),
    ];
    let seen = env.sim.host_audiences();
    for ((host, audience), n) in &seen {
        assert!(
            on_cloud(cloud, host),
            "{n} request(s) to {host}, not a host of {cloud}"
        );
        assert!(
            audiences.contains(audience),
            "{n} request(s) to {host} with a token for {audience}, not {cloud}'s"
        );
    }
    for e in env.sim.ledger() {
        let host = e.host.clone().unwrap_or_default();
        assert!(
            on_cloud(cloud, &host),
            "{} {} went to {host:?}",
            e.method,
            e.path
        );
    }
    // The whole path ran there: a token from its authority, ARM and Key Vault
    // called with its audiences.
    let (names, _) = cloud.hosts();
    let used =
        |host: &str, audience: &str| seen.contains_key(&(host.to_owned(), audience.to_owned()));
    assert!(
        names.iter().all(|n| seen.keys().any(|(h, _)| h == n)),
        "{seen:?}"
    );
    assert!(used(&names[0], &cloud.arm_audience), "{seen:?}");
    assert!(
        seen.keys().any(|(h, a)| on_cloud(cloud, h)
            && !names.contains(h)
            && *a == cloud.key_vault_audience),
        "{seen:?}"
    );
}

/// The operator holds only the shipped role (deploy/azure/operator-role.json,
/// unchanged) plus the example world's Key Vault data access.
async fn whole_path_on(prefix: &str, cloud: Cloud) {
    let env = restricted_in(prefix, None, Some(cloud.clone())).await;
    let (_, suffix) = cloud.hosts();
    let suffix = suffix.to_owned();
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    env.apply_example("01-binding-rbac.yaml", json!({})).await;
    env.apply_example("12-account-user-assigned.yaml", json!({}))
        .await;
    let mut versions = Vec::new();
    for (binding, account, identity, vault, key) in [
        (
            "orders-key",
            "orders",
            "FirstPartyIdentity",
            "cmk-demo-policies",
            "cosmos-orders",
        ),
        (
            "billing-key",
            "billing",
            "UserAssignedIdentity=",
            "cmk-demo-rbac",
            "cosmos-billing",
        ),
    ] {
        let b = env
            .binding_reason(binding, "KeyReady")
            .await
            .status
            .unwrap();
        let a = env.account_reason(account, "Ready").await.status.unwrap();
        let key_uri = b.key_uri.clone().unwrap_or_default();
        assert!(
            host_of(&key_uri).ends_with(&format!(".{suffix}")),
            "{binding}: key URI {key_uri} is not under {suffix}"
        );
        let vault_uri = env
            .sim
            .vault_uri_in(&cloud.name, vault)
            .expect("seeded vault");
        assert_eq!(key_uri, format!("{vault_uri}keys/{key}"), "{binding}");
        assert_eq!(
            a.key_vault_key_uri, b.key_uri,
            "{account} holds the binding's key"
        );
        assert!(
            a.default_identity
                .as_deref()
                .unwrap_or("")
                .starts_with(identity),
            "{account}: {:?}",
            a.default_identity
        );
        versions.push((key_uri, b.key_version.unwrap_or_default()));
    }
    assert_stayed_on(&env, &cloud);

    // The origin check is this cloud's: a key or poll URL on any other
    // cloud's hosts is refused before a token leaves.
    let azure = env.backdoor();
    let (key_uri, version) = &versions[0];
    for other in [Cloud::public(), Cloud::us_government(), Cloud::china()] {
        if other.name == cloud.name {
            continue;
        }
        let (_, other_suffix) = other.hosts();
        let foreign = key_uri.replace(&format!(".{suffix}"), &format!(".{other_suffix}"));
        assert_ne!(&foreign, key_uri);
        let err = azure
            .disable_key_version(&foreign, version)
            .await
            .unwrap_err();
        assert!(
            matches!(err, AzureError::Rejected { .. }),
            "{foreign}: {err}"
        );
        let op = PendingOperation {
            kind: OperationKind::CreateAccount,
            poll_url: format!(
                "{}subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/eastus/operationsStatus/1",
                other.resource_manager
            ),
            started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
            retry_after_ms: None,
        };
        let err = azure.poll(&op).await.unwrap_err();
        assert!(
            matches!(&err, AzureError::Rejected { code, .. } if code == "InvalidPollUrl"),
            "{}: {err}",
            op.poll_url
        );
    }
    assert_stayed_on(&env, &cloud);
}

#[tokio::test]
async fn us_government_runs_the_whole_path() {
    whole_path_on("usgov", Cloud::us_government()).await;
}

#[tokio::test]
async fn china_runs_the_whole_path() {
    whole_path_on("china", Cloud::china()).await;
}

/// The same slice on the public cloud, so all three run one test.
#[tokio::test]
async fn public_cloud_runs_the_whole_path() {
    whole_path_on("public", Cloud::public()).await;
}

/// `cmk-operator run --azure simulator --cloud NAME` (plus `extra`) in the
/// test's namespace, the test's in-process operator stopped first.
async fn operator_binary(env: &mut Env, cloud: &str, extra: &[String]) -> Process {
    env.stop_operator().await;
    Process(
        Command::new(env!("CARGO_BIN_EXE_cmk-operator"))
            .args(["--log-format", "text", "run", "--azure", "simulator"])
            .args(["--cloud", cloud])
            .args(extra)
            .args(["--namespace", &env.ns, "--leader-election", "false"])
            .arg("--tenancy-config")
            .arg(tenancy_config_file(&env.ns))
            .args(["--health-listen", "127.0.0.1:0", "--poll-seconds", "1"])
            .env("KUBECONFIG", common::kubeconfig_path())
            .env_remove("CMK_FIRST_PARTY_PRINCIPAL_ID")
            .env_remove("AZURE_CLIENT_ID")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the operator binary starts"),
    )
}

/// The binary with `--cloud AzureChinaCloud` and an external simulator
/// (`--simulator-url`): it addresses the simulator as China, nothing else.
#[tokio::test]
async fn the_binary_honours_cloud_with_an_external_simulator() {
    let cloud = Cloud::china();
    let mut env = Env::start_in("cloud-ext", Default::default(), Some(cloud.clone())).await;
    let ca = simulator_ca_file(&env.sim, &env.ns);
    let extra = [
        "--simulator-url".to_owned(),
        env.sim.base_url().to_owned(),
        "--simulator-ca-file".to_owned(),
        ca.display().to_string(),
    ];
    let _operator = operator_binary(&mut env, &cloud.name, &extra).await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    let b = env
        .binding_reason("orders-key", "KeyReady")
        .await
        .status
        .unwrap();
    env.account_reason("orders", "Ready").await;
    assert_eq!(
        b.key_uri.as_deref(),
        Some("https://cmk-demo-policies.vault.azure.cn/keys/cosmos-orders")
    );
    assert_stayed_on(&env, &cloud);
}

/// The binary with `--cloud AzureUSGovernment` and its embedded simulator:
/// the demo's key URI carries the Government suffix.
#[tokio::test]
async fn the_binary_honours_cloud_with_the_embedded_simulator() {
    let mut env = Env::start("cloud-emb").await;
    let _operator = operator_binary(&mut env, "AzureUSGovernment", &[]).await;
    env.apply_example("00-binding-access-policy.yaml", json!({}))
        .await;
    env.apply_example("10-account-first-party.yaml", json!({}))
        .await;
    let b = env
        .binding_reason("orders-key", "KeyReady")
        .await
        .status
        .unwrap();
    env.account_reason("orders", "Ready").await;
    assert_eq!(
        b.key_uri.as_deref(),
        Some("https://cmk-demo-policies.vault.usgovcloudapi.net/keys/cosmos-orders")
    );
}
