//! Microsoft's Python SDKs, pinned (`tests/python/requirements.txt`) and at
//! their default settings, drive the seed's procedure against the simulator
//! (`tests/python/seed_slice.py`, then `seed_more.py`): a real
//! `ClientSecretCredential` (MSAL, with its OpenID discovery), the vault read
//! through ARM, a key created on `<vault>.vault.azure.net` through Key
//! Vault's challenge, a CMK account created (long-running operation polled as
//! the SDK polls) and read back; then the provider, an RBAC vault with role
//! assignments, key rotate and disable, a user-assigned identity and an
//! account on it (continuous backup), the system-assigned two-step, lists, a
//! key URI swap, Azure's refusals (versioned key URI, an account name taken
//! in another resource group, an unknown region, the first-party identity
//! with continuous backup, a disabled key version's GET (readable)); then the seed's
//! restore of a continuous account configured with a managed identity (the
//! restorable account looked up through the SDK, a new user-assigned
//! identity granted on the vault, `createMode: Restore` with
//! `restoreParameters`, once on the new identity and once on the source's),
//! the restored accounts carrying the source's user-assigned identity (the
//! seed's last FAQ), and the source's delete, after which only the account
//! restored on its own new identity keeps its key. The first slice runs again
//! on US Government, named only through the SDKs' documented settings.
//!
//! The only changes to the client are those of docs/simulator.md's recipe:
//! a hosts file bind-mounted over /etc/hosts in a private mount namespace
//! (`unshare -m`), mapping Azure's host names to a loopback address of this
//! test's own, and the simulator's CA as the trust store (`SSL_CERT_FILE`,
//! `REQUESTS_CA_BUNDLE`). Needs root (port 443, `unshare`, `mount`),
//! python3 with venv, and pip's access to PyPI on the first run.

use crate::sim_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use cmk_operator::sim::{Seed, SimConfig, Simulator};
use serde_json::Value;
use sim_support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `target/python-sdks/venv` with the pinned SDKs, installed once per
/// requirements file (a stamp holds the file it was installed from).
fn python_with_sdks() -> PathBuf {
    let dir = repo().join("target/python-sdks");
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    let requirements = repo().join("tests/python/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements file");
    let stamp = dir.join("installed-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return python;
    }
    std::fs::create_dir_all(&dir).expect("target/python-sdks");
    run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "python3 -m venv (Debian: apt-get install python3-venv)",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r tests/python/requirements.txt",
    );
    std::fs::write(&stamp, wanted).expect("stamp");
    python
}

/// A loopback address of this process's own (127.77.x.y), so parallel runs
/// of this test never share port 443.
fn own_loopback() -> IpAddr {
    let pid = std::process::id();
    IpAddr::V4(Ipv4Addr::new(
        127,
        77,
        ((pid >> 8) & 0xff) as u8,
        ((pid & 0xff) as u8).max(1),
    ))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The steps a script printed (one JSON object a line), each `ok`.
fn steps_of(out: &std::process::Output, script: &str) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    let steps: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for s in &steps {
        assert_eq!(s["ok"], true, "{script}: {s}");
    }
    steps
}

fn step<'a>(steps: &'a [Value], name: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {steps:?}"))
}

/// Runs `script` with the SDKs' Python inside the recipe: a private mount
/// namespace whose /etc/hosts maps `names` to `ip`, and `ca` as trust store.
fn in_recipe(
    python: &Path,
    script: &Path,
    ip: IpAddr,
    names: &[&str],
    ca: &Path,
    env: &[(&str, String)],
) -> std::process::Output {
    let work = ca.parent().expect("CA file has a directory");
    let hosts = work.join("hosts");
    let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    for n in names {
        text.push_str(&format!("\n{ip} {n}"));
    }
    text.push('\n');
    std::fs::write(&hosts, text).expect("hosts file");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/hosts && exec "$2" "$3""#)
        .arg("sh")
        .arg(&hosts)
        .arg(python)
        .arg(script)
        .env("SSL_CERT_FILE", ca)
        .env("REQUESTS_CA_BUNDLE", ca)
        // Nothing of the machine's Azure login may leak in.
        .env_remove("AZURE_AUTHORITY_HOST")
        .env_remove("AZURE_CLIENT_CERTIFICATE_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("unshare runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdks_run_the_seed_procedure_unchanged_but_for_hosts_and_trust() {
    assert!(
        is_root(),
        "this test needs root: it binds port 443 and bind-mounts /etc/hosts in a private mount namespace"
    );
    let python = tokio::task::spawn_blocking(python_with_sdks)
        .await
        .expect("install");

    let ip = own_loopback();
    let work = repo().join(format!("target/python-sdks/run-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let ca = work.join("ca.pem");
    let sim = Simulator::start(SimConfig {
        listen: SocketAddr::new(ip, 443),
        ca_file: Some(ca.clone()),
        ..SimConfig::for_tests()
    })
    .await
    .expect("simulator on port 443 of its own loopback address");
    let fp = first_party(&sim);
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-py", &[&fp])],
        ..Default::default()
    })
    .unwrap();

    let (client_id, secret, operator) = sim.operator_credentials();
    let env = [
        ("AZURE_TENANT_ID", sim.tenant_id().to_owned()),
        ("AZURE_CLIENT_ID", client_id),
        ("AZURE_CLIENT_SECRET", secret),
        ("SEED_SUBSCRIPTION", SUB.to_owned()),
        ("SEED_RESOURCE_GROUP", RG.to_owned()),
        ("SEED_VAULT", "kv-py".to_owned()),
        ("SEED_ACCOUNT", "acct-py".to_owned()),
        ("SEED_RBAC_VAULT", "kv-pyrbac".to_owned()),
        ("SEED_OPERATOR_OBJECT_ID", operator),
        ("SEED_FIRST_PARTY_OBJECT_ID", fp.clone()),
    ];
    let names = [
        "management.azure.com",
        "login.microsoftonline.com",
        "kv-py.vault.azure.net",
        "kv-pyrbac.vault.azure.net",
    ];
    let run_script = |script: &'static str| {
        let (python, ca, env) = (python.clone(), ca.clone(), env.clone());
        let path = repo().join("tests/python").join(script);
        tokio::task::spawn_blocking(move || in_recipe(&python, &path, ip, &names, &ca, &env))
    };

    let out = run_script("seed_slice.py").await.expect("python ran");
    let steps = steps_of(&out, "seed_slice.py");
    assert_eq!(
        step(&steps, "get_vault")["vault_uri"],
        "https://kv-py.vault.azure.net/"
    );
    let kid = step(&steps, "create_key")["kid"].as_str().unwrap();
    assert!(
        kid.starts_with("https://kv-py.vault.azure.net/keys/cmk/"),
        "{kid}"
    );
    assert_eq!(
        step(&steps, "create_account")["provisioning_state"],
        "Succeeded"
    );
    let acct = step(&steps, "get_account");
    assert_eq!(
        (
            acct["provisioning_state"].as_str(),
            acct["key_vault_key_uri"].as_str()
        ),
        (
            Some("Succeeded"),
            Some("https://kv-py.vault.azure.net/keys/cmk")
        )
    );

    let out = run_script("seed_more.py").await.expect("python ran");
    let steps = steps_of(&out, "seed_more.py");
    assert_eq!(step(&steps, "provider")["registration_state"], "Registered");
    assert_eq!(
        step(&steps, "create_rbac_vault")["vault_uri"],
        "https://kv-pyrbac.vault.azure.net/"
    );
    // The two grants at the vault, and the default operator principal's
    // Owner at the root scope (ARM lists assignments above the scope too).
    assert_eq!(step(&steps, "list_grants")["count"], 3);
    let rotated = step(&steps, "rotate_and_disable");
    assert_eq!(
        (
            rotated["old_enabled"].as_bool(),
            rotated["versions"].as_u64()
        ),
        (Some(false), Some(2))
    );
    // A disabled version is readable, marked disabled (recorded:
    // azure-cli test_keyvault_key.yaml, tests/fixtures/recordings/).
    let disabled = step(&steps, "disabled_key_version_readable");
    assert_eq!(disabled["enabled"].as_bool(), Some(false), "{disabled}");
    assert_eq!(
        step(&steps, "account_on_user_assigned_identity")["provisioning_state"],
        "Succeeded"
    );
    assert_eq!(
        step(&steps, "system_assigned_two_step")["default_identity"],
        "SystemAssignedIdentity"
    );
    assert_eq!(
        step(&steps, "list_accounts")["in_subscription"],
        serde_json::json!(["acct-py", "acct-py-sys", "acct-py-uai"])
    );
    assert_eq!(
        step(&steps, "key_uri_swap")["key_vault_key_uri"],
        "https://kv-pyrbac.vault.azure.net/keys/cmk"
    );
    let refused = step(&steps, "versioned_key_uri_refused");
    assert_eq!(
        (refused["status"].as_u64(), refused["code"].as_str()),
        (Some(400), Some("BadRequest"))
    );
    for (name, code) in [
        ("global_account_name_refused", "BadRequest"),
        (
            "unknown_region_refused",
            "LocationNotAvailableForResourceType",
        ),
        ("first_party_with_continuous_backup_refused", "BadRequest"),
    ] {
        let r = step(&steps, name);
        assert_eq!(
            (r["status"].as_u64(), r["code"].as_str()),
            (Some(400), Some(code)),
            "{r}"
        );
    }
    // The restore (seed: "Restore a continuous account that is configured
    // with managed identity"): the restorable account found through the SDK,
    // a new identity in the request, and only that one listed (recorded:
    // azure-cli test_cosmosdb_system_identity_restore.yaml, 2023).
    let source = step(&steps, "restorable_lookup");
    assert_eq!(source["account_name"], "acct-py-uai");
    assert!(
        source["id"].as_str().unwrap().starts_with(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/westus/restorableDatabaseAccounts/"
        )),
        "{source}"
    );
    let id_of = |name: &str| {
        format!(
            "/subscriptions/{SUB}/resourcegroups/{RG}/providers/microsoft.managedidentity/userassignedidentities/{name}"
        )
        .to_ascii_lowercase()
    };
    let (source_id, new_id) = (id_of("id-py"), id_of("id-py-restore"));
    let ok = "Access to the configured customer managed key confirmed. ";
    let restored = step(&steps, "restore_with_new_identity");
    assert_eq!(restored["provisioning_state"], "Succeeded", "{restored}");
    assert_eq!(
        restored["key_vault_key_uri"], "https://kv-pyrbac.vault.azure.net/keys/cmk",
        "the source's key"
    );
    assert_eq!(
        restored["identities"],
        serde_json::json!([new_id]),
        "only the requested identity is listed, not the source's"
    );
    assert_eq!(restored["customer_managed_key_status"], ok);
    let on_source = step(&steps, "restore_on_source_identity");
    assert_eq!(
        (
            on_source["provisioning_state"].as_str(),
            on_source["customer_managed_key_status"].as_str()
        ),
        (Some("Succeeded"), Some(ok)),
        "{on_source}"
    );
    assert_eq!(on_source["identities"], serde_json::json!([source_id]));
    assert_eq!(
        step(&steps, "delete_account")["left"],
        serde_json::json!([
            "acct-py",
            "acct-py-restored",
            "acct-py-restored-src",
            "acct-py-sys"
        ])
    );
    // After the source's deletion only the account whose default identity is
    // its own new one keeps its key; the one that reused the source's
    // identity is revoked (4000, the failed Entra ID grant).
    let after = step(&steps, "restored_after_source_deleted");
    assert_eq!(
        after["acct-py-restored"]["customer_managed_key_status"], ok,
        "{after}"
    );
    assert_eq!(
        after["acct-py-restored"]["identities"],
        serde_json::json!([new_id])
    );
    let lost = after["acct-py-restored-src"]["customer_managed_key_status"]
        .as_str()
        .unwrap_or_default();
    assert!(
        lost.contains("currently revoked") && lost.ends_with("#4000"),
        "{after}"
    );

    // What the simulator saw: MSAL's discovery, Key Vault's challenge (an
    // unauthenticated first request, 401), and the SDKs' own api-versions.
    assert!(sim.count_status("OpenIdConfiguration", 200) >= 1);
    assert!(sim.count_status("KeyVault_CreateKey", 401) >= 1);
    assert_eq!(sim.count_status("KeyVault_CreateKey", 200), 2);
    let ledger = sim.ledger();
    let put = ledger
        .iter()
        .find(|e| e.operation == "DatabaseAccounts_CreateOrUpdate")
        .expect("the account PUT");
    assert!(put.api_version.is_some(), "{put:?}");
    let _ = std::fs::remove_dir_all(&work);
}

/// The first slice on US Government: the SDKs are told the cloud only through
/// their documented settings (`AZURE_AUTHORITY_HOST`; the management
/// clients' `base_url` and credential scope), and every request they make
/// goes to that cloud's hosts with that cloud's audiences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdks_run_the_first_slice_on_us_government() {
    assert!(
        is_root(),
        "this test needs root: it binds port 443 and bind-mounts /etc/hosts in a private mount namespace"
    );
    let python = tokio::task::spawn_blocking(python_with_sdks)
        .await
        .expect("install");
    // Another address than the public test's, so both may run at once.
    let ip = match own_loopback() {
        IpAddr::V4(v4) => {
            let [a, _, c, d] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, 78, c, d))
        }
        v6 => v6,
    };
    let work = repo().join(format!("target/python-sdks/usgov-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let ca = work.join("ca.pem");
    let sim = Simulator::start(SimConfig {
        listen: SocketAddr::new(ip, 443),
        ca_file: Some(ca.clone()),
        ..SimConfig::for_tests()
    })
    .await
    .expect("simulator on port 443 of its own loopback address");
    let fp = first_party(&sim);
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-py", &[&fp])],
        ..Default::default()
    })
    .unwrap();
    let (client_id, secret, _) = sim.operator_credentials();
    let env = [
        ("AZURE_TENANT_ID", sim.tenant_id().to_owned()),
        ("AZURE_CLIENT_ID", client_id),
        ("AZURE_CLIENT_SECRET", secret),
        (
            "AZURE_AUTHORITY_HOST",
            "https://login.microsoftonline.us".to_owned(),
        ),
        (
            "SEED_ARM_ENDPOINT",
            "https://management.usgovcloudapi.net".to_owned(),
        ),
        ("SEED_SUBSCRIPTION", SUB.to_owned()),
        ("SEED_RESOURCE_GROUP", RG.to_owned()),
        ("SEED_VAULT", "kv-py".to_owned()),
        ("SEED_ACCOUNT", "acct-py".to_owned()),
    ];
    // Only this cloud's names resolve: a request to another cloud fails.
    let names = [
        "management.usgovcloudapi.net",
        "login.microsoftonline.us",
        "kv-py.vault.usgovcloudapi.net",
    ];
    let script = repo().join("tests/python/seed_slice.py");
    let (p, c) = (python.clone(), ca.clone());
    let out = tokio::task::spawn_blocking(move || in_recipe(&p, &script, ip, &names, &c, &env))
        .await
        .expect("python ran");
    let steps = steps_of(&out, "seed_slice.py");
    assert_eq!(
        step(&steps, "get_vault")["vault_uri"],
        "https://kv-py.vault.usgovcloudapi.net/"
    );
    let kid = step(&steps, "create_key")["kid"].as_str().unwrap();
    assert!(
        kid.starts_with("https://kv-py.vault.usgovcloudapi.net/keys/cmk/"),
        "{kid}"
    );
    assert_eq!(
        step(&steps, "get_account")["key_vault_key_uri"],
        "https://kv-py.vault.usgovcloudapi.net/keys/cmk"
    );
    let audiences = [
        "",
        "https://management.usgovcloudapi.net",
        "https://vault.usgovcloudapi.net",
    ];
    for ((host, audience), n) in sim.host_audiences() {
        assert!(names.contains(&host.as_str()), "{n} request(s) to {host}");
        assert!(
            audiences.contains(&audience.as_str()),
            "{n} request(s) to {host} for {audience}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
