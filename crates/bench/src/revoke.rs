//! The revoke fault: a key version disabled mid-run, then re-enabled.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cmk_operator::api::conditions;
use cmk_operator::embedded::SimCloud;
use cmk_operator::sim::SimHandle;
use kube::api::ListParams;
use serde_json::json;

use crate::Res;
use crate::measure::effective_resync;
use crate::world::World;

/// Disables the key version of binding key-0 mid-run, `revocations` times:
/// the accounts on it must report KeyRevoked, with no destructive call, and
/// recover once it is enabled again. Prints the latency of each (from the
/// disable to the last of those accounts reporting it), the median and the max.
pub async fn revoke(w: &mut World, n: usize, revocations: u32) -> Res<()> {
    let b = w.bindings().get("key-0").await?;
    let uri = b
        .status
        .as_ref()
        .and_then(|s| s.key_uri.clone())
        .ok_or("binding has no key URI")?;
    let accounts = w.accounts().list(&ListParams::default()).await?.items;
    let on_key: HashSet<String> = accounts
        .iter()
        .filter(|a| a.spec.key_vault_binding_ref.name == "key-0")
        .map(kube::ResourceExt::name_any)
        .collect();
    let version = accounts
        .iter()
        .filter(|a| on_key.contains(&kube::ResourceExt::name_any(*a)))
        .find_map(|a| a.status.as_ref()?.key_version_in_use.clone())
        .ok_or("no key version in use")?;
    let c = &w.common;
    let resync = effective_resync(c, n.div_ceil(c.subscriptions.max(1)));
    // Without the key watch only the accounts' own resync finds it.
    let expected = if c.key_watch_seconds == 0 {
        resync
    } else {
        (c.key_watch_seconds as f64).min(resync)
    };
    let limit = Duration::from_secs_f64(expected + c.poll_seconds as f64 + 30.0);
    eprintln!(
        "fault: {} accounts on the key; account resync {resync:.0} s, key watch {} s",
        on_key.len(),
        c.key_watch_seconds
    );
    let mut latencies = Vec::new();
    for i in 1..=revocations.max(1) {
        let ledger_before = w.sim.ledger().len();
        set_key_enabled(&w.sim, &uri, &version, false).await?;
        let t = Instant::now();
        let took = wait_reason(w, &on_key, "KeyRevoked", limit).await?;
        eprintln!(
            "fault: revocation {i}: {} accounts report KeyRevoked {took:.1?} after the key was disabled",
            on_key.len()
        );
        latencies.push(took.as_secs_f64());
        let writes: Vec<String> = w.sim.ledger()[ledger_before..]
            .iter()
            .filter(|l| l.operation != "Token" && !l.operation.starts_with("KeyVault_UpdateKey"))
            .map(|l| format!("{} {}", l.method, l.operation))
            .collect();
        if !writes.is_empty() {
            return Err(format!("writes while revoked: {writes:?}").into());
        }
        set_key_enabled(&w.sim, &uri, &version, true).await?;
        let back = Instant::now();
        w.wait_all_ready(n, limit * 3).await?;
        eprintln!(
            "fault: access back, all {n} Ready again after {:.1?} (revocation {i} took {:.1?} in all)",
            back.elapsed(),
            t.elapsed()
        );
        // The next disable lands at another point of the key watch's interval.
        let jitter = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos() as u64)
            % (c.key_watch_seconds.max(1) * 1000);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
    }
    latencies.sort_by(f64::total_cmp);
    let median = if latencies.len() % 2 == 1 {
        latencies[latencies.len() / 2]
    } else {
        (latencies[latencies.len() / 2 - 1] + latencies[latencies.len() / 2]) / 2.0
    };
    let max = latencies.last().copied().unwrap_or_default();
    println!(
        "revocation latency over {} revocations ({} accounts on the key, N={n} over {} subscriptions): median {median:.1} s, max {max:.1} s; target 60 s: {}",
        latencies.len(),
        on_key.len(),
        c.subscriptions.max(1),
        if max <= 60.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

/// Waits (a watch) until every account in `names` has `reason` on Ready;
/// answers how long that took.
async fn wait_reason(
    w: &World,
    names: &HashSet<String>,
    reason: &str,
    timeout: Duration,
) -> Res<Duration> {
    let start = Instant::now();
    let mut seen: HashSet<String> = HashSet::new();
    let done = w
        .watch_accounts(timeout, |ev| {
            if let kube::runtime::watcher::Event::Apply(a)
            | kube::runtime::watcher::Event::InitApply(a) = ev
            {
                let name = kube::ResourceExt::name_any(&a);
                if names.contains(&name) {
                    let has = a.status.as_ref().is_some_and(|s| {
                        conditions::find(&s.conditions, conditions::READY)
                            .is_some_and(|c| c.reason == reason)
                    });
                    if has {
                        seen.insert(name);
                    } else {
                        seen.remove(&name);
                    }
                }
            }
            seen.len() == names.len()
        })
        .await?;
    if !done {
        return Err(format!(
            "only {} of {} accounts report {reason} after {timeout:?}",
            seen.len(),
            names.len()
        )
        .into());
    }
    Ok(start.elapsed())
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
