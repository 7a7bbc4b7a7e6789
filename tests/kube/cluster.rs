//! The private single-node cluster (tests/cluster/): a real kubelet with
//! containerd and runc beside its own API server, controller-manager and
//! scheduler, in a network namespace of its own. These tests prove what a
//! chart install needs from it: the Node turns Ready, the controller-manager
//! creates default ServiceAccounts, the scheduler places Pods, a Pod locked
//! down the way the chart's is (non-root, read-only root, no capabilities,
//! seccomp RuntimeDefault) runs and reads a projected ServiceAccount token
//! that the API server accepts, and a two-replica Deployment rolls out on Pod
//! IPs, Ready through HTTP probes, and rolls out again when changed.
//!
//! No skipping: a machine without what `tests/cluster/up` needs (root, Go,
//! containerd, runc, CNI plugins, iproute2, mmdebstrap) fails here, with
//! `up`'s message.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, ListParams, LogParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

const NODE: &str = "cmk-node";
/// Where Azure workload identity's webhook mounts the federated token.
const TOKEN_DIR: &str = "/var/run/secrets/azure/tokens";
const AUDIENCE: &str = "api://AzureADTokenExchange";

/// `tests/cluster/up`, once per test binary: the kubeconfig path it printed.
fn kubeconfig_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| common::script_output_path("tests/cluster/up"))
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    kube::Client::try_from(config).expect("client builds")
}

/// A client for the cluster, once its Node is Ready.
async fn cluster() -> kube::Client {
    let client = client(kubeconfig_path()).await;
    let nodes: Api<Node> = Api::all(client.clone());
    common::eventually(Duration::from_secs(120), "node Ready", || async {
        nodes.get_opt(NODE).await.ok().flatten().filter(node_ready)
    })
    .await;
    client
}

/// A fresh namespace `{prefix}-{pid}-{millis}`, once the controller-manager
/// has made its default ServiceAccount (with the ServiceAccount admission
/// plugin on, no Pod is admitted before).
async fn namespace(client: &kube::Client, prefix: &str) -> String {
    let ns = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis()
            % 100_000
    );
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("namespace created");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    common::eventually(
        Duration::from_secs(60),
        "default ServiceAccount",
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;
    ns
}

/// Deletes a test's namespace (the controller-manager empties it), so a
/// long-lived cluster does not gather Pods from earlier runs.
async fn delete_namespace(client: &kube::Client, ns: &str) {
    Api::<Namespace>::all(client.clone())
        .delete(ns, &Default::default())
        .await
        .expect("namespace deleted");
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod(name: &str) -> Pod {
    let script = format!(
        r#"b=/bin/busybox
echo "token=$($b cat {TOKEN_DIR}/azure-identity-token)"
echo "sa-token-bytes=$($b wc -c </var/run/secrets/kubernetes.io/serviceaccount/token)"
echo "uid=$($b id -u) gid=$($b id -g)"
if $b touch /probe 2>/dev/null; then echo root=writable; else echo root=read-only; fi
$b grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"#
    );
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "hostNetwork": true,
            "restartPolicy": "Never",
            "serviceAccountName": "default",
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{
                "name": "reader",
                "image": "cmk.local/busybox:1",
                "imagePullPolicy": "Never",
                "command": ["/bin/busybox", "sh", "-c", script],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}
                },
                "volumeMounts": [{"name": "azure-identity-token", "mountPath": TOKEN_DIR, "readOnly": true}]
            }],
            "volumes": [{
                "name": "azure-identity-token",
                "projected": {"sources": [{"serviceAccountToken": {
                    "path": "azure-identity-token",
                    "audience": AUDIENCE,
                    "expirationSeconds": 3600
                }}]}
            }]
        }
    }))
    .expect("Pod is valid")
}

/// The value after `key=` on the log line that starts with it.
fn field<'a>(logs: &'a str, key: &str) -> &'a str {
    logs.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= line in the Pod's log:\n{logs}"))
}

#[tokio::test]
async fn a_locked_down_host_network_pod_runs_on_the_node_and_reads_its_projected_token() {
    let client = cluster().await;
    let ns = namespace(&client, "pod").await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    pods.create(&PostParams::default(), &pod("reader"))
        .await
        .expect("Pod admitted");
    let done = common::eventually(Duration::from_secs(120), "Pod Succeeded", || async {
        let pod = pods.get("reader").await.ok()?;
        let phase = pod.status.as_ref()?.phase.clone()?;
        if phase == "Failed" {
            let logs = pods
                .logs("reader", &LogParams::default())
                .await
                .unwrap_or_default();
            panic!("the Pod failed: {:?}\nlog:\n{logs}", pod.status);
        }
        (phase == "Succeeded").then_some(pod)
    })
    .await;
    eprintln!("Pod ran to Succeeded in {:?}", started.elapsed());
    let spec = done.spec.as_ref().expect("spec");
    assert_eq!(
        spec.node_name.as_deref(),
        Some(NODE),
        "the scheduler bound it"
    );
    let status = done.status.as_ref().expect("status");
    let terminated = status
        .container_statuses
        .as_ref()
        .expect("container statuses")[0]
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!(terminated.exit_code, 0, "{terminated:?}");
    assert_eq!(
        status.pod_ip.as_deref(),
        Some("10.213.0.2"),
        "a hostNetwork Pod has the node's IP, inside the node's namespace"
    );

    // Through the API server to the kubelet's TLS port (verified against the
    // cluster's CA), as `kubectl logs` does.
    let logs = pods
        .logs("reader", &LogParams::default())
        .await
        .expect("the Pod's log, through the kubelet");
    assert_eq!(field(&logs, "uid"), "65532 gid=65532", "{logs}");
    assert_eq!(field(&logs, "root"), "read-only", "{logs}");
    let status_line = |key: &str| {
        logs.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {key}: line in the Pod's log:\n{logs}"))
            .to_owned()
    };
    assert_eq!(
        status_line("CapEff"),
        "0000000000000000",
        "all capabilities dropped"
    );
    assert_eq!(
        status_line("NoNewPrivs"),
        "1",
        "allowPrivilegeEscalation false"
    );
    assert_eq!(
        status_line("Seccomp"),
        "2",
        "seccomp filter mode (RuntimeDefault)"
    );
    let sa_token_bytes: usize = field(&logs, "sa-token-bytes").parse().expect("a number");
    assert!(
        sa_token_bytes > 100,
        "the default API token is mounted too: {logs}"
    );

    // The token the Pod read is one the API server issued for this Pod, for
    // the audience workload identity asks for.
    let token = field(&logs, "token");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let review = Api::<TokenReview>::all(client.clone())
        .create(
            &PostParams::default(),
            &TokenReview {
                spec: TokenReviewSpec {
                    token: token.to_owned(),
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
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{ns}:default").as_str())
    );
    let extra = user.extra.expect("extra");
    assert_eq!(
        extra.get("authentication.kubernetes.io/pod-name"),
        Some(&vec!["reader".to_owned()]),
        "bound to the Pod: {extra:?}"
    );
    delete_namespace(&client, &ns).await;
}

/// Two replicas of a web server on the same port, each in a network of its
/// own, Ready only once its readiness probe (through the Pod's IP) finds the
/// file it writes after reaching the API server at the in-cluster address
/// (KUBERNETES_SERVICE_HOST, no kube-proxy). Then a template change rolls
/// out. Everything the chart's Deployment needs from the node.
#[tokio::test]
async fn a_deployment_of_two_replicas_rolls_out_on_pod_ips_ready_through_probes() {
    let client = cluster().await;
    let ns = namespace(&client, "deploy").await;
    let script = r#"b=/bin/busybox
$b mkdir -p /tmp/www
if echo | $b nc -w 3 "$KUBERNETES_SERVICE_HOST" "$KUBERNETES_SERVICE_PORT" >/dev/null; then echo "$REVISION" >/tmp/www/ready; fi
exec $b httpd -f -p 8080 -h /tmp/www"#;
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "automountServiceAccountToken": false,
                    // httpd as PID 1 ignores SIGTERM; do not wait 30 s for it.
                    "terminationGracePeriodSeconds": 1,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"}
                    },
                    "containers": [{
                        "name": "web",
                        "image": "cmk.local/busybox:1",
                        "imagePullPolicy": "Never",
                        "command": ["/bin/busybox", "sh", "-c", script],
                        "env": [{"name": "REVISION", "value": "1"}],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
                        "livenessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}
                        },
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {}}]
                }
            }
        }
    }))
    .expect("Deployment is valid");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("Deployment created");

    let rolled_out = |generation: i64| {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("web").await.ok()?;
            let s = d.status?;
            (s.observed_generation == Some(generation)
                && s.updated_replicas == Some(2)
                && s.ready_replicas == Some(2)
                && s.available_replicas == Some(2)
                && s.replicas == Some(2))
            .then_some(())
        }
    };
    let started = Instant::now();
    common::eventually(Duration::from_secs(120), "2 replicas available", || {
        rolled_out(1)
    })
    .await;
    eprintln!("Deployment available in {:?}", started.elapsed());

    let ready_pods = |revision: &'static str| {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let ready: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.containers[0].env.as_ref())
                        .is_some_and(|env| {
                            env.iter().any(|e| {
                                e.name == "REVISION" && e.value.as_deref() == Some(revision)
                            })
                        })
                })
                .collect();
            (ready.len() == 2).then_some(ready)
        }
    };
    let first = common::eventually(Duration::from_secs(30), "2 Pods of revision 1", || {
        ready_pods("1")
    })
    .await;
    let ips: Vec<String> = first
        .iter()
        .map(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .expect("Pod IP")
        })
        .collect();
    assert_ne!(ips[0], ips[1], "each replica has its own address: {ips:?}");
    for ip in &ips {
        assert!(
            ip.starts_with("10.214.0."),
            "a Pod address from the bridge inside the node's namespace, not the node's: {ips:?}"
        );
    }

    // A changed template rolls out: new Pods, Ready through the same probes.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(
                serde_json::json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "web", "env": [{"name": "REVISION", "value": "2"}]}
                ]}}}}),
            ),
        )
        .await
        .expect("template patched");
    let started = Instant::now();
    common::eventually(Duration::from_secs(120), "revision 2 rolled out", || {
        rolled_out(2)
    })
    .await;
    common::eventually(
        Duration::from_secs(60),
        "only Pods of revision 2 left",
        || async {
            let all = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let second = ready_pods("2").await?;
            (all.items.len() == 2).then_some(second)
        },
    )
    .await;
    eprintln!("revision 2 rolled out in {:?}", started.elapsed());
    delete_namespace(&client, &ns).await;
}

#[test]
fn up_is_idempotent_and_prints_the_same_kubeconfig() {
    let first = kubeconfig_path();
    let out = std::process::Command::new(common::repo_root().join("tests/cluster/up"))
        .output()
        .expect("up runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "up failed: {stderr}");
    assert_eq!(stdout.lines().last().map(str::trim), first.to_str());
    assert!(
        stderr.contains("already up"),
        "a second up must not restart a healthy cluster: {stderr}"
    );
}
