//! A simulated disk for the real node (`beacon_raft::disk::Disk`): the log database and
//! the files live in memory and outlive a host's crash (the harness keeps an `Arc` of
//! the disk outside the host), and the disk fails on purpose, driven by a seeded RNG, so
//! a seed replays the same faults.
//!
//! It is a model of a disk, kept small: what it keeps and loses follows the rules the
//! node relies on, nothing more.
//! - The log database: a committed batch is readable at once and durable once synced.
//!   A crash keeps the synced state plus a random prefix of the unsynced batches, each
//!   whole or not at all (fjall's journal records are atomic). A failed write or sync
//!   poisons the database until it is opened again, as fjall does; the failed batch may
//!   still have reached the journal, and the re-open after a failure loses a random
//!   suffix of what was not synced (the kernel may drop pages a failed fsync could not
//!   write).
//! - Files: a file's bytes are durable once it is synced, its name (create, rename,
//!   remove) once its directory is synced. A crash keeps a random prefix of the name
//!   changes since the last directory sync, and each unsynced file keeps its synced
//!   bytes, all its new bytes, or a torn prefix of them. (Syncing any directory makes
//!   every pending name change durable: simpler, and stronger, than a real file system.)
//!   Directories themselves are always durable.
//! - Blocking work runs inline and the log's group commit is a task on the host's
//!   runtime: no threads, no blocking pool, so a simulated run stays deterministic.
//! - Operations take no time, unless slow compaction is on ([`SimDisk::slow_compaction`],
//!   see `pace`): then a log batch that deletes purged entries and a snapshot file's write each
//!   cost a fixed simulated time, paid by the blocking work or the worker that made it.

mod files;
mod log;
mod pace;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use beacon_raft::disk::{DbError, Disk, DiskFuture, LogTables, StreamedFile, Table};
use beacon_testkit::SeededRng;

use files::{apply_name, Files, NameOp, SimFile};
use log::{slot, LogDb, SimLog};
pub use pace::SlowOps;
use pace::{Pace, Paced, Slow};

/// How often each kind of operation fails, in failures per thousand operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Log batches (appends, truncations, purges, the vote).
    pub log_write_per_mille: u64,
    /// Syncs of the log's journal.
    pub log_sync_per_mille: u64,
    /// File writes (snapshots, markers, a received snapshot).
    pub file_write_per_mille: u64,
    /// File and directory syncs.
    pub file_sync_per_mille: u64,
}

/// One simulated disk: one log database (whatever path it is opened at) and a tree of
/// files. Cheap to clone; clones share the disk.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk").finish_non_exhaustive()
    }
}

struct State {
    rng: SeededRng,
    faults: Faults,
    /// Scripted failures: the next this many log syncs, log writes fail.
    fail_log_syncs: u32,
    fail_log_writes: u32,
    /// Scripted failures: the next this many writes of files whose name ends so fail.
    fail_file_writes: Option<(String, u32)>,
    log: LogDb,
    files: Files,
    /// Slow compaction, when it is on.
    pace: Pace,
}

impl State {
    fn roll(&mut self, per_mille: u64) -> bool {
        per_mille > 0 && self.rng.below(1000) < per_mille
    }

    fn log_write_fails(&mut self) -> bool {
        if self.fail_log_writes > 0 {
            self.fail_log_writes -= 1;
            return true;
        }
        let p = self.faults.log_write_per_mille;
        self.roll(p)
    }

    fn log_sync_fails(&mut self) -> bool {
        if self.fail_log_syncs > 0 {
            self.fail_log_syncs -= 1;
            return true;
        }
        let p = self.faults.log_sync_per_mille;
        self.roll(p)
    }

    fn file_write_fails(&mut self, path: Option<&Path>) -> bool {
        if let (Some((suffix, n)), Some(path)) = (&mut self.fail_file_writes, path) {
            if *n > 0 && path.to_string_lossy().ends_with(suffix.as_str()) {
                *n -= 1;
                return true;
            }
        }
        let p = self.faults.file_write_per_mille;
        self.roll(p)
    }

    fn file_sync_fails(&mut self) -> bool {
        let p = self.faults.file_sync_per_mille;
        self.roll(p)
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "{}: no such file or directory (simulated disk)",
            path.display()
        ),
    )
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!(
        "{what} failed (fault injected by the simulated disk)"
    ))
}

impl SimDisk {
    /// An empty disk whose faults are drawn from `rng`.
    pub fn new(rng: SeededRng, faults: Faults) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(State {
                rng,
                faults,
                fail_log_syncs: 0,
                fail_log_writes: 0,
                fail_file_writes: None,
                log: LogDb::default(),
                files: Files::default(),
                pace: Pace::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only ever changed whole under the lock; a panic elsewhere (a
        // failed assertion in a test) leaves it usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes how often operations fail from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Makes log compaction and snapshots slow from now on: every log batch that deletes
    /// purged entries (at or below the purge marker) and every write of a snapshot file (in a `member/snap` directory) costs
    /// `cost` of simulated time, paid by the blocking work or the worker that made it
    /// (see `pace`).
    pub fn slow_compaction(&self, cost: Duration) {
        self.lock().pace.cost = Some(cost);
    }

    /// The slow operations made so far (none unless [`Self::slow_compaction`] is on).
    pub fn slow_ops(&self) -> SlowOps {
        self.lock().pace.counts
    }

    /// Makes the next `n` syncs of the log fail.
    pub fn fail_log_syncs(&self, n: u32) {
        self.lock().fail_log_syncs = n;
    }

    /// Makes the next `n` log batches fail.
    pub fn fail_log_writes(&self, n: u32) {
        self.lock().fail_log_writes = n;
    }

    /// Makes the next `n` writes of files whose name ends with `suffix` fail.
    pub fn fail_file_writes(&self, suffix: &str, n: u32) {
        self.lock().fail_file_writes = Some((suffix.to_owned(), n));
    }

    /// The host crashed: everything not synced is lost but for a random prefix of the
    /// unsynced log batches and name changes, and unsynced file bytes may be torn.
    /// Handles of the crashed host's log fail from now on.
    pub fn crash(&self) {
        let mut s = self.lock();
        let unsynced = s.log.unsynced.len();
        let kept = s.below(unsynced + 1);
        s.log.keep_unsynced(kept);
        s.log.poisoned = false;
        s.log.generation += 1;
        s.log.lease = std::sync::Weak::new();

        let pending = s.files.pending.len();
        let kept = s.below(pending + 1);
        let pending = std::mem::take(&mut s.files.pending);
        for op in &pending[..kept] {
            apply_name(&mut s.files.durable_names, op);
        }
        s.files.names = s.files.durable_names.clone();
        let inodes: Vec<u64> = s.files.inodes.keys().copied().collect();
        for ino in inodes {
            let outcome = s.below(3);
            let len = s.files.inodes[&ino].data.len();
            let cut = s.below(len + 1);
            let inode = s.files.inodes.get_mut(&ino).expect("listed inode");
            if inode.data != inode.synced {
                match outcome {
                    0 => inode.data = inode.synced.clone(),
                    1 => {}
                    _ => inode.data.truncate(cut),
                }
            }
            inode.synced = inode.data.clone();
        }
        let named: BTreeSet<u64> = s.files.names.values().copied().collect();
        s.files.inodes.retain(|ino, _| named.contains(ino));
    }

    /// The bytes of the file at `path` as the running host sees them.
    pub fn file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        let ino = s.files.names.get(path)?;
        Some(s.files.inodes[ino].data.clone())
    }

    /// Cuts the file at `path` to its first `len` bytes, durably: what a crash leaves of
    /// a file whose tail never reached the disk on a file system that does not keep the
    /// order of writes. False if there is no such file.
    pub fn tear(&self, path: &Path, len: usize) -> bool {
        let mut s = self.lock();
        let Some(ino) = s.files.names.get(path).copied() else {
            return false;
        };
        let inode = s.files.inodes.get_mut(&ino).expect("named inode");
        inode.data.truncate(len);
        inode.synced = inode.data.clone();
        true
    }

    /// The log table as the running host sees it (for checks after a run).
    pub fn log_entries(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.lock().log.visible[slot(Table::Log)].clone()
    }
}

impl Disk for SimDisk {
    fn open_log(&self, _path: &Path) -> Result<Arc<dyn LogTables>, DbError> {
        let mut s = self.lock();
        if s.log.lease.strong_count() > 0 {
            return Err(DbError::Io(io::Error::other(
                "the log database is still open (simulated lock file)",
            )));
        }
        if std::mem::take(&mut s.log.poisoned) {
            // After a failed write or sync, what was not synced may be gone.
            let unsynced = s.log.unsynced.len();
            let kept = s.below(unsynced + 1);
            s.log.keep_unsynced(kept);
        }
        s.log.generation += 1;
        let lease = Arc::new(());
        s.log.lease = Arc::downgrade(&lease);
        Ok(Arc::new(SimLog {
            disk: self.clone(),
            generation: s.log.generation,
            _lease: lease,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        for dir in path.ancestors() {
            s.files.dirs.insert(dir.to_owned());
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.lock();
        s.files.names.contains_key(path) || s.files.dirs.contains(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.file(path).ok_or_else(|| not_found(path))
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        let ino = s.files.create(path)?;
        if path
            .parent()
            .is_some_and(|dir| dir.ends_with("member/snap"))
        {
            s.pace.slow(Slow::SnapshotWrite);
        }
        if s.file_write_fails(Some(path)) {
            // A full disk mid-write leaves part of the bytes behind.
            let cut = s.below(bytes.len() + 1);
            s.files.inodes.get_mut(&ino).expect("created").data = bytes[..cut].to_vec();
            return Err(injected("writing a file"));
        }
        let sync_fails = s.file_sync_fails();
        let inode = s.files.inodes.get_mut(&ino).expect("created");
        inode.data = bytes.to_vec();
        if sync_fails {
            return Err(injected("syncing a file"));
        }
        inode.synced = inode.data.clone();
        Ok(())
    }

    fn create_streamed<'a>(
        &'a self,
        path: &'a Path,
    ) -> DiskFuture<'a, io::Result<Box<dyn StreamedFile>>> {
        let created = self.lock().files.create(path).map(|ino| {
            Box::new(SimFile {
                disk: self.clone(),
                ino,
            }) as Box<dyn StreamedFile>
        });
        Box::pin(std::future::ready(created))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if !s.files.names.contains_key(from) {
            return Err(not_found(from));
        }
        let op = NameOp::Rename(from.to_owned(), to.to_owned());
        apply_name(&mut s.files.names, &op);
        s.files.pending.push(op);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if s.files.names.remove(path).is_none() {
            return Err(not_found(path));
        }
        s.files.pending.push(NameOp::Unlink(path.to_owned()));
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let s = self.lock();
        if !s.files.dirs.contains(path) {
            return Err(not_found(path));
        }
        let files = s.files.names.keys();
        let dirs = s.files.dirs.iter();
        Ok(files
            .chain(dirs)
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_owned()))
            .collect())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if !s.files.dirs.contains(path) {
            return Err(not_found(path));
        }
        if s.file_sync_fails() {
            return Err(injected("syncing a directory"));
        }
        let pending = std::mem::take(&mut s.files.pending);
        for op in &pending {
            apply_name(&mut s.files.durable_names, op);
        }
        Ok(())
    }

    fn run_blocking(&self, work: Box<dyn FnOnce() + Send>) -> DiskFuture<'static, ()> {
        let ((), cost) = self.charging(work);
        SimDisk::wait(cost)
    }

    fn spawn_worker(&self, _name: &str, work: DiskFuture<'static, ()>) -> io::Result<()> {
        tokio::spawn(Paced {
            disk: self.clone(),
            work,
            paying: None,
        });
        Ok(())
    }
}
