//! How far this member's state machine has applied the log, and waiting for an index.
//!
//! A write forwarded to the leader is acknowledged only once this member applied it too
//! (so a read here sees it). Waiting on openraft's metrics for that woke every waiter at
//! every change of the metrics, which change with each write: with 256 writes in flight
//! through a follower, every apply woke all 256. Here each waiter is registered under
//! its index and woken once, when the state machine passes it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// The applied index and who waits for which index; shared by the state machine (which
/// advances it) and the node (which waits on it).
#[derive(Default)]
pub struct Applied {
    /// The last applied log index (0 before any).
    index: Arc<AtomicU64>,
    /// Waiters by the index they wait for.
    waiters: Mutex<BTreeMap<u64, Vec<oneshot::Sender<()>>>>,
}

impl Applied {
    /// The applied index as an atomic, for readers that only look (status, the
    /// committed marker).
    pub fn index(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.index)
    }

    /// The last applied log index.
    pub fn get(&self) -> u64 {
        self.index.load(Ordering::Acquire)
    }

    fn waiters(&self) -> MutexGuard<'_, BTreeMap<u64, Vec<oneshot::Sender<()>>>> {
        // Only ever left whole: each method finishes its one map operation.
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that everything up to `index` is applied (a snapshot install may move
    /// it back to the snapshot's position) and wakes whoever waited for it.
    pub fn set(&self, index: u64) {
        self.index.store(index, Ordering::Release);
        let ready = {
            let mut waiters = self.waiters();
            let later = waiters.split_off(&(index + 1));
            std::mem::replace(&mut *waiters, later)
        };
        for sender in ready.into_values().flatten() {
            let _ = sender.send(());
        }
    }

    /// Resolves once `index` is applied; `false` if the state machine went away first.
    pub async fn wait_for(&self, index: u64) -> bool {
        if self.get() >= index {
            return true;
        }
        let (tx, rx) = oneshot::channel();
        self.waiters().entry(index).or_default().push(tx);
        // `set` may have run between the first look and the registration.
        if self.get() >= index {
            return true;
        }
        rx.await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_once_their_index_is_applied() {
        let applied = Arc::new(Applied::default());
        let early = tokio::spawn({
            let applied = Arc::clone(&applied);
            async move { applied.wait_for(3).await }
        });
        let late = tokio::spawn({
            let applied = Arc::clone(&applied);
            async move { applied.wait_for(10).await }
        });
        tokio::task::yield_now().await;
        applied.set(5);
        assert!(early.await.unwrap());
        assert!(!late.is_finished());
        assert!(applied.wait_for(4).await, "already applied");
        applied.set(10);
        assert!(late.await.unwrap());
        assert!(applied.waiters().is_empty());
    }
}
