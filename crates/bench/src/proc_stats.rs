//! Whole-process figures of the operator (RSS, peak RSS, CPU) from `/proc`.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whole-process figures of the operator from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    pub at: Option<Instant>,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub cpu_ticks: u64,
}

pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: utime and stime are 14th and 15th overall.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ProcSample {
        at: Some(Instant::now()),
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu_ticks: ticks,
    })
}

pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Samples the operator every 250 ms in the background.
pub fn sampler(pid: u32) -> Arc<Mutex<Vec<ProcSample>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let o = out.clone();
    tokio::spawn(async move {
        while let Some(s) = sample(pid) {
            o.lock().unwrap_or_else(|p| p.into_inner()).push(s);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    out
}
