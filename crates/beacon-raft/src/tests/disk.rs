//! Production's disk with the one change a test asks for.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::disk::{DbError, Disk, DiskFuture, LogTables, StdDisk, StreamedFile};

/// Wraps one opening of the log's tables.
pub(crate) type WrapTables = dyn Fn(Arc<dyn LogTables>) -> Arc<dyn LogTables> + Send + Sync;

/// The disk the wrapper delegates to.
static STD: StdDisk = StdDisk::SYNCED;

/// `StdDisk`, changed where a test says.
#[derive(Default)]
pub(crate) struct StdDiskWith {
    /// Wraps every opening of the log's tables (a gate in front of some batches).
    pub tables: Option<Box<WrapTables>>,
    /// Runs the log's workers (its writer, its purge) as tasks on the runtime that starts
    /// them instead of threads of their own. Under a paused clock the runtime then blocks
    /// on their disk work, instead of counting itself idle meanwhile and jumping its clock
    /// past every timeout while a thread syncs.
    pub workers_as_tasks: bool,
}

impl Disk for StdDiskWith {
    fn open_log(&self, path: &Path) -> Result<Arc<dyn LogTables>, DbError> {
        let tables = STD.open_log(path)?;
        Ok(match &self.tables {
            Some(wrap) => wrap(tables),
            None => tables,
        })
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        STD.create_dir_all(path)
    }
    fn exists(&self, path: &Path) -> bool {
        STD.exists(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        STD.read(path)
    }
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        STD.write_synced(path, bytes)
    }
    fn create_streamed<'a>(
        &'a self,
        path: &'a Path,
    ) -> DiskFuture<'a, io::Result<Box<dyn StreamedFile>>> {
        STD.create_streamed(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        STD.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        STD.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        STD.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        STD.sync_dir(path)
    }
    fn run_blocking(&self, work: Box<dyn FnOnce() + Send>) -> DiskFuture<'static, ()> {
        STD.run_blocking(work)
    }
    fn spawn_worker(&self, name: &str, work: DiskFuture<'static, ()>) -> io::Result<()> {
        if self.workers_as_tasks {
            tokio::spawn(work);
            Ok(())
        } else {
            STD.spawn_worker(name, work)
        }
    }
}
