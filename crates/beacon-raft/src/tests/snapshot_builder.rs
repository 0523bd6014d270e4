//! A snapshot is the store's state at the moment its builder was created (between two
//! applies, at `last_applied`), however many writes the store applies while the
//! builder encodes and writes it.

use std::sync::{Arc, RwLock};

use beacon_store::{Command, KeysRequest, Method, Store};
use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;

use super::put;
use crate::disk::StdDisk;
use crate::keyspace;
use crate::log_store::LogStore;
use crate::snapshot_file::SnapshotDir;
use crate::state_machine::StateMachine;

#[tokio::test]
async fn a_snapshot_holds_the_state_at_its_creation_while_writes_go_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RwLock::new(Store::new()));
    let snapshots = SnapshotDir::new(Arc::new(StdDisk::default()), tmp.path());
    let log = LogStore::open(Arc::new(StdDisk::default()), &tmp.path().join("raft")).expect("log");
    let mut sm = StateMachine::open(Arc::clone(&store), &log, snapshots.clone()).expect("open");
    for i in 0..200 {
        store
            .write()
            .unwrap()
            .apply(&put(&format!("/d{}/k{i}", i % 7), "before"));
    }
    let expected = store.read().unwrap().save();
    let mut builder = sm
        .try_create_snapshot_builder(false)
        .await
        .expect("a builder");
    // Writes after the builder was created: overwrites, new keys, a whole directory
    // deleted. None of them may reach the snapshot.
    for i in 0..200 {
        store
            .write()
            .unwrap()
            .apply(&put(&format!("/d{}/k{i}", i % 9), "after"));
    }
    let mut delete = KeysRequest::new(Method::Delete, "/d3", 1_000);
    delete.recursive = true;
    store.write().unwrap().apply(&Command::Keys(delete));
    let live = store.read().unwrap().save();
    assert_ne!(live, expected);

    let snapshot = builder.build_snapshot().await.expect("built");
    let v2 = |data: &[u8]| keyspace::split(data).expect("splits").0.to_vec();
    assert_eq!(v2(&snapshot.snapshot), expected);
    let file = snapshots.latest().expect("list").expect("a snapshot file");
    let (_, on_disk) = snapshots.load(&file.path).expect("loads");
    assert_eq!(v2(&on_disk), expected);
    // And the store went on unaffected.
    assert_eq!(store.read().unwrap().save(), live);
}
