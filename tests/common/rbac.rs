//! The operator's identity as the chart defines it: the chart's ServiceAccount
//! and RBAC rendered by helm, installed into a namespace of the local control
//! plane, and a client authenticated with a token of that ServiceAccount (from
//! the TokenRequest API; no controller-manager runs here, so nothing else would
//! mint one). Whatever runs with this client gets exactly the chart's permissions.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use super::helm::{apply, render};
use super::{client, kubeconfig_path, repo_root};

/// Helm release name used for the operator's identity in tests.
pub const RELEASE: &str = "cmk";

/// The installed identity.
#[derive(Clone)]
pub struct OperatorIdentity {
    /// Release namespace: the ServiceAccount, the leader-election Role and the Lease live here.
    pub namespace: String,
    /// Name of the ServiceAccount (also the ClusterRole and binding names).
    pub service_account: String,
    /// Name of the leader-election Lease the chart passes to the operator (`--lease-name`).
    pub lease_name: String,
    /// The bearer token (valid for an hour).
    pub token: String,
    /// A kubeconfig that authenticates with `token` only, for running the
    /// operator binary as a process (`KUBECONFIG=...`).
    pub kubeconfig: PathBuf,
    /// A client authenticated with `token` only.
    pub client: kube::Client,
}

/// Full name the chart gets in `namespace`: unique per namespace, since the
/// ClusterRole and ClusterRoleBinding are cluster-scoped.
pub fn fullname(namespace: &str) -> String {
    let mut name = format!("cmk-{namespace}");
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

/// Renders the chart's ServiceAccount and RBAC for release [`RELEASE`] in
/// `namespace` (with `extra` helm arguments).
pub fn render_rbac(namespace: &str, extra: &[&str]) -> String {
    let full = format!("fullnameOverride={}", fullname(namespace));
    let mut args = vec![
        "--set",
        full.as_str(),
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
    ];
    args.extend_from_slice(extra);
    render(RELEASE, namespace, &args)
}

/// Installs the chart's ServiceAccount and RBAC into `namespace` (which must
/// exist), with the default values (a tenancy policy that lists no
/// namespace, so no Secret may be read), and returns the ServiceAccount's identity.
pub async fn install_operator_identity(namespace: &str) -> OperatorIdentity {
    install_operator_identity_allowing(namespace, &[]).await
}

/// The chart's values for a tenancy policy that lists `namespaces` (`"*"`
/// for every namespace), as helm arguments.
pub fn tenancy_values(namespaces: &[&str]) -> [String; 2] {
    let entries: Vec<_> = namespaces
        .iter()
        .map(|n| serde_json::json!({ "namespace": n }))
        .collect();
    [
        "--set-json".to_owned(),
        format!("tenancy.namespaces={}", serde_json::Value::from(entries)),
    ]
}

/// Like [`install_operator_identity`], with the chart's tenancy policy
/// listing `tenancy` (existing namespaces, or `"*"`): the chart then lets the
/// ServiceAccount read Secrets (spec.credentialRef) there. Waits until those
/// reads are authorized too.
pub async fn install_operator_identity_allowing(
    namespace: &str,
    tenancy: &[&str],
) -> OperatorIdentity {
    let values = tenancy_values(tenancy);
    let yaml = render_rbac(namespace, &[values[0].as_str(), values[1].as_str()]);
    apply(&yaml).unwrap_or_else(|e| panic!("chart RBAC must install in {namespace}: {e}"));
    let sa = fullname(namespace);
    let token = issue_token(namespace, &sa).await;
    let kubeconfig = write_token_kubeconfig(namespace, &sa, &token);
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).expect("token kubeconfig readable"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("token kubeconfig valid");
    let client = kube::Client::try_from(config).expect("client builds");
    // "*": Secrets may be read everywhere, the release namespace included.
    let secrets_in: Vec<&str> = tenancy
        .iter()
        .map(|n| if *n == "*" { namespace } else { n })
        .collect();
    wait_until_authorized(&client, namespace, &sa, &secrets_in).await;
    OperatorIdentity {
        namespace: namespace.to_owned(),
        lease_name: sa.clone(),
        service_account: sa,
        token,
        kubeconfig,
        client,
    }
}

/// A token of the ServiceAccount `namespace/sa` (valid for an hour), from the TokenRequest API.
pub async fn issue_token(namespace: &str, sa: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client().await, namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued: TokenRequest = sas
        .create_subresource("token", sa, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{sa}: {e}"));
    issued
        .status
        .and_then(|s| s.token)
        .expect("TokenRequest returns a token")
}

/// A client with exactly the chart's permissions, for an operator whose release
/// namespace is `namespace` (installs the chart's ServiceAccount and RBAC there).
pub async fn operator_client(namespace: &str) -> kube::Client {
    install_operator_identity(namespace).await.client
}

/// Writes a kubeconfig for the same API server as the admin one, with the
/// token as the only credential.
pub fn write_token_kubeconfig(namespace: &str, sa: &str, token: &str) -> PathBuf {
    let admin = Kubeconfig::read_from(kubeconfig_path()).expect("admin kubeconfig");
    let cluster = admin
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .expect("admin kubeconfig names a cluster");
    let mut cluster_entry = serde_json::Map::new();
    cluster_entry.insert("server".into(), cluster.server.expect("server").into());
    if let Some(ca) = cluster.certificate_authority_data {
        cluster_entry.insert("certificate-authority-data".into(), ca.into());
    }
    if let Some(ca) = cluster.certificate_authority {
        cluster_entry.insert("certificate-authority".into(), ca.into());
    }
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster_entry}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {
            "cluster": "local", "user": sa, "namespace": namespace,
        }}],
        "current-context": "operator",
    });
    let dir = repo_root().join("target/control-plane/operator-kubeconfigs");
    std::fs::create_dir_all(&dir).expect("kubeconfig dir");
    let path = dir.join(format!("{namespace}.yaml"));
    std::fs::write(&path, serde_saphyr::to_string(&config).expect("yaml"))
        .expect("kubeconfig written");
    path
}

/// RBAC objects reach the authorizer through an informer: wait until the
/// token's permissions (Roles and ClusterRole) are in effect: its own Lease,
/// the custom resources, and Secrets by name in `secrets_in`.
async fn wait_until_authorized(
    client: &kube::Client,
    namespace: &str,
    lease: &str,
    secrets_in: &[&str],
) {
    use cmk_operator::api::KeyVaultBinding;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::ListParams;
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let bindings: Api<KeyVaultBinding> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let probe = async {
            leases.get_opt(lease).await?;
            bindings.list(&ListParams::default().limit(1)).await?;
            for ns in secrets_in {
                Api::<Secret>::namespaced(client.clone(), ns)
                    .get_opt("rbac-probe")
                    .await?;
            }
            Ok::<_, kube::Error>(())
        };
        match probe.await {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the operator's token never became authorized in {namespace}: {e}"),
        }
    }
}
