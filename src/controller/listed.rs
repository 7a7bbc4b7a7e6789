//! Whether a watch's first complete list has reached its cache.
//!
//! kube's `Store::wait_until_ready` keeps a single waker: with the controller
//! and several reconciles waiting at once, all but the last to poll could
//! sleep forever (seen as an account that never reconciled after a restart).
//! This flag is set from the watch stream itself and wakes every waiter.

use kube::runtime::watcher;
use tokio::sync::watch;

/// Read side: reconciles wait on it.
#[derive(Clone)]
pub struct Listed(watch::Receiver<bool>);

/// Write side: sees the watch events as they reach the cache.
pub struct MarkListed(watch::Sender<bool>);

pub fn listed() -> (MarkListed, Listed) {
    let (tx, rx) = watch::channel(false);
    (MarkListed(tx), Listed(rx))
}

impl MarkListed {
    pub fn observe<K>(&self, event: &watcher::Event<K>) {
        if matches!(event, watcher::Event::InitDone) {
            self.0.send_replace(true);
        }
    }
}

impl Listed {
    /// Returns once the first list is in the cache; false if the watch ended first.
    pub async fn wait(&self) -> bool {
        self.0.clone().wait_for(|listed| *listed).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[tokio::test]
    async fn every_waiter_wakes_when_the_list_is_in() {
        let (mark, listed) = listed();
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let l = listed.clone();
                tokio::spawn(async move { l.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        mark.observe::<ConfigMap>(&watcher::Event::Init);
        mark.observe::<ConfigMap>(&watcher::Event::InitDone);
        for w in waiters {
            assert!(w.await.expect("waiter ran"));
        }
        drop(mark);
        assert!(listed.wait().await, "stays listed after the watch ends");
    }
}
