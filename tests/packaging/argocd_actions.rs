//! The Argo CD resource actions in `deploy/argocd/` (`rotate` on a binding,
//! `reconcile` on both kinds), run by Argo CD's own code (tests/argocd: its
//! settings manager reading `argocd-cm.yaml`, its Lua VM listing and running
//! actions as the API server's action endpoints do). Expectations live in
//! `deploy/argocd/actions_test.yaml`.

use serde::Deserialize;
use serde_json::Value;

use crate::argocd_health::{argocd_cm_data, argocd_dir, engine_output, load};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionTests {
    discovery_tests: Vec<DiscoveryTest>,
    action_tests: Vec<ActionTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DiscoveryTest {
    input_path: String,
    result: Vec<Discovered>,
}

#[derive(Deserialize, Debug, PartialEq, Eq, Clone)]
struct Discovered {
    name: String,
    #[serde(default)]
    disabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionTest {
    action: String,
    input_path: String,
    annotation: String,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Line {
    input_path: String,
    #[serde(default)]
    discovery: Vec<Discovered>,
    #[serde(default)]
    action: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    spec: Value,
    #[serde(default)]
    error: String,
}

fn action_tests() -> ActionTests {
    let text = std::fs::read_to_string(argocd_dir().join("actions_test.yaml"))
        .expect("deploy/argocd/actions_test.yaml exists");
    serde_saphyr::from_str(&text).expect("actions_test.yaml parses")
}

fn script(path: &str) -> String {
    std::fs::read_to_string(argocd_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// argocd-cm.yaml embeds deploy/argocd/actions/*.lua: one discovery script
/// for both kinds, `rotate` for the binding, `reconcile` for both.
#[test]
fn argocd_cm_embeds_the_action_scripts() {
    let data = argocd_cm_data();
    for (kind, actions) in [
        ("KeyVaultBinding", vec!["rotate", "reconcile"]),
        ("CosmosAccountCMK", vec!["reconcile"]),
    ] {
        let key = format!("resource.customizations.actions.cosmoscmk.io_{kind}");
        let text = data
            .get(&key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("argocd-cm.yaml has no {key}"));
        let inner: Value = serde_saphyr::from_str(text).expect("the actions are YAML");
        assert_eq!(
            inner["discovery.lua"].as_str().map(str::trim_end),
            Some(script("actions/discovery.lua").trim_end()),
            "{kind}: discovery.lua drifted from deploy/argocd/actions/discovery.lua"
        );
        let defs = inner["definitions"].as_array().expect("definitions");
        let names: Vec<&str> = defs.iter().filter_map(|d| d["name"].as_str()).collect();
        assert_eq!(names, actions, "{kind}");
        for d in defs {
            let name = d["name"].as_str().unwrap();
            assert_eq!(
                d["action.lua"].as_str().map(str::trim_end),
                Some(script(&format!("actions/{name}.lua")).trim_end()),
                "{kind}: {name} drifted from deploy/argocd/actions/{name}.lua"
            );
        }
    }
}

fn is_utc_second(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 20 && v.parse::<jiff::Timestamp>().is_ok() && b[10] == b'T' && b[19] == b'Z'
}

/// Argo CD lists exactly the expected actions (rotate disabled until the
/// binding has a key), and each action is a patch that sets its annotation
/// to the current time, keeps every other annotation and leaves the spec alone.
#[test]
fn argo_cds_own_engine_lists_and_runs_the_actions() {
    let tests = action_tests();
    let out = engine_output(&["actions"]);
    let lines: Vec<Line> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(
        lines.len(),
        tests.discovery_tests.len() + tests.action_tests.len(),
        "one answer per test"
    );
    let (found, ran) = lines.split_at(tests.discovery_tests.len());
    let mut failures = Vec::new();
    for (t, l) in tests.discovery_tests.iter().zip(found) {
        assert_eq!(t.input_path, l.input_path);
        if !l.error.is_empty() || l.discovery != t.result {
            failures.push(format!("{}: want {:?}, got {l:?}", t.input_path, t.result));
        }
    }
    for (t, l) in tests.action_tests.iter().zip(ran) {
        assert_eq!((&t.input_path, &t.action), (&l.input_path, &l.action));
        let before = load(&t.input_path);
        let mut kept: std::collections::BTreeMap<String, String> =
            before["metadata"]["annotations"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
        let set = l
            .annotations
            .get(&t.annotation)
            .cloned()
            .unwrap_or_default();
        kept.insert(t.annotation.clone(), set.clone());
        let ok = l.error.is_empty()
            && l.operation == "patch"
            && is_utc_second(&set)
            && l.annotations == kept
            && l.spec == before["spec"];
        if !ok {
            failures.push(format!(
                "{} {}: want {} set to the time, the rest kept; got {l:?}",
                t.action, t.input_path, t.annotation
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A second run gives a new value whenever the clock moved, which is what
/// makes the operator act again; the scripts name the operator's annotations.
#[test]
fn the_actions_write_the_operators_annotations() {
    assert!(script("actions/rotate.lua").contains(cmk_operator::api::ROTATE_ANNOTATION));
    assert!(script("actions/reconcile.lua").contains(cmk_operator::api::RECONCILE_ANNOTATION));
}
