//! Production's disk: fjall for the log, `std::fs` for files, tokio's blocking pool for
//! blocking work and a thread for each of the log's workers (its writer, its purge).

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use tokio::io::AsyncWriteExt;

use super::{
    Change, DbError, Disk, DiskFuture, Durability, KeyRange, KeyValue, LogTables, StreamedFile,
    Table, TableView,
};

const LOG_KEYSPACE: &str = "log";
const META_KEYSPACE: &str = "meta";
const KV_KEYSPACE: &str = "kv";
const LEASE_KEYSPACE: &str = "lease";

/// fjall and the file system under the data directory.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdDisk {
    /// etcd's `--unsafe-no-fsync`: a log sync hands fjall's journal to the operating
    /// system and stops there, as etcd's WAL then flushes and skips its fdatasync. What
    /// the log acknowledged survives the process's death, not the machine's.
    no_fsync: bool,
}

impl StdDisk {
    /// The disk every member has unless told otherwise: each log sync is one.
    pub const SYNCED: StdDisk = StdDisk { no_fsync: false };

    /// The disk of a member started with `--unsafe-no-fsync`.
    pub fn unsafe_no_fsync() -> StdDisk {
        StdDisk { no_fsync: true }
    }
}

/// One opening of the fjall database.
struct Fjall {
    /// See [`StdDisk`]'s field.
    no_fsync: bool,
    db: Database,
    log: Keyspace,
    meta: Keyspace,
    kv: Keyspace,
    lease: Keyspace,
}

impl Fjall {
    fn table(&self, table: Table) -> &Keyspace {
        match table {
            Table::Log => &self.log,
            Table::Meta => &self.meta,
            Table::Kv => &self.kv,
            Table::Lease => &self.lease,
        }
    }
}

fn db_error(e: fjall::Error) -> DbError {
    match e {
        fjall::Error::Poisoned => DbError::Poisoned,
        fjall::Error::Io(e) => DbError::Io(e),
        other => DbError::Io(io::Error::other(other)),
    }
}

impl LogTables for Fjall {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self
            .table(table)
            .get(key)
            .map_err(db_error)?
            .map(|v| v.to_vec()))
    }

    fn contains(&self, table: Table, key: &[u8]) -> Result<bool, DbError> {
        self.table(table).contains_key(key).map_err(db_error)
    }

    fn scan(
        &self,
        range: KeyRange,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<KeyValue, DbError>> + '_> {
        let pair = |guard: fjall::Guard| {
            let (k, v) = guard.into_inner().map_err(db_error)?;
            Ok((k.to_vec(), v.to_vec()))
        };
        let iter = self.log.range(range);
        if reverse {
            Box::new(iter.rev().map(pair))
        } else {
            Box::new(iter.map(pair))
        }
    }

    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue, DbError>> + '_> {
        Box::new(self.table(table).range(from..to).map(|guard| {
            let (k, v) = guard.into_inner().map_err(db_error)?;
            Ok((k.to_vec(), v.to_vec()))
        }))
    }

    fn view(&self, table: Table) -> TableView {
        // fjall's iterator holds its own read snapshot: it sees the table as of now.
        Box::new(self.table(table).iter().map(|guard| {
            let (k, v) = guard.into_inner().map_err(db_error)?;
            Ok((k.to_vec(), v.to_vec()))
        }))
    }

    fn commit(&self, changes: &[Change<'_>]) -> Result<(), DbError> {
        let mut batch = self.db.batch();
        for change in changes {
            match *change {
                Change::Insert(table, key, value) => batch.insert(self.table(table), key, value),
                Change::Remove(table, key) => batch.remove(self.table(table), key),
            }
        }
        let started = std::time::Instant::now();
        let committed = batch.commit().map_err(db_error);
        crate::disk_metrics::BATCH_COMMIT.observe(started.elapsed());
        committed
    }

    fn persist(&self, durability: Durability) -> Result<(), DbError> {
        if self.no_fsync {
            // As etcd's WAL: written out, not synced, and no fsync to count.
            return self.db.persist(PersistMode::Buffer).map_err(db_error);
        }
        let mode = match durability {
            Durability::Data => PersistMode::SyncData,
            Durability::All => PersistMode::SyncAll,
        };
        let started = std::time::Instant::now();
        let persisted = self.db.persist(mode).map_err(db_error);
        crate::disk_metrics::LOG_SYNC.observe(started.elapsed());
        persisted
    }
}

/// A file written through tokio's file API (its writes run on the blocking pool).
struct TokioFile(tokio::fs::File);

impl StreamedFile for TokioFile {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> DiskFuture<'a, io::Result<()>> {
        Box::pin(self.0.write_all(chunk))
    }

    fn flush(&mut self) -> DiskFuture<'_, io::Result<()>> {
        Box::pin(self.0.flush())
    }
}

/// The bound on the log's journals, in bytes: fjall's smallest (it refuses less than
/// 64 MiB), which its write path flushes behind in the background.
const LOG_JOURNALS_BYTES_MAX: u64 = 64 << 20;

/// The v3 values' memtable, flushed to a table beyond this (fjall's default is 64 MiB).
/// Reads of recent values come from the keyspace's own overlay or fjall's block cache,
/// so a large memtable buys little and costs up to its whole size in every member's
/// memory, which `bench/v3-scale`'s memory per key counts (bench/ANALYSIS.md).
const KV_MEMTABLE_BYTES_MAX: u64 = 16 << 20;

/// fjall's background threads (memtable flushes and compactions) for the log: one.
/// With more (fjall takes one per core, up to four), its first worker hands every
/// compaction request back to the queue for another and takes it again at once, a busy
/// loop for as long as the other compacts: 8-12% of each member's CPU in
/// `worker_tick` and `flume`'s send in a profile at 64 connections (the
/// `bench/profiles/issue15/cluster-leader-c64.txt` of `4de7635`), and 0.33-0.36 s of
/// worker CPU a member in a 20 s load with two against 0.19-0.21 with one. The log is
/// small (purged behind every snapshot), so one thread keeps up with its flushes and
/// compactions.
const LOG_WORKER_THREADS: usize = 1;

impl Disk for StdDisk {
    fn open_log(&self, path: &Path) -> Result<Arc<dyn LogTables>, DbError> {
        // A restart replays the journals into memtables before the log opens: fjall's
        // default bound (512 MiB) made a restart after a million writes take 2.5 s there.
        // The log needs only its last few thousand entries in memory, so journals are
        // flushed at its smallest bound.
        let db = Database::builder(path)
            .max_journaling_size(LOG_JOURNALS_BYTES_MAX)
            .worker_threads(LOG_WORKER_THREADS)
            .open()
            .map_err(db_error)?;
        let log = db
            .keyspace(LOG_KEYSPACE, KeyspaceCreateOptions::default)
            .map_err(db_error)?;
        let meta = db
            .keyspace(META_KEYSPACE, KeyspaceCreateOptions::default)
            .map_err(db_error)?;
        let kv = db
            .keyspace(KV_KEYSPACE, || {
                KeyspaceCreateOptions::default().max_memtable_size(KV_MEMTABLE_BYTES_MAX)
            })
            .map_err(db_error)?;
        let lease = db
            .keyspace(LEASE_KEYSPACE, KeyspaceCreateOptions::default)
            .map_err(db_error)?;
        Ok(Arc::new(Fjall {
            no_fsync: self.no_fsync,
            db,
            log,
            meta,
            kv,
            lease,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = File::create(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    }

    fn create_streamed<'a>(
        &'a self,
        path: &'a Path,
    ) -> DiskFuture<'a, io::Result<Box<dyn StreamedFile>>> {
        Box::pin(async move {
            let file = tokio::fs::File::create(path).await?;
            Ok(Box::new(TokioFile(file)) as Box<dyn StreamedFile>)
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(path)?
            .map(|dirent| dirent.map(|d| d.file_name()))
            .collect()
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn run_blocking(&self, work: Box<dyn FnOnce() + Send>) -> DiskFuture<'static, ()> {
        let task = tokio::task::spawn_blocking(work);
        Box::pin(async move {
            let _ = task.await;
        })
    }

    fn spawn_worker(&self, name: &str, work: DiskFuture<'static, ()>) -> io::Result<()> {
        // A runtime of its own on its own thread: the worker blocks on fdatasync, which
        // must stall neither the node's tasks nor the blocking pool's other work.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || runtime.block_on(work))?;
        Ok(())
    }
}
