//! The storage seam: everything the node reads from or writes to its data directory,
//! and where blocking disk work runs.
//!
//! The node's storage logic (the log store's checks and cache, the re-open-and-retry
//! after a failed write, group commit and its "did the last entry survive" check,
//! snapshot checksums, temp files and fallback, the committed marker, the start-up
//! coverage check) sits above this seam and runs unchanged over any [`Disk`]:
//! production's [`StdDisk`] (fjall and `std::fs`, blocking work on tokio's blocking pool
//! and the group-commit thread) or a simulation's in-memory disk that crashes and
//! fails on purpose (`beacon-sim`).
//!
//! The log database is the subset of fjall the node uses ([`LogTables`]): four tables
//! of byte keys (the log, its markers, and the v3 keyspace's values and leases), point reads, scans
//! of the log table in either direction, whole-table reads of a consistent view, atomic
//! batches across the tables, and a sync of the journal.

mod std_disk;

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

pub use std_disk::StdDisk;

/// A boxed future a disk hands back; `Send`, so the node's tasks can await it anywhere.
pub type DiskFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One of the log database's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Log entries keyed by big-endian index, so key order is log order.
    Log,
    /// The vote and the purge and commit markers, and the v3 keyspace's revisions and
    /// applied index.
    Meta,
    /// The v3 keyspace's values, keyed by revision (`beacon_mvcc::revision_key`).
    Kv,
    /// The v3 keyspace's leases, keyed by id (`beacon_mvcc::lease_key`).
    Lease,
}

/// How much of the journal a sync makes durable (fjall's `PersistMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The journal's data (fdatasync): enough for everything the log acknowledges.
    Data,
    /// Data and file metadata (fsync): at shutdown.
    All,
}

/// One change in an atomic batch.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// Sets `key` to `value` in the table.
    Insert(Table, &'a [u8], &'a [u8]),
    /// Removes `key` from the table (absent keys are fine).
    Remove(Table, &'a [u8]),
}

impl<'a> Change<'a> {
    /// Sets `key` to `value` (`Some`) or removes it (`None`).
    pub fn set(table: Table, key: &'a [u8], value: Option<&'a [u8]>) -> Change<'a> {
        match value {
            Some(value) => Change::Insert(table, key, value),
            None => Change::Remove(table, key),
        }
    }
}

/// A key range of the log table.
pub type KeyRange = (Bound<[u8; 8]>, Bound<[u8; 8]>);

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A whole table as it was when the view was taken, in key order, read while writes go
/// on (a snapshot of the v3 keyspace is built from one).
pub type TableView = Box<dyn Iterator<Item = Result<KeyValue, DbError>> + Send>;

/// What the log database reports when it fails.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// An earlier write or sync failed, and the database refuses every write until it is
    /// opened again (fjall's "poisoned"): it cannot tell what reached the disk.
    #[error("an earlier write to the raft log failed")]
    Poisoned,
    /// The disk or the database failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One opening of the log database. Dropping the last handle closes it.
pub trait LogTables: Send + Sync {
    /// The value under `key`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, DbError>;

    /// Whether `key` is present.
    fn contains(&self, table: Table, key: &[u8]) -> Result<bool, DbError> {
        Ok(self.get(table, key)?.is_some())
    }

    /// The log table's entries in `range`, in key order (`reverse`: last first).
    fn scan(
        &self,
        range: KeyRange,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<KeyValue, DbError>> + '_>;

    /// The log table's first entry.
    fn first(&self) -> Result<Option<KeyValue>, DbError> {
        self.scan((Bound::Unbounded, Bound::Unbounded), false)
            .next()
            .transpose()
    }

    /// The log table's last entry.
    fn last(&self) -> Result<Option<KeyValue>, DbError> {
        self.scan((Bound::Unbounded, Bound::Unbounded), true)
            .next()
            .transpose()
    }

    /// The entries of `table` with keys in `from..to`, in key order.
    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue, DbError>> + '_>;

    /// Every entry of `table` as of now, in key order; later writes do not show.
    fn view(&self, table: Table) -> TableView;

    /// Applies `changes` atomically (one journal record): after a crash all of them or
    /// none are there. Readable at once; durable only after [`Self::persist`].
    fn commit(&self, changes: &[Change<'_>]) -> Result<(), DbError>;

    /// Makes everything committed so far durable.
    fn persist(&self, durability: Durability) -> Result<(), DbError>;
}

/// A file being written a chunk at a time (a snapshot streamed from the leader).
pub trait StreamedFile: Send {
    /// Appends `chunk`.
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> DiskFuture<'a, io::Result<()>>;
    /// Hands what was written to the file system (no fsync: the file is a temp file
    /// that is read back and then removed).
    fn flush(&mut self) -> DiskFuture<'_, io::Result<()>>;
}

/// The disk a node runs on: its log database, its files, and where blocking work runs.
/// Paths are absolute, under the node's data directory.
pub trait Disk: Send + Sync + 'static {
    /// Opens (or creates) the log database at `path`, recovering what its journal holds.
    fn open_log(&self, path: &Path) -> Result<Arc<dyn LogTables>, DbError>;

    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Whether a file or directory is at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// A whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates or truncates `path`, writes `bytes` and syncs the file (not its name: see
    /// [`Self::sync_dir`]).
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Creates or truncates `path` for a streamed write.
    fn create_streamed<'a>(
        &'a self,
        path: &'a Path,
    ) -> DiskFuture<'a, io::Result<Box<dyn StreamedFile>>>;
    /// Renames a file, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names in a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
    /// Makes the directory's entries (files created, renamed or removed in it) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Runs blocking disk work off the async tasks (production: tokio's blocking pool);
    /// resolves when it is done.
    fn run_blocking(&self, work: Box<dyn FnOnce() + Send>) -> DiskFuture<'static, ()>;
    /// Runs a long-lived worker (the log's group commit) where it may block on the disk
    /// without stalling the node's tasks (production: its own thread).
    fn spawn_worker(&self, name: &str, work: DiskFuture<'static, ()>) -> io::Result<()>;
}

/// Runs `work` through [`Disk::run_blocking`] and returns what it returned.
pub async fn blocking<T: Send + 'static>(
    disk: &dyn Disk,
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    disk.run_blocking(Box::new(move || {
        let _ = tx.send(work());
    }))
    .await;
    rx.await
        .map_err(|_| io::Error::other("blocking disk work did not finish (it panicked)"))
}

/// Writes `bytes` to `path` atomically: a temp file beside it, synced, renamed over it,
/// and the directory synced, so after a crash either the old or the new file is there,
/// whole.
pub fn write_atomically(disk: &dyn Disk, path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    disk.write_synced(tmp, bytes)?;
    disk.rename(tmp, path)?;
    disk.sync_dir(path.parent().unwrap_or(Path::new(".")))
}
