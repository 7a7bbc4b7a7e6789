//! `cmk-bench fault <kind>`: converge under a fault, then check the ledger.

use std::time::{Duration, Instant};

use cmk_operator::sim::arm_limits::RandomThrottle;
use cmk_operator::sim::{ErrorFault, LroFault, LroMode};

use crate::Res;
use crate::apiserver_restart::apiserver_restart;
use crate::check::check_clean;
use crate::cli::{FaultArgs, FaultKind};
use crate::leader_handover::leader_handover;
use crate::measure::{counters, diff};
use crate::revoke::revoke;
use crate::world::{World, realistic};

/// xorshift64: kill times that differ per run, without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub async fn run_fault(args: FaultArgs) -> Res<()> {
    let n = args.accounts;
    let timeout = Duration::from_secs(args.timeout_seconds);
    if args.kind == FaultKind::ApiserverRestart {
        // Before anything is set up.
        crate::control_plane::ensure_owned()?;
    }
    let mut w = World::up(
        args.common.clone(),
        &format!("cmk-fault-{:?}", args.kind).to_ascii_lowercase(),
    )
    .await?;
    let started = Instant::now();
    let result = fault_body(&mut w, &args, n, timeout).await;
    let outcome = match result {
        Ok(()) => check_clean(&w, n, timeout).await,
        Err(e) => Err(e),
    };
    eprintln!(
        "fault {:?}: {} after {:.1?}, {} operator starts",
        args.kind,
        if outcome.is_ok() { "CLEAN" } else { "FAILED" },
        started.elapsed(),
        w.starts
    );
    if outcome.is_err() {
        eprintln!("not ready: {:?}", w.not_ready().await.unwrap_or_default());
    }
    w.cleanup().await;
    outcome
}

async fn fault_body(w: &mut World, args: &FaultArgs, n: usize, timeout: Duration) -> Res<()> {
    match args.kind {
        FaultKind::Sigkill => {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64
                | 1;
            let mut rng = Rng(seed);
            w.start_operator()?;
            w.apply_world(n).await?;
            let mut kills = 0;
            // A restart must not flip an account it had made Ready (sampled at each kill).
            let mut ever_ready = std::collections::HashSet::new();
            let mut flapped = std::collections::BTreeSet::new();
            while kills < args.kills {
                // Up to 4 s of life: startup, list/watch, reconciles mid-flight.
                let life = Duration::from_millis((200.0 + rng.next() * 3800.0) as u64);
                tokio::time::sleep(life).await;
                w.kill_operator();
                kills += 1;
                let seen = w.readiness().await?;
                let left = seen.iter().filter(|(_, ready)| !ready).count();
                for (name, ready) in seen {
                    if ready {
                        ever_ready.insert(name);
                    } else if ever_ready.contains(&name) {
                        flapped.insert(name);
                    }
                }
                eprintln!("fault: SIGKILL {kills} after {life:?}; {left} of {n} not Ready");
                w.start_operator()?;
            }
            if !flapped.is_empty() {
                return Err(format!(
                    "{} accounts went from Ready to not Ready across restarts: {flapped:?}",
                    flapped.len()
                )
                .into());
            }
        }
        FaultKind::Throttle => {
            w.start_operator()?;
            w.apply_world(n).await?;
            let ops = [
                "DatabaseAccounts_*",
                "Operation*",
                "Vaults_*",
                "RoleAssignments_*",
                "Providers_*",
                "KeyVault_*",
            ];
            let mut f = realistic(&w.common);
            let retry_after = 3;
            f.random_throttle = ops
                .iter()
                .map(|o| RandomThrottle {
                    operation: (*o).into(),
                    rate: 0.5,
                    retry_after_secs: retry_after,
                })
                .collect();
            let before = counters(&w.sim);
            w.sim.set_faults(f);
            let minute = Duration::from_secs(60);
            tokio::time::sleep(minute).await;
            w.sim.set_faults(realistic(&w.common));
            let d = diff(&counters(&w.sim), &before);
            let (mut total, mut throttled) = (0u64, 0u64);
            for (op, by) in &d {
                if op == "Token" {
                    continue;
                }
                total += by.values().sum::<u64>();
                throttled += by.get(&429).copied().unwrap_or(0);
            }
            // Each 429 pauses a bucket (subscription or vault, reads or writes) for
            // Retry-After; with half the calls refused a bucket that obeys sends on
            // average 2 calls per Retry-After. Buckets in play: reads and writes of
            // one subscription, reads and writes of 2 vaults.
            let buckets = 6.0;
            let allowed = buckets * 2.0 * 60.0 / retry_after as f64;
            eprintln!(
                "fault: during the 429 minute {total} Azure calls ({throttled} answered 429, {:.2}/s); Retry-After allows about {allowed:.0} ({:.2}/s)",
                total as f64 / 60.0,
                allowed / 60.0
            );
            if total as f64 > allowed * 1.25 {
                return Err(format!(
                    "retry rate {total} calls/min over the {allowed:.0} Retry-After allows"
                )
                .into());
            }
        }
        FaultKind::Errors => {
            w.start_operator()?;
            let mut f = realistic(&w.common);
            f.errors = vec![
                ErrorFault {
                    operation: "DatabaseAccounts_*".into(),
                    rate: 0.3,
                    status: 503,
                    code: "ServiceUnavailable".into(),
                    count: Some(200),
                },
                ErrorFault {
                    operation: "OperationsStatus_Get".into(),
                    rate: 0.3,
                    status: 500,
                    code: "InternalServerError".into(),
                    count: Some(100),
                },
                ErrorFault {
                    operation: "KeyVault_*".into(),
                    rate: 0.3,
                    status: 502,
                    code: "BadGateway".into(),
                    count: Some(50),
                },
            ];
            // The first 20 account creations stall (never finish) until cleared.
            f.lro = Some(LroFault {
                mode: LroMode::Stall,
                count: Some(20),
            });
            w.sim.set_faults(f);
            let before = counters(&w.sim);
            w.apply_world(n).await?;
            let minute = Duration::from_secs(60);
            tokio::time::sleep(minute).await;
            let stalled = w.not_ready().await?.len();
            let d = diff(&counters(&w.sim), &before);
            let calls = |op: &str| d.get(op).map_or(0, |m| m.values().sum::<u64>());
            // Polls of the stalled operations: an operator that obeys Retry-After
            // polls each at most once per hint (errors only slow it down).
            let hint = cmk_operator::sim::arm::lro::poll_hint_ms(
                i64::try_from(w.common.lro_ms).unwrap_or(i64::MAX),
            ) as f64
                / 1000.0;
            let polls = calls("OperationsStatus_Get");
            let allowed = n as f64 * w.common.lro_ms as f64 / 1000.0 / hint
                + 20.0 * minute.as_secs_f64() / hint;
            eprintln!(
                "fault: after 60 s of 5xx bursts and 20 stalled LROs: {stalled} of {n} not Ready; {} account PUTs, {polls} polls (Retry-After allows about {allowed:.0}); clearing the faults",
                calls("DatabaseAccounts_CreateOrUpdate")
            );
            if polls as f64 > allowed * 1.25 {
                return Err(format!(
                    "{polls} polls in the stalled minute, over the {allowed:.0} Retry-After allows"
                )
                .into());
            }
            w.sim.set_faults(realistic(&w.common));
            // Stuck operations end eventually; the operator must still be waiting
            // on the same ones (check_clean: no second create).
            let released = w.sim.release_stalled_operations();
            eprintln!("fault: released {released} stalled operations");
        }
        FaultKind::Revoke => {
            w.start_operator()?;
            w.apply_world(n).await?;
            w.wait_all_ready(n, timeout).await?;
            return revoke(w, n, args.revocations).await;
        }
        FaultKind::ApiserverRestart => return apiserver_restart(w, args, n, timeout).await,
        FaultKind::LeaderHandover => return leader_handover(w, n, timeout).await,
    }
    Ok(())
}
