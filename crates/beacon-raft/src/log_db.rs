//! The log database (fjall in production, see `disk`) under the Raft log, re-opened in
//! place after a failed write.
//!
//! fjall marks its database failed ("poisoned") after any journal write or sync error
//! and refuses every later write until it is opened again: it cannot tell what reached
//! the disk. A full disk is such an error, and it goes away when space is freed. So a
//! failed write is not handed to openraft, which would stop Raft for good (a storage
//! error is fatal to it) and leave the member refusing writes until a restart. Instead
//! the write waits: every [`LOG_WRITE_RETRY_MS`] the database is dropped and opened
//! again (fjall's recovery drops a torn last record, so the log is exactly what was
//! written before the failure) and the write is tried once more. Meanwhile the log's
//! writer waits on it (and openraft's core once the writer's queue is full), proposals
//! are not acknowledged and client requests time out with
//! etcd's error; once space is back the write goes through and Raft carries on. (etcd
//! instead panics on a WAL write error and needs a restart; this is the behaviour
//! issue 13 asks for.) At shutdown the wait ends with the error, so stopping never hangs.
//!
//! A re-open after a failed write or sync may find less than was written: the kernel
//! may have dropped journal pages a failed fsync could not write. Entries openraft
//! believes written must then not be built on (a later append would leave a hole, and
//! a restart would find the log corrupt), so the database remembers the last index
//! written ([`LogDb::wrote_up_to`]); a re-opened log that ends before it fails every
//! later read and write, which stops Raft (`RaftNode::failed`), and the member is
//! restarted over a log that ends before the lost, never acknowledged, entries.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};
use std::time::Duration;

use crate::disk::{self, DbError, Disk, LogTables, Table};

/// How long a failed log write waits before the database is re-opened and the write
/// tried again, in milliseconds: often enough that writes resume within a second of
/// space coming back, rarely enough that a full disk costs nothing (each try re-reads
/// the journal).
pub const LOG_WRITE_RETRY_MS: u64 = 500;

/// The handles of one opening of the database; cheap to clone.
#[derive(Clone)]
pub struct Handles {
    /// Which opening these are (counted from 0), so that a failed write re-opens only
    /// the database it failed on, not one another thread already re-opened.
    generation: u64,
    /// The tables (reads, batches, persist).
    pub tables: Arc<dyn LogTables>,
}

impl std::ops::Deref for Handles {
    type Target = dyn LogTables;

    fn deref(&self) -> &Self::Target {
        &*self.tables
    }
}

fn open_handles(disk: &dyn Disk, path: &Path, generation: u64) -> Result<Handles, DbError> {
    Ok(Handles {
        generation,
        tables: disk.open_log(path)?,
    })
}

/// The database slot shared by every clone of the log store and the log's workers.
pub struct LogDb {
    disk: Arc<dyn Disk>,
    path: PathBuf,
    /// `None` only while a re-open is under way or failed (then it is retried).
    slot: RwLock<Option<Handles>>,
    /// Set at shutdown: failed writes give up instead of waiting for the disk.
    stopping: AtomicBool,
    /// A write or sync failed and none has succeeded since.
    failing: AtomicBool,
    /// The generation of the next opening.
    next_generation: AtomicU64,
    /// The last log index written and not truncated since, which a re-opened log must
    /// still hold (see the module doc).
    written_up_to: Mutex<Option<u64>>,
    /// Why the log can no longer be used, once a re-open found entries missing.
    lost: Mutex<Option<String>>,
    /// The last log index known durable (synced), for the committed marker: a member
    /// may apply committed entries its own log has not synced yet, and those may still
    /// be lost by a failed sync, so the marker must not claim them.
    synced: Arc<AtomicU64>,
}

/// The meta key of the last purged log id (JSON, with its `index`).
pub(crate) const KEY_PURGED: &[u8] = b"last_purged";

/// The last index `tables` hold: its last entry's, or the purge point's when every
/// entry was purged.
fn last_index(tables: &dyn LogTables) -> Result<Option<u64>, String> {
    let last_entry = match tables.last().map_err(|e| e.to_string())? {
        Some((key, _)) => Some(u64::from_be_bytes(
            key.as_slice()
                .try_into()
                .map_err(|_| format!("log key of {} bytes", key.len()))?,
        )),
        None => None,
    };
    let purged = match tables
        .get(Table::Meta, KEY_PURGED)
        .map_err(|e| e.to_string())?
    {
        Some(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("index").and_then(serde_json::Value::as_u64)),
        None => None,
    };
    Ok(last_entry.max(purged))
}

impl LogDb {
    /// Opens the database at `path` on `disk`.
    pub fn open(disk: Arc<dyn Disk>, path: &Path) -> Result<LogDb, DbError> {
        Ok(LogDb {
            slot: RwLock::new(Some(open_handles(&*disk, path, 0)?)),
            disk,
            path: path.to_owned(),
            stopping: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            next_generation: AtomicU64::new(1),
            written_up_to: Mutex::new(None),
            lost: Mutex::new(None),
            synced: Arc::default(),
        })
    }

    fn slot(&self) -> RwLockWriteGuard<'_, Option<Handles>> {
        // The slot is only ever replaced whole, so a panic elsewhere leaves it usable.
        self.slot.write().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self) -> Option<Handles> {
        self.slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The error every use of the log gets once a re-open found entries missing.
    fn lost(&self) -> io::Result<()> {
        match &*self.lost.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(()),
        }
    }

    /// Records the last log index written: after an append, its last entry; after a
    /// truncation, the entry kept last (`None`: nothing).
    pub fn wrote_up_to(&self, last: Option<u64>) {
        *self.written_up_to.lock().unwrap_or_else(|p| p.into_inner()) = last;
    }

    /// Records a truncation to `last` (`None`: nothing kept): what a re-open must find
    /// ends there, and so does what is known durable, since the entries that will
    /// follow it are new and not synced yet.
    pub fn truncated_to(&self, last: Option<u64>) {
        self.wrote_up_to(last);
        self.synced.fetch_min(last.unwrap_or(0), Ordering::AcqRel);
    }

    /// Records that the log is durable up to `index` (a sync covered it).
    pub fn synced_up_to(&self, index: u64) {
        self.synced.fetch_max(index, Ordering::AcqRel);
    }

    /// Records that everything written so far is durable (a sync of the whole log).
    pub fn synced_all(&self) {
        let written = *self.written_up_to.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = written {
            self.synced_up_to(last);
        }
    }

    /// The last log index known durable, kept up by the sync worker.
    pub fn synced_index(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.synced)
    }

    /// Checks a freshly re-opened log against what was written (see the module doc).
    fn check_reopened(&self, h: &Handles) {
        let Some(want) = *self.written_up_to.lock().unwrap_or_else(|p| p.into_inner()) else {
            return;
        };
        let why = match last_index(&*h.tables) {
            Ok(have) if have >= Some(want) => return,
            Ok(have) => format!(
                "the raft log at {} lost entries after a failed write or sync: it ends at {} \
                 but entry {want} was written (never acknowledged: it was not synced)",
                self.path.display(),
                have.map_or("nothing".to_string(), |i| i.to_string())
            ),
            Err(e) => format!(
                "reading the re-opened raft log at {}: {e}",
                self.path.display()
            ),
        };
        tracing::error!("{why}; raft stops and the member must be restarted");
        *self.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    fn gone(&self) -> io::Error {
        io::Error::other(format!(
            "raft log at {} is being re-opened after a failed write",
            self.path.display()
        ))
    }

    /// The disk the database is on.
    pub fn disk(&self) -> &Arc<dyn Disk> {
        &self.disk
    }

    /// The current handles, re-opening once if a re-open is due, without waiting (for
    /// blocking work at open and at shutdown, when nothing else re-opens it).
    pub fn handles_now(&self) -> io::Result<Handles> {
        self.lost()?;
        if let Some(h) = self.current() {
            return Ok(h);
        }
        if !self.is_stopping() {
            self.reopen(None);
        }
        self.current().ok_or_else(|| self.gone())
    }

    /// The current handles, waiting (on the async runtime) while a re-open is due.
    pub async fn handles(self: &Arc<Self>) -> io::Result<Handles> {
        loop {
            self.lost()?;
            if let Some(h) = self.current() {
                return Ok(h);
            }
            if self.is_stopping() {
                return Err(self.gone());
            }
            self.reopen_async(None).await;
            if self.current().is_none() {
                tokio::time::sleep(Duration::from_millis(LOG_WRITE_RETRY_MS)).await;
            }
        }
    }

    /// [`Self::reopen`] as blocking work (it reads the journal).
    pub(crate) async fn reopen_async(self: &Arc<Self>, stale: Option<u64>) {
        let db = Arc::clone(self);
        let _ = disk::blocking(&*self.disk, move || db.reopen(stale)).await;
    }

    /// Drops the opening of generation `stale` (or fills an empty slot, for `None`) and
    /// opens the database again; does nothing if another thread already did. Fails
    /// quietly (the slot stays empty and the next try re-opens) while the disk is still
    /// full or a reader still holds the old handles (fjall's lock file is still taken).
    pub fn reopen(&self, stale: Option<u64>) {
        let mut slot = self.slot();
        match (slot.as_ref(), stale) {
            (Some(h), Some(g)) if h.generation != g => return,
            (Some(_), None) => return,
            _ => {}
        }
        // The old database must be gone, lock file included, before the new one opens.
        drop(slot.take());
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        match open_handles(&*self.disk, &self.path, generation) {
            Ok(h) => {
                self.check_reopened(&h);
                *slot = Some(h);
                tracing::info!(path = %self.path.display(), "re-opened the raft log after a failed write");
            }
            Err(e) => {
                tracing::debug!(error = %e, "re-opening the raft log failed; will retry")
            }
        }
    }

    /// Records the outcome of a write or sync: the first failure is logged, and so is
    /// the first success after failures.
    pub fn note(&self, what: &str, result: Result<(), &DbError>) {
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!(path = %self.path.display(), "raft log writes succeed again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %e,
                        retry_ms = LOG_WRITE_RETRY_MS,
                        "{what} failed (is the disk full?); proposals wait, and the write is retried until it succeeds"
                    );
                }
            }
        }
    }

    /// The generation of `handles`, for [`Self::reopen`].
    pub fn generation(handles: &Handles) -> u64 {
        handles.generation
    }

    /// Whether the last write or sync failed (and nothing succeeded since).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Makes failed writes give up with their error from now on (shutdown).
    pub fn stop_retrying(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Whether [`Self::stop_retrying`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Runs the write `op` until it succeeds, re-opening the database between tries
    /// (see the module doc); gives up with its error once stopping.
    pub async fn write_retrying<T>(
        self: &Arc<Self>,
        what: &str,
        mut op: impl FnMut(&Handles) -> Result<T, DbError>,
    ) -> io::Result<T> {
        loop {
            let handles = self.handles().await?;
            let (result, generation) = (op(&handles), handles.generation);
            drop(handles);
            match result {
                Ok(v) => {
                    self.note(what, Ok(()));
                    return Ok(v);
                }
                Err(e) => {
                    self.note(what, Err(&e));
                    if self.is_stopping() {
                        return Err(io::Error::other(format!("{what}: {e}")));
                    }
                    tokio::time::sleep(Duration::from_millis(LOG_WRITE_RETRY_MS)).await;
                    self.reopen_async(Some(generation)).await;
                }
            }
        }
    }
}

/// The big-endian key of a log index in the `log` keyspace (so keys sort as indexes).
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}
