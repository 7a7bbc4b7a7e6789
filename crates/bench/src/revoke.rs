//! The revoke fault: a key version disabled mid-run, then re-enabled.

use std::time::{Duration, Instant};

use cmk_operator::api::conditions;
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::SimHandle;
use kube::api::ListParams;
use serde_json::json;

use crate::Res;
use crate::world::World;

/// Disables the key version of binding key-0 mid-run: the accounts on it must
/// report KeyRevoked within one resync, with no destructive call, and recover.
pub async fn revoke(w: &mut World, n: usize) -> Res<()> {
    let b = w.bindings().get("key-0").await?;
    let uri = b
        .status
        .as_ref()
        .and_then(|s| s.key_uri.clone())
        .ok_or("binding has no key URI")?;
    let accounts = w.accounts().list(&ListParams::default()).await?.items;
    let on_key: Vec<String> = accounts
        .iter()
        .filter(|a| a.spec.key_vault_binding_ref.name == "key-0")
        .map(kube::ResourceExt::name_any)
        .collect();
    let version = accounts
        .iter()
        .find_map(|a| a.status.as_ref()?.key_version_in_use.clone())
        .ok_or("no key version in use")?;
    let ledger_before = w.sim.ledger().len();
    set_key_enabled(&w.sim, &uri, &version, false).await?;
    let t = Instant::now();
    let resync = Duration::from_secs(w.common.resync_seconds);
    loop {
        let list = w.accounts().list(&ListParams::default()).await?.items;
        let revoked = list
            .iter()
            .filter(|a| on_key.contains(&kube::ResourceExt::name_any(*a)))
            .filter(|a| {
                a.status.as_ref().is_some_and(|s| {
                    conditions::find(&s.conditions, conditions::READY)
                        .is_some_and(|c| c.reason == "KeyRevoked")
                })
            })
            .count();
        if revoked == on_key.len() {
            eprintln!(
                "fault: {revoked} accounts report KeyRevoked {:.1?} after the key was disabled (resync {resync:?})",
                t.elapsed()
            );
            break;
        }
        if t.elapsed() > resync + Duration::from_secs(w.common.poll_seconds + 15) {
            return Err(format!(
                "only {revoked} of {} accounts report KeyRevoked after one resync",
                on_key.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let writes: Vec<String> = w.sim.ledger()[ledger_before..]
        .iter()
        .filter(|l| l.operation != "Token" && !l.operation.starts_with("KeyVault_UpdateKey"))
        .map(|l| format!("{} {}", l.method, l.operation))
        .collect();
    if !writes.is_empty() {
        return Err(format!("writes while revoked: {writes:?}").into());
    }
    set_key_enabled(&w.sim, &uri, &version, true).await?;
    let t = Instant::now();
    w.wait_all_ready(n, resync * 3).await?;
    eprintln!(
        "fault: access back, all {n} Ready again after {:.1?}",
        t.elapsed()
    );
    Ok(())
}

pub async fn set_key_enabled(
    sim: &SimHandle,
    key_uri: &str,
    version: &str,
    enabled: bool,
) -> Res<()> {
    let (_, _, operator) = sim.operator_credentials();
    let token = sim.issue_token(&operator, "https://vault.azure.net", 3600);
    let url = azure_core::Url::parse(&format!(
        "{}/{version}?api-version=7.4",
        key_uri.trim_end_matches('/')
    ))?;
    let mut req = azure_core::Request::new(url, azure_core::Method::Patch);
    req.insert_header("authorization", format!("Bearer {token}"));
    req.insert_header("content-type", "application/json");
    req.set_body(serde_json::to_vec(
        &json!({"attributes": {"enabled": enabled}}),
    )?);
    let resp = sim.http_client().execute_request(&req).await?;
    let status = u16::from(resp.status());
    if status != 200 {
        return Err(format!("key update answered {status}").into());
    }
    Ok(())
}
