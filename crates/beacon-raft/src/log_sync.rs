//! Group commit: one worker makes the journal durable for every append waiting on it.
//!
//! Each append writes its batch to the journal and queues its flush callback here.
//! The sync worker takes every callback queued so far, runs one fdatasync, and then
//! reports all of them flushed. One sync covers every write made before it started,
//! so under load many appends share one disk flush instead of each paying for its own.
//! The worker runs where the disk says (`Disk::spawn_worker`): in production a thread
//! of its own, which may block on the sync; in a simulation a task on the node's runtime.
//!
//! A failed sync (a full or failing disk) is retried over a re-opened database, as the
//! log store's writes are (see `log_db`), instead of being reported to openraft, which
//! would stop Raft for good. After a failed fsync the kernel may have dropped pages it
//! could not write, so the re-opened log must still hold the last entry waiting here;
//! if it does not, those appends are reported failed rather than claimed durable.

use std::io;
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::storage::IOFlushed;
use tokio::sync::mpsc;

use crate::disk::{Durability, Table};
use crate::log_db::{index_key, LogDb, LOG_WRITE_RETRY_MS};
use crate::types::TypeConfig;

/// An append waiting for a sync, with the index of its last entry.
type Waiting = (IOFlushed<TypeConfig>, Option<u64>);

/// Appends waiting for a sync; dropping the last sender stops the worker.
#[derive(Clone)]
pub struct LogSync {
    tx: mpsc::UnboundedSender<Waiting>,
}

impl LogSync {
    /// Starts the sync worker for `db`.
    pub fn start(db: Arc<LogDb>) -> io::Result<LogSync> {
        let (tx, rx) = mpsc::unbounded_channel::<Waiting>();
        let disk = Arc::clone(db.disk());
        // Weak while it waits: the database closes when the log store is dropped, not
        // when this thread next gets to run (a re-open in the same process, a start that
        // failed and is tried again, would find it still open).
        disk.spawn_worker("raft-log-sync", Box::pin(run(Arc::downgrade(&db), rx)))?;
        Ok(LogSync { tx })
    }

    /// Reports `callback` flushed once everything written so far is on disk;
    /// `last_index` is the last entry its append wrote.
    pub fn flushed_after_sync(&self, callback: IOFlushed<TypeConfig>, last_index: Option<u64>) {
        if let Err(mpsc::error::SendError((callback, _))) = self.tx.send((callback, last_index)) {
            // Only after the worker died: say so rather than claim durability.
            callback.io_completed(Err(io::Error::other("raft log sync worker is gone")));
        }
    }
}

async fn run(db: Weak<LogDb>, mut rx: mpsc::UnboundedReceiver<Waiting>) {
    while let Some(first) = rx.recv().await {
        let Some(db) = db.upgrade() else {
            first
                .0
                .io_completed(Err(io::Error::other("the raft log is closed")));
            return;
        };
        let mut waiting = vec![first];
        while let Ok(next) = rx.try_recv() {
            waiting.push(next);
        }
        let last = waiting.iter().filter_map(|(_, i)| *i).max();
        let result = sync(&db, last).await;
        if let (Ok(()), Some(last)) = (&result, last) {
            db.synced_up_to(last);
        }
        for (cb, _) in waiting {
            cb.io_completed(result.clone().map_err(io::Error::other));
        }
    }
}

/// Syncs the journal, retrying over a re-opened database until it works or the node
/// stops; an error only if it stopped, or the re-opened log lost entry `last`. The sync
/// itself runs inline: the worker is where blocking on the disk is allowed.
async fn sync(db: &Arc<LogDb>, last: Option<u64>) -> Result<(), String> {
    loop {
        let handles = db.handles().await.map_err(|e| e.to_string())?;
        let generation = LogDb::generation(&handles);
        let result = handles.persist(Durability::Data);
        drop(handles);
        let Err(e) = result else {
            db.note("syncing the raft log", Ok(()));
            return Ok(());
        };
        db.note("syncing the raft log", Err(&e));
        if db.is_stopping() {
            return Err(format!("syncing the raft log: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(LOG_WRITE_RETRY_MS)).await;
        db.reopen(Some(generation));
        if let Some(last) = last {
            let handles = db.handles().await.map_err(|e| e.to_string())?;
            let kept = handles
                .contains(Table::Log, &index_key(last))
                .map_err(|e| e.to_string())?;
            if !kept {
                return Err(format!(
                    "syncing the raft log failed and entry {last} did not survive re-opening it"
                ));
            }
        }
    }
}
