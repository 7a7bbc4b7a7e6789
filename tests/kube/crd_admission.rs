//! The API contract, enforced by a real kube-apiserver: the CRDs install, the
//! examples are accepted, and every invalid resource in
//! `tests/fixtures/admission/invalid.yaml` is refused with its own message.

use crate::common;

use std::path::{Path, PathBuf};

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn api_for(client: &kube::Client, ns: &str, obj: &Value) -> Api<DynamicObject> {
    let kind = obj["kind"].as_str().expect("example has a kind");
    let gvk = GroupVersionKind::gvk("cosmoscmk.io", "v1alpha1", kind);
    let plural = match kind {
        "KeyVaultBinding" => "keyvaultbindings",
        "CosmosAccountCMK" => "cosmosaccountcmks",
        other => panic!("unexpected kind {other}"),
    };
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn to_dynamic(obj: &Value) -> DynamicObject {
    serde_json::from_value(obj.clone()).expect("a Kubernetes object")
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo("deploy/examples"))
        .expect("deploy/examples exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn crds_are_established_and_valid_examples_are_accepted() {
    let (client, ns) = common::test_namespace("examples").await;
    let files = examples();
    assert!(files.len() >= 8, "every seed scenario has an example");
    for file in files {
        let obj = read_yaml(&file);
        let created = api_for(&client, &ns, &obj)
            .create(&PostParams::default(), &to_dynamic(&obj))
            .await
            .unwrap_or_else(|e| panic!("{} must be accepted: {e}", file.display()));
        assert!(created.metadata.uid.is_some());
    }
}

#[derive(Deserialize)]
struct Case {
    name: String,
    base: String,
    patch: Value,
    expect: String,
    #[serde(default)]
    update: bool,
    /// The field path the error names (`spec.capabilities: ...`).
    #[serde(default)]
    field: Option<String>,
}

#[tokio::test]
async fn invalid_resources_are_refused_with_clear_messages() {
    let (client, ns) = common::test_namespace("invalid").await;
    let cases: Vec<Case> = serde_saphyr::from_str(
        &std::fs::read_to_string(repo("tests/fixtures/admission/invalid.yaml"))
            .expect("corpus exists"),
    )
    .expect("corpus parses");
    assert!(cases.len() >= 25, "the corpus covers every rule");

    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut obj = read_yaml(&repo("deploy/examples").join(&case.base));
        obj["metadata"]["name"] = Value::String(format!("case-{i}"));
        let api = api_for(&client, &ns, &obj);
        let result = if case.update {
            create_then_update(&api, &obj, &case.patch, &case.name).await
        } else {
            common::merge_patch(&mut obj, &case.patch);
            api.create(&PostParams::default(), &to_dynamic(&obj)).await
        };
        let at_field = |message: &str| {
            case.field
                .as_ref()
                .is_none_or(|f| message.contains(&format!("{f}: ")))
        };
        match result {
            Err(kube::Error::Api(status))
                if status.code == 422
                    && status.message.contains(&case.expect)
                    && at_field(&status.message) => {}
            Err(e) => failures.push(format!(
                "{}: refused, but the message lacks {:?} (at {:?}): {e}",
                case.name, case.expect, case.field
            )),
            Ok(_) => failures.push(format!(
                "{}: accepted, expected {:?}",
                case.name, case.expect
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Creates `obj` (which must be accepted), then replaces it with `patch` merged in.
async fn create_then_update(
    api: &Api<DynamicObject>,
    obj: &Value,
    patch: &Value,
    case: &str,
) -> Result<DynamicObject, kube::Error> {
    let created = api
        .create(&PostParams::default(), &to_dynamic(obj))
        .await
        .unwrap_or_else(|e| panic!("{case}: base must be accepted: {e}"));
    let name = created.metadata.name.clone().expect("named");
    let mut changed = serde_json::to_value(&created).expect("serializes");
    common::merge_patch(&mut changed, patch);
    api.replace(&name, &PostParams::default(), &to_dynamic(&changed))
        .await
}

#[derive(Deserialize)]
struct ValidUpdate {
    name: String,
    base: String,
    patch: Value,
}

/// Every change the operator converges passes admission as an update.
#[tokio::test]
async fn convergeable_updates_are_accepted() {
    let (client, ns) = common::test_namespace("updates").await;
    let cases: Vec<ValidUpdate> = serde_saphyr::from_str(
        &std::fs::read_to_string(repo("tests/fixtures/admission/valid-updates.yaml"))
            .expect("corpus exists"),
    )
    .expect("corpus parses");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut obj = read_yaml(&repo("deploy/examples").join(&case.base));
        obj["metadata"]["name"] = Value::String(format!("update-{i}"));
        let api = api_for(&client, &ns, &obj);
        if let Err(e) = create_then_update(&api, &obj, &case.patch, &case.name).await {
            failures.push(format!("{}: refused: {e}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Azure allows Unicode letters in resource group names; RE2's `\w` does not.
#[tokio::test]
async fn a_resource_group_with_unicode_letters_is_accepted() {
    let (client, ns) = common::test_namespace("unicode").await;
    let mut obj = read_yaml(&repo("deploy/examples/12-account-user-assigned.yaml"));
    let rg = "équipe-données_東京(1)";
    common::merge_patch(
        &mut obj,
        &serde_json::json!({"spec": {"resourceGroup": rg, "identity": {"userAssignedIdentityId": format!(
            "/subscriptions/00000000-0000-0000-0000-00000000c0de/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-1"
        )}}}),
    );
    api_for(&client, &ns, &obj)
        .create(&PostParams::default(), &to_dynamic(&obj))
        .await
        .expect("a Unicode resource group is valid in Azure");
    let mut binding = read_yaml(&repo("deploy/examples/00-binding-access-policy.yaml"));
    common::merge_patch(
        &mut binding,
        &serde_json::json!({"spec": {"vaultResourceId": format!(
            "/subscriptions/00000000-0000-0000-0000-00000000c0de/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/kv-1"
        )}}),
    );
    api_for(&client, &ns, &binding)
        .create(&PostParams::default(), &to_dynamic(&binding))
        .await
        .expect("a vault in a Unicode resource group is valid");
}

#[tokio::test]
async fn defaults_are_applied_and_status_is_a_subresource() {
    let (client, ns) = common::test_namespace("status").await;
    let obj = read_yaml(&repo("deploy/examples/10-account-first-party.yaml"));
    let api = api_for(&client, &ns, &obj);
    let created = api
        .create(&PostParams::default(), &to_dynamic(&obj))
        .await
        .expect("created");
    let spec = &created.data["spec"];
    assert_eq!(spec["deletionPolicy"], "Retain");
    assert_eq!(spec["identity"]["type"], "FirstParty");
    assert_eq!(spec["backupPolicy"]["type"], "Periodic");
    assert_eq!(spec["kind"], "GlobalDocumentDB");
    assert_eq!(spec["rotation"]["previousVersionGraceHours"], 24);

    // A status sent through the main resource is dropped...
    let mut with_status = serde_json::to_value(&created).expect("serializes");
    with_status["status"] = serde_json::json!({"phase": "Ready"});
    let replaced = api
        .replace("orders", &PostParams::default(), &to_dynamic(&with_status))
        .await
        .expect("replaced");
    assert!(replaced.data.get("status").is_none_or(Value::is_null));
    // ...and only the status subresource writes it, without bumping the generation.
    let patch = serde_json::json!({"status": {"phase": "Provisioning", "keyVersionInUse": "abc"}});
    let patched = api
        .patch_status(
            "orders",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("status subresource");
    assert_eq!(patched.data["status"]["phase"], "Provisioning");
    assert_eq!(patched.metadata.generation, created.metadata.generation);
}

#[tokio::test]
async fn kubectl_explains_the_fields_and_prints_useful_columns() {
    let (client, ns) = common::test_namespace("kubectl").await;
    let obj = read_yaml(&repo("deploy/examples/10-account-first-party.yaml"));
    api_for(&client, &ns, &obj)
        .create(&PostParams::default(), &to_dynamic(&obj))
        .await
        .expect("created");
    let binding = read_yaml(&repo("deploy/examples/00-binding-access-policy.yaml"));
    api_for(&client, &ns, &binding)
        .create(&PostParams::default(), &to_dynamic(&binding))
        .await
        .expect("created");

    let explain = common::kubectl(&["explain", "cosmosaccountcmk.spec"]);
    for needle in [
        "accountName",
        "3-44 lowercase letters",
        "failoverPriority 0",
        "keyVaultBindingRef",
        "Retain",
    ] {
        assert!(
            explain.contains(needle),
            "kubectl explain lacks {needle:?}:\n{explain}"
        );
    }
    let table = common::kubectl(&["get", "cosmoscmk", "-n", &ns]);
    for needle in [
        "PHASE",
        "READY",
        "ACCOUNT",
        "KEY VERSION",
        "AGE",
        "cmk-demo-orders",
        "keyvaultbinding.cosmoscmk.io/orders-key",
    ] {
        assert!(
            table.contains(needle),
            "kubectl get cosmoscmk lacks {needle:?}:\n{table}"
        );
    }
}
