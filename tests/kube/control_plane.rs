//! The local control plane (tests/control-plane/) is what every Kubernetes
//! test stands on: a real kube-apiserver v1.37 reachable with the kubeconfig
//! `up` writes, authorization by RBAC, leases for leader election, and the
//! CRD helper the other tests use.

use crate::common;

use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, PostParams};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

/// The HTTP status of an API error, or a panic naming what was expected.
fn status_code<T: std::fmt::Debug>(result: kube::Result<T>, expected: &str) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected {expected}, got {other:?}"),
    }
}

/// Who the API server thinks the client is (authentication.k8s.io SelfSubjectReview).
async fn whoami(client: &kube::Client) -> (String, Vec<String>) {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview");
    let user = review.status.and_then(|s| s.user_info).expect("user info");
    (
        user.username.unwrap_or_default(),
        user.groups.unwrap_or_default(),
    )
}

#[tokio::test]
async fn api_server_v1_37_answers_the_kubeconfig_admin() {
    let client = common::client().await;
    let version = client.apiserver_version().await.expect("GET /version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "37"),
        "the control plane must match k8s-openapi's v1_37: {version:?}"
    );

    let (user, groups) = whoami(&client).await;
    assert_eq!(user, "cmk-admin");
    assert!(groups.iter().any(|g| g == "system:masters"), "{groups:?}");

    // The kubectl built beside it reads the same kubeconfig.
    assert_eq!(common::kubectl(&["get", "--raw", "/readyz"]).trim(), "ok");
}

#[test]
fn up_is_idempotent_and_prints_the_same_kubeconfig() {
    let first = common::kubeconfig_path();
    let out = std::process::Command::new(common::repo_root().join("tests/control-plane/up"))
        .output()
        .expect("up runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "up failed: {stderr}");
    assert_eq!(stdout.lines().last().map(str::trim), first.to_str());
    assert!(
        stderr.contains("already up"),
        "a second up must not restart a healthy control plane: {stderr}"
    );
}

#[tokio::test]
async fn rbac_denies_a_service_account_until_a_role_binding_grants_it() {
    let (admin, ns) = common::test_namespace("rbac").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("reader"),
                ..Default::default()
            },
        )
        .await
        .expect("ServiceAccount created");
    // The TokenRequest API needs no controller-manager, only the signing key.
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = accounts
        .create_token_request("reader", &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .and_then(|status| status.token)
        .expect("token issued");
    let reader = common::client_with_token(&token).await;
    assert_eq!(
        whoami(&reader).await.0,
        format!("system:serviceaccount:{ns}:reader")
    );

    let secrets: Api<Secret> = Api::namespaced(reader.clone(), &ns);
    assert_eq!(
        status_code(secrets.list(&Default::default()).await, "403"),
        403,
        "with no binding, RBAC must refuse"
    );

    let role = Role {
        metadata: meta("secret-reader"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("Role created");
    let binding = RoleBinding {
        metadata: meta("reader-reads-secrets"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "secret-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "reader".into(),
            namespace: Some(ns.clone()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("RoleBinding created");

    // The RBAC authorizer reads roles through an informer: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match secrets.list(&Default::default()).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the RoleBinding never took effect: {e}"),
        }
    }

    // The grant is exactly what the Role says: not other verbs, not other namespaces.
    let create = secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: meta("nope"),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(status_code(create, "403 for create"), 403);
    let elsewhere: Api<Secret> = Api::namespaced(reader, "default");
    assert_eq!(
        status_code(elsewhere.list(&Default::default()).await, "403 elsewhere"),
        403
    );
}

#[tokio::test]
async fn a_lease_can_be_taken_and_updates_are_guarded_by_resource_version() {
    let (client, ns) = common::test_namespace("cp-lease").await;
    let leases: Api<Lease> = Api::namespaced(client, &ns);
    let created = leases
        .create(
            &PostParams::default(),
            &Lease {
                metadata: meta("cmk-operator-probe"),
                spec: Some(LeaseSpec {
                    holder_identity: Some("replica-a".into()),
                    lease_duration_seconds: Some(15),
                    ..Default::default()
                }),
            },
        )
        .await
        .expect("Lease created");

    let mut taken = created.clone();
    taken.spec.as_mut().expect("spec").holder_identity = Some("replica-b".into());
    leases
        .replace("cmk-operator-probe", &PostParams::default(), &taken)
        .await
        .expect("update with the current resourceVersion");

    // A writer holding the old resourceVersion loses: leader election relies on this.
    let mut stale = created;
    stale.spec.as_mut().expect("spec").holder_identity = Some("replica-c".into());
    let lost = leases
        .replace("cmk-operator-probe", &PostParams::default(), &stale)
        .await;
    assert_eq!(status_code(lost, "409 Conflict"), 409);

    let now = leases.get("cmk-operator-probe").await.expect("Lease read");
    assert_eq!(
        now.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("replica-b")
    );
}

const PROBE_CRD: &str = r#"# a CRD of the test's own, to exercise common::apply_crds
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: probes.controlplane.test.cosmoscmk.io
spec:
  group: controlplane.test.cosmoscmk.io
  names: {kind: Probe, plural: probes, singular: probe, listKind: ProbeList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
---
"#;

#[tokio::test]
async fn apply_crds_installs_a_directory_of_crds_and_waits_until_served() {
    let (client, ns) = common::test_namespace("cp-crd").await;
    let dir = std::env::temp_dir().join(format!("cmk-crd-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("probe.yaml"), PROBE_CRD).expect("CRD written");
    std::fs::write(dir.join("notes.txt"), "not YAML, skipped").expect("other file written");

    let names = common::apply_crds(&client, &dir).await;
    assert_eq!(names, ["probes.controlplane.test.cosmoscmk.io"]);
    // Applying again converges instead of failing.
    assert_eq!(common::apply_crds(&client, &dir).await, names);
    std::fs::remove_dir_all(&dir).expect("temp dir removed");

    // Established means served, with its schema enforced.
    let gvk = GroupVersionKind::gvk("controlplane.test.cosmoscmk.io", "v1", "Probe");
    let probes: Api<DynamicObject> = Api::namespaced_with(
        client,
        &ns,
        &ApiResource::from_gvk_with_plural(&gvk, "probes"),
    );
    let probe = |size: i64| -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "controlplane.test.cosmoscmk.io/v1",
            "kind": "Probe",
            "metadata": {"name": format!("size-{size}")},
            "spec": {"size": size},
        }))
        .expect("a Probe")
    };
    probes
        .create(&PostParams::default(), &probe(3))
        .await
        .expect("a valid Probe is accepted");
    let invalid = probes.create(&PostParams::default(), &probe(0)).await;
    assert_eq!(status_code(invalid, "422 for size 0"), 422);
}
