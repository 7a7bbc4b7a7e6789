//! The chart's aggregated ClusterRoles on the real API server: a user bound
//! to the built-in `edit` role in a namespace may create, change and delete
//! KeyVaultBindings and CosmosAccountCMKs there; one bound to `view` may only
//! read them. Requests are sent as those users (impersonation).
//!
//! The local control plane runs no kube-controller-manager, so its
//! clusterrole-aggregation controller does not fill the built-in roles here
//! (`edit` has an aggregationRule and no rules; a cluster has them filled).
//! The test then does that controller's work itself, as it does it
//! (kubernetes pkg/controller/clusterroleaggregation): the rules of every
//! ClusterRole matching the built-in role's own aggregationRule selectors,
//! unioned into a stand-in role. What is proven is thus the chart's labels
//! against the built-in roles' real selectors, and the rules' effect.
//! `aggregated_by_the_controller` proves it with the real controller, on the
//! test cluster (the release test calls it after its install).

use crate::common;

use std::time::Duration;

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use common::helm::{apply, render};

/// A client that sends every request as `user` (impersonation by the admin).
async fn as_user(user: &str) -> kube::Client {
    as_user_of(common::kubeconfig_path(), user).await
}

/// As `as_user`, through the admin of the cluster `kubeconfig` names.
async fn as_user_of(kubeconfig: &std::path::Path, user: &str) -> kube::Client {
    let mut kubeconfig = Kubeconfig::read_from(kubeconfig).expect("kubeconfig readable");
    for named in &mut kubeconfig.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(user.to_owned());
        }
    }
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    kube::Client::try_from(config).expect("client builds")
}

/// The built-in role `name`'s rules as the aggregation controller makes
/// them: its own when already filled (a controller runs), otherwise the
/// union of the rules of the ClusterRoles its selectors match.
async fn built_in_rules(client: &kube::Client, name: &str) -> Vec<PolicyRule> {
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let built_in = roles.get(name).await.expect("built-in role");
    let selectors = built_in
        .aggregation_rule
        .and_then(|a| a.cluster_role_selectors)
        .expect("built-in roles aggregate");
    let mut rules = Vec::new();
    for selector in selectors {
        assert!(
            selector.match_expressions.is_none(),
            "{name}: matchLabels only"
        );
        let labels: Vec<String> = selector
            .match_labels
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let matching = roles
            .list(&ListParams::default().labels(&labels.join(",")))
            .await
            .expect("list");
        for role in matching.items {
            if role.metadata.name.as_deref() != Some(name) {
                rules.extend(role.rules.unwrap_or_default());
            }
        }
    }
    rules
}

/// A RoleBinding `name` of the ClusterRole `role` to the user `user`.
async fn bind(bindings: &Api<RoleBinding>, name: &str, role: &str, user: &str) {
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .expect("binding");
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap_or_else(|e| panic!("RoleBinding {name}: {e}"));
}

fn kind_api(client: &kube::Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("cosmoscmk.io", "v1alpha1", kind);
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn example(file: &str) -> DynamicObject {
    let text = std::fs::read_to_string(common::repo_root().join("deploy/examples").join(file))
        .expect("example");
    let value: Value = serde_saphyr::from_str(&text).expect("example YAML");
    serde_json::from_value(value).expect("object")
}

fn forbidden<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn edit_users_manage_the_kinds_and_view_users_read_them() {
    let (admin, ns) = common::test_namespace("chart-agg").await;
    let (_, other_ns) = common::test_namespace("chart-agg-other").await;
    // Cluster-scoped names: unique per test namespace.
    let full = format!("fullnameOverride=agg-{ns}");
    let yaml = render(
        "cmk",
        &ns,
        &[
            "--set",
            &full,
            "--show-only",
            "templates/rbac-aggregate.yaml",
        ],
    );
    apply(&yaml).unwrap_or_else(|e| panic!("aggregated roles install: {e}"));

    // Stand-ins for the built-in roles (see the module comment), bound in
    // the test namespace: alice edits, bob views.
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &ns);
    for (built_in, user) in [("edit", "alice"), ("view", "bob")] {
        let rules = built_in_rules(&admin, built_in).await;
        let stand_in = format!("agg-{ns}-as-{built_in}");
        let role: ClusterRole = serde_json::from_value(json!({
            "metadata": {"name": stand_in},
            "rules": rules,
        }))
        .expect("role");
        roles
            .create(&PostParams::default(), &role)
            .await
            .expect("stand-in role");
        bind(&bindings, &format!("{user}-{built_in}"), &stand_in, user).await;
    }

    let alice = as_user("alice").await;
    let bob = as_user("bob").await;
    let kinds = [
        (
            "KeyVaultBinding",
            "keyvaultbindings",
            "01-binding-rbac.yaml",
        ),
        (
            "CosmosAccountCMK",
            "cosmosaccountcmks",
            "12-account-user-assigned.yaml",
        ),
    ];
    for (kind, plural, file) in kinds {
        let obj = example(file);
        let name = obj.metadata.name.clone().expect("named");
        let as_alice = kind_api(&alice, &ns, kind, plural);
        // The RBAC authorizer's cache catches up with the new bindings.
        common::eventually(Duration::from_secs(20), "alice may create", || async {
            as_alice.create(&PostParams::default(), &obj).await.ok()
        })
        .await;
        as_alice
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"team": "payments"}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("{kind}: alice patches: {e}"));
        forbidden(
            &format!("{kind}: alice writes status"),
            as_alice
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"phase": "Ready"}})),
                )
                .await,
        );
        forbidden(
            &format!("{kind}: alice in a namespace she is not bound in"),
            kind_api(&alice, &other_ns, kind, plural)
                .create(&PostParams::default(), &obj)
                .await,
        );

        let as_bob = kind_api(&bob, &ns, kind, plural);
        common::eventually(Duration::from_secs(20), "bob may read", || async {
            as_bob.get(&name).await.ok()
        })
        .await;
        assert_eq!(
            as_bob
                .list(&ListParams::default())
                .await
                .expect("bob lists")
                .items
                .len(),
            1
        );
        let mut renamed = obj.clone();
        renamed.metadata.name = Some(format!("{name}-bob"));
        forbidden(
            &format!("{kind}: bob creates"),
            as_bob.create(&PostParams::default(), &renamed).await,
        );
        forbidden(
            &format!("{kind}: bob patches"),
            as_bob
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
                )
                .await,
        );
        forbidden(
            &format!("{kind}: bob deletes"),
            as_bob.delete(&name, &DeleteParams::default()).await,
        );

        as_alice
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("{kind}: alice deletes: {e}"));
    }

    // The built-in roles' selectors picked the chart's rules up.
    for built_in in ["edit", "view"] {
        let rules = built_in_rules(&admin, built_in).await;
        assert!(
            rules.iter().any(|r| r
                .api_groups
                .as_deref()
                .is_some_and(|g| g.iter().any(|g| g == "cosmoscmk.io"))),
            "{built_in} aggregates the kinds"
        );
    }
    // Leave no aggregated role behind on the shared control plane.
    for suffix in ["view", "edit", "as-edit", "as-view"] {
        roles
            .delete(&format!("agg-{ns}-{suffix}"), &DeleteParams::default())
            .await
            .expect("role deleted");
    }
}

/// Whether `user` may `verb` `resource` (a plural, or plural/subresource)
/// of cosmoscmk.io in `ns`, as the API server's authorizer answers.
async fn may(client: &kube::Client, user: &str, ns: &str, verb: &str, resource: &str) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (resource, None),
    };
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {"user": user, "resourceAttributes": {
            "group": "cosmoscmk.io", "resource": resource, "subresource": subresource,
            "namespace": ns, "verb": verb,
        }},
    }))
    .expect("review");
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// On a cluster whose kube-controller-manager aggregates (the test
/// cluster), with the chart installed (`rbac.aggregateClusterRoles`, on by
/// default): the built-in `edit` and `view` roles come to hold the kinds'
/// rules; in `ns` a user bound to `edit` may create, patch and delete both
/// kinds (and patches `account`, an existing CosmosAccountCMK, as that
/// user), never their status; a user bound to `view` reads them and nothing
/// more. The bindings are removed afterwards.
pub(crate) async fn aggregated_by_the_controller(
    admin: &kube::Client,
    kubeconfig: &std::path::Path,
    ns: &str,
    account: &str,
) {
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    for built_in in ["edit", "view"] {
        common::eventually(
            Duration::from_secs(60),
            &format!("the aggregation controller filling `{built_in}` with the kinds' rules"),
            || async {
                let rules = roles.get(built_in).await.ok()?.rules.unwrap_or_default();
                rules
                    .iter()
                    .any(|r| {
                        r.api_groups
                            .as_deref()
                            .is_some_and(|g| g.iter().any(|g| g == "cosmoscmk.io"))
                    })
                    .then_some(())
            },
        )
        .await;
    }
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), ns);
    for (built_in, user) in [("edit", "alice"), ("view", "bob")] {
        bind(&bindings, &format!("{user}-{built_in}"), built_in, user).await;
    }
    common::eventually(
        Duration::from_secs(20),
        "the authorizer seeing the bindings",
        || async {
            may(admin, "bob", ns, "get", "cosmosaccountcmks")
                .await
                .then_some(())
        },
    )
    .await;
    for plural in ["keyvaultbindings", "cosmosaccountcmks"] {
        for verb in [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ] {
            assert!(
                may(admin, "alice", ns, verb, plural).await,
                "edit: {verb} {plural}"
            );
            let read = matches!(verb, "get" | "list" | "watch");
            assert_eq!(
                may(admin, "bob", ns, verb, plural).await,
                read,
                "view: {verb} {plural}"
            );
        }
        for user in ["alice", "bob"] {
            let status = format!("{plural}/status");
            assert!(
                !may(admin, user, ns, "patch", &status).await,
                "{user}: patch {status}"
            );
        }
        assert!(
            !may(admin, "alice", "default", "create", plural).await,
            "alice outside {ns}"
        );
    }
    // Requests as those users, on the real resource.
    let as_alice = kind_api(
        &as_user_of(kubeconfig, "alice").await,
        ns,
        "CosmosAccountCMK",
        "cosmosaccountcmks",
    );
    as_alice
        .patch(
            account,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"team": "payments"}}})),
        )
        .await
        .unwrap_or_else(|e| panic!("alice (edit) patches {account}: {e}"));
    let as_bob = kind_api(
        &as_user_of(kubeconfig, "bob").await,
        ns,
        "CosmosAccountCMK",
        "cosmosaccountcmks",
    );
    as_bob
        .get(account)
        .await
        .unwrap_or_else(|e| panic!("bob (view) reads {account}: {e}"));
    forbidden(
        "bob (view) patches",
        as_bob
            .patch(
                account,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
            )
            .await,
    );
    for (built_in, user) in [("edit", "alice"), ("view", "bob")] {
        bindings
            .delete(&format!("{user}-{built_in}"), &DeleteParams::default())
            .await
            .expect("binding deleted");
    }
}
