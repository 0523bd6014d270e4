//! Log compaction off the write path: the entries a purge drops are deleted behind its
//! marker, in bounded batches, by a worker of their own.
//!
//! openraft purges the log behind every snapshot (`snapshot_count` entries, 100,000 by
//! default) and awaits the purge inside its log I/O, the same sequence its appends go
//! through. Deleting that many keys in one batch took 80-130 ms, and every write waited
//! behind it. So `LogStore::purge` only records the new purge point (one small write,
//! the `last_purged` marker) and hands the range to this worker, which deletes it
//! [`PURGE_BATCH_ENTRIES`] keys at a time while appends go on between the batches.
//!
//! Entries at or below the marker may therefore still be on disk for a while, and after
//! a crash. Every reader of the log skips them (the log store reads from the marker on),
//! and at open the worker is handed whatever a crash left behind. Crash safety follows
//! from the journal's order: the marker is written before any deletion behind it, and a
//! recovered journal is a prefix of what was written, so a deletion that survived a crash
//! always has its marker; a lost marker leaves only a longer log, covered by the snapshot
//! it was purged behind. A re-open after a failed write or sync can lose the marker and
//! keep what follows it, though (see `log_db`), so every deletion batch also writes the
//! marker again, in the same atomic batch: no entry is ever deleted without a marker at
//! or above it. Each batch also records how far deletion got, so an open finds the
//! leftovers without a scan. The deletions are not synced on their own: they ride along
//! with the next append's sync.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::watch;

use crate::disk::{Change, Table};
use crate::log_db::{index_key, LogDb, KEY_PURGED};
use crate::types::LogId;

/// The meta key of how far the worker has deleted (JSON index), written in each deletion
/// batch: an open knows where the leftovers start without scanning the table from its
/// start, through every deletion not yet compacted away (seconds with a million).
pub(crate) const KEY_PURGE_DELETED: &[u8] = b"purge_deleted";

/// How many entries one deletion batch removes. A batch holds the journal's writer for
/// as long as it takes to write its tombstones (~20 bytes each): 1,024 of them take a
/// fraction of a millisecond, which is as long as an append may wait behind one.
pub const PURGE_BATCH_ENTRIES: u64 = 1024;

/// The handle of the purge worker; dropping it stops the worker after its current batch.
pub struct LogPurge {
    /// The purge point to delete up to (inclusive); `None` asks for nothing.
    target: watch::Sender<Option<LogId>>,
    /// Every index at or below this is deleted from the table (0: none known).
    deleted: Arc<AtomicU64>,
}

impl LogPurge {
    /// Starts the worker for `db`. Every entry up to `deleted` is gone from the table,
    /// and `purged` is the purge point the marker records: entries between the two are
    /// leftovers of a purge a crash or a stop interrupted, and are deleted first.
    pub fn start(db: Arc<LogDb>, deleted: u64, purged: Option<LogId>) -> io::Result<LogPurge> {
        let (target, rx) = watch::channel(purged);
        let deleted = Arc::new(AtomicU64::new(deleted));
        let disk = Arc::clone(db.disk());
        disk.spawn_worker(
            "raft-log-purge",
            // Weak, as the sync worker's: the database closes with the log store.
            Box::pin(run(Arc::downgrade(&db), rx, Arc::clone(&deleted))),
        )?;
        Ok(LogPurge { target, deleted })
    }

    /// Asks for every entry up to `index` to be deleted (the marker already says they
    /// are purged). Returns at once.
    pub fn purge_upto(&self, log_id: LogId) {
        self.target.send_if_modified(|t| {
            let raise = t.is_none_or(|t| log_id.index > t.index);
            if raise {
                *t = Some(log_id);
            }
            raise
        });
    }

    /// The last index known deleted from the table: every entry up to it is gone.
    pub fn deleted_upto(&self) -> u64 {
        self.deleted.load(Ordering::Acquire)
    }
}

async fn run(db: Weak<LogDb>, mut rx: watch::Receiver<Option<LogId>>, deleted: Arc<AtomicU64>) {
    // The first target (leftovers at open) counts as changed.
    rx.mark_changed();
    while rx.changed().await.is_ok() {
        loop {
            let Some(target) = *rx.borrow_and_update() else {
                break;
            };
            let done = deleted.load(Ordering::Acquire);
            if done >= target.index {
                break;
            }
            // Stopping, or every log store handle is gone (the database closed, or the
            // sender dropped): the rest is deleted after the next open.
            let Some(db) = db.upgrade() else {
                return;
            };
            if db.is_stopping() || rx.has_changed().is_err() {
                return;
            }
            let (from, upto) = (done + 1, target.index.min(done + PURGE_BATCH_ENTRIES));
            let (Ok(marker), Ok(progress)) =
                (serde_json::to_vec(&target), serde_json::to_vec(&upto))
            else {
                return;
            };
            let keys: Vec<[u8; 8]> = (from..=upto).map(index_key).collect();
            let mut changes = vec![
                Change::Insert(Table::Meta, KEY_PURGED, &marker),
                Change::Insert(Table::Meta, KEY_PURGE_DELETED, &progress),
            ];
            changes.extend(keys.iter().map(|k| Change::Remove(Table::Log, k)));
            match db
                .write_retrying("deleting purged raft log entries", |h| h.commit(&changes))
                .await
            {
                Ok(()) => deleted.store(upto, Ordering::Release),
                // Only when stopping: the rest is deleted after the next open.
                Err(_) => return,
            }
            // Let the node's other work on this runtime (a simulation's) run between batches.
            tokio::task::yield_now().await;
        }
    }
}
