//! How far this member's state machine has applied the log, and waiting for an index.
//!
//! A write forwarded to the leader is acknowledged as soon as the leader has applied it,
//! maybe before this member has; its index is then recorded here as acknowledged, and a
//! read on this member first waits until everything acknowledged is applied, so that a
//! client reads its own writes here. (Waiting before the answer instead tied the answer
//! to this member learning the commit, which the leader may send a little later with
//! the next append, `peer::coalesce`.) Waiting on openraft's metrics woke every waiter
//! at every change of the metrics, which change with each write; here each waiter is
//! registered under its index and woken once, when the state machine passes it.

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
    /// The highest index of a write this member has acknowledged to a client.
    acknowledged: AtomicU64,
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

    /// Records that a write at `index` was acknowledged to a client.
    pub fn acknowledge(&self, index: u64) {
        self.acknowledged.fetch_max(index, Ordering::AcqRel);
    }

    /// The index every read here must wait for: the highest acknowledged write, if it
    /// is not applied yet.
    pub fn read_waits_for(&self) -> Option<u64> {
        let acknowledged = self.acknowledged.load(Ordering::Acquire);
        (self.get() < acknowledged).then_some(acknowledged)
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

    #[test]
    fn a_read_waits_only_for_acknowledged_writes_not_yet_applied() {
        let applied = Applied::default();
        applied.set(4);
        assert_eq!(applied.read_waits_for(), None, "nothing acknowledged");
        applied.acknowledge(7);
        applied.acknowledge(6);
        assert_eq!(
            applied.read_waits_for(),
            Some(7),
            "the highest acknowledged"
        );
        applied.set(7);
        assert_eq!(applied.read_waits_for(), None);
    }
}
