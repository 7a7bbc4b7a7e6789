//! The apiserver-restart fault: the control plane (API server and etcd) is
//! stopped and started again mid-run while the operator process keeps
//! running. `up` reuses the previous ports and certificates and etcd keeps
//! its data, so the operator's kubeconfig stays valid: it has to ride the
//! outage out, not be restarted.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;

use crate::Res;
use crate::cli::FaultArgs;
use crate::control_plane::{control_plane_down, control_plane_up};
use crate::world::{World, log_tail};

pub async fn apiserver_restart(
    w: &mut World,
    args: &FaultArgs,
    n: usize,
    timeout: Duration,
) -> Res<()> {
    let server = server_of(&w.kubeconfig)?;
    w.start_operator()?;
    w.apply_world(n).await?;
    let mut back_at = Instant::now();
    let mut outages = Vec::new();
    for i in 1..=args.restarts {
        // Mid-run: a couple of seconds into convergence (or after the last
        // outage), while reconciles and Azure operations are in flight.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let left = w.not_ready().await?.len();
        let down_at = Instant::now();
        let down_wall = Timestamp::now();
        // The scripts block for seconds; the simulator serves on this runtime.
        tokio::task::spawn_blocking(control_plane_down).await??;
        let stopped = down_at.elapsed();
        tokio::time::sleep(Duration::from_secs(args.outage_seconds)).await;
        let kubeconfig = tokio::task::spawn_blocking(control_plane_up).await??;
        back_at = Instant::now();
        let outage = down_at.elapsed();
        outages.push(outage);
        // Wall-clock times, to line up with the operator's log.
        eprintln!(
            "fault: outage {i}: control plane stopped at {down_wall:.1} with {left} of {n} not Ready, back at {:.1}; `down` took {stopped:.1?}, API server unavailable {outage:.1?}",
            Timestamp::now()
        );
        if kubeconfig != w.kubeconfig || server_of(&kubeconfig)? != server {
            return Err(format!(
                "the control plane came back elsewhere ({}), the operator's kubeconfig is stale: a harness problem (port taken meanwhile?)",
                server_of(&kubeconfig)?
            )
            .into());
        }
        operator_still_running(w)?;
    }
    // A list a second (not a watch) so the progress shows where it stalls.
    let mut shown = Instant::now();
    loop {
        let left = w.not_ready().await?.len();
        operator_still_running(w)?;
        if left == 0 {
            break;
        }
        if back_at.elapsed() > timeout {
            return Err(format!("{left} of {n} not Ready {timeout:?} after the outages").into());
        }
        if shown.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "fault: {:.0?} after the API server came back ({:.0}): {left} of {n} not Ready",
                back_at.elapsed(),
                Timestamp::now()
            );
            shown = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "fault: outages {outages:.1?}; all {n} Ready {:.1?} after the API server came back the last time; operator never restarted ({} start)",
        back_at.elapsed(),
        w.starts
    );
    Ok(())
}

/// Fails when the operator process has exited: it must survive the outage.
fn operator_still_running(w: &mut World) -> Res<()> {
    match w.operator_exited()? {
        None => Ok(()),
        Some(status) => Err(format!(
            "the operator exited ({status}) around the API server outage; last lines of {}:\n{}",
            w.log.display(),
            log_tail(&w.log, 40)
        )
        .into()),
    }
}

/// The `server:` URL of a kubeconfig.
fn server_of(kubeconfig: &std::path::Path) -> Res<String> {
    let text = std::fs::read_to_string(kubeconfig)?;
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("server:")
                .map(|s| s.trim().to_owned())
        })
        .ok_or_else(|| format!("no server in {}", kubeconfig.display()).into())
}
