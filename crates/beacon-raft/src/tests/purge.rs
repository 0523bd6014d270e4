//! The purge behind a snapshot never holds up a write: appends complete while the
//! deletion of the purged range is stuck, and a log whose purge a crash interrupted opens,
//! hides what the purge left and deletes it.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogId, RaftLogReader};

use super::disk::StdDiskWith;
use super::{config, put};
use crate::disk::{
    Change, DbError, Disk, Durability, KeyRange, KeyValue, LogTables, StdDisk, Table,
};
use crate::log_store::LogStore;
use crate::types::Entry;
use crate::{RaftNode, Seams};

/// Holds every batch that deletes log entries (what a purge does) until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Deleting batches that found the gate shut.
    held: AtomicU64,
}

impl Gate {
    fn pass(&self) {
        let mut open = self.open.lock().expect("gate");
        if !*open {
            self.held.fetch_add(1, Ordering::SeqCst);
        }
        // Bounded, so that a write path that waits on the purge fails the test instead of
        // hanging it.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !*open {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "the gate was never opened");
            open = self.opened.wait_timeout(open, left).expect("gate").0;
        }
    }

    fn open(&self) {
        *self.open.lock().expect("gate") = true;
        self.opened.notify_all();
    }
}

/// The log's tables with the gate in front of their deleting batches.
struct GatedTables {
    inner: Arc<dyn LogTables>,
    gate: Arc<Gate>,
}

impl LogTables for GatedTables {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        self.inner.get(table, key)
    }

    fn scan(
        &self,
        range: KeyRange,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<KeyValue, DbError>> + '_> {
        self.inner.scan(range, reverse)
    }

    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue, DbError>> + '_> {
        self.inner.range(table, from, to)
    }

    fn view(&self, table: Table) -> crate::disk::TableView {
        self.inner.view(table)
    }

    fn commit(&self, changes: &[Change<'_>]) -> Result<(), DbError> {
        if changes
            .iter()
            .any(|c| matches!(c, Change::Remove(Table::Log, _)))
        {
            self.gate.pass();
        }
        self.inner.commit(changes)
    }

    fn persist(&self, durability: Durability) -> Result<(), DbError> {
        self.inner.persist(durability)
    }
}

/// Waits (bounded) until `done` holds, checking every 20 ms.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_complete_while_a_purge_is_stuck() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(tmp.path());
    cfg.snapshot_count = 50;
    let gate = Arc::new(Gate::default());
    let mut seams = Seams::production();
    let gated = Arc::clone(&gate);
    seams.disk = Arc::new(StdDiskWith {
        tables: Some(Box::new(move |inner| {
            let gate = Arc::clone(&gated);
            Arc::new(GatedTables { inner, gate })
        })),
        ..StdDiskWith::default()
    });
    let node = RaftNode::open_with(cfg.clone(), seams).await.expect("open");

    // Every deletion is held at the gate from the start. Snapshots every 50 entries purge
    // the log behind them; the writes after the first purge must not wait for it (before
    // the purge moved off the write path, the first purge blocked the log's I/O and every
    // write after it timed out here).
    for i in 0..400 {
        tokio::time::timeout(
            Duration::from_secs(10),
            node.propose(put(&format!("/k{i}"), "v")),
        )
        .await
        .unwrap_or_else(|_| panic!("write {i} waited behind the purge"))
        .expect("propose");
    }
    let purged = node
        .raft()
        .metrics()
        .borrow_watched()
        .purged
        .expect("the log was purged")
        .index;
    assert!(purged >= 100, "purged only up to {purged}");
    assert!(
        gate.held.load(Ordering::SeqCst) >= 1,
        "the purge's deletion never reached the gate"
    );
    assert_eq!(
        node.inner_log().purge_deleted_upto(),
        0,
        "nothing was deleted while the gate was shut"
    );

    // Opened, the worker catches up with every purge so far.
    gate.open();
    wait_until("the purged entries deleted", || {
        node.inner_log().purge_deleted_upto() >= purged
    })
    .await;
    node.shutdown().await.expect("shutdown");
    drop(node);

    let node = RaftNode::open(cfg).await.expect("reopen");
    {
        let store = node.store().read().expect("lock");
        for i in [0, 199, 399] {
            assert!(
                store.get(format!("/k{i}"), false, false, 0).is_ok(),
                "/k{i}"
            );
        }
    }
    node.shutdown().await.expect("shutdown");
}

fn log_id(index: u64) -> crate::types::LogId {
    LogId::new(
        openraft::impls::leader_id_adv::LeaderId {
            term: 1,
            node_id: 1,
        },
        index,
    )
}

/// A log of blank entries 1..=`last`, synced and closed.
async fn log_with_entries(path: &Path, last: u64) {
    let mut log = LogStore::open(Arc::new(StdDisk::default()), path).expect("open log");
    let entries: Vec<Entry> = (1..=last).map(|i| Entry::new_blank(log_id(i))).collect();
    for chunk in entries.chunks(500) {
        log.append(chunk.to_vec(), IOFlushed::noop())
            .await
            .expect("append");
    }
    log.sync_written().await.expect("sync");
}

/// What a crash leaves after a purge to `upto` wrote its marker and deleted `deleted`.
fn interrupted_purge(path: &Path, upto: u64, deleted: std::ops::Range<u64>) {
    let tables = StdDisk::default().open_log(path).expect("open tables");
    let marker = serde_json::to_vec(&log_id(upto)).expect("encode");
    tables
        .commit(&[Change::Insert(Table::Meta, b"last_purged", &marker)])
        .expect("marker");
    let keys: Vec<[u8; 8]> = deleted.map(u64::to_be_bytes).collect();
    let removals: Vec<Change<'_>> = keys.iter().map(|k| Change::Remove(Table::Log, k)).collect();
    tables.commit(&removals).expect("first batch");
    tables.persist(Durability::All).expect("persist");
}

fn first_stored(path: &Path) -> Option<u64> {
    let tables = StdDisk::default().open_log(path).expect("open tables");
    let (key, _) = tables.first().expect("first")?;
    Some(u64::from_be_bytes(key.try_into().expect("8 bytes")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_reopened_mid_purge_hides_and_deletes_the_rest() {
    // The marker alone, the marker and a first batch, and everything purged.
    for (upto, deleted) in [(2000, 1..1), (2000, 1..1025), (3000, 1..1025)] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("raft");
        log_with_entries(&path, 3000).await;
        interrupted_purge(&path, upto, deleted.clone());

        let mut log =
            LogStore::open(Arc::new(StdDisk::default()), &path).expect("reopen mid-purge");
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(upto)));
        assert_eq!(state.last_log_id, Some(log_id(3000)), "{upto} {deleted:?}");
        assert_eq!(
            log.bounds().expect("bounds"),
            (Some(upto), Some(3000), None)
        );
        let read = log.try_get_log_entries(0..=3000).await.expect("read");
        let first_read = read.first().map(|e| e.index());
        assert_eq!(first_read, (upto < 3000).then_some(upto + 1));
        assert_eq!(read.len() as u64, 3000 - upto);
        let tail = log
            .try_get_log_entries((Bound::Unbounded, Bound::Included(upto)))
            .await
            .expect("read");
        assert!(tail.is_empty(), "purged entries read back: {}", tail.len());

        // The leftovers are deleted in the background, and the log goes on after them.
        wait_until("the leftovers deleted", || log.purge_deleted_upto() >= upto).await;
        log.append(vec![Entry::new_blank(log_id(3001))], IOFlushed::noop())
            .await
            .expect("append after");
        log.sync_written().await.expect("sync");
        drop(log);
        assert_eq!(first_stored(&path), Some(upto + 1));
    }
}
