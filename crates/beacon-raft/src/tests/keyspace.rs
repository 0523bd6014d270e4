//! The v3 keyspace in the log database: it survives a re-open without the log, and a
//! snapshot carries it whole to another member, replacing what that one had.

use std::path::Path;
use std::sync::{Arc, RwLock};

use beacon_proto::beaconpb::{v3_request, V3Request};
use beacon_proto::etcdserverpb::{CompactionRequest, PutRequest, RangeRequest};
use openraft::storage::RaftStateMachine;

use super::snapshot_file::meta;
use crate::disk::StdDisk;
use crate::keyspace;
use crate::log_store::LogStore;
use crate::snapshot_file::SnapshotDir;
use crate::state_machine::StateMachine;

fn put(key: &str, value: &str) -> V3Request {
    V3Request {
        caller: None,
        request: Some(v3_request::Request::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..PutRequest::default()
        })),
    }
}

fn open(dir: &Path) -> (LogStore, StateMachine) {
    let log = LogStore::open(Arc::new(StdDisk::default()), &dir.join("raft")).expect("log");
    let store = Arc::new(RwLock::new(beacon_store::Store::new()));
    let snapshots = SnapshotDir::new(Arc::new(StdDisk::default()), dir.join("snap"));
    std::fs::create_dir_all(dir.join("snap")).expect("snap dir");
    let sm = StateMachine::open(store, &log, snapshots).expect("state machine");
    (log, sm)
}

/// Every key with its value, create and mod revision and version, at `revision`.
fn everything(sm: &StateMachine, revision: i64) -> Vec<beacon_proto::mvccpb::KeyValue> {
    let mvcc = sm.mvcc();
    let mvcc = mvcc.read().unwrap();
    let resp = mvcc
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision,
            ..RangeRequest::default()
        })
        .expect("range");
    resp.kvs
}

#[tokio::test]
async fn the_keyspace_survives_a_reopen_and_travels_in_a_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let (log, a) = open(&a_dir);
    {
        let mvcc = a.mvcc();
        let mut mvcc = mvcc.write().unwrap();
        for i in 0..50 {
            mvcc.apply(&put(&format!("k{}", i % 20), &format!("v{i}")))
                .expect("applied");
        }
        mvcc.apply(&V3Request {
            caller: None,
            request: Some(v3_request::Request::Compaction(CompactionRequest {
                revision: 30,
                physical: true,
            })),
        })
        .expect("compacted");
        mvcc.lease_grant(
            &beacon_proto::etcdserverpb::LeaseGrantRequest { ttl: 60, id: 9 },
            1_000,
        )
        .expect("granted");
        mvcc.apply(&V3Request {
            caller: None,
            request: Some(v3_request::Request::Put(PutRequest {
                key: b"leased".to_vec(),
                lease: 9,
                ..PutRequest::default()
            })),
        })
        .expect("applied");
        // Users, roles and auth on, which go beside the keyspace's state.
        for request in [
            v3_request::Request::UserAdd(beacon_proto::beaconpb::UserAdd {
                name: "root".into(),
                hashed_password: "hash".into(),
                options: None,
            }),
            v3_request::Request::UserGrantRole(
                beacon_proto::etcdserverpb::AuthUserGrantRoleRequest {
                    user: "root".into(),
                    role: "root".into(),
                },
            ),
            v3_request::Request::RoleAdd(beacon_proto::etcdserverpb::AuthRoleAddRequest {
                name: "reader".into(),
            }),
            v3_request::Request::AuthEnable(Default::default()),
        ] {
            mvcc.apply(&V3Request {
                caller: None,
                request: Some(request),
            })
            .expect("applied");
        }
        assert!(mvcc.auth().is_enabled());
        mvcc.commit(7).expect("committed");
    }
    let auth = a.mvcc().read().unwrap().auth().state().clone();
    // The lease, its expiry and its key, as a fresh open must find them.
    let lease_of = |sm: &StateMachine| {
        let ttl = sm.mvcc().read().unwrap().lease_time_to_live(9, true, 1_000);
        (ttl.granted_ttl, ttl.ttl, ttl.keys)
    };
    let lease = (60, 60, vec![b"leased".to_vec()]);
    assert_eq!(lease_of(&a), lease);
    let live = everything(&a, 0);
    let at_40 = everything(&a, 40);
    assert_eq!(live.len(), 21);
    drop((a, log));

    // Re-opened from the database alone: the same keys, history and compaction.
    let (log, mut a) = open(&a_dir);
    assert_eq!(everything(&a, 0), live);
    assert_eq!(everything(&a, 40), at_40);
    assert_eq!(lease_of(&a), lease);
    assert_eq!(a.mvcc().read().unwrap().auth().state(), &auth);
    let compacted = a
        .mvcc()
        .read()
        .unwrap()
        .range(&RangeRequest {
            key: b"k1".to_vec(),
            revision: 20,
            ..RangeRequest::default()
        })
        .unwrap_err();
    assert_eq!(compacted, beacon_mvcc::MvccError::Compacted);

    // A snapshot of it installed on a member that has keys of its own: only the
    // snapshot's are left.
    let mut builder = a.get_snapshot_builder().await;
    let snapshot = openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
        .await
        .expect("built");
    let (_, section) = keyspace::split(&snapshot.snapshot).expect("splits");
    assert!(section.is_some(), "the snapshot has a v3 section");
    drop((a, log));
    let (b_log, mut b) = open(&b_dir);
    {
        let mvcc = b.mvcc();
        let mut mvcc = mvcc.write().unwrap();
        mvcc.apply(&put("only-on-b", "x")).expect("applied");
        mvcc.commit(3).expect("committed");
    }
    b.install_snapshot(&meta(1, 60), snapshot.snapshot)
        .await
        .expect("installed");
    assert_eq!(everything(&b, 0), live);
    assert_eq!(everything(&b, 40), at_40);
    assert_eq!(lease_of(&b), lease);
    assert_eq!(b.mvcc().read().unwrap().auth().state(), &auth);
    drop((b, b_log));
    let (_b_log, b) = open(&b_dir);
    assert_eq!(everything(&b, 0), live, "the installed keyspace is on disk");
    assert_eq!(lease_of(&b), lease);
    assert_eq!(b.mvcc().read().unwrap().auth().state(), &auth);
}

/// Fails every write of the v3 keyspace (a batch with a `kv` change) while `failing`
/// is above zero, counting it down; passes everything else through.
struct FailingV3Writes {
    inner: Arc<dyn crate::disk::LogTables>,
    failing: Arc<std::sync::atomic::AtomicUsize>,
}

impl crate::disk::LogTables for FailingV3Writes {
    fn get(
        &self,
        table: crate::disk::Table,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, crate::disk::DbError> {
        self.inner.get(table, key)
    }
    fn scan(
        &self,
        range: crate::disk::KeyRange,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<crate::disk::KeyValue, crate::disk::DbError>> + '_> {
        self.inner.scan(range, reverse)
    }
    fn range(
        &self,
        table: crate::disk::Table,
        from: &[u8],
        to: &[u8],
    ) -> Box<dyn Iterator<Item = Result<crate::disk::KeyValue, crate::disk::DbError>> + '_> {
        self.inner.range(table, from, to)
    }
    fn view(&self, table: crate::disk::Table) -> crate::disk::TableView {
        self.inner.view(table)
    }
    fn commit(&self, changes: &[crate::disk::Change<'_>]) -> Result<(), crate::disk::DbError> {
        use std::sync::atomic::Ordering;
        let v3 = changes.iter().any(|c| {
            matches!(
                c,
                crate::disk::Change::Insert(crate::disk::Table::Kv, ..)
                    | crate::disk::Change::Remove(crate::disk::Table::Kv, _)
            )
        });
        if v3
            && self
                .failing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(crate::disk::DbError::Io(std::io::Error::other(
                "No space left on device",
            )));
        }
        self.inner.commit(changes)
    }
    fn persist(&self, durability: crate::disk::Durability) -> Result<(), crate::disk::DbError> {
        self.inner.persist(durability)
    }
}

/// A failed write of the keyspace (a full disk) is tried again over a re-opened
/// database until it succeeds, as a log write is (issue 13), instead of failing the
/// apply, which would stop Raft for good.
#[tokio::test]
async fn a_failed_keyspace_write_is_retried_until_it_succeeds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let failing = Arc::new(std::sync::atomic::AtomicUsize::new(2));
    let wrap_failing = Arc::clone(&failing);
    let disk = super::disk::StdDiskWith {
        tables: Some(Box::new(move |inner| {
            Arc::new(FailingV3Writes {
                inner,
                failing: Arc::clone(&wrap_failing),
            })
        })),
        ..super::disk::StdDiskWith::default()
    };
    let db =
        Arc::new(crate::log_db::LogDb::open(Arc::new(disk), &tmp.path().join("raft")).expect("db"));
    let cache: Arc<std::sync::Mutex<crate::entry_cache::EntryCache>> = Arc::default();
    let writer = crate::log_writer::LogWriter::start(Arc::clone(&db), cache).expect("writer");
    let (mut mvcc, _) = keyspace::open(&db).expect("keyspace");
    mvcc.apply(&put("k", "v")).expect("applied");
    let changes = mvcc.take_changes(7);
    let (tx, rx) = tokio::sync::oneshot::channel();
    keyspace::write_later(&writer, &changes, move |outcome| {
        let _ = tx.send(outcome);
    })
    .expect("handed over");
    // It rides along with the next round; a barrier starts one.
    writer.barrier(None).await.expect("barrier");
    rx.await
        .expect("reported")
        .expect("written once the disk takes it");
    mvcc.written(7);
    assert_eq!(mvcc.unwritten().len(), 0);
    assert_eq!(
        failing.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "both failures were met"
    );
    let (reopened, applied) = keyspace::open(&db).expect("keyspace");
    assert_eq!(applied, 7);
    let got = reopened
        .range(&RangeRequest {
            key: b"k".to_vec(),
            ..RangeRequest::default()
        })
        .expect("range");
    assert_eq!(got.kvs[0].value, b"v");
}
