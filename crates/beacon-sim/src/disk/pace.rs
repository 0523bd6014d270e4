//! Slow compaction: the simulated disk can make the work of log compaction (a batch that
//! deletes purged log entries) and of snapshots (a snapshot file's write) take simulated time,
//! so that a run shows whether any write waits behind that work (the stall check).
//!
//! The disk's operations are synchronous calls and cannot wait themselves. What waits is
//! whoever runs them where production lets disk work block: the blocking work a node
//! hands to `Disk::run_blocking` (production: tokio's blocking pool) resolves only after
//! the cost of the slow operations it made, and a worker started by `Disk::spawn_worker`
//! (production: a thread of its own, such as the purge worker) is not polled again until
//! it has paid the cost of what it did in its last poll. The operation takes effect at
//! once; its caller then waits, as a thread blocked in a slow call would. A slow
//! operation made anywhere else, on one of the node's own tasks (e.g. a truncation in
//! openraft's log I/O), has nowhere to wait: it costs nothing, and is counted apart
//! ([`SlowOps::on_node_tasks`]), since in production it would block the runtime thread
//! the node's tasks share; the stall check fails a run that made one.
//!
//! The waits are tokio sleeps, which turmoil's clock drives: a run stays deterministic.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use beacon_raft::disk::DiskFuture;

use super::SimDisk;

/// How many slow operations a disk made, by kind (charged or not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlowOps {
    /// Log batches that deleted purged entries, at or below the purge marker (the purge
    /// worker's, or a purge done inline); a truncation is not one.
    pub log_deletions: u32,
    /// Snapshot files written (`Disk::write_synced` of a file in `member/snap`).
    pub snapshot_writes: u32,
    /// Of those, the ones made on the node's own tasks rather than in blocking work or
    /// a disk worker: they cost nothing here, and would block the node in production.
    pub on_node_tasks: u32,
}

/// The kinds of slow operations.
#[derive(Debug, Clone, Copy)]
pub(super) enum Slow {
    /// A log batch that deletes purged entries (compaction, not a truncation).
    LogDeletion,
    /// A snapshot file's write.
    SnapshotWrite,
}

/// What slow compaction adds to a disk's state.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// How long each slow operation takes; `None`: no operation is slow.
    pub(super) cost: Option<Duration>,
    /// The time owed by the work running now, if it runs where it may wait.
    pub(super) owed: Option<Duration>,
    /// The slow operations made so far.
    pub(super) counts: SlowOps,
}

impl Pace {
    /// Counts a slow operation of `kind` and charges its cost to the work running now.
    pub(super) fn slow(&mut self, kind: Slow) {
        let Some(cost) = self.cost else {
            return;
        };
        match kind {
            Slow::LogDeletion => self.counts.log_deletions += 1,
            Slow::SnapshotWrite => self.counts.snapshot_writes += 1,
        }
        match &mut self.owed {
            Some(owed) => *owed += cost,
            None => self.counts.on_node_tasks += 1,
        }
    }
}

impl SimDisk {
    /// Runs `work` where slow operations are charged, and returns what it returned with
    /// the time its slow operations cost.
    pub(super) fn charging<T>(&self, work: impl FnOnce() -> T) -> (T, Duration) {
        // Saved and restored: blocking work may run inside a worker's poll.
        let outer = self.lock().pace.owed.replace(Duration::ZERO);
        let result = work();
        let owed = std::mem::replace(&mut self.lock().pace.owed, outer);
        (result, owed.unwrap_or_default())
    }

    /// A future that waits `cost` of simulated time, or none for nothing.
    pub(super) fn wait(cost: Duration) -> DiskFuture<'static, ()> {
        if cost.is_zero() {
            Box::pin(std::future::ready(()))
        } else {
            Box::pin(tokio::time::sleep(cost))
        }
    }
}

/// A disk worker that pays for its slow operations: after a poll that made some, it is
/// not polled again (nor reported finished) until their cost has passed.
pub(super) struct Paced {
    pub(super) disk: SimDisk,
    pub(super) work: DiskFuture<'static, ()>,
    /// The wait under way, and whether the work had finished before it.
    pub(super) paying: Option<(DiskFuture<'static, ()>, bool)>,
}

impl Future for Paced {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            if let Some((wait, finished)) = &mut this.paying {
                ready!(wait.as_mut().poll(cx));
                let finished = *finished;
                this.paying = None;
                if finished {
                    return Poll::Ready(());
                }
            }
            let work = &mut this.work;
            let (polled, cost) = this.disk.charging(|| work.as_mut().poll(cx));
            if cost.is_zero() {
                return polled;
            }
            this.paying = Some((SimDisk::wait(cost), polled.is_ready()));
        }
    }
}
