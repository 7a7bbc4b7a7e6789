//! The leader-handover fault: two operator replicas with leader election on
//! one Lease in the run's namespace. While the leader converges the
//! accounts, the standby must not reconcile (its /metrics says so); then the
//! leader is SIGKILLed and the standby must take the Lease within the lease
//! duration plus one retry period, and finish the work.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

use crate::Res;
use crate::world::{World, log_tail, retry_kube};

/// The Lease both replicas compete for (in the run's namespace).
const LEASE_NAME: &str = "cmk-bench-leader";
/// `app.rs` sets these for `leader.rs`: a stopped leader's lease expires
/// after 15 s, and a candidate retries every 2 s.
const LEASE_DURATION: Duration = Duration::from_secs(15);
const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// The metric every reconcile counts (`telemetry.rs`: prefix `cmk_operator`,
/// counter `reconciles`, OpenMetrics `_total`).
const RECONCILES: &str = "cmk_operator_reconciles_total";
const AZURE_CALLS: &str = "cmk_operator_azure_calls_total";

struct Replica {
    name: &'static str,
    pid: u32,
    /// `app.rs`: the identity is POD_NAME, else `cmk-operator-<pid>`.
    identity: String,
    port: u16,
    log: PathBuf,
}

pub async fn leader_handover(w: &mut World, n: usize, timeout: Duration) -> Res<()> {
    // Two fixed health ports (not :0) so /metrics can be scraped; held until
    // both are chosen so they differ.
    let (la, lb) = (
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?,
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?,
    );
    let ports = [la.local_addr()?.port(), lb.local_addr()?.port()];
    drop((la, lb));
    let mut replicas = Vec::new();
    for (name, port) in ["a", "b"].into_iter().zip(ports) {
        let log = w
            .log
            .with_file_name(format!("{}-operator-{name}.log", w.ns));
        let listen = format!("127.0.0.1:{port}");
        let child = w.spawn_operator(
            &log,
            &[
                "--leader-election",
                "true",
                "--lease-namespace",
                &w.ns,
                "--lease-name",
                LEASE_NAME,
                "--health-listen",
                &listen,
            ],
        )?;
        let pid = child.id();
        w.starts += 1;
        w.replicas.push(child);
        eprintln!(
            "fault: replica {name}: pid {pid}, /metrics on {listen}, log {}",
            log.display()
        );
        replicas.push(Replica {
            name,
            pid,
            identity: format!("cmk-operator-{pid}"),
            port,
            log,
        });
    }
    let leases: Api<Lease> = Api::namespaced(w.client.clone(), &w.ns);

    // Who leads, once someone does; both serve /metrics by then or soon.
    let t = Instant::now();
    let leader = loop {
        if let Some(h) = holder(&leases).await?
            && let Some(i) = replicas.iter().position(|r| r.identity == h)
        {
            break i;
        }
        if t.elapsed() > Duration::from_secs(60) {
            return Err(failure(&replicas, "no replica took the lease within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let standby = 1 - leader;
    let (lead, stand) = (&replicas[leader], &replicas[standby]);
    eprintln!(
        "fault: replica {} ({}) leads after {:.1?}; replica {} stands by",
        lead.name,
        lead.identity,
        t.elapsed(),
        stand.name
    );
    let t = Instant::now();
    while scrape(stand.port).await.is_err() {
        if t.elapsed() > Duration::from_secs(30) {
            return Err(failure(&replicas, "the standby's /metrics never answered"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    w.apply_world(n).await?;
    // Convergence under way: scrape the standby every 200 ms for 3 s; any
    // reconcile there while the leader lives is two replicas at once.
    let watch_until = Instant::now() + Duration::from_secs(3);
    let mut scrapes = 0;
    let mut standby_reconciles = 0;
    let mut standby_azure = 0;
    while Instant::now() < watch_until {
        let m = scrape(stand.port).await?;
        scrapes += 1;
        standby_reconciles = metric_sum(&m, RECONCILES);
        standby_azure = metric_sum(&m, AZURE_CALLS);
        if standby_reconciles > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leader_reconciles = metric_sum(&scrape(lead.port).await?, RECONCILES);
    let left = w.not_ready().await?.len();
    eprintln!(
        "fault: before the kill ({scrapes} scrapes of the standby): standby {standby_reconciles} reconciles, {standby_azure} Azure calls; leader {leader_reconciles} reconciles; {left} of {n} not Ready"
    );
    if standby_reconciles > 0 {
        return Err(failure(
            &replicas,
            &format!(
                "the standby reconciled {standby_reconciles} times while the leader held the lease"
            ),
        ));
    }
    if leader_reconciles == 0 {
        return Err(failure(
            &replicas,
            "the leader has not reconciled (metrics scrape broken?)",
        ));
    }
    if holder(&leases).await?.as_deref() != Some(lead.identity.as_str()) {
        return Err(failure(
            &replicas,
            "the lease changed hands before the kill",
        ));
    }

    // SIGKILL the leader: no graceful release, the lease has to expire.
    let killed_at = Instant::now();
    let killed_wall = k8s_openapi::jiff::Timestamp::now();
    if let Some(i) = w.replicas.iter().position(|c| c.id() == lead.pid) {
        let mut c = w.replicas.remove(i);
        // Reaped whatever kill says, so no zombie is left behind.
        let killed = c.kill();
        c.wait()?;
        killed?;
    }
    let limit = LEASE_DURATION + RETRY_PERIOD;
    let handover = loop {
        let lease = retry_kube("get lease", || leases.get_opt(LEASE_NAME)).await?;
        let spec = lease.and_then(|l| l.spec);
        if spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(stand.identity.as_str())
        {
            let at = killed_at.elapsed();
            let acquired = spec
                .as_ref()
                .and_then(|s| s.acquire_time.as_ref())
                .and_then(|t| t.0.duration_since(killed_wall).try_into().ok())
                .map(|d: Duration| format!("{d:.2?}"))
                .unwrap_or_else(|| "?".into());
            eprintln!(
                "fault: hand-over: replica {} holds the lease {at:.2?} after the kill (its acquireTime is {acquired} after it; transitions {:?}); limit {limit:?}",
                stand.name,
                spec.as_ref().and_then(|s| s.lease_transitions)
            );
            break at;
        }
        if killed_at.elapsed() > limit + Duration::from_secs(30) {
            return Err(failure(&replicas, "the standby never took the lease"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if handover > limit {
        return Err(failure(
            &replicas,
            &format!(
                "hand-over took {handover:.2?}, over lease duration + retry period ({limit:?})"
            ),
        ));
    }
    let ready = w.wait_all_ready(n, timeout).await;
    let new_leader = scrape(stand.port).await.map(|m| metric_sum(&m, RECONCILES));
    if let Some(c) = w.replicas.iter_mut().find(|c| c.id() == stand.pid)
        && let Some(status) = c.try_wait()?
    {
        return Err(failure(
            &replicas,
            &format!("the new leader exited ({status})"),
        ));
    }
    ready?;
    eprintln!(
        "fault: all {n} Ready {:.1?} after the kill; the new leader reconciled {} times",
        killed_at.elapsed(),
        new_leader.map_or_else(|e| format!("? ({e})"), |v| v.to_string())
    );
    Ok(())
}

/// The Lease's holderIdentity, if any (retried while the API server is away).
async fn holder(leases: &Api<Lease>) -> Res<Option<String>> {
    Ok(retry_kube("get lease", || leases.get_opt(LEASE_NAME))
        .await?
        .and_then(|l| l.spec?.holder_identity))
}

/// A failure with both replicas' log tails.
fn failure(replicas: &[Replica], what: &str) -> Box<dyn std::error::Error + Send + Sync> {
    let mut msg = what.to_owned();
    for r in replicas {
        msg.push_str(&format!(
            "\n-- replica {} ({}), last lines of {}:\n{}",
            r.name,
            r.identity,
            r.log.display(),
            log_tail(&r.log, 20)
        ));
    }
    msg.into()
}

/// GET /metrics on 127.0.0.1:`port` (plain HTTP/1.1, connection closed after).
async fn scrape(port: u16) -> Res<String> {
    tokio::task::spawn_blocking(move || -> Res<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        if !text.starts_with("HTTP/1.1 200") {
            return Err(format!(
                "/metrics on {port}: {}",
                text.lines().next().unwrap_or_default()
            )
            .into());
        }
        Ok(text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default())
    })
    .await?
}

/// Sum of a metric's samples over all label sets (0 when it has none yet).
fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let metric = key.split('{').next()?;
            // Counters print as integers or floats ("3" or "3.0").
            (metric == name).then(|| value.parse::<f64>().ok().map(|v| v as u64))?
        })
        .sum()
}
