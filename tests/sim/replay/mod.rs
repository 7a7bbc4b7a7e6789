//! Replays trimmed transcripts of real Azure (recorded by azure-cli's tests,
//! tests/fixtures/recordings/) against the simulator: status codes, the
//! long-running-operation headers, the terminal state of each operation, and
//! every recorded field of each answer (see `compare::IGNORED` for those not
//! compared by value). Calls the simulator does not model are counted and
//! listed; any unexplained difference fails the test.

mod compare;
mod restore_time;
mod transcript;

use std::collections::BTreeMap;
use std::time::Duration;

use azure_core::{Method, Request, Url};
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::{Seed, SeedVault, SimHandle};
use serde_json::Value;

use crate::sim_support::{self, ARM_SCOPE};
use compare::{Outcome, compare};
use transcript::{Interaction, Transcript, json, load};

/// Calls outside the simulator's world, by what their URL holds, and why.
const UNMODELLED: &[(&str, &str)] = &[
    (
        "https://graph.windows.net/",
        "Azure AD Graph (retired): the simulator models Entra's token endpoint only",
    ),
    (
        "https://graph.microsoft.com/",
        "Microsoft Graph (the signed-in user): the simulator models Entra's token endpoint only",
    ),
    (
        "/restorableSqlResources",
        "the databases restorable at a time: the simulator holds no databases",
    ),
    (
        "/resourcegroups/cli_test",
        "resource groups are not modelled (any name is accepted)",
    ),
    (
        "/sqlDatabases/",
        "databases and containers are not modelled: the operator makes none, and a restore copies none here",
    ),
];

/// The recording's principals and tenant, and who stands for them here.
fn rewrites(sim: &SimHandle) -> Vec<(String, String)> {
    let (_, _, operator) = sim.operator_credentials();
    vec![
        // Tenant of the 2020 and 2022 recordings.
        (
            "54826b22-38d6-4fb2-bad9-b7b93a3e9c5a".into(),
            sim.tenant_id().to_owned(),
        ),
        // Tenant of the 2023 restore recording.
        (
            "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            sim.tenant_id().to_owned(),
        ),
        // The signed-in users who ran the tests: the simulator's operator.
        (
            "3707fb2f-ac10-4591-a04f-8b0d786ea37d".into(),
            operator.clone(),
        ),
        (
            "9ac02ab3-5061-4ec6-a3d8-2cdaa5f29efa".into(),
            operator.clone(),
        ),
        ("e508ff30-2f46-4182-986f-e520b845da67".into(), operator),
        // Cosmos DB's first-party service principal in the recording's tenant.
        (
            "5f66a281-6495-4430-9104-f976b12c4962".into(),
            sim_support::first_party(sim),
        ),
    ]
}

fn rewrite(text: &str, map: &[(String, String)]) -> String {
    map.iter()
        .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
}

#[derive(Default, Debug)]
struct Tally {
    replayed: usize,
    matched: usize,
    ignored: usize,
    unmodelled: Vec<String>,
    differences: Vec<String>,
}

struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Value,
}

async fn send(
    sim: &SimHandle,
    method: &str,
    url: &str,
    body: Option<String>,
    token: bool,
) -> Answer {
    let method = match method {
        "GET" => Method::Get,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        other => panic!("unexpected method {other}"),
    };
    let url = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let mut req = Request::new(url.clone(), method);
    if token {
        let scope = if url
            .host_str()
            .is_some_and(|h| h.ends_with(".vault.azure.net"))
        {
            "https://vault.azure.net/.default"
        } else {
            ARM_SCOPE
        };
        let t = sim_support::credential(sim)
            .get_token(&[scope])
            .await
            .expect("token");
        req.insert_header("authorization", format!("Bearer {}", t.token.secret()));
    }
    if let Some(b) = body {
        req.insert_header("content-type", "application/json");
        req.set_body(b.into_bytes());
    }
    let resp = sim.http_client().execute_request(&req).await.expect("http");
    let status = u16::from(resp.status());
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.as_str().to_owned()))
        .collect();
    let bytes = resp.into_body().collect().await.unwrap_or_default();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn seed(sim: &SimHandle, t: &Transcript, map: &[(String, String)]) {
    let Some(v) = &t.seed_vault else { return };
    let sub = "00000000-0000-0000-0000-000000000000";
    let rg = t.interactions.iter().find_map(|i| {
        i.uri
            .split("/resourceGroups/")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .map(str::to_owned)
    });
    let props: Value = serde_json::from_str(&rewrite(&v.properties, map)).expect("seed properties");
    sim.seed(&Seed {
        vaults: vec![SeedVault {
            subscription_id: sub.into(),
            resource_group: rg.unwrap_or_default(),
            name: v.name.clone(),
            location: Some(v.location.clone()),
            properties: props.as_object().cloned().unwrap_or_default(),
        }],
        ..Default::default()
    })
    .expect("seed");
}

/// Polls a status URL until it reports a terminal state (at most ~10 s).
async fn poll_terminal(sim: &SimHandle, url: &str) -> Answer {
    for _ in 0..200 {
        let a = send(sim, "GET", url, None, true).await;
        let s = a
            .body
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if a.status != 200 || matches!(s, "Succeeded" | "Failed" | "Canceled") {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never reached a terminal state");
}

async fn replay_one(
    sim: &SimHandle,
    i: &Interaction,
    n: usize,
    map: &mut Vec<(String, String)>,
    tally: &mut Tally,
) {
    if let Some((_, why)) = UNMODELLED.iter().find(|(m, _)| i.uri.contains(m)) {
        tally
            .unmodelled
            .push(format!("#{n} {} {} — {why}", i.method, i.uri));
        return;
    }
    tally.replayed += 1;
    let url = rewrite(&i.uri, map);
    // A recorded 401 is Key Vault's challenge to a request sent without a token.
    let with_token = i.status != 401;
    let request = match i.request.as_deref() {
        Some(b) => Some(restore_time::rewrite(&rewrite(b, map), map).await),
        None => None,
    };
    let answer = if i.polls.is_some() {
        poll_terminal(sim, &url).await
    } else {
        send(sim, &i.method, &url, request, with_token).await
    };
    let at = format!("#{n} {} {}", i.method, i.uri);
    if answer.status != i.status {
        tally.differences.push(format!(
            "{at}: status recorded {}, simulator {} ({})",
            i.status, answer.status, answer.body
        ));
        return;
    }
    if i.status == 401 && !answer.headers.contains_key("www-authenticate") {
        tally
            .differences
            .push(format!("{at}: 401 without a WWW-Authenticate challenge"));
    }
    for (name, recorded) in &i.headers {
        match answer.headers.get(name) {
            Some(ours) => map.push((recorded.clone(), ours.clone())),
            None => tally
                .differences
                .push(format!("{at}: header {name} missing")),
        }
    }
    if let Some(recorded) = json(&i.response) {
        let recorded: Value =
            serde_json::from_str(&rewrite(&recorded.to_string(), map)).expect("json");
        let mut out = Outcome::default();
        compare(&recorded, &answer.body, "", &mut out);
        tally.matched += out.matched;
        tally.ignored += out.ignored;
        tally
            .differences
            .extend(out.differences.into_iter().map(|d| format!("{at}: {d}")));
        map.extend(out.bindings);
    }
}

/// Replays one transcript; panics listing every unexplained difference.
async fn replay(name: &str) -> Tally {
    let t = load(name);
    let sim = sim_support::start().await;
    let mut map = rewrites(&sim);
    seed(&sim, &t, &map);
    let mut tally = Tally::default();
    for (n, i) in t.interactions.iter().enumerate() {
        replay_one(&sim, i, n, &mut map, &mut tally).await;
    }
    eprintln!(
        "{name} ({} {} @ {}, recorded {}): {} calls replayed, {} fields matched, {} ignored, {} unmodelled: {:#?}",
        t.source.repository,
        t.source.path,
        t.source.commit,
        t.source.recorded,
        tally.replayed,
        tally.matched,
        tally.ignored,
        tally.unmodelled.len(),
        tally.unmodelled
    );
    assert!(
        tally.differences.is_empty(),
        "{name}: differences from Azure's recorded answers:\n{}",
        tally.differences.join("\n")
    );
    tally
}

#[tokio::test]
async fn cosmosdb_key_vault_key_uri() {
    let t = replay("cosmosdb_key_vault_key_uri.yaml").await;
    assert_eq!(t.unmodelled.len(), 2);
}

/// A PATCH answers the account as it stood, marked `Updating`; removing the
/// system identity that is the default leaves `defaultIdentity` `Undefined`.
#[tokio::test]
async fn cosmosdb_managed_service_identity() {
    let t = replay("cosmosdb_managed_service_identity.yaml").await;
    assert_eq!(t.unmodelled.len(), 2);
}

/// A periodic → continuous migration: the operation ends when reads show
/// the new policy; the PATCH answer is the old periodic one.
#[tokio::test]
async fn cosmosdb_sql_migrate_periodic_to_continuous7days() {
    let t = replay("cosmosdb_sql_migrate_periodic_to_continuous7days.yaml").await;
    assert_eq!(t.unmodelled.len(), 1);
}

#[tokio::test]
async fn keyvault_key() {
    let t = replay("keyvault_key.yaml").await;
    assert_eq!(t.unmodelled.len(), 1);
}

#[test]
fn every_ignored_field_says_why() {
    for i in compare::IGNORED {
        assert!(!i.reason.trim().is_empty(), "{} has no reason", i.path);
    }
    for (path, _, reason) in compare::BY_ID {
        assert!(!reason.trim().is_empty(), "{path} has no reason");
    }
}

/// A key rotated under a rotation policy with `expiryTime` gets `exp`.
#[tokio::test]
async fn keyvault_key_rotation() {
    let t = replay("keyvault_key_rotation.yaml").await;
    assert_eq!(t.unmodelled.len(), 0);
}

/// Cosmos DB's region list and one region (2024): zones, residency and
/// backup redundancies per region as recorded.
#[tokio::test]
async fn cosmosdb_locations() {
    let t = replay("cosmosdb_locations.yaml").await;
    assert_eq!(t.unmodelled.len(), 0);
}

/// A restore through `az cosmosdb create` (2024): the restorable list, the
/// restored account's tier, `restoreParameters` and the values a restored
/// account reports differently from its source.
#[tokio::test]
async fn cosmosdb_restore_using_create() {
    let t = replay("cosmosdb_restore_using_create.yaml").await;
    assert_eq!(t.unmodelled.len(), 6);
}

/// The oldest kept recording (2020, api-version 2020-06-01-preview): a
/// create answered `Creating`, and two PATCHes answered with the account as
/// it stood (old tags and properties), `Updating`.
#[tokio::test]
async fn cosmosdb_create_database_account() {
    let t = replay("cosmosdb_create_database_account.yaml").await;
    assert_eq!(t.unmodelled.len(), 1);
}

/// A CMK account on a user-assigned identity, its system identity assigned
/// and made the default, then `az cosmosdb restore` (2023) through the
/// subscription-wide restorable list onto another user-assigned identity:
/// only that identity listed, the source's key, tier and region.
#[tokio::test]
async fn cosmosdb_system_identity_restore() {
    let t = replay("cosmosdb_system_identity_restore.yaml").await;
    assert_eq!(t.unmodelled.len(), 9);
}
