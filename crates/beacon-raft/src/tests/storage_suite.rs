//! openraft's own storage test suite, run on the fjall log store and our state machine.

use std::sync::{Arc, RwLock};

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use tempfile::TempDir;

use crate::log_store::LogStore;
use crate::snapshot_file::SnapshotDir;
use crate::state_machine::StateMachine;
use crate::types::TypeConfig;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let err = |e: &dyn std::fmt::Display| StorageError::read(TypeConfig::err_from_string(e));
        let dir = tempfile::tempdir().map_err(|e| err(&e))?;
        let (raft_dir, snap_dir) = (dir.path().join("raft"), dir.path().join("snap"));
        std::fs::create_dir_all(&raft_dir).map_err(|e| err(&e))?;
        std::fs::create_dir_all(&snap_dir).map_err(|e| err(&e))?;
        let log = LogStore::open(&raft_dir).map_err(|e| err(&e))?;
        let store = Arc::new(RwLock::new(beacon_store::Store::new()));
        let sm = StateMachine::open(store, SnapshotDir::new(snap_dir)).map_err(|e| err(&e))?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    Suite::test_all(Builder)
        .await
        .expect("openraft storage suite");
}
