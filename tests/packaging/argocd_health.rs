//! The Argo CD health checks in `deploy/argocd/`, run the way Argo CD runs
//! them: the script from the `argocd-cm` patch, a global `obj` built from the
//! resource (JSON numbers as Lua numbers, nulls absent), only the libraries
//! Argo CD's sandbox opens (base and table; its "safe" os, which only reads
//! the clock, is left out here too: a script that runs here runs there),
//! evaluated by a real Lua 5.1 interpreter (`lua5.1`; Debian package lua5.1,
//! installed by .ci/run). Then the same samples through Argo CD's own code
//! (tests/argocd: its settings manager reading `argocd-cm.yaml`, its Lua VM,
//! and gitops-engine's health evaluation as the application controller calls
//! it). Expectations live in `deploy/argocd/health_test.yaml`, in the layout
//! of Argo CD's own resource_customizations tests.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

const KINDS: [&str; 2] = ["KeyVaultBinding", "CosmosAccountCMK"];

pub fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd")
}

#[derive(Deserialize)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthTest {
    input_path: String,
    health_status: HealthStatus,
}

#[derive(Deserialize, Debug, PartialEq, Eq)]
struct HealthStatus {
    status: String,
    message: String,
}

fn health_tests() -> Vec<HealthTest> {
    let text = std::fs::read_to_string(argocd_dir().join("health_test.yaml"))
        .expect("deploy/argocd/health_test.yaml exists");
    serde_saphyr::from_str::<HealthTests>(&text)
        .expect("health_test.yaml parses")
        .tests
}

/// The `data` of the argocd-cm patch.
pub fn argocd_cm_data() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(argocd_dir().join("argocd-cm.yaml"))
        .expect("deploy/argocd/argocd-cm.yaml exists");
    let cm: Value = serde_saphyr::from_str(&text).expect("argocd-cm.yaml is YAML");
    assert_eq!(cm["apiVersion"], "v1");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    cm["data"].as_object().expect("data is a map").clone()
}

fn health_key(kind: &str) -> String {
    format!("resource.customizations.health.cosmoscmk.io_{kind}")
}

/// The script Argo CD would run for `kind`.
fn script_for(kind: &str) -> String {
    argocd_cm_data()
        .get(&health_key(kind))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("argocd-cm.yaml has no {}", health_key(kind)))
        .to_owned()
}

fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b}")),
        }
    }
    out.push('"');
    out
}

/// A Lua table constructor for `v`, as Argo CD converts JSON for its Lua VM
/// (objects to tables, arrays to 1-based tables, numbers to Lua numbers, null
/// to nothing).
fn lua_value(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(lua_value).collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_value(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Runs `script` with `obj` in Lua 5.1 and returns (status, message).
fn run_health(script: &str, obj: &Value) -> Result<HealthStatus, String> {
    let harness = format!(
        r#"local obj = {obj}
local source = {script}
local chunk, err = loadstring(source, "=health.lua")
if not chunk then error("does not compile: " .. err) end
-- Argo CD's sandbox (util/lua: SkipOpenLibs, then package, base, table and
-- a clock-only os): no string or math library, no io, no debug.
local env = {{
  obj = obj, ipairs = ipairs, pairs = pairs, next = next, type = type,
  tostring = tostring, tonumber = tonumber, select = select, unpack = unpack,
  error = error, assert = assert, pcall = pcall, table = table,
}}
setfenv(chunk, env)
local hs = chunk()
if type(hs) ~= "table" then error("the script must return a table, got " .. type(hs)) end
io.write(tostring(hs.status), "\0", tostring(hs.message))
"#,
        obj = lua_value(obj),
        script = lua_string(script),
    );
    let mut child = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run lua5.1 ({e}); install it: apt-get install -y lua5.1 (.ci/run does)")
        })?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(harness.as_bytes())
        .expect("harness written");
    let out = child.wait_with_output().expect("lua5.1 finishes");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let (status, message) = stdout.split_once('\0').expect("status and message");
    Ok(HealthStatus {
        status: status.to_owned(),
        message: message.to_owned(),
    })
}

#[test]
fn argocd_cm_embeds_health_lua_for_both_kinds() {
    let lua = std::fs::read_to_string(argocd_dir().join("health.lua")).expect("health.lua");
    let data = argocd_cm_data();
    let keys: BTreeSet<&str> = data
        .keys()
        .map(String::as_str)
        .filter(|k| k.starts_with("resource.customizations.health."))
        .collect();
    let want: Vec<String> = KINDS.iter().map(|k| health_key(k)).collect();
    let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(
        keys, want,
        "argocd-cm.yaml holds exactly one health check per kind"
    );
    for kind in KINDS {
        assert_eq!(
            script_for(kind).trim_end(),
            lua.trim_end(),
            "argocd-cm.yaml's script for {kind} drifted from deploy/argocd/health.lua"
        );
    }
}

#[test]
fn every_sample_is_tested_and_every_phase_is_covered() {
    let tests = health_tests();
    let listed: BTreeSet<String> = tests.iter().map(|t| t.input_path.clone()).collect();
    assert_eq!(listed.len(), tests.len(), "an input is listed twice");
    let on_disk: BTreeSet<String> = std::fs::read_dir(argocd_dir().join("testdata"))
        .expect("testdata")
        .map(|e| {
            format!(
                "testdata/{}",
                e.expect("entry").file_name().to_string_lossy()
            )
        })
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    assert_eq!(
        listed, on_disk,
        "health_test.yaml and deploy/argocd/testdata/ list different samples"
    );

    let mut phases = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut outcomes = BTreeSet::new();
    for t in &tests {
        let obj = load(&t.input_path);
        kinds.insert(obj["kind"].as_str().expect("kind").to_owned());
        if let Some(p) = obj["status"]["phase"].as_str() {
            phases.insert(p.to_owned());
        }
        outcomes.insert((
            obj["kind"].as_str().expect("kind").to_owned(),
            t.health_status.status.clone(),
        ));
    }
    for p in [
        "Pending",
        "Waiting",
        "Provisioning",
        "Ready",
        "Revoked",
        "Failed",
        "Deleting",
    ] {
        assert!(phases.contains(p), "no sample in phase {p}");
    }
    for kind in KINDS {
        assert!(kinds.contains(kind), "no sample of {kind}");
        for h in ["Healthy", "Progressing", "Degraded"] {
            assert!(
                outcomes.contains(&(kind.to_owned(), h.to_owned())),
                "no {kind} sample expected {h}"
            );
        }
    }
}

pub fn load(input_path: &str) -> Value {
    let text = std::fs::read_to_string(argocd_dir().join(input_path))
        .unwrap_or_else(|e| panic!("{input_path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{input_path}: {e}"))
}

#[test]
fn health_checks_give_the_expected_status_and_message() {
    let mut failures = Vec::new();
    let tests = health_tests();
    for t in &tests {
        let obj = load(&t.input_path);
        let kind = obj["kind"].as_str().expect("kind");
        match run_health(&script_for(kind), &obj) {
            Ok(got) if got == t.health_status => {}
            Ok(got) => failures.push(format!(
                "{}: want {:?}, got {:?}",
                t.input_path, t.health_status, got
            )),
            Err(e) => failures.push(format!("{}: the script failed: {e}", t.input_path)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} samples wrong:\n{}",
        failures.len(),
        tests.len(),
        failures.join("\n")
    );
}

#[test]
fn harness_sandbox_matches_argocd_and_rejects_io() {
    // The harness would hide a script that needs `io` or `os`, which Argo CD's
    // default VM does not open; show that such a script fails here.
    let obj = load("testdata/account-ready.yaml");
    let err = run_health("io.write('x') return {status='Healthy'}", &obj)
        .expect_err("io is not available to health scripts");
    assert!(err.contains("io"), "{err}");
    let err = run_health("return {status=os.time()}", &obj).expect_err("no os either");
    assert!(err.contains("os"), "{err}");
}

/// What Argo CD's own engine said for one sample (tests/argocd/main.go).
#[derive(Deserialize, Debug)]
struct EngineLine {
    #[serde(rename = "inputPath")]
    input_path: String,
    lua: EngineResult,
    controller: EngineResult,
}

#[derive(Deserialize, Debug, PartialEq, Eq)]
struct EngineResult {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    none: bool,
}

impl EngineResult {
    fn health(&self) -> Option<HealthStatus> {
        (self.error.is_empty() && !self.none).then(|| HealthStatus {
            status: self.status.clone(),
            message: self.message.clone(),
        })
    }
}

/// Builds tests/argocd (once per go.mod/go.sum/main.go; Argo CD v3.6.1 from
/// the Go module proxy, the go1.27 toolchain fetched when older) and runs it
/// over deploy/argocd.
fn argo_engine() -> Vec<EngineLine> {
    engine_output(&[])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// What argocd-health prints for deploy/argocd with `args` after it.
pub fn engine_output(args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let build = Command::new(root.join("tests/argocd/build"))
        .stderr(Stdio::inherit())
        .output()
        .expect("tests/argocd/build runs");
    assert!(
        build.status.success(),
        "tests/argocd/build failed (it needs Go and the Go module proxy): {}",
        String::from_utf8_lossy(&build.stdout)
    );
    let stdout = String::from_utf8(build.stdout).expect("utf-8");
    let bin = stdout.lines().last().expect("the binary's path").trim();
    let out = Command::new(bin)
        .arg(argocd_dir())
        .args(args)
        .output()
        .expect("argocd-health runs");
    assert!(
        out.status.success(),
        "argocd-health failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Argo CD's own code: the script as its settings manager reads it from
/// argocd-cm.yaml, run by its Lua VM, and the application controller's
/// evaluation (gitops-engine's, which handles an object being deleted itself
/// unless the script sets `deletionMessage`) give exactly the expected health
/// for every sample.
#[test]
fn argo_cds_own_engine_gives_the_expected_status_and_message() {
    let tests = health_tests();
    let lines = argo_engine();
    assert_eq!(
        lines
            .iter()
            .map(|l| l.input_path.as_str())
            .collect::<Vec<_>>(),
        tests
            .iter()
            .map(|t| t.input_path.as_str())
            .collect::<Vec<_>>(),
        "one answer per sample, in order"
    );
    let mut failures = Vec::new();
    for (t, l) in tests.iter().zip(&lines) {
        for (who, got) in [
            ("Argo CD's Lua VM", &l.lua),
            ("the application controller", &l.controller),
        ] {
            if got.health().as_ref() != Some(&t.health_status) {
                failures.push(format!(
                    "{} ({who}): want {:?}, got {:?}",
                    t.input_path, t.health_status, got
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} answers wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
