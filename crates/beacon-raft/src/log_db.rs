//! The fjall database under the Raft log, re-opened in place after a failed write.
//!
//! fjall marks its database failed ("poisoned") after any journal write or sync error
//! and refuses every later write until it is opened again: it cannot tell what reached
//! the disk. A full disk is such an error, and it goes away when space is freed. So a
//! failed write is not handed to openraft, which would stop Raft for good (a storage
//! error is fatal to it) and leave the member refusing writes until a restart. Instead
//! the write waits: every [`LOG_WRITE_RETRY_MS`] the database is dropped and opened
//! again (fjall's recovery drops a torn last record, so the log is exactly what was
//! written before the failure) and the write is tried once more. Meanwhile openraft's
//! core waits on it, proposals are not acknowledged and client requests time out with
//! etcd's error; once space is back the write goes through and Raft carries on. (etcd
//! instead panics on a WAL write error and needs a restart; this is the behaviour
//! issue 13 asks for.) At shutdown the wait ends with the error, so stopping never hangs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::time::Duration;

use fjall::{Database, Keyspace, KeyspaceCreateOptions};

/// How long a failed log write waits before the database is re-opened and the write
/// tried again, in milliseconds: often enough that writes resume within a second of
/// space coming back, rarely enough that a full disk costs nothing (each try re-reads
/// the journal).
pub const LOG_WRITE_RETRY_MS: u64 = 500;

const LOG_KEYSPACE: &str = "log";
const META_KEYSPACE: &str = "meta";

/// The handles of one opening of the database; cheap to clone.
#[derive(Clone)]
pub struct Handles {
    /// Which opening these are (counted from 0), so that a failed write re-opens only
    /// the database it failed on, not one another thread already re-opened.
    generation: u64,
    /// The database (batches, persist).
    pub db: Database,
    /// Log entries by big-endian index.
    pub log: Keyspace,
    /// Vote, purge and commit markers.
    pub meta: Keyspace,
}

fn open_handles(path: &Path, generation: u64) -> Result<Handles, fjall::Error> {
    let db = Database::builder(path).open()?;
    let log = db.keyspace(LOG_KEYSPACE, KeyspaceCreateOptions::default)?;
    let meta = db.keyspace(META_KEYSPACE, KeyspaceCreateOptions::default)?;
    Ok(Handles {
        generation,
        db,
        log,
        meta,
    })
}

/// What a fjall error means, in words that do not mislead: `Poisoned` only says that an
/// earlier write failed (and this one was not tried).
pub fn describe(e: &fjall::Error) -> String {
    match e {
        fjall::Error::Poisoned => "an earlier write to the raft log failed".to_string(),
        other => other.to_string(),
    }
}

/// The database slot shared by every clone of the log store and the sync thread.
pub struct LogDb {
    path: PathBuf,
    /// `None` only while a re-open is under way or failed (then it is retried).
    slot: RwLock<Option<Handles>>,
    /// Set at shutdown: failed writes give up instead of waiting for the disk.
    stopping: AtomicBool,
    /// A write or sync failed and none has succeeded since.
    failing: AtomicBool,
    /// The generation of the next opening.
    next_generation: AtomicU64,
}

impl LogDb {
    /// Opens the database at `path`.
    pub fn open(path: &Path) -> Result<LogDb, fjall::Error> {
        Ok(LogDb {
            path: path.to_owned(),
            slot: RwLock::new(Some(open_handles(path, 0)?)),
            stopping: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            next_generation: AtomicU64::new(1),
        })
    }

    fn slot(&self) -> RwLockWriteGuard<'_, Option<Handles>> {
        // The slot is only ever replaced whole, so a panic elsewhere leaves it usable.
        self.slot.write().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self) -> Option<Handles> {
        self.slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn gone(&self) -> io::Error {
        io::Error::other(format!(
            "raft log at {} is being re-opened after a failed write",
            self.path.display()
        ))
    }

    /// The current handles, waiting (from a blocking thread) while a re-open is due.
    pub fn handles_blocking(&self) -> io::Result<Handles> {
        loop {
            if let Some(h) = self.current() {
                return Ok(h);
            }
            if self.is_stopping() {
                return Err(self.gone());
            }
            self.reopen(None);
            if self.current().is_none() {
                std::thread::sleep(Duration::from_millis(LOG_WRITE_RETRY_MS));
            }
        }
    }

    /// The current handles, waiting (on the async runtime) while a re-open is due.
    pub async fn handles(self: &Arc<Self>) -> io::Result<Handles> {
        loop {
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

    /// [`Self::reopen`] on a blocking thread (it reads the journal).
    async fn reopen_async(self: &Arc<Self>, stale: Option<u64>) {
        let db = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || db.reopen(stale)).await;
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
        match open_handles(&self.path, generation) {
            Ok(h) => {
                *slot = Some(h);
                tracing::info!(path = %self.path.display(), "re-opened the raft log after a failed write");
            }
            Err(e) => {
                tracing::debug!(error = %describe(&e), "re-opening the raft log failed; will retry")
            }
        }
    }

    /// Records the outcome of a write or sync: the first failure is logged, and so is
    /// the first success after failures.
    pub fn note(&self, what: &str, result: Result<(), &fjall::Error>) {
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
                        error = %describe(e),
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
        mut op: impl FnMut(&Handles) -> Result<T, fjall::Error>,
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
                        return Err(io::Error::other(format!("{what}: {}", describe(&e))));
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
