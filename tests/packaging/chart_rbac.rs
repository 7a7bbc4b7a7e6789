//! Proof that the chart's RBAC is enough and no more: the chart's
//! ServiceAccount and RBAC are installed into the local control plane (RBAC
//! authorization on, like a real cluster), a token is issued for the
//! ServiceAccount through the TokenRequest API, and a client holding only that
//! token does everything the operator does, and is refused everything else.

use crate::common;

use std::fmt::Debug;

use cmk_operator::api::{CosmosAccountCMK, KeyVaultBinding};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Resource;
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use serde::de::DeserializeOwned;

fn example<K: DeserializeOwned>(file: &str) -> K {
    let text = std::fs::read_to_string(common::repo_root().join("deploy/examples").join(file))
        .expect("example exists");
    serde_saphyr::from_str(&text).expect("example parses")
}

/// Asserts `result` is a 403 from the API server (not any other failure).
#[track_caller]
fn forbidden<T: Debug>(what: &str, result: Result<T, kube::Error>) {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[track_caller]
fn allowed<T>(what: &str, result: Result<T, kube::Error>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: the operator's token must be allowed: {e}"))
}

/// The first event of a watch, or the error that opened it.
async fn first_watch_event<K>(api: &Api<K>) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), "0")
        .await?
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(e))) => Err(kube::Error::Api(e)),
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

struct Fixture {
    /// Admin client (system:masters).
    admin: kube::Client,
    /// The operator's token client.
    op: kube::Client,
    /// Release namespace of the operator (its ServiceAccount and Lease).
    release_ns: String,
    /// A tenant namespace holding custom resources and a credential Secret;
    /// the chart's tenancy policy allows it.
    tenant_ns: String,
    /// A namespace the tenancy policy does not list, with a Secret of the same name.
    outside_ns: String,
    sa: String,
    /// The Lease the chart tells the operator to use.
    lease: String,
}

/// A Secret named `azure-credential`, as a credentialRef names one.
fn credential_secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("azure-credential".into()),
            ..Default::default()
        },
        string_data: Some(
            [("clientSecret".to_owned(), "not-a-real-secret".to_owned())]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    }
}

async fn setup(prefix: &str) -> Fixture {
    let (admin, release_ns) = common::test_namespace(&format!("{prefix}-op")).await;
    let (_, tenant_ns) = common::test_namespace(&format!("{prefix}-tenant")).await;
    let (_, outside_ns) = common::test_namespace(&format!("{prefix}-out")).await;
    let identity =
        common::rbac::install_operator_identity_allowing(&release_ns, &[&tenant_ns]).await;

    // What the operator finds in a tenant namespace.
    let bindings: Api<KeyVaultBinding> = Api::namespaced(admin.clone(), &tenant_ns);
    bindings
        .create(
            &PostParams::default(),
            &example("00-binding-access-policy.yaml"),
        )
        .await
        .expect("admin creates a binding");
    let accounts: Api<CosmosAccountCMK> = Api::namespaced(admin.clone(), &tenant_ns);
    accounts
        .create(
            &PostParams::default(),
            &example("10-account-first-party.yaml"),
        )
        .await
        .expect("admin creates an account");
    for ns in [&tenant_ns, &outside_ns, &release_ns] {
        Api::<Secret>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &credential_secret())
            .await
            .expect("admin creates a Secret");
    }

    Fixture {
        admin,
        op: identity.client,
        release_ns,
        tenant_ns,
        outside_ns,
        sa: identity.service_account,
        lease: identity.lease_name,
    }
}

#[tokio::test]
async fn token_authenticates_as_the_charts_service_account() {
    let f = setup("rbac-who").await;
    let reviews: Api<SelfSubjectReview> = Api::all(f.op.clone());
    let review = reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview is open to every authenticated user");
    let user = review.status.and_then(|s| s.user_info).expect("user info");
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{}:{}", f.release_ns, f.sa).as_str())
    );
    let groups = user.groups.unwrap_or_default();
    assert!(!groups.iter().any(|g| g == "system:masters"), "{groups:?}");
}

#[tokio::test]
async fn token_can_do_what_the_operator_needs() {
    let f = setup("rbac-can").await;
    let op = &f.op;

    // Watch and list both kinds in all namespaces (what the controllers do).
    let all_bindings: Api<KeyVaultBinding> = Api::all(op.clone());
    let all_accounts: Api<CosmosAccountCMK> = Api::all(op.clone());
    let listed = allowed(
        "list bindings cluster-wide",
        all_bindings.list(&ListParams::default()).await,
    );
    assert!(
        listed
            .items
            .iter()
            .any(|b| b.metadata.namespace.as_deref() == Some(&*f.tenant_ns))
    );
    allowed(
        "list accounts cluster-wide",
        all_accounts.list(&ListParams::default()).await,
    );
    allowed(
        "watch bindings cluster-wide",
        first_watch_event(&all_bindings).await,
    );
    allowed(
        "watch accounts cluster-wide",
        first_watch_event(&all_accounts).await,
    );

    // Get, patch (finalizers) and update the resources, and their status.
    let bindings: Api<KeyVaultBinding> = Api::namespaced(op.clone(), &f.tenant_ns);
    let accounts: Api<CosmosAccountCMK> = Api::namespaced(op.clone(), &f.tenant_ns);
    let labels = serde_json::json!({"metadata": {"labels": {"rbac-test": "patched"}}});
    allowed(
        "patch a binding",
        bindings
            .patch(
                "orders-key",
                &PatchParams::default(),
                &Patch::Merge(&labels),
            )
            .await,
    );
    allowed(
        "patch an account",
        accounts
            .patch("orders", &PatchParams::default(), &Patch::Merge(&labels))
            .await,
    );
    let mut account = allowed("get an account", accounts.get("orders").await);
    account
        .metadata
        .labels
        .get_or_insert_default()
        .insert("rbac-test".into(), "updated".into());
    allowed(
        "update an account",
        accounts
            .replace("orders", &PostParams::default(), &account)
            .await,
    );
    let status = serde_json::json!({"status": {"phase": "Pending", "observedGeneration": 1}});
    allowed(
        "patch binding status",
        bindings
            .patch_status(
                "orders-key",
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await,
    );
    allowed(
        "patch account status",
        accounts
            .patch_status("orders", &PatchParams::default(), &Patch::Merge(&status))
            .await,
    );
    let account = allowed("get account status", accounts.get_status("orders").await);
    allowed(
        "update account status",
        accounts
            .replace_status("orders", &PostParams::default(), &account)
            .await,
    );
    // Server-side apply of status, as a field manager would.
    let ssa = serde_json::json!({
        "apiVersion": "cosmoscmk.io/v1alpha1", "kind": "KeyVaultBinding",
        "status": {"phase": "Waiting"},
    });
    allowed(
        "apply binding status",
        bindings
            .patch_status(
                "orders-key",
                &PatchParams::apply("cmk-operator").force(),
                &Patch::Apply(&ssa),
            )
            .await,
    );

    // Events on those resources (events.k8s.io/v1, as kube's Recorder writes them).
    let events: Api<Event> = Api::namespaced(op.clone(), &f.tenant_ns);
    let binding = allowed("get a binding", bindings.get("orders-key").await);
    let event = Event {
        metadata: ObjectMeta {
            name: Some("orders-key.rbac-test".into()),
            ..Default::default()
        },
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        action: Some("Reconcile".into()),
        reason: Some("KeyReady".into()),
        note: Some("rbac proof".into()),
        type_: Some("Normal".into()),
        reporting_controller: Some("cosmoscmk.io/cmk-operator".into()),
        reporting_instance: Some("rbac-test".into()),
        regarding: Some(binding.object_ref(&())),
        ..Default::default()
    };
    allowed(
        "create an event",
        events.create(&PostParams::default(), &event).await,
    );
    let series = serde_json::json!({"series": {"count": 2, "lastObservedTime": MicroTime(jiff::Timestamp::now())}});
    allowed(
        "patch an event",
        events
            .patch(
                "orders-key.rbac-test",
                &PatchParams::default(),
                &Patch::Merge(&series),
            )
            .await,
    );

    // A credential Secret, read by name, in a namespace the tenancy policy allows.
    let secrets: Api<Secret> = Api::namespaced(op.clone(), &f.tenant_ns);
    allowed("get a named Secret", secrets.get("azure-credential").await);

    // Leader election: create, get and renew its Lease in the release namespace.
    let leases: Api<Lease> = Api::namespaced(op.clone(), &f.release_ns);
    allowed(
        "create the Lease",
        leases
            .create(&PostParams::default(), &lease_named(&f.lease))
            .await,
    );
    let mut lease = allowed("get the Lease", leases.get(&f.lease).await);
    lease.spec.get_or_insert_default().holder_identity = Some("pod-b".into());
    allowed(
        "update the Lease",
        leases
            .replace(&f.lease, &PostParams::default(), &lease)
            .await,
    );
}

fn lease_named(name: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("pod-a".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn token_cannot_do_anything_else() {
    let f = setup("rbac-cannot").await;
    let op = &f.op;
    let secrets: Api<Secret> = Api::namespaced(op.clone(), &f.tenant_ns);
    let all_secrets: Api<Secret> = Api::all(op.clone());

    // Secrets: none outside the namespaces the tenancy policy allows (the
    // release namespace is not one of them here).
    for ns in [&f.outside_ns, &f.release_ns] {
        forbidden(
            &format!("get a Secret in {ns}, which the tenancy policy does not list"),
            Api::<Secret>::namespaced(op.clone(), ns)
                .get("azure-credential")
                .await,
        );
    }
    // And no enumeration, no watching, no writing anywhere.
    forbidden(
        "list secrets in a namespace",
        secrets.list(&ListParams::default()).await,
    );
    forbidden(
        "list secrets cluster-wide",
        all_secrets.list(&ListParams::default()).await,
    );
    forbidden(
        "get a secret through a field-selected list",
        secrets
            .list(&ListParams::default().fields("metadata.name=azure-credential"))
            .await,
    );
    forbidden("watch secrets", first_watch_event(&all_secrets).await);
    forbidden(
        "watch one secret",
        secrets
            .watch(
                &WatchParams::default()
                    .fields("metadata.name=azure-credential")
                    .timeout(2),
                "0",
            )
            .await
            .map(|_| ()),
    );
    forbidden(
        "create a secret",
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some("stolen".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await,
    );
    let patch = serde_json::json!({"metadata": {"labels": {"x": "y"}}});
    forbidden(
        "patch a secret",
        secrets
            .patch(
                "azure-credential",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await,
    );
    forbidden(
        "delete a secret",
        secrets
            .delete("azure-credential", &DeleteParams::default())
            .await,
    );

    // Its own kinds: no create, no delete (users own them).
    let bindings: Api<KeyVaultBinding> = Api::namespaced(op.clone(), &f.tenant_ns);
    let accounts: Api<CosmosAccountCMK> = Api::namespaced(op.clone(), &f.tenant_ns);
    let mut other: KeyVaultBinding = example("01-binding-rbac.yaml");
    other.metadata.name = Some("forged".into());
    forbidden(
        "create a binding",
        bindings.create(&PostParams::default(), &other).await,
    );
    let mut other: CosmosAccountCMK = example("10-account-first-party.yaml");
    other.metadata.name = Some("forged".into());
    forbidden(
        "create an account",
        accounts.create(&PostParams::default(), &other).await,
    );
    forbidden(
        "delete a binding",
        bindings
            .delete("orders-key", &DeleteParams::default())
            .await,
    );
    forbidden(
        "delete an account",
        accounts.delete("orders", &DeleteParams::default()).await,
    );
    forbidden(
        "delete all accounts",
        accounts
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await,
    );

    // Events: no reading others' events, no deleting.
    let events: Api<Event> = Api::namespaced(op.clone(), &f.tenant_ns);
    forbidden("list events", events.list(&ListParams::default()).await);
    forbidden(
        "delete an event",
        events.delete("anything", &DeleteParams::default()).await,
    );

    // Leases: only its own, in the release namespace, and never deleted.
    let leases: Api<Lease> = Api::namespaced(op.clone(), &f.release_ns);
    forbidden("list leases", leases.list(&ListParams::default()).await);
    forbidden("watch leases", first_watch_event(&leases).await);
    Api::<Lease>::namespaced(f.admin.clone(), &f.release_ns)
        .create(&PostParams::default(), &lease_named("another-controller"))
        .await
        .expect("admin creates another controller's Lease");
    cannot_use_lease(&leases, "another-controller").await;
    forbidden(
        "delete its own Lease",
        leases.delete(&f.lease, &DeleteParams::default()).await,
    );
    let foreign: Api<Lease> = Api::namespaced(op.clone(), &f.tenant_ns);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("cosmos-cmk-operator".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec::default()),
    };
    forbidden(
        "create a lease in another namespace",
        foreign.create(&PostParams::default(), &lease).await,
    );
    forbidden(
        "get a lease in another namespace",
        foreign.get("cosmos-cmk-operator").await,
    );
    let system: Api<Lease> = Api::namespaced(op.clone(), "kube-system");
    forbidden(
        "get a kube-system lease",
        system.get("kube-controller-manager").await,
    );

    // Workloads and other core objects.
    let deployments: Api<Deployment> = Api::namespaced(op.clone(), &f.release_ns);
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "evil"},
        "spec": {
            "selector": {"matchLabels": {"app": "evil"}},
            "template": {"metadata": {"labels": {"app": "evil"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    }))
    .unwrap();
    forbidden(
        "create a deployment",
        deployments
            .create(&PostParams::default(), &deployment)
            .await,
    );
    forbidden(
        "list deployments",
        deployments.list(&ListParams::default()).await,
    );
    forbidden(
        "patch a deployment",
        deployments
            .patch("cmk", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    forbidden(
        "list pods",
        Api::<Pod>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
    forbidden(
        "get a configmap",
        Api::<ConfigMap>::namespaced(op.clone(), &f.tenant_ns)
            .get("kube-root-ca.crt")
            .await,
    );
    forbidden(
        "list namespaces",
        Api::<Namespace>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
    forbidden(
        "delete a namespace",
        Api::<Namespace>::all(op.clone())
            .delete(&f.tenant_ns, &DeleteParams::default())
            .await,
    );

    // No escalation: no tokens for other accounts, no RBAC writes.
    let sas: Api<ServiceAccount> = Api::namespaced(op.clone(), &f.release_ns);
    forbidden(
        "mint a token for its own ServiceAccount",
        sas.create_subresource::<_, serde_json::Value>(
            "token",
            &f.sa,
            &PostParams::default(),
            &serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
        )
        .await,
    );
    forbidden(
        "list service accounts",
        sas.list(&ListParams::default()).await,
    );
    let rbs: Api<RoleBinding> = Api::namespaced(op.clone(), &f.release_ns);
    forbidden("list rolebindings", rbs.list(&ListParams::default()).await);
    let admin_binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "escalate"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": f.sa, "namespace": f.release_ns}],
    }))
    .unwrap();
    forbidden(
        "bind cluster-admin",
        rbs.create(&PostParams::default(), &admin_binding).await,
    );
    let crs: Api<ClusterRole> = Api::all(op.clone());
    forbidden(
        "patch its own ClusterRole",
        crs.patch(&f.sa, &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );

    // CRDs are installed by the chart (or kubectl), never by the operator.
    let crds: Api<CustomResourceDefinition> = Api::all(op.clone());
    forbidden("get a CRD", crds.get("keyvaultbindings.cosmoscmk.io").await);
    forbidden("list CRDs", crds.list(&ListParams::default()).await);
    forbidden(
        "patch a CRD",
        crds.patch(
            "keyvaultbindings.cosmoscmk.io",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await,
    );
    forbidden(
        "delete a CRD",
        crds.delete("cosmosaccountcmks.cosmoscmk.io", &DeleteParams::default())
            .await,
    );

    // Nothing above happened: the admin still sees the Secret unchanged and both resources.
    let secret = Api::<Secret>::namespaced(f.admin.clone(), &f.tenant_ns)
        .get("azure-credential")
        .await
        .expect("secret still there");
    assert!(secret.metadata.labels.is_none());
    Api::<KeyVaultBinding>::namespaced(f.admin.clone(), &f.tenant_ns)
        .get("orders-key")
        .await
        .expect("binding still there");
}

/// The one thing the leader-election Role allows beyond the operator's own
/// Lease: creating a Lease of another name, since Kubernetes RBAC cannot
/// limit `create` by name (the request names no existing object). Once it
/// exists, the token can neither read, renew nor delete it.
#[tokio::test]
async fn a_lease_of_another_name_can_be_created_but_never_used() {
    let f = setup("rbac-lease").await;
    let leases: Api<Lease> = Api::namespaced(f.op.clone(), &f.release_ns);
    allowed(
        "create a Lease of another name",
        leases
            .create(&PostParams::default(), &lease_named("not-the-operators"))
            .await,
    );
    cannot_use_lease(&leases, "not-the-operators").await;
}

/// The token can neither read, renew, patch nor delete the Lease `name`.
async fn cannot_use_lease(leases: &Api<Lease>, name: &str) {
    forbidden(&format!("read the Lease {name}"), leases.get(name).await);
    forbidden(
        &format!("renew the Lease {name}"),
        leases
            .replace(name, &PostParams::default(), &lease_named(name))
            .await,
    );
    let patch = serde_json::json!({"spec": {"holderIdentity": "intruder"}});
    forbidden(
        &format!("patch the Lease {name}"),
        leases
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    forbidden(
        &format!("delete the Lease {name}"),
        leases.delete(name, &DeleteParams::default()).await,
    );
}

/// The documented fallback: a `"*"` tenancy entry lets every namespace use
/// the operator, so the chart lets it read Secrets by name in every
/// namespace (still never list or watch them).
#[tokio::test]
async fn a_wildcard_tenancy_entry_reads_secrets_by_name_in_every_namespace() {
    let (admin, release_ns) = common::test_namespace("rbac-any-op").await;
    let (_, other_ns) = common::test_namespace("rbac-any-tenant").await;
    Api::<Secret>::namespaced(admin, &other_ns)
        .create(&PostParams::default(), &credential_secret())
        .await
        .expect("admin creates a Secret");
    let op = common::rbac::install_operator_identity_allowing(&release_ns, &["*"])
        .await
        .client;
    let secrets: Api<Secret> = Api::namespaced(op.clone(), &other_ns);
    allowed(
        "get a named Secret in any namespace",
        secrets.get("azure-credential").await,
    );
    forbidden(
        "list secrets in a namespace",
        secrets.list(&ListParams::default()).await,
    );
    forbidden(
        "list secrets cluster-wide",
        Api::<Secret>::all(op).list(&ListParams::default()).await,
    );
}

#[tokio::test]
async fn operator_client_helper_gives_a_working_token_client() {
    let (_admin, ns) = common::test_namespace("rbac-helper").await;
    let client = common::rbac::operator_client(&ns).await;
    let lease = common::rbac::fullname(&ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    allowed("get its lease", leases.get_opt(&lease).await);
    forbidden(
        "list secrets",
        Api::<Secret>::namespaced(client, &ns)
            .list(&ListParams::default())
            .await,
    );
    // The kubeconfig it writes (for running the operator binary) works with kubectl too,
    // and answers with the same permissions.
    let kubeconfig = common::repo_root()
        .join("target/control-plane/operator-kubeconfigs")
        .join(format!("{ns}.yaml"));
    let kubectl = common::repo_root().join("target/control-plane/bin/kubectl");
    let can = |args: &[&str]| {
        std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["auth", "can-i"])
            .args(args)
            .output()
            .expect("kubectl runs")
            .stdout
    };
    assert_eq!(
        can(&["watch", "cosmosaccountcmks.cosmoscmk.io", "-A"]),
        b"yes\n"
    );
    assert_eq!(
        can(&["create", "leases.coordination.k8s.io", "-n", &ns]),
        b"yes\n"
    );
    assert_eq!(
        can(&[
            "update",
            &format!("leases.coordination.k8s.io/{lease}"),
            "-n",
            &ns
        ]),
        b"yes\n"
    );
    assert_eq!(
        can(&["update", "leases.coordination.k8s.io/other", "-n", &ns]),
        b"no\n"
    );
    assert_eq!(can(&["list", "secrets", "-n", &ns]), b"no\n");
    // The default tenancy policy allows no namespace: no Secret may be read.
    assert_eq!(can(&["get", "secrets", "-n", &ns]), b"no\n");
    assert_eq!(
        can(&["delete", "cosmosaccountcmks.cosmoscmk.io", "-A"]),
        b"no\n"
    );
}
