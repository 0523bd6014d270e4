//! Group commit: one thread makes the journal durable for every append waiting on it.
//!
//! Each append writes its batch to fjall's journal and queues its flush callback here.
//! The sync thread takes every callback queued so far, runs one fdatasync, and then
//! reports all of them flushed. One sync covers every write made before it started,
//! so under load many appends share one disk flush instead of each paying for its own.

use std::io;
use std::sync::mpsc;
use std::thread;

use fjall::{Database, PersistMode};
use openraft::storage::IOFlushed;

use crate::types::TypeConfig;

/// Appends waiting for a sync; dropping the last sender stops the thread.
#[derive(Clone)]
pub struct LogSync {
    tx: mpsc::Sender<IOFlushed<TypeConfig>>,
}

impl LogSync {
    /// Starts the sync thread for `db`.
    pub fn start(db: Database) -> io::Result<LogSync> {
        let (tx, rx) = mpsc::channel::<IOFlushed<TypeConfig>>();
        thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || run(db, rx))?;
        Ok(LogSync { tx })
    }

    /// Reports `callback` flushed once everything written so far is on disk.
    pub fn flushed_after_sync(&self, callback: IOFlushed<TypeConfig>) {
        if let Err(mpsc::SendError(callback)) = self.tx.send(callback) {
            // Only after the thread died: say so rather than claim durability.
            callback.io_completed(Err(io::Error::other("raft log sync thread is gone")));
        }
    }
}

fn run(db: Database, rx: mpsc::Receiver<IOFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        match db.persist(PersistMode::SyncData) {
            Ok(()) => waiting.into_iter().for_each(|cb| cb.io_completed(Ok(()))),
            Err(e) => {
                let message = format!("syncing the raft log: {e}");
                for cb in waiting {
                    cb.io_completed(Err(io::Error::other(message.clone())));
                }
            }
        }
    }
}
