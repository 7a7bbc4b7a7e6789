//! Azure's documented refusals and paging, each held with Azure's status, code
//! and message (sources in crates/sim/src/arm/{account_rules,regions,api_versions}.rs
//! and the fidelity table of docs/simulator.md).

use crate::adapter_support;
use crate::sim_support;

use azure_core::Method;
use cmk_operator::azure::AzurePort;
use cmk_operator::sim::arm::regions;
use cmk_operator::sim::{SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};
use sim_support::*;

const OTHER_SUB: &str = "00000000-0000-0000-0000-0000000000bb";

fn account_url(sim: &SimHandle, sub: &str, rg: &str, name: &str) -> String {
    format!(
        "{}subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DocumentDB/databaseAccounts/{name}",
        sim.arm_endpoint()
    )
}

fn body(location: &str, locations: &[&str], extra: Value) -> Value {
    let locs: Vec<Value> = locations
        .iter()
        .enumerate()
        .map(|(i, l)| json!({"locationName": l, "failoverPriority": i}))
        .collect();
    let mut props = json!({"databaseAccountOfferType": "Standard", "locations": locs});
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            p.insert(k.clone(), v.clone());
        }
    }
    json!({"location": location, "kind": "GlobalDocumentDB", "properties": props})
}

/// PUT an account through azure_core at `api_version`; status and body.
async fn put_account(
    sim: &SimHandle,
    sub: &str,
    rg: &str,
    name: &str,
    b: Value,
    api_version: &str,
) -> (u16, Value) {
    let cred = credential(sim);
    send(
        sim,
        &cred,
        ARM_SCOPE,
        Method::Put,
        &format!(
            "{}?api-version={api_version}",
            account_url(sim, sub, rg, name)
        ),
        Some(b),
    )
    .await
}

/// A minimal account in West US at the GA api-version.
async fn put_plain(sim: &SimHandle, sub: &str, rg: &str, name: &str) -> (u16, Value) {
    let b = body("westus", &["westus"], json!({}));
    put_account(sim, sub, rg, name, b, "2025-10-15").await
}

/// GET through azure_core with an ARM token.
async fn get(sim: &SimHandle, url: &str) -> (u16, Value) {
    send(sim, &credential(sim), ARM_SCOPE, Method::Get, url, None).await
}

/// An account list URL under `scope` (`subscriptions/{s}[/resourceGroups/{rg}]`).
fn list_url(sim: &SimHandle, scope: &str, query: &str) -> String {
    format!(
        "{}{scope}/providers/Microsoft.DocumentDB/databaseAccounts?{query}",
        sim.arm_endpoint()
    )
}

fn err(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

async fn wait_succeeded(sim: &SimHandle, name: &str) {
    for _ in 0..200 {
        let (_, b) = get(
            sim,
            &format!("{}?api-version=2025-10-15", account_url(sim, SUB, RG, name)),
        )
        .await;
        if b["properties"]["provisioningState"] == "Succeeded" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    panic!("{name} never succeeded");
}

#[tokio::test]
async fn versioned_key_uri_is_refused_on_create_and_on_update() {
    let sim = start().await;
    let uri = seed_vault_and_key(
        &sim,
        good_vault(&sim, "kv-ver", &[&first_party(&sim)]),
        "cmk",
    );
    // The key's `kid` as Key Vault returns it: the versioned URI a user copies.
    let cred = credential(&sim);
    let (status, key) = send(
        &sim,
        &cred,
        &kv_scope(&sim, "kv-ver"),
        Method::Get,
        &format!("{uri}?api-version=7.6"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let kid = key["key"]["kid"].as_str().unwrap().to_owned();
    assert!(kid.starts_with(&format!("{uri}/")), "{kid}");

    let (status, b) = put_account(
        &sim,
        SUB,
        RG,
        "acct-ver",
        body("westus", &["westus"], json!({"keyVaultKeyUri": kid})),
        "2025-10-15",
    )
    .await;
    let (code, message) = err(&b);
    assert_eq!((status, code), (400, "BadRequest"), "{b}");
    assert!(
        message.starts_with(
            "Please provide KeyVault Key Uri without version. We will use latest version of the key"
        ),
        "{message}"
    );
    let (status, _) = get(
        &sim,
        &format!(
            "{}?api-version=2025-10-15",
            account_url(&sim, SUB, RG, "acct-ver")
        ),
    )
    .await;
    assert_eq!(status, 404, "the refused account was not created");

    // Versionless: created. Then a PATCH to the versioned URI is refused too.
    let (status, b) = put_account(
        &sim,
        SUB,
        RG,
        "acct-ver",
        body("westus", &["westus"], json!({"keyVaultKeyUri": uri})),
        "2025-10-15",
    )
    .await;
    assert_eq!(status, 200, "{b}");
    wait_succeeded(&sim, "acct-ver").await;
    let (status, b) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Patch,
        &format!(
            "{}?api-version=2025-10-15",
            account_url(&sim, SUB, RG, "acct-ver")
        ),
        Some(json!({"properties": {"keyVaultKeyUri": kid}})),
    )
    .await;
    let (code, message) = err(&b);
    assert_eq!((status, code), (400, "BadRequest"), "{b}");
    assert!(
        message.starts_with("Please provide KeyVault Key Uri without version."),
        "{message}"
    );
}

#[tokio::test]
async fn account_names_are_global_dns_names() {
    let sim = start().await;
    let (status, b) = put_plain(&sim, SUB, "rg-one", "shared-name").await;
    assert_eq!(status, 200, "{b}");
    // Azure's CheckNameExists: 200 taken, 404 free, no body.
    let cred = credential(&sim);
    let exists = |name: &str| {
        format!(
            "{}providers/Microsoft.DocumentDB/databaseAccountNames/{name}?api-version=2025-10-15",
            sim.arm_endpoint()
        )
    };
    let (status, _) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Head,
        &exists("shared-name"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &sim,
        &cred,
        ARM_SCOPE,
        Method::Head,
        &exists("free-name"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(sim.count("DatabaseAccounts_CheckNameExists"), 2);

    // The same name in another resource group, then in another subscription.
    for (sub, rg) in [(SUB, "rg-two"), (OTHER_SUB, "rg-one")] {
        let (status, b) = put_account(
            &sim,
            sub,
            rg,
            "shared-name",
            body("eastus", &["eastus"], json!({})),
            "2025-10-15",
        )
        .await;
        assert_eq!(
            (status, err(&b)),
            (
                400,
                (
                    "BadRequest",
                    "Dns record for shared-name under zone Document is already taken. Please use a different name for the account."
                )
            ),
            "{sub}/{rg}"
        );
    }
    // The owner's own PUT is an update, not a conflict.
    let (status, b) = put_plain(&sim, SUB, "rg-one", "shared-name").await;
    assert_ne!(err(&b).1.get(..14), Some("Dns record for"), "{status} {b}");

    // 3–44 characters of lowercase letters, digits and hyphens.
    for bad in [
        "ab",
        &"a".repeat(45),
        "Upper-case",
        "under_score",
        "-lead",
        "trail-",
    ] {
        let (status, b) = put_plain(&sim, SUB, RG, bad).await;
        assert_eq!((status, err(&b).0), (400, "BadRequest"), "{bad}: {b}");
    }
    let (status, b) = put_plain(&sim, SUB, RG, &"a".repeat(44)).await;
    assert_eq!(status, 200, "{b}");
}

#[tokio::test]
async fn locations_come_from_azures_region_list() {
    let sim = start().await;
    // Spellings ARM normalises: display names, any case.
    let (status, b) = put_account(
        &sim,
        SUB,
        RG,
        "acct-spell",
        body("West US 2", &["westus2", "NORTH EUROPE"], json!({})),
        "2025-10-15",
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["location"], "West US 2");

    let expected_list = regions::REGIONS
        .iter()
        .map(|r| r.0)
        .collect::<Vec<_>>()
        .join(",");
    for (name, location, locations, bad) in [
        ("acct-loc1", "West Moon", vec!["westus"], "West Moon"),
        (
            "acct-loc2",
            "westus",
            vec!["westus", "atlantis"],
            "atlantis",
        ),
        ("acct-loc3", "global", vec!["westus"], "global"),
    ] {
        let (status, b) = put_account(
            &sim,
            SUB,
            RG,
            name,
            body(location, &locations, json!({})),
            "2025-10-15",
        )
        .await;
        assert_eq!(
            (status, err(&b)),
            (
                400,
                (
                    "LocationNotAvailableForResourceType",
                    format!(
                        "The provided location '{bad}' is not available for resource type 'Microsoft.DocumentDB/databaseAccounts'. List of available regions for the resource type is '{expected_list}'."
                    )
                    .as_str()
                )
            ),
            "{name}"
        );
    }
}

/// Every location the repository's examples, tests and benchmark use is a
/// region the simulator accepts.
#[test]
fn locations_used_in_the_repository_are_regions() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = Vec::new();
    for dir in ["deploy/examples", "tests", "crates/bench/src"] {
        collect(&std::path::Path::new(root).join(dir), &mut files);
    }
    let mut checked = 0;
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let yaml = f.extension().is_some_and(|x| x == "yaml" || x == "yml");
        for line in text.lines() {
            for field in ["locationName", "location"] {
                for (i, _) in line.match_indices(field) {
                    if let Some(value) = literal_after(&line[i + field.len()..], yaml) {
                        assert!(
                            regions::find(&value).is_some(),
                            "{}: location {value:?} is not an Azure region",
                            f.display()
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 20, "found only {checked} locations");
}

/// The literal value of `field: value` / `"field": "value"` after the field
/// name: a quoted string (or, in YAML, the rest of the line); None for code.
fn literal_after(rest: &str, yaml: bool) -> Option<String> {
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let value = if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()?.to_owned()
    } else if yaml {
        rest.split('#').next()?.trim().to_owned()
    } else {
        return None;
    };
    let plausible = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
    plausible.then_some(value)
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p
            .extension()
            .is_some_and(|x| ["rs", "yaml", "yml", "json"].contains(&x.to_str().unwrap_or("")))
        {
            out.push(p);
        }
    }
}

#[tokio::test]
async fn subscription_list_pages_with_next_link() {
    let sim = start().await;
    assert_eq!(sim.config().list_page_size, 2);
    let names = ["page-a", "page-b", "page-c", "page-d", "page-e"];
    for (i, n) in names.iter().enumerate() {
        let rg = if i % 2 == 0 { "rg-even" } else { "rg-odd" };
        let (status, b) = put_plain(&sim, SUB, rg, n).await;
        assert_eq!(status, 200, "{b}");
    }
    let (status, _) = put_plain(&sim, OTHER_SUB, RG, "page-other").await;
    assert_eq!(status, 200);

    let mut next = Some(list_url(
        &sim,
        &format!("subscriptions/{SUB}"),
        "api-version=2026-03-15",
    ));
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    while let Some(url) = next.take() {
        let (status, page) = get(&sim, &url).await;
        assert_eq!(status, 200, "{page}");
        let value = page["value"].as_array().unwrap();
        sizes.push(value.len());
        seen.extend(value.iter().map(|a| a["name"].as_str().unwrap().to_owned()));
        next = page["nextLink"].as_str().map(str::to_owned);
        if let Some(n) = &next {
            // The link keeps the caller's api-version and carries a skip token.
            assert!(
                n.contains("api-version=2026-03-15") && n.contains("$skipToken="),
                "{n}"
            );
        }
        assert!(sizes.len() <= 5, "paging does not end");
    }
    assert_eq!(sizes, [2, 2, 1]);
    seen.sort();
    assert_eq!(seen, names);

    // A token the simulator did not hand out.
    let (status, b) = get(
        &sim,
        &list_url(
            &sim,
            &format!("subscriptions/{SUB}"),
            "api-version=2025-10-15&$skipToken=zz",
        ),
    )
    .await;
    assert_eq!((status, err(&b).0), (400, "BadRequest"));

    // The operator's adapter follows nextLink to the end.
    sim.reset_counters();
    let azure = adapter_support::adapter(&sim);
    let mut listed: Vec<String> = azure
        .accounts_in_subscription(SUB)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id.rsplit('/').next().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, names);
    assert_eq!(sim.count("DatabaseAccounts_List"), 3);

    // A resource group's list is one page (cosmos-db.json: nextLinkName null).
    let (_, page) = get(
        &sim,
        &list_url(
            &sim,
            &format!("subscriptions/{SUB}/resourceGroups/rg-even"),
            "api-version=2025-10-15",
        ),
    )
    .await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(3));
    assert!(page.get("nextLink").is_none());
}

#[tokio::test]
async fn default_page_size_answers_in_one_page() {
    let sim = Simulator::start(SimConfig {
        list_page_size: SimConfig::default().list_page_size,
        ..SimConfig::for_tests()
    })
    .await
    .unwrap();
    for n in ["one-a", "one-b", "one-c"] {
        let (status, _) = put_plain(&sim, SUB, RG, n).await;
        assert_eq!(status, 200);
    }
    let (_, page) = get(
        &sim,
        &list_url(
            &sim,
            &format!("subscriptions/{SUB}"),
            "api-version=2025-10-15",
        ),
    )
    .await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(3));
    assert!(page.get("nextLink").is_none());
}

#[tokio::test]
async fn api_versions_azure_serves_and_refuses() {
    let sim = start().await;
    let vault = good_vault(&sim, "kv-api", &[]);
    let uri = seed_vault_and_key(&sim, vault, "k1");
    sim.seed(&cmk_operator::sim::Seed {
        identities: vec![uai("id-api")],
        ..Default::default()
    })
    .unwrap();
    let (status, b) = put_account(
        &sim,
        SUB,
        RG,
        "acct-api",
        body("westus", &["westus"], json!({})),
        // azure-mgmt-cosmosdb 10.0.0's default.
        "2026-03-15",
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let cred = credential(&sim);
    let base = sim.arm_endpoint();
    let acct = account_url(&sim, SUB, RG, "acct-api");
    let vault = format!(
        "{base}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/kv-api"
    );
    let ident = format!(
        "{base}subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-api"
    );
    let roles =
        format!("{base}subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments");
    let provider = format!("{base}subscriptions/{SUB}/providers/Microsoft.DocumentDB");

    // The Python SDKs' defaults are served.
    for (url, v) in [
        (&acct, "2026-03-15"),
        (&vault, "2026-05-15"),
        (&ident, "2024-11-30"),
        (&roles, "2022-04-01"),
        (&provider, "2025-04-01"),
    ] {
        let (status, b) = get(&sim, &format!("{url}?api-version={v}")).await;
        assert_eq!(status, 200, "{url} {v}: {b}");
    }
    let (status, b) = send(
        &sim,
        &cred,
        &kv_scope(&sim, "kv-api"),
        Method::Get,
        &format!("{uri}?api-version=2025-07-01"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{b}");

    // Resource providers' types: NoRegisteredProviderFound, with the
    // resource's location and the locations list for tracked types.
    for (url, ty, loc) in [
        (&acct, "databaseAccounts", Some("westus")),
        (&vault, "vaults", Some("westus")),
        (&ident, "userAssignedIdentities", Some("westus")),
        (&roles, "roleAssignments", None),
    ] {
        let (status, b) = get(&sim, &format!("{url}?api-version=2099-01-01")).await;
        let (code, message) = err(&b);
        assert_eq!(
            (status, code),
            (400, "NoRegisteredProviderFound"),
            "{ty}: {b}"
        );
        let head = format!(
            "No registered resource provider found for location '{}' and API version '2099-01-01' for type '{ty}'. The supported api-versions are '",
            loc.unwrap_or("global")
        );
        assert!(message.starts_with(&head), "{message}");
        assert_eq!(
            message.contains("The supported locations are 'eastus, eastus2, "),
            loc.is_some(),
            "{message}"
        );
    }
    // Microsoft.Resources' own endpoint: InvalidApiVersionParameter, newest first.
    let (status, b) = get(&sim, &format!("{provider}?api-version=2099-01-01")).await;
    let (code, message) = err(&b);
    assert_eq!((status, code), (400, "InvalidApiVersionParameter"), "{b}");
    assert!(
        message.starts_with("The api-version '2099-01-01' is invalid. The supported versions are '2025-04-01,2025-03-01,"),
        "{message}"
    );
    // Key Vault's data plane: BadParameter in its own error shape.
    let (status, b) = send(
        &sim,
        &cred,
        &kv_scope(&sim, "kv-api"),
        Method::Get,
        &format!("{uri}?api-version=7.9"),
        None,
    )
    .await;
    assert_eq!(
        (status, err(&b)),
        (
            400,
            (
                "BadParameter",
                "The specified version (7.9) is not recognized. Consider using the latest supported version (2025-07-01)."
            )
        )
    );
}
