//! openraft's own storage test suite, run on the log store and the state machine over
//! any [`Disk`]: production's fjall and files (beacon-raft's tests) or a simulated disk
//! (beacon-sim's), so the same storage logic is checked on both.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;

use crate::disk::Disk;
use crate::log_store::LogStore;
use crate::snapshot_file::SnapshotDir;
use crate::state_machine::StateMachine;
use crate::types::TypeConfig;

/// A fresh disk for one test of the suite, the directory to use on it, and whatever
/// must live as long as the test (a temp dir).
pub type FreshDisk<G> = (Arc<dyn Disk>, PathBuf, G);

struct Builder<F>(F);

impl<F, G> StoreBuilder<TypeConfig, LogStore, StateMachine, G> for Builder<F>
where
    F: Fn() -> std::io::Result<FreshDisk<G>> + Send + Sync,
    G: Send + Sync,
{
    async fn build(&self) -> Result<(G, LogStore, StateMachine), StorageError<TypeConfig>> {
        let err = |e: &dyn std::fmt::Display| StorageError::read(TypeConfig::err_from_string(e));
        let (disk, dir, guard) = (self.0)().map_err(|e| err(&e))?;
        let (raft_dir, snap_dir) = (dir.join("raft"), dir.join("snap"));
        disk.create_dir_all(&raft_dir).map_err(|e| err(&e))?;
        disk.create_dir_all(&snap_dir).map_err(|e| err(&e))?;
        let log = LogStore::open(Arc::clone(&disk), &raft_dir).map_err(|e| err(&e))?;
        let store = Arc::new(RwLock::new(beacon_store::Store::new()));
        let sm = StateMachine::open(store, &log, SnapshotDir::new(disk, snap_dir))
            .map_err(|e| err(&e))?;
        Ok((guard, log, sm))
    }
}

/// Runs openraft's storage suite, each test on a disk from `fresh`.
pub async fn run<F, G>(fresh: F) -> Result<(), StorageError<TypeConfig>>
where
    F: Fn() -> std::io::Result<FreshDisk<G>> + Send + Sync,
    G: Send + Sync,
{
    Suite::test_all(Builder(fresh)).await
}
