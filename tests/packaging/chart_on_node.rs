//! The operator installed as users install it, on a real node: the image
//! `deploy/image/build` makes, imported into the test cluster's containerd
//! (`tests/cluster/import`), deployed by `helm install` of the chart and by
//! `kubectl apply -k` of the kustomize base, its Pods run by kubelet with
//! containerd and runc (tests/cluster/). Azure is the simulator, started by
//! this test on the host's loopback and reached from the Pods through a
//! reverse `nsproxy` on the node's address (`simulator.url` and
//! `simulator.caCert`, the chart's tests-only values).
//!
//! Helm: the Deployment rolls out; both Pods are Running and Ready through
//! their probes; the projected workload-identity token is mounted where
//! AZURE_FEDERATED_TOKEN_FILE points and the API server accepts it; exactly
//! one replica leads, and deleting its Pod (gracefully, then its container
//! killed with SIGKILL) hands the Lease to another each time; the
//! examples in deploy/examples (all but the restore, as deploy/demo) reach
//! Ready; `helm upgrade` with a changed value rolls out a new ReplicaSet;
//! after the examples are deleted, `helm uninstall` leaves no operator object
//! (see `assert_helm_release_gone` for what that means) but the CRDs
//! (`crds.keep`). Kustomize: an overlay of the base (written by the test)
//! rolls out, turns Ready, elects one leader, brings one example to Ready,
//! and `kubectl delete -k` leaves nothing.
//!
//! The two halves share the cluster, the CRDs and the examples' Azure names,
//! so they run one after the other (a lock) and each starts from a clean
//! cluster. Needs what `tests/cluster/up` and `deploy/image/build` need
//! (root, Go, containerd, runc, mmdebstrap, jq); fails with their message
//! otherwise.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cmk_operator::api::{CosmosAccountCMK, KeyVaultBinding};
use cmk_operator::sim::{AppRegistration, FederatedCredential, Seed, SimConfig, SimHandle};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, LogParams, ObjectMeta, Patch, PatchParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use serde_json::json;

pub(crate) const NODE_IP: &str = "10.213.0.2";
/// Where the chart projects the federated token (AZURE_FEDERATED_TOKEN_FILE),
/// as Azure workload identity's webhook does.
const TOKEN_FILE: &str = "/var/run/secrets/azure/tokens/azure-identity-token";
const AUDIENCE: &str = "api://AzureADTokenExchange";
/// The Kubernetes service-account token issuer of the test cluster
/// (tests/cluster/up), which the simulator's federated credential names.
const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc";
const CRDS: [&str; 2] = [
    "keyvaultbindings.cosmoscmk.io",
    "cosmosaccountcmks.cosmoscmk.io",
];
/// Where the examples are applied (the tenancy policy allows it).
pub(crate) const EXAMPLES_NS: &str = "cmk-examples";
/// The Helm release and its namespace.
pub(crate) const RELEASE: &str = "cmk";
pub(crate) const HELM_NS: &str = "cmk-chart";
/// What the kustomize base installs into.
const KUSTOMIZE_NS: &str = "cmk-system";

/// The two halves use the same cluster-wide names; one at a time.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn root() -> &'static Path {
    common::repo_root()
}

/// `tests/cluster/up`, once per test binary: its kubeconfig.
pub(crate) fn kubeconfig() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| common::script_output_path("tests/cluster/up"))
}

/// The node's network namespace (`tests/cluster/lib.sh` names it).
pub(crate) fn netns() -> &'static str {
    static NS: OnceLock<String> = OnceLock::new();
    NS.get_or_init(|| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(". tests/cluster/lib.sh && printf %s \"$netns\"")
            .current_dir(root())
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "tests/cluster/lib.sh: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    })
}

pub(crate) async fn client() -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig()).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    kube::Client::try_from(config).expect("client builds")
}

/// Runs `cmd`, panicking with its output unless it succeeds; its stdout.
pub(crate) fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cluster's kubectl.
pub(crate) fn kubectl(args: &[&str]) -> String {
    run(
        &format!("kubectl {args:?}"),
        Command::new(root().join("target/cluster/bin/kubectl"))
            .arg("--kubeconfig")
            .arg(kubeconfig())
            .args(args),
    )
}

/// helm (tests/helm/build) against the test cluster.
pub(crate) fn helm(args: &[&str]) -> String {
    let kubeconfig = kubeconfig().to_str().expect("utf-8 path");
    let mut all = vec!["--kubeconfig", kubeconfig];
    all.extend_from_slice(args);
    common::helm::helm(&all).unwrap_or_else(|e| panic!("helm {args:?} failed:\n{e}"))
}

/// What `deploy/image/build` made: the OCI archive, the OCI layout beside it,
/// and the image's repository and tag.
pub(crate) struct BuiltImage {
    pub(crate) archive: PathBuf,
    pub(crate) layout: PathBuf,
    pub(crate) repository: String,
    pub(crate) tag: String,
}

/// The operator's image, built by `deploy/image/build` (the release binary
/// and the Debian base; nothing pulled), once per test binary.
pub(crate) fn built_image() -> &'static BuiltImage {
    static IMAGE: OnceLock<BuiltImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let started = Instant::now();
        let mut build = crate::image::image_build_command();
        let stdout = run("deploy/image/build", build.stderr(Stdio::inherit()));
        eprintln!(
            "deploy/image/build ({:.0} s):\n{stdout}",
            started.elapsed().as_secs_f64()
        );
        let line = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_else(|| {
                    panic!("no {key} line in deploy/image/build's output:\n{stdout}")
                })
                .to_owned()
        };
        let name = line("image:");
        let (repository, tag) = name.rsplit_once(':').expect("image name has a tag");
        BuiltImage {
            archive: PathBuf::from(stdout.lines().last().expect("the archive path").trim()),
            layout: PathBuf::from(line("layout:")),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        }
    })
}

/// The operator's image imported into the node's containerd, once per test
/// binary. Its repository and tag.
fn image() -> &'static (String, String) {
    static IMAGE: OnceLock<(String, String)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let built = built_image();
        kubeconfig(); // the cluster is up before importing
        run(
            "tests/cluster/import",
            Command::new(root().join("tests/cluster/import")).arg(&built.archive),
        );
        (built.repository.clone(), built.tag.clone())
    })
}

/// A reverse nsproxy: `NODE_IP:port` in the node's namespace (where Pods
/// and containerd connect) to `127.0.0.1:port` on the host.
pub(crate) fn reverse_proxy(port: u16) -> Child {
    Command::new(root().join("target/cluster/bin/nsproxy"))
        .args(["-listen", &format!("{NODE_IP}:{port}")])
        .args(["-listen-netns", &format!("/run/netns/{}", netns())])
        .args(["-connect", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .expect("nsproxy starts")
}

/// Waits until `https://name:port/path` answers from inside the node's
/// namespace, connected as a Pod's connection arrives (`NODE_IP:port`, the
/// reverse nsproxy), the server's certificate verified against `ca` for `name`.
pub(crate) async fn answers_in_node(ca: &Path, name: &str, port: u16, path: &str) {
    common::eventually(
        Duration::from_secs(30),
        &format!("https://{name}:{port}{path} answering through the reverse nsproxy"),
        || {
            let ok = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", netns()))
                .args(["curl", "-fsS", "--max-time", "2", "--cacert"])
                .arg(ca)
                .arg("--connect-to")
                .arg(format!("{name}:{port}:{NODE_IP}:{port}"))
                .arg(format!("https://{name}:{port}{path}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            std::future::ready(ok.then_some(()))
        },
    )
    .await;
}

/// The Azure simulator on the host's loopback, seeded with the world
/// deploy/examples expects (as `run --azure simulator` embeds it), and a
/// reverse nsproxy that lets the Pods reach it at `NODE_IP:port`.
pub(crate) struct Azure {
    sim: SimHandle,
    proxy: Child,
    pub(crate) url: String,
}

impl Azure {
    pub(crate) async fn start() -> Azure {
        let sim = cmk_operator::embedded::start(SimConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            lro_duration: Duration::from_secs(1),
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let port = sim.addr().port();
        let proxy = reverse_proxy(port);
        let azure = Azure {
            sim,
            proxy,
            url: format!("https://{NODE_IP}:{port}/"),
        };
        // From inside the node's namespace, as a Pod's connection arrives:
        // the simulator's admin API through the proxy, its CA trusted.
        let ca = root().join(format!("target/chart-on-node/sim-ca-{port}.pem"));
        std::fs::create_dir_all(ca.parent().expect("dir")).expect("scratch dir");
        std::fs::write(&ca, azure.sim.ca_pem()).expect("CA written");
        answers_in_node(&ca, "127.0.0.1", port, "/_admin/health").await;
        azure
    }

    pub(crate) fn ca_pem(&self) -> &str {
        self.sim.ca_pem()
    }

    pub(crate) fn tenant(&self) -> &str {
        self.sim.tenant_id()
    }

    /// The operator's service principal federated with `namespace/account`'s
    /// tokens (as workload identity is set up in Azure); its client id. The
    /// image has no simulator secret: it signs in as in production.
    pub(crate) fn federate_operator(&self, namespace: &str, account: &str) -> String {
        let (client_id, secret, object_id) = self.sim.operator_credentials();
        self.sim
            .seed(&Seed {
                apps: vec![AppRegistration {
                    client_id: client_id.clone(),
                    object_id,
                    client_secret: Some(secret),
                    federated_credentials: vec![FederatedCredential {
                        issuer: CLUSTER_ISSUER.into(),
                        subject: format!("system:serviceaccount:{namespace}:{account}"),
                        name: None,
                        audiences: vec![],
                    }],
                    display_name: Some("cmk-operator".into()),
                }],
                ..Default::default()
            })
            .expect("federated credential seeded");
        client_id
    }

    /// The Cosmos DB first party's object id in the simulator's tenant.
    pub(crate) fn first_party(&self) -> String {
        self.sim.config().cosmos_first_party_object_id.clone()
    }
}

impl Drop for Azure {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

/// SIGKILL to a container, through the node's containerd (`ctr`).
fn kill_container(id: &str) {
    let ports = std::fs::read_to_string(root().join("target/cluster/run/ports.env"))
        .expect("target/cluster/run/ports.env");
    let sock = ports
        .lines()
        .find_map(|l| l.strip_prefix("SOCK="))
        .expect("SOCK= in ports.env");
    run(
        "ctr task kill",
        Command::new(root().join("target/cluster/bin/ctr")).args([
            "--address",
            sock,
            "-n",
            "k8s.io",
            "task",
            "kill",
            "-s",
            "SIGKILL",
            id,
        ]),
    );
}

/// A scratch directory of this test under target/.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/chart-on-node").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The tenancy policy: the examples' namespace, on the examples' subscription.
pub(crate) fn tenancy() -> serde_json::Value {
    json!({"namespaces": [{
        "namespace": EXAMPLES_NS,
        "operatorIdentity": true,
        "scopes": [format!("/subscriptions/{}", cmk_operator::embedded::SUBSCRIPTION)],
    }]})
}

/// Deletes a namespace (if there) and waits until it is gone.
pub(crate) async fn delete_namespace(client: &kube::Client, ns: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(ns, &DeleteParams::default()).await;
    common::eventually(
        Duration::from_secs(180),
        &format!("namespace {ns} deleted"),
        || async { api.get_opt(ns).await.ok()?.is_none().then_some(()) },
    )
    .await;
}

pub(crate) async fn create_namespace(client: &kube::Client, ns: &str) {
    Api::<Namespace>::all(client.clone())
        .create(
            &Default::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("namespace {ns} created: {e}"));
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    common::eventually(
        Duration::from_secs(60),
        &format!("the default ServiceAccount of {ns}"),
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;
}

/// Drops the finalizers of every resource of a kind (no operator is left to).
async fn drop_finalizers<K>(client: &kube::Client)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let all: Api<K> = Api::all(client.clone());
    let Ok(list) = all.list(&ListParams::default()).await else {
        return; // the CRD is not installed
    };
    for item in list.items {
        let meta = item.meta();
        let api: Api<K> = Api::namespaced(
            client.clone(),
            meta.namespace.as_deref().expect("namespaced"),
        );
        let _ = api
            .patch(
                meta.name.as_deref().expect("name"),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await;
    }
}

/// A clean cluster: what an earlier (failed) run of either half left is
/// removed, resources first (their finalizers dropped), then namespaces,
/// cluster-wide RBAC and the CRDs.
pub(crate) async fn reset(client: &kube::Client) {
    let _ = common::helm::helm(&[
        "--kubeconfig",
        kubeconfig().to_str().expect("utf-8"),
        "uninstall",
        RELEASE,
        "--namespace",
        HELM_NS,
        "--ignore-not-found",
    ]);
    drop_finalizers::<CosmosAccountCMK>(client).await;
    drop_finalizers::<KeyVaultBinding>(client).await;
    for ns in [EXAMPLES_NS, HELM_NS, KUSTOMIZE_NS] {
        delete_namespace(client, ns).await;
    }
    let selector = ListParams::default().labels("app.kubernetes.io/part-of=cosmos-cmk-operator");
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let _ = roles
        .delete_collection(&DeleteParams::default(), &selector)
        .await;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let _ = bindings
        .delete_collection(&DeleteParams::default(), &selector)
        .await;
    delete_crds(client).await;
}

pub(crate) async fn delete_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in CRDS {
        let _ = crds.delete(crd, &DeleteParams::default()).await;
    }
    common::eventually(Duration::from_secs(120), "the CRDs deleted", || async {
        for crd in CRDS {
            if crds.get_opt(crd).await.ok()?.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Waits until the Deployment has rolled out `generation`: every replica
/// updated, ready and available.
pub(crate) async fn rolled_out(
    client: &kube::Client,
    ns: &str,
    name: &str,
    replicas: i32,
) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    let d = common::eventually(
        Duration::from_secs(300),
        &format!("Deployment {ns}/{name} rolled out with {replicas} ready replicas"),
        || async {
            let d = api.get(name).await.ok()?;
            let s = d.status.as_ref()?;
            (s.observed_generation == d.metadata.generation
                && s.replicas == Some(replicas)
                && s.updated_replicas == Some(replicas)
                && s.ready_replicas == Some(replicas)
                && s.available_replicas == Some(replicas))
            .then_some(d)
        },
    )
    .await;
    eprintln!(
        "Deployment {ns}/{name} rolled out (generation {:?}) after {:?}",
        d.metadata.generation,
        started.elapsed()
    );
    d
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Deployment's Pods (not being deleted), `count` of them, each Running
/// and Ready, its readiness coming from the HTTP probe on /readyz.
pub(crate) async fn ready_pods(
    client: &kube::Client,
    ns: &str,
    selector: &str,
    count: usize,
) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = common::eventually(
        Duration::from_secs(180),
        &format!("{count} Ready Pods {selector} in {ns}"),
        || async {
            let list = api
                .list(&ListParams::default().labels(selector))
                .await
                .ok()?;
            let live: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            (live.len() == count && live.iter().all(is_ready)).then_some(live)
        },
    )
    .await;
    for pod in &pods {
        let name = pod.metadata.name.as_deref().expect("name");
        let status = pod.status.as_ref().expect("status");
        assert_eq!(status.phase.as_deref(), Some("Running"), "{name}");
        let ip = status.pod_ip.as_deref().expect("Pod IP");
        assert!(
            ip.starts_with("10.214.0."),
            "{name} runs on the Pod bridge, not hostNetwork: {ip}"
        );
        let container = &pod.spec.as_ref().expect("spec").containers[0];
        let probe = container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("an HTTP readiness probe");
        assert_eq!(probe.path.as_deref(), Some("/readyz"));
        let cs = &status.container_statuses.as_ref().expect("statuses")[0];
        assert!(cs.ready, "{name}: {cs:?}");
        assert!(
            cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some(),
            "{name}: {cs:?}"
        );
    }
    pods
}

async fn log_of(client: &kube::Client, ns: &str, pod: &str) -> String {
    Api::<Pod>::namespaced(client.clone(), ns)
        .logs(pod, &LogParams::default())
        .await
        .unwrap_or_else(|e| panic!("log of {ns}/{pod} (through the kubelet): {e}"))
}

fn names(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().expect("name"))
        .collect()
}

/// The Lease's holder, once it is one of `candidates`; and exactly one of
/// them says in its log that it became leader (the others stand by).
pub(crate) async fn leader(client: &kube::Client, ns: &str, lease: &str, pods: &[Pod]) -> String {
    let candidates = names(pods);
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let holder = common::eventually(
        Duration::from_secs(120),
        &format!("Lease {ns}/{lease} held by one of {candidates:?}"),
        || async {
            let holder = leases.get_opt(lease).await.ok()??.spec?.holder_identity?;
            candidates.contains(&holder).then_some(holder)
        },
    )
    .await;
    let mut leading = Vec::new();
    for pod in &candidates {
        let log = log_of(client, ns, pod).await;
        assert!(
            log.contains("using an external Azure simulator"),
            "{pod} talks to the simulator of simulator.url:\n{log}"
        );
        if log.contains("became leader") {
            leading.push(pod.clone());
        }
    }
    assert_eq!(
        leading,
        vec![holder.clone()],
        "exactly one replica leads, the Lease's holder"
    );
    holder
}

fn phase(value: &serde_json::Value) -> String {
    value["status"]["phase"]
        .as_str()
        .unwrap_or("(none)")
        .to_owned()
}

/// Waits until every KeyVaultBinding and CosmosAccountCMK in `ns` is Ready,
/// `bindings` and `accounts` of them.
pub(crate) async fn examples_ready(
    client: &kube::Client,
    ns: &str,
    bindings: usize,
    accounts: usize,
) {
    let kvb: Api<KeyVaultBinding> = Api::namespaced(client.clone(), ns);
    let acc: Api<CosmosAccountCMK> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    let mut last = String::new();
    let result = tokio::time::timeout(Duration::from_secs(420), async {
        loop {
            let (Ok(b), Ok(a)) = (
                kvb.list(&Default::default()).await,
                acc.list(&Default::default()).await,
            ) else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let phases: Vec<(String, String)> = b
                .items
                .iter()
                .map(|x| serde_json::to_value(x).expect("json"))
                .chain(
                    a.items
                        .iter()
                        .map(|x| serde_json::to_value(x).expect("json")),
                )
                .map(|v| {
                    (
                        format!(
                            "{}/{}",
                            v["kind"].as_str().unwrap_or("?"),
                            v["metadata"]["name"]
                        ),
                        phase(&v),
                    )
                })
                .collect();
            last = format!("{phases:?}");
            if b.items.len() == bindings
                && a.items.len() == accounts
                && phases.iter().all(|(_, p)| p == "Ready")
            {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "{bindings} KeyVaultBindings and {accounts} CosmosAccountCMKs Ready in {ns}: not within 420 s; last seen: {last}"
    );
    eprintln!(
        "{bindings} bindings and {accounts} accounts Ready after {:?}",
        started.elapsed()
    );
}

/// Deletes every example resource in `ns` and waits until the operator has
/// released them (its finalizers gone, the objects with them).
pub(crate) async fn delete_examples(client: &kube::Client, ns: &str) {
    let kvb: Api<KeyVaultBinding> = Api::namespaced(client.clone(), ns);
    let acc: Api<CosmosAccountCMK> = Api::namespaced(client.clone(), ns);
    acc.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("accounts deleted");
    kvb.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("bindings deleted");
    common::eventually(
        Duration::from_secs(300),
        "the operator releasing every example resource",
        || async {
            let b = kvb.list(&Default::default()).await.ok()?;
            let a = acc.list(&Default::default()).await.ok()?;
            (b.items.is_empty() && a.items.is_empty()).then_some(())
        },
    )
    .await;
}

/// The example files deploy/demo applies: all but the restore, which needs a
/// source account's instance id.
pub(crate) fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/examples"))
        .expect("deploy/examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.to_string_lossy().contains("restore")
        })
        .collect();
    files.sort();
    files
}

/// How many documents of `kind` the files hold.
pub(crate) fn count_kind(files: &[PathBuf], kind: &str) -> usize {
    files
        .iter()
        .map(|f| {
            common::helm::docs(&std::fs::read_to_string(f).expect("example readable"))
                .iter()
                .filter(|d| d["kind"] == kind)
                .count()
        })
        .sum()
}

/// The projected token of `pod`: the volume the chart adds, mounted at the
/// directory of AZURE_FEDERATED_TOKEN_FILE, written by the kubelet (read on
/// the node: the image has no shell to exec), and a token the API server
/// accepts for workload identity's audience as this Pod's ServiceAccount.
async fn assert_projected_token(client: &kube::Client, pod: &Pod, service_account: &str) {
    let name = pod.metadata.name.as_deref().expect("name");
    let spec = pod.spec.as_ref().expect("spec");
    let container = &spec.containers[0];
    let env = container.env.as_ref().expect("env");
    let token_file = env
        .iter()
        .find(|e| e.name == "AZURE_FEDERATED_TOKEN_FILE")
        .and_then(|e| e.value.as_deref())
        .expect("AZURE_FEDERATED_TOKEN_FILE set");
    assert_eq!(token_file, TOKEN_FILE);
    let (dir, file) = token_file.rsplit_once('/').expect("a path");
    let mount = container
        .volume_mounts
        .as_ref()
        .expect("mounts")
        .iter()
        .find(|m| m.mount_path == dir)
        .unwrap_or_else(|| panic!("{name} mounts {dir}: {:?}", container.volume_mounts));
    let volume = spec
        .volumes
        .as_ref()
        .expect("volumes")
        .iter()
        .find(|v| v.name == mount.name)
        .expect("the mounted volume");
    let source = volume
        .projected
        .as_ref()
        .and_then(|p| p.sources.as_ref())
        .and_then(|s| s.iter().find_map(|s| s.service_account_token.as_ref()))
        .expect("a projected service-account token");
    assert_eq!(source.path, file);
    assert_eq!(source.audience.as_deref(), Some(AUDIENCE));

    let uid = pod.metadata.uid.as_deref().expect("uid");
    let on_node = root().join(format!(
        "target/cluster/kubelet/pods/{uid}/volumes/kubernetes.io~projected/{}/{file}",
        mount.name
    ));
    let token = std::fs::read_to_string(&on_node)
        .unwrap_or_else(|e| panic!("the kubelet wrote {}: {e}", on_node.display()));
    let review = Api::<TokenReview>::all(client.clone())
        .create(
            &Default::default(),
            &TokenReview {
                spec: TokenReviewSpec {
                    token: token.trim().to_owned(),
                    audiences: Some(vec![AUDIENCE.to_owned()]),
                },
                ..Default::default()
            },
        )
        .await
        .expect("TokenReview")
        .status
        .expect("TokenReview status");
    assert_eq!(review.authenticated, Some(true), "{review:?}");
    let user = review.user.expect("user");
    let ns = pod.metadata.namespace.as_deref().expect("namespace");
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{ns}:{service_account}").as_str())
    );
    assert_eq!(
        user.extra
            .as_ref()
            .and_then(|e| e.get("authentication.kubernetes.io/pod-name")),
        Some(&vec![name.to_owned()]),
        "bound to the Pod"
    );
}

/// The ReplicaSets of a Deployment, by pod-template-hash: replicas wanted.
async fn replica_sets(client: &kube::Client, ns: &str, selector: &str) -> Vec<(String, i32)> {
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .expect("ReplicaSets")
        .items
        .into_iter()
        .map(|rs| {
            (
                rs.metadata.name.clone().expect("name"),
                rs.spec.replicas.unwrap_or(0),
            )
        })
        .collect()
}

/// After `helm uninstall`, no operator object is left. "Operator objects":
/// every object the release rendered (Deployment and so its ReplicaSets and
/// Pods, ServiceAccount, ConfigMap, PodDisruptionBudget, Role and
/// RoleBinding, ClusterRole and ClusterRoleBinding). Left on purpose: the
/// CRDs (`crds.keep`, on by default), and the Lease, which the operator
/// creates at run time (like any controller's leader-election Lease; it
/// goes with the namespace). Returns the Lease's holder after the uninstall.
pub(crate) async fn assert_helm_release_gone(
    client: &kube::Client,
    fullname: &str,
) -> Option<String> {
    let instance = format!("app.kubernetes.io/instance={RELEASE}");
    let by_instance = ListParams::default().labels(&instance);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), HELM_NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), HELM_NS);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), HELM_NS);
    common::eventually(
        Duration::from_secs(120),
        "the release's Deployment, ReplicaSets and Pods gone",
        || async {
            let d = deployments.list(&by_instance).await.ok()?.items.len();
            let r = replica_sets.list(&by_instance).await.ok()?.items.len();
            let p = pods.list(&by_instance).await.ok()?.items.len();
            (d + r + p == 0).then_some(())
        },
    )
    .await;
    let accounts: Vec<String> = Api::<ServiceAccount>::namespaced(client.clone(), HELM_NS)
        .list(&Default::default())
        .await
        .expect("ServiceAccounts")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    assert_eq!(accounts, vec!["default".to_owned()], "ServiceAccounts left");
    let config_maps: Vec<String> = Api::<ConfigMap>::namespaced(client.clone(), HELM_NS)
        .list(&Default::default())
        .await
        .expect("ConfigMaps")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    assert_eq!(
        config_maps,
        vec!["kube-root-ca.crt".to_owned()],
        "ConfigMaps left"
    );
    let roles = Api::<Role>::namespaced(client.clone(), HELM_NS)
        .list(&Default::default())
        .await
        .expect("Roles");
    assert!(roles.items.is_empty(), "Roles left: {:?}", roles.items);
    let role_bindings = Api::<RoleBinding>::namespaced(client.clone(), HELM_NS)
        .list(&Default::default())
        .await
        .expect("RoleBindings");
    assert!(
        role_bindings.items.is_empty(),
        "RoleBindings left: {:?}",
        role_bindings.items
    );
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), HELM_NS)
        .list(&Default::default())
        .await
        .expect("PodDisruptionBudgets");
    assert!(pdbs.items.is_empty(), "PDBs left: {:?}", pdbs.items);
    let cluster_roles = Api::<ClusterRole>::all(client.clone())
        .list(&by_instance)
        .await
        .expect("ClusterRoles");
    assert!(cluster_roles.items.is_empty(), "ClusterRoles left");
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(fullname)
            .await
            .expect("ClusterRole get")
            .is_none()
    );
    let cluster_bindings = Api::<ClusterRoleBinding>::all(client.clone())
        .list(&by_instance)
        .await
        .expect("ClusterRoleBindings");
    assert!(
        cluster_bindings.items.is_empty(),
        "ClusterRoleBindings left"
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in CRDS {
        assert!(
            crds.get_opt(crd).await.expect("CRD get").is_some(),
            "crds.keep leaves {crd}"
        );
    }
    let lease = Api::<Lease>::namespaced(client.clone(), HELM_NS)
        .get_opt(fullname)
        .await
        .expect("Lease get")
        .expect("the Lease stays (run-time state, not the release's)");
    assert!(
        lease
            .metadata
            .annotations
            .unwrap_or_default()
            .keys()
            .all(|k| !k.starts_with("meta.helm.sh/")),
        "the Lease is the operator's, not the release's"
    );
    lease.spec.and_then(|s| s.holder_identity)
}

/// The chart's values for the test cluster but the image: the Azure
/// endpoints (the simulator), the tenancy policy (without one the operator
/// refuses every resource), and workload identity with the chart's own token
/// projection (this cluster has no workload identity webhook). The operator
/// signs in through workload identity: the projected token exchanged at the
/// simulator's token endpoint for the service principal federated with the
/// ServiceAccount `fullname` in HELM_NS.
pub(crate) fn operator_values(azure: &Azure, fullname: &str) -> serde_json::Value {
    let client_id = azure.federate_operator(HELM_NS, fullname);
    json!({
        "simulator": {"url": azure.url, "caCert": azure.ca_pem()},
        "workloadIdentity": {"enabled": true, "clientId": client_id, "projectToken": true},
        "azure": {"tenantId": azure.tenant()},
        "operator": {"firstPartyPrincipalId": azure.first_party()},
        "tenancy": tenancy(),
    })
}

/// Applies the examples into EXAMPLES_NS and waits until all are Ready.
pub(crate) async fn apply_examples(client: &kube::Client) {
    let files = example_files();
    for f in &files {
        kubectl(&["apply", "-n", EXAMPLES_NS, "-f", f.to_str().expect("utf-8")]);
    }
    examples_ready(
        client,
        EXAMPLES_NS,
        count_kind(&files, "KeyVaultBinding"),
        count_kind(&files, "CosmosAccountCMK"),
    )
    .await;
}

/// After a Helm test: its namespaces and the CRDs it kept (`crds.keep`) go,
/// so the next test starts from a clean cluster.
pub(crate) async fn clean_up_helm_release(client: &kube::Client) {
    delete_namespace(client, EXAMPLES_NS).await;
    delete_namespace(client, HELM_NS).await;
    delete_crds(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_runs_elects_reconciles_upgrades_and_uninstalls_on_a_real_node() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let (repository, tag) = image();
    let client = client().await;
    reset(&client).await;
    let azure = Azure::start().await;
    create_namespace(&client, EXAMPLES_NS).await;

    let fullname = format!("{RELEASE}-cosmos-cmk-operator");
    let selector =
        format!("app.kubernetes.io/name=cosmos-cmk-operator,app.kubernetes.io/instance={RELEASE}");
    // Default values but the image (imported) and `operator_values`.
    let mut values = operator_values(&azure, &fullname);
    values["image"] = json!({"repository": repository, "tag": tag});
    let dir = scratch("helm");
    let values_file = dir.join("values.yaml");
    std::fs::write(
        &values_file,
        serde_saphyr::to_string(&values).expect("values YAML"),
    )
    .expect("values written");
    let chart = common::helm::chart_dir();
    let out = helm(&[
        "install",
        RELEASE,
        chart.to_str().expect("utf-8"),
        "--namespace",
        HELM_NS,
        "--create-namespace",
        "-f",
        values_file.to_str().expect("utf-8"),
    ]);
    eprintln!("helm install:\n{out}");

    // Rollout, Pods Ready through their probes, the token where workload
    // identity reads it.
    let first = rolled_out(&client, HELM_NS, &fullname, 2).await;
    let pods = ready_pods(&client, HELM_NS, &selector, 2).await;
    for pod in &pods {
        let image_of = pod.spec.as_ref().expect("spec").containers[0]
            .image
            .clone()
            .expect("image");
        assert_eq!(image_of, format!("{repository}:{tag}"));
        assert_projected_token(&client, pod, &fullname).await;
    }

    // One leader; the examples reconciled by it, against the simulator.
    let holder = leader(&client, HELM_NS, &fullname, &pods).await;
    eprintln!("leader: {holder}");
    apply_examples(&client).await;

    // Deleting the leader's Pod hands the Lease to another replica: first
    // as `kubectl delete pod` does (SIGTERM: the leader gives the Lease up),
    // then killed (SIGKILL to its container through containerd, the Pod
    // deleted with it so it does not restart: the Lease has to expire).
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), HELM_NS);
    let leases: Api<Lease> = Api::namespaced(client.clone(), HELM_NS);
    let mut holder = holder;
    for kill in [false, true] {
        let how = if kill { "killed" } else { "deleted" };
        let started = Instant::now();
        if kill {
            let pod = pods_api.get(&holder).await.expect("leader Pod");
            let id = pod
                .status
                .and_then(|s| s.container_statuses)
                .and_then(|c| c[0].container_id.clone())
                .expect("container id");
            kill_container(id.trim_start_matches("containerd://"));
        }
        let params = if kill {
            DeleteParams::default().grace_period(0)
        } else {
            DeleteParams::default()
        };
        pods_api
            .delete(&holder, &params)
            .await
            .expect("leader Pod deleted");
        let next = common::eventually(
            Duration::from_secs(120),
            &format!("the Lease held by another replica after the leader's Pod was {how}"),
            || async {
                let h = leases.get(&fullname).await.ok()?.spec?.holder_identity?;
                (h != holder).then_some(h)
            },
        )
        .await;
        eprintln!(
            "leader {holder} {how}: {next} leads after {:?}",
            started.elapsed()
        );
        rolled_out(&client, HELM_NS, &fullname, 2).await;
        let pods = ready_pods(&client, HELM_NS, &selector, 2).await;
        assert!(
            names(&pods).contains(&next),
            "the new leader {next} is one of the Ready replicas {:?}",
            names(&pods)
        );
        assert!(!names(&pods).contains(&holder));
        holder = next;
    }

    // helm upgrade with a changed value: a new ReplicaSet rolls out.
    let before = replica_sets(&client, HELM_NS, &selector).await;
    assert_eq!(before.len(), 1, "one ReplicaSet before: {before:?}");
    helm(&[
        "upgrade",
        RELEASE,
        chart.to_str().expect("utf-8"),
        "--namespace",
        HELM_NS,
        "--reuse-values",
        "--set",
        "operator.logFormat=text",
    ]);
    let upgraded = rolled_out(&client, HELM_NS, &fullname, 2).await;
    assert!(
        upgraded.metadata.generation > first.metadata.generation,
        "the template changed"
    );
    let after = common::eventually(
        Duration::from_secs(120),
        "the old ReplicaSet scaled to 0",
        || async {
            let after = replica_sets(&client, HELM_NS, &selector).await;
            (after.len() == 2 && after.iter().any(|(n, r)| *n == before[0].0 && *r == 0))
                .then_some(after)
        },
    )
    .await;
    eprintln!("ReplicaSets after the upgrade: {after:?}");
    let pods = ready_pods(&client, HELM_NS, &selector, 2).await;
    for pod in &pods {
        let args = pod.spec.as_ref().expect("spec").containers[0]
            .args
            .clone()
            .expect("args");
        let i = args
            .iter()
            .position(|a| a == "--log-format")
            .expect("--log-format");
        assert_eq!(args[i + 1], "text", "the upgraded value");
    }
    let last = leader(&client, HELM_NS, &fullname, &pods).await;

    // Resources first (their finalizers are the operator's), then the release.
    delete_examples(&client, EXAMPLES_NS).await;
    // The last leader's log to its end, to show how it stopped.
    let follow = {
        let pods_api = pods_api.clone();
        let last = last.clone();
        tokio::spawn(async move {
            use futures::{AsyncBufReadExt, TryStreamExt};
            let params = LogParams {
                follow: true,
                since_seconds: Some(5),
                ..Default::default()
            };
            let Ok(stream) = pods_api.log_stream(&last, &params).await else {
                return Vec::new();
            };
            stream
                .lines()
                .try_collect::<Vec<String>>()
                .await
                .unwrap_or_default()
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    helm(&["uninstall", RELEASE, "--namespace", HELM_NS]);
    let holder = assert_helm_release_gone(&client, &fullname).await;
    let stopping = tokio::time::timeout(Duration::from_secs(60), follow)
        .await
        .map(|r| r.unwrap_or_default())
        .unwrap_or_default();
    eprintln!(
        "Lease holder after helm uninstall: {holder:?}; the last leader {last} logged as it stopped:\n{}",
        stopping.join("\n")
    );
    eprintln!("helm half done in {:?}", started.elapsed());

    // Clean up for the kustomize half (CRDs kept by crds.keep included).
    clean_up_helm_release(&client).await;
    drop(azure);
}

/// The overlay a user writes over deploy/kustomize/base: the image, the
/// tenancy policy, and the simulator in place of Azure (args, its CA as a
/// ConfigMap, mounted). Written into `dir`.
fn kustomize_overlay(dir: &Path, azure: &Azure, repository: &str, tag: &str) {
    let base = Path::new("../../../deploy/kustomize/base");
    assert!(
        dir.join(base).join("kustomization.yaml").is_file(),
        "the overlay is at target/chart-on-node/<name>"
    );
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [base],
        "images": [{"name": "ghcr.io/cosmos-cmk/cosmos-cmk-operator", "newName": repository, "newTag": tag}],
        "configMapGenerator": [
            {"name": "cosmos-cmk-operator-tenancy", "namespace": KUSTOMIZE_NS,
             "behavior": "replace", "files": ["tenancy.yaml"]},
            {"name": "cosmos-cmk-operator-simulator-ca", "namespace": KUSTOMIZE_NS,
             "files": ["ca.crt"]}
        ],
        "patches": [{"path": "simulator.yaml",
                     "target": {"kind": "Deployment", "name": "cosmos-cmk-operator"}}]
    });
    let c = "/spec/template/spec/containers/0";
    let patch = json!([
        {"op": "test", "path": format!("{c}/args/1"), "value": "--azure"},
        {"op": "replace", "path": format!("{c}/args/2"), "value": "simulator"},
        {"op": "add", "path": format!("{c}/args/-"), "value": "--simulator-url"},
        {"op": "add", "path": format!("{c}/args/-"), "value": azure.url},
        {"op": "add", "path": format!("{c}/args/-"), "value": "--simulator-ca-file"},
        {"op": "add", "path": format!("{c}/args/-"), "value": "/etc/cmk-operator/simulator/ca.crt"},
        // The image has no simulator secret: the service principal's
        // credentials come from the environment, as in production.
        {"op": "add", "path": format!("{c}/env/-"),
         "value": {"name": "AZURE_TENANT_ID", "value": azure.tenant()}},
        {"op": "add", "path": format!("{c}/env/-"),
         "value": {"name": "AZURE_CLIENT_ID", "value": azure.sim.operator_credentials().0}},
        {"op": "add", "path": format!("{c}/env/-"),
         "value": {"name": "AZURE_CLIENT_SECRET", "value": azure.sim.operator_credentials().1}},
        {"op": "add", "path": format!("{c}/env/-"),
         "value": {"name": "CMK_FIRST_PARTY_PRINCIPAL_ID", "value": azure.first_party()}},
        {"op": "add", "path": format!("{c}/volumeMounts/-"),
         "value": {"name": "simulator-ca", "mountPath": "/etc/cmk-operator/simulator", "readOnly": true}},
        {"op": "add", "path": "/spec/template/spec/volumes/-",
         "value": {"name": "simulator-ca", "configMap": {"name": "cosmos-cmk-operator-simulator-ca"}}}
    ]);
    let yaml = |v: &serde_json::Value| serde_saphyr::to_string(v).expect("YAML");
    std::fs::write(dir.join("kustomization.yaml"), yaml(&kustomization)).expect("written");
    std::fs::write(dir.join("simulator.yaml"), yaml(&patch)).expect("written");
    std::fs::write(dir.join("tenancy.yaml"), yaml(&tenancy())).expect("written");
    std::fs::write(dir.join("ca.crt"), azure.ca_pem()).expect("written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kustomize_base_installs_runs_elects_reconciles_and_deletes_on_a_real_node() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let (repository, tag) = image();
    let client = client().await;
    reset(&client).await;
    let azure = Azure::start().await;
    create_namespace(&client, EXAMPLES_NS).await;

    let dir = scratch("kustomize");
    kustomize_overlay(&dir, &azure, repository, tag);
    let dir_arg = dir.to_str().expect("utf-8");
    kubectl(&["apply", "--server-side", "-k", dir_arg]);

    let name = "cosmos-cmk-operator";
    let selector =
        "app.kubernetes.io/name=cosmos-cmk-operator,app.kubernetes.io/instance=cosmos-cmk-operator";
    rolled_out(&client, KUSTOMIZE_NS, name, 2).await;
    let pods = ready_pods(&client, KUSTOMIZE_NS, selector, 2).await;
    let holder = leader(&client, KUSTOMIZE_NS, name, &pods).await;
    eprintln!("leader: {holder}");

    let files: Vec<PathBuf> = [
        "00-binding-access-policy.yaml",
        "10-account-first-party.yaml",
    ]
    .iter()
    .map(|f| root().join("deploy/examples").join(f))
    .collect();
    for f in &files {
        kubectl(&["apply", "-n", EXAMPLES_NS, "-f", f.to_str().expect("utf-8")]);
    }
    examples_ready(&client, EXAMPLES_NS, 1, 1).await;
    delete_examples(&client, EXAMPLES_NS).await;

    // `kubectl delete -k` removes what the overlay applied: the namespace
    // (and everything in it, Lease included), the CRDs and the cluster-wide
    // RBAC.
    kubectl(&["delete", "-k", dir_arg, "--wait=true", "--timeout=300s"]);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    common::eventually(
        Duration::from_secs(180),
        "namespace cmk-system gone",
        || async {
            namespaces
                .get_opt(KUSTOMIZE_NS)
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in CRDS {
        assert!(
            crds.get_opt(crd).await.expect("CRD get").is_none(),
            "{crd} left"
        );
    }
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(name)
            .await
            .expect("get")
            .is_none(),
        "ClusterRole left"
    );
    assert!(
        Api::<ClusterRoleBinding>::all(client.clone())
            .get_opt(name)
            .await
            .expect("get")
            .is_none(),
        "ClusterRoleBinding left"
    );
    let part_of = ListParams::default().labels("app.kubernetes.io/part-of=cosmos-cmk-operator");
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .list(&part_of)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    delete_namespace(&client, EXAMPLES_NS).await;
    eprintln!("kustomize half done in {:?}", started.elapsed());
    drop(azure);
}
