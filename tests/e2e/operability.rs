//! The operator process as a platform team runs it: `/readyz` waits for
//! leadership and the first list, a failing watch is logged with its kind,
//! the per-object gauges follow the cache (a deleted object leaves them), and
//! a missing or outdated CRD stops the start with a message naming it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use serde_json::{Value, json};

use crate::common;
use crate::support::*;

/// How long anything below may take on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// `cmk-operator run --azure simulator` with JSON logs in `log`, killed when
/// the test ends however it ends.
fn operator(kubeconfig: &Path, log: &Path, args: &[&str]) -> Process {
    let file = std::fs::File::create(log).expect("log file");
    Process(
        Command::new(env!("CARGO_BIN_EXE_cmk-operator"))
            .args([
                "run",
                "--azure",
                "simulator",
                "--health-listen",
                "127.0.0.1:0",
            ])
            .args(["--simulator-lro-ms", "100", "--poll-seconds", "1"])
            // The narrow test RBAC grants no read of kube-system.
            .args(["--cluster-id", "e2e-operability"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", "operability")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("the operator binary starts"),
    )
}

/// The JSON log lines written so far (a line being written is skipped).
fn log_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for a log line that `matches` (its `fields`).
async fn logged(log: &Path, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(line) = log_lines(log).into_iter().find(|l| matches(&l["fields"])) {
            return line["fields"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never logged: {what}; the log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where the process serves `/readyz` (it logs the port it bound).
async fn health_address(log: &Path) -> SocketAddr {
    let fields = logged(log, "the health listener", |f| {
        f["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("serving /healthz"))
    })
    .await;
    fields["bound"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("a bound address")
}

/// A plain HTTP/1.1 GET: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("health listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.expect("answered");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, body.to_owned())
}

/// Waits until `path` answers `status` with a body starting with `body`.
async fn answers(addr: SocketAddr, path: &str, status: u16, body: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (s, b) = get(addr, path).await;
        if s == status && b.starts_with(body) {
            return b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} answers {s} {b:?}, not {status} {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `/metrics` holds `line`.
async fn exported(addr: SocketAddr, line: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, text) = get(addr, "/metrics").await;
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/metrics never showed {line}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A ServiceAccount with no permission yet, and a kubeconfig holding only its token.
async fn bare_identity(client: &kube::Client, ns: &str) -> PathBuf {
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("operator".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .expect("ServiceAccount created");
    let token = common::rbac::issue_token(ns, "operator").await;
    common::rbac::write_token_kubeconfig(ns, "operator", &token)
}

/// Grants the ServiceAccount of [`bare_identity`] `rules` in `ns`.
async fn grant(client: &kube::Client, ns: &str, name: &str, rules: Value) {
    let rules: Vec<PolicyRule> = serde_json::from_value(rules).expect("rules");
    let meta = ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    };
    let role = Role {
        metadata: meta.clone(),
        rules: Some(rules),
    };
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("Role created");
    let binding = RoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "operator".into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("RoleBinding created");
}

fn lease_rules() -> Value {
    json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}])
}

/// The chart's rules for the resources, in one namespace.
fn resource_rules() -> Value {
    json!([
        {"apiGroups": ["cosmoscmk.io"], "resources": ["keyvaultbindings", "cosmosaccountcmks"],
         "verbs": ["get", "list", "watch", "patch", "update"]},
        {"apiGroups": ["cosmoscmk.io"], "resources": ["keyvaultbindings/status", "cosmosaccountcmks/status"],
         "verbs": ["get", "patch", "update"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    ])
}

fn watch_failed(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |f| {
        f["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("watch failed"))
            && f["kind"] == kind
            && f["error"].as_str().is_some_and(|e| e.contains("forbidden"))
    }
}

#[tokio::test]
async fn readyz_waits_for_the_lease_and_the_first_list_and_gauges_follow_the_cache() {
    let (client, ns) = common::test_namespace("readyz").await;
    let kubeconfig = bare_identity(&client, &ns).await;
    let log = std::env::temp_dir().join(format!("cmk-operability-{ns}.log"));
    let tenancy = tenancy_config_file(&ns);
    let _op = operator(
        &kubeconfig,
        &log,
        &[
            "--namespace",
            &ns,
            "--lease-namespace",
            &ns,
            "--tenancy-config",
            tenancy.to_str().expect("utf-8 path"),
        ],
    );
    let addr = health_address(&log).await;

    // The lease cannot be read: leadership is not settled.
    logged(&log, "a failed try at the lease", |f| {
        f["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("leader election: cannot read or write the lease"))
    })
    .await;
    assert_eq!(
        get(addr, "/readyz").await,
        (503, "starting: leadership not settled".into())
    );
    assert_eq!(get(addr, "/healthz").await, (200, "ok".into()));

    // Leader, but the resources cannot be listed: both watches fail, each
    // logged with its kind, and the process is not ready.
    grant(&client, &ns, "leases", lease_rules()).await;
    logged(
        &log,
        "the bindings' watch failing",
        watch_failed("KeyVaultBinding"),
    )
    .await;
    logged(
        &log,
        "the accounts' watch failing",
        watch_failed("CosmosAccountCMK"),
    )
    .await;
    assert_eq!(
        get(addr, "/readyz").await,
        (
            503,
            "syncing: the caches do not hold their first list yet".into()
        )
    );
    exported(addr, "cmk_operator_leader 1").await;

    // Allowed: the first lists come in (the watch retries within 5 s).
    grant(&client, &ns, "resources", resource_rules()).await;
    answers(addr, "/readyz", 200, "ok").await;

    // A binding counts while it is in the cache, and not once it is deleted.
    let ready = r#"cmk_operator_resources{kind="KeyVaultBinding",phase="Ready"}"#;
    exported(addr, &format!("{ready} 0")).await;
    let text = std::fs::read_to_string(
        common::repo_root().join("deploy/examples/00-binding-access-policy.yaml"),
    )
    .expect("example");
    let binding: cmk_operator::api::KeyVaultBinding = serde_saphyr::from_str(&text).expect("yaml");
    let bindings: Api<cmk_operator::api::KeyVaultBinding> = Api::namespaced(client.clone(), &ns);
    let name = name_of(
        &bindings
            .create(&PostParams::default(), &binding)
            .await
            .expect("binding created"),
    );
    exported(addr, &format!("{ready} 1")).await;
    bindings
        .delete(&name, &DeleteParams::default())
        .await
        .expect("binding deleted");
    exported(addr, &format!("{ready} 0")).await;
}

#[tokio::test]
async fn a_standby_is_ready_once_the_lease_answers_that_another_holds_it() {
    let (client, ns) = common::test_namespace("standby").await;
    let kubeconfig = bare_identity(&client, &ns).await;
    grant(&client, &ns, "leases", lease_rules()).await;
    let held = Lease {
        metadata: ObjectMeta {
            name: Some("cosmos-cmk-operator".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("another-replica".into()),
            lease_duration_seconds: Some(3600),
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        }),
    };
    Api::<Lease>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &held)
        .await
        .expect("lease created");
    let log = std::env::temp_dir().join(format!("cmk-operability-{ns}.log"));
    let _op = operator(
        &kubeconfig,
        &log,
        &["--namespace", &ns, "--lease-namespace", &ns],
    );
    let addr = health_address(&log).await;
    answers(addr, "/readyz", 200, "standby").await;
    exported(addr, "cmk_operator_leader 0").await;
}

/// A kube-apiserver of its own on the test control plane's etcd, under a
/// prefix of its own: an empty cluster, so CRDs can be missing or outdated
/// there without touching what the other tests use. Stopped, and its data
/// deleted, when dropped.
struct PrivateApiServer {
    process: Process,
    etcd: String,
    prefix: String,
    kubeconfig: PathBuf,
}

impl PrivateApiServer {
    async fn start() -> PrivateApiServer {
        let admin = common::kubeconfig_path();
        let cp = admin.parent().expect("the control plane's directory");
        let ports = std::fs::read_to_string(cp.join("run/ports.env")).expect("ports.env");
        let etcd_port = ports
            .lines()
            .find_map(|l| l.strip_prefix("ETCD_PORT="))
            .expect("ETCD_PORT");
        let etcd = format!("http://127.0.0.1:{etcd_port}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let prefix = format!("/cmk-private-{}-{port}", std::process::id());
        let scratch = std::env::temp_dir().join(prefix.trim_start_matches('/'));
        std::fs::create_dir_all(&scratch).expect("scratch dir");
        let pki = |f: &str| cp.join("pki").join(f);
        let process = Process(
            Command::new(cp.join("bin/kube-apiserver"))
                .args(["--etcd-servers", &etcd, "--etcd-prefix", &prefix])
                .args(["--bind-address", "127.0.0.1", "--secure-port"])
                .arg(port.to_string())
                .args(["--advertise-address", "127.0.0.1"])
                .args(["--endpoint-reconciler-type", "none"])
                .arg("--cert-dir")
                .arg(&scratch)
                .arg("--tls-cert-file")
                .arg(pki("apiserver.crt"))
                .arg("--tls-private-key-file")
                .arg(pki("apiserver.key"))
                .arg("--client-ca-file")
                .arg(pki("ca.crt"))
                .args(["--authorization-mode", "RBAC"])
                .args(["--service-account-issuer", "https://kubernetes.default.svc"])
                .arg("--service-account-key-file")
                .arg(pki("sa.pub"))
                .arg("--service-account-signing-key-file")
                .arg(pki("sa.key"))
                .args(["--service-cluster-ip-range", "10.0.0.0/24"])
                .args(["--disable-admission-plugins", "ServiceAccount"])
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(scratch.join("kube-apiserver.log")).expect("log file"),
                )
                .spawn()
                .expect("kube-apiserver starts"),
        );
        let mut kubeconfig: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(admin).expect("admin kubeconfig"))
                .expect("kubeconfig");
        kubeconfig["clusters"][0]["cluster"]["server"] = json!(format!("https://127.0.0.1:{port}"));
        let path = scratch.join("kubeconfig");
        std::fs::write(&path, serde_saphyr::to_string(&kubeconfig).expect("yaml"))
            .expect("kubeconfig written");
        let server = PrivateApiServer {
            process,
            etcd,
            prefix,
            kubeconfig: path,
        };
        let client = server.client().await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while client.apiserver_version().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the private kube-apiserver did not answer; its log is in {}",
                scratch.display()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        server
    }

    async fn client(&self) -> kube::Client {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig"),
            &Default::default(),
        )
        .await
        .expect("kubeconfig valid");
        kube::Client::try_from(config).expect("client builds")
    }
}

impl Drop for PrivateApiServer {
    fn drop(&mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
        // Everything it stored is under its prefix: etcd's JSON gateway
        // deletes the range [prefix, prefix + 1).
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut end = self.prefix.clone().into_bytes();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let body =
            json!({"key": b64(&self.prefix), "range_end": b64(&String::from_utf8_lossy(&end))});
        let _ = Command::new("curl")
            .args(["-fsS", "--max-time", "5", "-X", "POST", "-d"])
            .arg(body.to_string())
            .arg(format!("{}/v3/kv/deleterange", self.etcd))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs the operator against `server` until it exits, and returns its log;
/// panics if it is still running after [`PATIENCE`].
async fn refused_start(server: &PrivateApiServer, ns: &str) -> String {
    let log = std::env::temp_dir().join(format!("cmk-crd-check-{ns}.log"));
    let mut op = operator(
        &server.kubeconfig,
        &log,
        &["--leader-election=false", "--namespace", ns],
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = op.0.try_wait().expect("waitable") {
            assert_eq!(status.code(), Some(1), "exits with the error status");
            return std::fs::read_to_string(&log).expect("log");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator did not stop: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_missing_or_outdated_crd_stops_the_start_naming_it() {
    let server = PrivateApiServer::start().await;
    let client = server.client().await;

    let err = refused_start(&server, "missing").await;
    assert!(
        err.contains("error: the CustomResourceDefinition keyvaultbindings.cosmoscmk.io (cosmoscmk.io/v1alpha1 KeyVaultBinding) is not installed"),
        "{err}"
    );

    // The CRDs of an older version: a status field and a phase it lacks.
    let dir = std::env::temp_dir().join(format!("cmk-outdated-crds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut docs = Vec::new();
    for crd in cmk_operator::api::crds() {
        let mut crd = serde_json::to_value(crd).expect("json");
        if crd["spec"]["names"]["kind"] == "CosmosAccountCMK" {
            let schema = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let status = &mut schema["properties"]["status"]["properties"];
            status
                .as_object_mut()
                .expect("status")
                .remove("keyVersionInUse");
            status["phase"]["enum"] = json!(["Pending", "Waiting", "Provisioning", "Ready"]);
        }
        docs.push(format!(
            "---\n{}",
            serde_saphyr::to_string(&crd).expect("yaml")
        ));
    }
    std::fs::write(dir.join("crds.yaml"), docs.concat()).expect("written");
    common::apply_crds(&client, &dir).await;
    let err = refused_start(&server, "outdated").await;
    assert!(
        err.contains("error: the installed CustomResourceDefinition cosmosaccountcmks.cosmoscmk.io is older than this cmk-operator"),
        "{err}"
    );
    for named in [
        "it lacks .status.keyVersionInUse",
        ".status.phase does not allow Revoked, Failed, Deleting",
        "kubectl apply --server-side",
    ] {
        assert!(err.contains(named), "{named:?} not in {err}");
    }
    assert!(
        !err.contains("keyvaultbindings.cosmoscmk.io is older"),
        "the current one passes: {err}"
    );

    // This version's CRDs, as the API server publishes them, pass.
    common::apply_crds(&client, &common::repo_root().join("crds")).await;
    let log =
        std::env::temp_dir().join(format!("cmk-crd-check-current-{}.log", std::process::id()));
    let _op = operator(
        &server.kubeconfig,
        &log,
        &["--leader-election=false", "--namespace", "default"],
    );
    let addr = health_address(&log).await;
    answers(addr, "/readyz", 200, "ok").await;
}
