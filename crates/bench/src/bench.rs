//! `cmk-bench run`: converge N accounts, then a steady-state window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Res;
use crate::cli::Common;
use crate::cli::RunArgs;
use crate::measure::{
    count_k8s_writes, counters, diff, effective_resync, floor, hard_floor, is_read_op,
    minimal_calls, shared_calls,
};
use crate::proc_stats::{clk_tck, sample, sampler};
use crate::world::{World, subscription_index, throttled as throttled_common};

/// Runs the benchmark `--repeat` times; with more than one run, prints the
/// median of every figure (these machines are noisy: compare ratios).
pub async fn run_bench(args: RunArgs) -> Res<()> {
    let mut runs = Vec::new();
    for i in 1..=args.repeat.max(1) {
        if args.repeat > 1 {
            eprintln!("bench: run {i} of {}", args.repeat);
        }
        runs.push(run_once(&args, i).await?);
    }
    let medians = medians(&runs);
    if runs.len() > 1 {
        println!("\n== medians of {} runs ==", runs.len());
        for (k, v) in medians.iter() {
            println!("  {k:<34} {v}");
        }
    }
    if let Some(path) = &args.json {
        let out = json!({"runs": runs, "medians": medians});
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)?;
    }
    Ok(())
}

/// The median of each numeric figure (nested maps flattened as `a.b`).
fn medians(runs: &[Value]) -> BTreeMap<String, Value> {
    let mut by_key: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Vec<f64>>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Number(n) => out.entry(prefix.to_owned()).or_default().extend(n.as_f64()),
            _ => {}
        }
    }
    for r in runs {
        walk("", r, &mut by_key);
    }
    by_key
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            let m = if v.len() % 2 == 1 {
                v[v.len() / 2]
            } else {
                (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
            };
            (k, json!((m * 1000.0).round() / 1000.0))
        })
        .collect()
}

async fn run_once(args: &RunArgs, run: u32) -> Res<Value> {
    let c = args.common.clone();
    let n = args.accounts;
    // A namespace per run: the previous one may still be terminating.
    let mut w = World::up(c.clone(), &format!("cmk-bench-r{run}")).await?;
    let tck = clk_tck();
    let pid = w.start_operator()?;
    let samples = sampler(pid);
    // Let the operator start its watches before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.sim.reset_counters();
    let connections_before = w.sim.connections_accepted();
    let base = sample(pid).unwrap_or_default();
    let t0 = Instant::now();
    w.apply_world(n).await?;
    let applied = t0.elapsed();
    eprintln!("bench: applied {n} accounts in {applied:.1?}");
    let waited = w
        .wait_all_ready_times(n, Duration::from_secs(args.timeout_seconds))
        .await;
    let ready_at = t0.elapsed();
    let turned = match waited {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench: {e}; not ready: {:?}", w.not_ready().await?);
            w.cleanup().await;
            return Err(e);
        }
    };
    // The watch started after applying: its times count from there.
    let turned: std::collections::HashMap<String, f64> = turned
        .into_iter()
        .map(|(k, d)| (k, (d + applied).as_secs_f64()))
        .collect();
    let at_ready = sample(pid).unwrap_or_default();
    let conv = counters(&w.sim);
    let connections = w.sim.connections_accepted() - connections_before;
    eprintln!("bench: all {n} Ready after {ready_at:.1?}");

    // Steady state: let stragglers finish, then one window of whole resync intervals.
    let settle = Duration::from_secs(c.poll_seconds * 2 + 5);
    tokio::time::sleep(settle).await;
    let resync = effective_resync(&c, n.div_ceil(c.subscriptions.max(1)));
    let window = args
        .steady_seconds
        .map_or(Duration::from_secs_f64(resync), Duration::from_secs);
    let before = counters(&w.sim);
    let ledger_before = w.sim.ledger().len();
    let s0 = sample(pid).unwrap_or_default();
    let k8s = count_k8s_writes(&w, window).await?;
    let s1 = sample(pid).unwrap_or_default();
    let steady = diff(&counters(&w.sim), &before);
    let steady_azure_writes: Vec<_> = w.sim.ledger()[ledger_before..]
        .iter()
        .filter(|l| l.operation != "Token")
        .map(|l| format!("{} {}", l.method, l.operation))
        .collect();

    let minutes = window.as_secs_f64() / 60.0;
    // One read per account per (stretched) resync; a binding's resync reads its
    // vault and its key, at the unstretched interval.
    let resyncs = window.as_secs_f64() / resync;
    // The key watch reads each version in use (one per binding here) per interval.
    let key_watch_reads = if c.key_watch_seconds == 0 {
        0.0
    } else {
        c.bindings as f64 * window.as_secs_f64() / c.key_watch_seconds as f64
    };
    let expected_reads = n as f64 * resyncs
        + 2.0 * c.bindings as f64 * window.as_secs_f64() / c.resync_seconds as f64
        + key_watch_reads;
    let steady_reads: u64 = steady
        .iter()
        .filter(|(op, _)| is_read_op(op))
        .flat_map(|(_, m)| m.values())
        .sum();
    let k8s_total: u64 = k8s.values().sum();
    let all = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut steady_rss: Vec<u64> = all
        .iter()
        .filter(|s| s.at.is_some_and(|t| s0.at.is_some_and(|a| t >= a)))
        .map(|s| s.rss_kib)
        .collect();
    steady_rss.sort_unstable();
    let steady_rss_mib = steady_rss
        .get(steady_rss.len() / 2)
        .copied()
        .unwrap_or(s1.rss_kib) as f64
        / 1024.0;
    let peak_mib = s1.hwm_kib.max(at_ready.hwm_kib) as f64 / 1024.0;
    let conv_cpu = (at_ready.cpu_ticks.saturating_sub(base.cpu_ticks)) as f64 / tck;
    let steady_cpu_pct =
        (s1.cpu_ticks.saturating_sub(s0.cpu_ticks)) as f64 / tck / window.as_secs_f64() * 100.0;
    let vaults = c.bindings.clamp(1, 2);
    let per_sub = per_subscription(&c, n, vaults, &turned);
    // Subscriptions converge side by side: the run's floor is the largest of theirs.
    let (fl, fw, fr) = if c.subscriptions > 1 {
        per_sub
            .iter()
            .map(|s| (s.floor, 0.0, 0.0))
            .fold((0.0, 0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
    } else {
        floor(&c, n, vaults)
    };
    let hard = if c.subscriptions > 1 {
        per_sub.iter().map(|s| s.hard_floor).fold(0.0, f64::max)
    } else {
        hard_floor(&c, n, vaults)
    };

    println!(
        "\n== cmk-bench: {n} accounts over {} bindings ==",
        c.bindings
    );
    println!(
        "settings: ARM latency {} ms, Key Vault {} ms, LRO {} ms, ARM buckets reads {}/s burst {}, writes {}/s burst {}; operator poll {} s, resync {} s (budget {} reads/s), concurrency {}",
        c.arm_latency_ms,
        c.kv_latency_ms,
        c.lro_ms,
        c.arm_reads_per_second,
        c.arm_read_burst,
        c.arm_writes_per_second,
        c.arm_write_burst,
        c.poll_seconds,
        c.resync_seconds,
        c.resync_reads_per_second,
        c.concurrency
    );
    println!(
        "time to all Ready: {:.1} s (applying took {:.1} s); rate-limit floor {:.1} s (writes {:.1} s + LRO, reads {:.1} s); ratio {:.2}",
        ready_at.as_secs_f64(),
        applied.as_secs_f64(),
        fl,
        fw,
        fr,
        ready_at.as_secs_f64() / fl
    );
    println!(
        "  hard floor (one poll per account, after its creation ended) {hard:.1} s; ratio {:.2}",
        ready_at.as_secs_f64() / hard
    );
    if c.subscriptions > 1 {
        print_subscriptions(&per_sub);
    }
    println!("Azure calls per account until Ready (operation: per account [statuses]):");
    let mut conv_total = 0u64;
    for (op, by) in &conv {
        let total: u64 = by.values().sum();
        if op != "Token" {
            conv_total += total;
        }
        println!("  {op:<36} {:>7.2}  {:?}", total as f64 / n as f64, by);
    }
    let (min_reads, min_writes) = minimal_calls(&c);
    // The world alternates bindings between an access-policy and an RBAC vault.
    let shared = shared_calls(c.bindings, vaults, 1);
    let minimal = min_reads + min_writes + shared / n as f64;
    // Every poll after the creation ended: one per account.
    let absolute = minimal - (min_reads - 2.0) + 1.0;
    println!(
        "  {:<36} {:>7.2}   minimal {minimal:.2}: {:.0} per account ({min_writes:.0} PUT + {min_reads:.0} reads, of which {:.0} polls at Retry-After) + {:.0} shared ones / {n}; {absolute:.2} with one poll each",
        "(all but Token)",
        conv_total as f64 / n as f64,
        min_reads + min_writes,
        min_reads - 2.0,
        shared
    );
    println!(
        "TCP connections the simulator accepted until Ready: {connections} ({:.2} per call)",
        connections as f64 / conv.values().flat_map(|m| m.values()).sum::<u64>().max(1) as f64
    );
    println!(
        "steady state ({:.0} s window, {:.2} account resync intervals of {resync:.0} s):",
        window.as_secs_f64(),
        resyncs
    );
    println!(
        "  Azure writes/min {:.2} {:?}",
        steady_azure_writes.len() as f64 / minutes,
        steady_azure_writes
    );
    println!(
        "  Kubernetes writes/min {:.2} {:?}",
        k8s_total as f64 / minutes,
        k8s
    );
    println!(
        "  Azure reads {steady_reads} = {:.2} x one read per resource per resync interval ({:?})",
        steady_reads as f64 / expected_reads,
        steady
    );
    println!(
        "operator process: peak RSS {peak_mib:.1} MiB, steady RSS {steady_rss_mib:.1} MiB; CPU {conv_cpu:.1} s until Ready ({:.0}% of one core), {steady_cpu_pct:.1}% of one core at steady state",
        conv_cpu / ready_at.as_secs_f64() * 100.0
    );
    let v = json!({
        "accounts": n, "bindings": c.bindings,
        "timeToReadySecs": ready_at.as_secs_f64(), "floorSecs": fl,
            "readyToFloorRatio": ready_at.as_secs_f64() / fl,
        "hardFloorSecs": hard, "readyToHardFloorRatio": ready_at.as_secs_f64() / hard,
        "callsPerAccount": conv.iter().map(|(k, m)| (k.clone(), m.values().sum::<u64>() as f64 / n as f64)).collect::<BTreeMap<_, _>>(),
        "steadyAzureWritesPerMin": steady_azure_writes.len() as f64 / minutes,
        "steadyK8sWritesPerMin": k8s_total as f64 / minutes,
        "steadyReadsPerResourcePerResync": steady_reads as f64 / expected_reads,
        "accountResyncSecs": resync,
        "minimalCallsPerAccount": minimal, "onePollCallsPerAccount": absolute,
        "callsPerAccountTotal": conv_total as f64 / n as f64,
        "peakRssMiB": peak_mib, "steadyRssMiB": steady_rss_mib,
        "cpuSecsToReady": conv_cpu, "steadyCpuPct": steady_cpu_pct,
        "connectionsToReady": connections,
        "subscriptions": c.subscriptions,
        "throttleOne": c.throttle_one,
        "fairness": per_sub.iter().filter(|s| !s.throttled).map(|s| s.time / s.hard_floor).fold(0.0, f64::max),
        "bySubscription": per_sub.iter().map(|s| json!({
            "index": s.index, "accounts": s.accounts, "throttled": s.throttled,
            "timeToReadySecs": s.time, "floorSecs": s.floor, "hardFloorSecs": s.hard_floor,
            "readyToHardFloorRatio": s.time / s.hard_floor,
        })).collect::<Vec<_>>(),
    });
    w.cleanup().await;
    Ok(v)
}

/// One subscription's share of a run.
struct SubscriptionFigures {
    index: usize,
    accounts: usize,
    throttled: bool,
    /// When its last account turned Ready (from applying the first).
    time: f64,
    floor: f64,
    hard_floor: f64,
}

/// Per subscription: its accounts, when its last one turned Ready, and its
/// own floors (its own buckets; the vaults, and so the shared grant writes,
/// are in the first subscription).
fn per_subscription(
    c: &Common,
    n: usize,
    vaults: usize,
    turned: &std::collections::HashMap<String, f64>,
) -> Vec<SubscriptionFigures> {
    let s = c.subscriptions.max(1);
    (0..s)
        .map(|i| {
            let accounts = (0..n).filter(|j| j % s == i).count();
            let throttled = c.throttle_one && s > 1 && i == s - 1;
            let own = if throttled {
                throttled_common(c)
            } else {
                c.clone()
            };
            let v = if i == 0 { vaults } else { 0 };
            let time = turned
                .iter()
                .filter(|(name, _)| subscription_index(name, s) == Some(i))
                .map(|(_, t)| *t)
                .fold(0.0, f64::max);
            SubscriptionFigures {
                index: i,
                accounts,
                throttled,
                time,
                floor: floor(&own, accounts, v).0,
                hard_floor: hard_floor(&own, accounts, v),
            }
        })
        .collect()
}

fn print_subscriptions(subs: &[SubscriptionFigures]) {
    println!("per subscription (time to its last Ready / its own one-poll floor):");
    for s in subs {
        println!(
            "  sub {:>2}{} {:>6} accounts: {:>7.1} s / {:>6.1} s = {:.2} (Retry-After floor {:.1} s)",
            s.index,
            if s.throttled { " (throttled 1/10)" } else { "" },
            s.accounts,
            s.time,
            s.hard_floor,
            s.time / s.hard_floor,
            s.floor
        );
    }
    let unthrottled: Vec<&SubscriptionFigures> = subs.iter().filter(|s| !s.throttled).collect();
    if let Some(slowest) = unthrottled
        .iter()
        .max_by(|a, b| (a.time / a.hard_floor).total_cmp(&(b.time / b.hard_floor)))
    {
        let fair = slowest.time / slowest.hard_floor;
        println!(
            "  fairness (slowest unthrottled subscription's time / its own floor): {fair:.2} (sub {}); {} within 1.2x",
            slowest.index,
            if fair <= 1.2 { "all" } else { "NOT all" }
        );
    }
}
