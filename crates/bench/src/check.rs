//! The end of every fault run: all Ready and a clean ledger.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use crate::Res;
use crate::world::World;

/// Ends a fault run: all Ready, then the ledger and the simulator's state
/// show nothing duplicated or orphaned.
pub async fn check_clean(w: &World, n: usize, timeout: Duration) -> Res<()> {
    w.wait_all_ready(n, timeout).await?;
    let pid = w.ns.rsplit('-').next().unwrap_or("0").to_owned();
    let state = w.sim.state_json();
    let accounts: Vec<&Value> = state["accounts"]
        .as_object()
        .map(|m| m.values().collect())
        .or_else(|| state["accounts"].as_array().map(|a| a.iter().collect()))
        .unwrap_or_default();
    let ours: Vec<&Value> = accounts
        .iter()
        .copied()
        .filter(|a| {
            a.to_string()
                .to_ascii_lowercase()
                .contains(&format!("bench{pid}-"))
        })
        .collect();
    let mut problems = Vec::new();
    if ours.len() != n {
        problems.push(format!(
            "{} accounts in Azure for {n} resources",
            ours.len()
        ));
    }
    let mut creates: HashMap<String, u32> = HashMap::new();
    let mut deletes = 0;
    for l in w.sim.ledger() {
        if l.operation == "DatabaseAccounts_CreateOrUpdate" && l.status < 300 {
            *creates
                .entry(
                    l.path
                        .split('?')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                )
                .or_default() += 1;
        }
        if l.method == "DELETE" {
            deletes += 1;
        }
    }
    let dup: Vec<_> = creates.iter().filter(|(_, c)| **c > 1).collect();
    if !dup.is_empty() {
        problems.push(format!("accounts created more than once: {dup:?}"));
    }
    if creates.len() != n {
        problems.push(format!(
            "{} successful creates for {n} accounts",
            creates.len()
        ));
    }
    if deletes > 0 {
        problems.push(format!("{deletes} DELETE calls"));
    }
    // Grants: no principal granted twice on one scope.
    let mut seen = HashSet::new();
    for ra in state["roleAssignments"]
        .as_object()
        .map(|m| m.values().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let k = format!(
            "{}|{}|{}",
            ra["scope"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            ra["principalId"].as_str().unwrap_or_default(),
            ra["roleDefinitionId"].as_str().unwrap_or_default()
        );
        if !seen.insert(k.clone()) {
            problems.push(format!("duplicate role assignment {k}"));
        }
    }
    let creates_total: u32 = creates.values().sum();
    eprintln!(
        "fault: ledger {} mutating calls, {creates_total} account creates for {n} accounts, {} role assignments",
        w.sim.ledger().len(),
        seen.len()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}
