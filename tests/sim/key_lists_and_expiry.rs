//! Key Vault as the recordings show it beyond one page and one rotation:
//! `maxresults` pages with `nextLink`, and `exp` from the rotation policy.

use crate::sim_support::*;

use std::sync::Arc;

use azure_core::Method;
use azure_core::auth::TokenCredential;
use cmk_operator::sim::{Seed, SimHandle};
use serde_json::{Value, json};

/// A simulator with one vault the operator's principal may use: the vault's
/// URI, a credential and its Key Vault scope.
async fn with_vault(name: &str) -> (SimHandle, String, Arc<dyn TokenCredential>, String) {
    let sim = start().await;
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, name, &[])],
        ..Default::default()
    })
    .unwrap();
    let vault = sim.vault_uri(name).unwrap();
    let cred = credential(&sim);
    let scope = kv_scope(&sim, name);
    (sim, vault, cred, scope)
}

/// A key rotated under a policy with `expiryTime` `P30D` expires 30 days after
/// its creation (azure-cli test_keyvault_key_rotation.yaml, 2023: created
/// 1699275450, exp 1701867450); the version it replaced keeps no `exp`.
#[tokio::test]
async fn a_rotation_under_a_policy_sets_exp() {
    let (sim, vault, cred, scope) = with_vault("kv-exp").await;
    let call = |m: Method, path: &str, body: Option<Value>| {
        let url = format!("{vault}{path}?api-version=7.5");
        let (sim, cred, scope) = (&sim, &cred, &scope);
        async move { send(sim, cred, scope, m, &url, body).await }
    };
    let (s, first) = call(Method::Post, "keys/k/create", Some(json!({"kty": "RSA"}))).await;
    assert_eq!(s, 200, "{first}");
    assert!(first["attributes"].get("exp").is_none(), "{first}");
    let policy = json!({"lifetimeActions": [{"trigger": {"timeAfterCreate": "P15D"}, "action": {"type": "Rotate"}}], "attributes": {"expiryTime": "P30D"}});
    let (s, p) = call(Method::Put, "keys/k/rotationpolicy", Some(policy)).await;
    assert_eq!(s, 200, "{p}");
    let (s, rotated) = call(Method::Post, "keys/k/rotate", None).await;
    assert_eq!(s, 200, "{rotated}");
    let created = rotated["attributes"]["created"].as_i64().unwrap();
    assert_eq!(
        rotated["attributes"]["exp"].as_i64(),
        Some(created + 30 * 86_400),
        "{rotated}"
    );
    let kid = first["key"]["kid"].as_str().unwrap();
    let (_, old) = call(
        Method::Get,
        &format!("keys/{}", kid.rsplit_once("/keys/").unwrap().1),
        None,
    )
    .await;
    assert!(old["attributes"].get("exp").is_none(), "{old}");
}

/// `maxresults` pages a version list; each `nextLink` is followed as it is
/// and the last page's is `null`; out-of-range sizes are refused by name.
#[tokio::test]
async fn lists_page_by_maxresults_with_next_link() {
    let (sim, vault, cred, scope) = with_vault("kv-pages").await;
    for _ in 0..5 {
        let url = format!("{vault}keys/k/create?api-version=7.4");
        let (s, b) = send(
            &sim,
            &cred,
            &scope,
            Method::Post,
            &url,
            Some(json!({"kty": "RSA"})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    let mut url = format!("{vault}keys/k/versions?maxresults=2&api-version=7.4");
    let mut pages = Vec::new();
    loop {
        let (s, page) = send(&sim, &cred, &scope, Method::Get, &url, None).await;
        assert_eq!(s, 200, "{page}");
        pages.push(page["value"].as_array().unwrap().len());
        match page["nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with(&format!("{vault}keys/k/versions?")),
                    "{next}"
                );
                url = next.to_owned();
            }
            None => {
                assert!(page["nextLink"].is_null(), "{page}");
                break;
            }
        }
    }
    assert_eq!(pages, [2, 2, 1]);
    let (s, all) = send(
        &sim,
        &cred,
        &scope,
        Method::Get,
        &format!("{vault}keys?api-version=7.4"),
        None,
    )
    .await;
    assert_eq!((s, all["value"].as_array().map(Vec::len)), (200, Some(1)));
    assert!(all["nextLink"].is_null());
    for bad in ["0", "26", "x"] {
        let url = format!("{vault}keys/k/versions?maxresults={bad}&api-version=7.4");
        let (s, e) = send(&sim, &cred, &scope, Method::Get, &url, None).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some("BadParameter")),
            "{bad}"
        );
    }
}
