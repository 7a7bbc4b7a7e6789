//! Revocation seen from the key's side: with the accounts' own resync an hour
//! away, a disabled key version in use is still reported on the account (and
//! its return noticed), because the key watch reads the version and wakes
//! the accounts on it. Nothing but the key watch can wake the account here:
//! the account and binding resyncs are an hour, and the waits are a minute.

use std::time::Duration;

use crate::lifecycle::ready_orders;
use crate::support::Env;
use cmk_operator::api::Phase;
use cmk_operator::sim::SimConfig;

/// The example account Ready, with account and binding resyncs an hour away
/// and the key watch every `key_watch_secs` (0: off); its key URI and version.
async fn ready_with_resync_an_hour_away(
    prefix: &str,
    key_watch_secs: u64,
) -> (Env, String, String) {
    let env = Env::start_tuned(prefix, SimConfig::for_tests(), None, |s| {
        s.resync = Duration::from_secs(3600);
        s.key_watch = Duration::from_secs(key_watch_secs);
    })
    .await;
    let (key_uri, version) = ready_orders(&env).await;
    // Let the reconciles of the convergence end (not a timing assertion: a
    // late one would only read the key as still enabled).
    tokio::time::sleep(Duration::from_secs(2)).await;
    (env, key_uri, version)
}

#[tokio::test]
async fn a_disabled_version_in_use_is_reported_via_the_key_side_before_any_resync() {
    let (env, key_uri, version) = ready_with_resync_an_hour_away("key-watch", 1).await;
    let key_reads = env.calls("KeyVault_GetKey");
    let account_reads = env.calls("DatabaseAccounts_Get");

    env.set_key_version_enabled(&key_uri, &version, false).await;
    let a = env.account_reason("orders", "KeyRevoked").await;
    assert_eq!(a.status.unwrap().phase, Phase::Revoked);
    assert!(
        env.calls("KeyVault_GetKey") > key_reads,
        "the key side was read"
    );
    assert!(
        env.calls("DatabaseAccounts_Get") > account_reads,
        "the woken account read itself"
    );

    // Access back: the key side wakes the account that reports it revoked.
    env.set_key_version_enabled(&key_uri, &version, true).await;
    let a = env.account_reason("orders", "Ready").await;
    assert_eq!(a.status.unwrap().phase, Phase::Ready);
}

/// Without the key watch the same disabled version stays unreported until the
/// account's resync: the test above proves the key side, not a resync.
#[tokio::test]
async fn without_the_key_watch_nothing_reads_the_key_before_the_resync() {
    let (env, key_uri, version) = ready_with_resync_an_hour_away("key-watch-off", 0).await;
    let account_reads = env.calls("DatabaseAccounts_Get");
    env.set_key_version_enabled(&key_uri, &version, false).await;
    // Three key-watch intervals of the test above.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.calls("DatabaseAccounts_Get"),
        account_reads,
        "nothing woke the account"
    );
    let a = env.accounts().get("orders").await.unwrap();
    assert_eq!(a.status.unwrap().phase, Phase::Ready);
}
