//! Whole-node tests: restart, snapshot and purge, torn journal tail, damaged snapshot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use beacon_store::Applied;
use openraft::async_runtime::WatchReceiver;

use super::{config, put};
use crate::{OpenError, ProposeError, RaftConfig, RaftNode};

async fn propose_n(node: &RaftNode, from: usize, to: usize) {
    for i in from..to {
        let p = node
            .propose(put(&format!("/k{i}"), &format!("v{i}")))
            .await
            .expect("propose");
        assert!(matches!(p.applied, Applied::Keys(Ok(_))), "{:?}", p.applied);
    }
}

fn value(node: &RaftNode, key: &str) -> Option<String> {
    let store = node.store().read().expect("lock");
    store
        .get(key, false, false, 0)
        .ok()?
        .node?
        .value
        .map(|v| v.to_string())
}

fn current_index(node: &RaftNode) -> u64 {
    node.store().read().expect("lock").current_index()
}

/// A data directory holding a cleanly stopped node that committed three writes, ready
/// for a test to damage.
async fn stopped_node_with_three_entries(dir: &Path) -> RaftConfig {
    let cfg = config(dir);
    let node = RaftNode::open(cfg.clone()).await.expect("open");
    propose_n(&node, 0, 3).await;
    node.shutdown().await.expect("shutdown");
    cfg
}

async fn reopen(cfg: &RaftConfig) -> RaftNode {
    RaftNode::open(cfg.clone()).await.expect("reopen")
}

/// The last index a snapshot file covers, from its name (`<term>-<index>.snap`, hex).
fn snapshot_index(file: &Path) -> u64 {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("snapshot name");
    let (_, index) = stem.split_once('-').expect("<term>-<index>");
    u64::from_str_radix(index, 16).expect("hex index")
}

fn snap_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("member/snap"))
        .expect("snap dir")
        .map(|e| e.expect("dirent").path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_node_leads_and_applies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = RaftNode::open(config(tmp.path())).await.expect("open");
    let st = node.status();
    assert_eq!(st.leader_id, Some(1));
    assert!(st.term >= 1);
    let p = node.propose(put("/a", "1")).await.expect("propose");
    assert_eq!(p.raft_term, st.term);
    let st2 = node.status();
    assert!(st2.applied_index >= p.raft_index && st2.commit_index >= p.raft_index);
    assert_eq!(value(&node, "/a").as_deref(), Some("1"));
    node.shutdown().await.expect("shutdown");
    assert_eq!(
        node.propose(put("/b", "2")).await.unwrap_err(),
        ProposeError::Stopped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_proposed_at_once_gets_its_entries_in_order_and_an_answer_each() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = RaftNode::open(config(tmp.path())).await.expect("open");
    let cmds = (0..5).map(|i| put("/batch", &format!("v{i}"))).collect();
    let answers = node.propose_many_here(cmds).await;
    assert_eq!(answers.len(), 5);
    let indexes: Vec<u64> = answers
        .iter()
        .map(|a| a.as_ref().expect("proposed").raft_index)
        .collect();
    assert!(
        indexes.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive entries in the batch's order: {indexes:?}"
    );
    // The last in the batch is the last applied.
    assert_eq!(value(&node, "/batch").as_deref(), Some("v4"));
    node.shutdown().await.expect("shutdown");
    let refused = node
        .propose_many_here(vec![put("/a", "1"), put("/b", "2")])
        .await;
    assert!(
        refused.len() == 2
            && refused
                .iter()
                .all(|a| matches!(a, Err(ProposeError::Stopped))),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_store_from_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path());
    let node = RaftNode::open(cfg.clone()).await.expect("open");
    propose_n(&node, 0, 25).await;
    let (index, raft_index) = (current_index(&node), node.status().applied_index);
    node.shutdown().await.expect("shutdown");
    drop(node);

    let node = reopen(&cfg).await;
    assert_eq!(current_index(&node), index);
    for i in 0..25 {
        assert_eq!(value(&node, &format!("/k{i}")), Some(format!("v{i}")));
    }
    let p = node
        .propose(put("/after", "x"))
        .await
        .expect("propose after restart");
    assert!(p.raft_index > raft_index);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_purges_log_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(tmp.path());
    cfg.snapshot_count = 10;
    let node = RaftNode::open(cfg.clone()).await.expect("open");
    propose_n(&node, 0, 45).await;
    // Snapshots are built in the background; wait for one and the purge behind it.
    let metrics = node.raft().metrics();
    node.raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.snapshot.is_some() && m.purged.is_some(),
            "snapshot and purge",
        )
        .await
        .expect("snapshot taken and log purged");
    let (snap, purged) = {
        let m = metrics.borrow_watched();
        (m.snapshot.expect("snapshot"), m.purged.expect("purged"))
    };
    // The log keeps `snapshot_count` entries behind the snapshot.
    assert!(
        purged.index < snap.index && snap.index - purged.index <= 10,
        "{snap} {purged}"
    );
    let files = snap_files(tmp.path());
    assert!(!files.is_empty() && files.len() <= 2, "{files:?}");
    let index = current_index(&node);
    node.shutdown().await.expect("shutdown");
    drop(node);

    // The purged entries are gone from fjall; only the snapshot can restore them.
    let log = crate::log_store::LogStore::open(
        std::sync::Arc::new(crate::disk::StdDisk::default()),
        &tmp.path().join("member/raft"),
    )
    .expect("log");
    let mut reader = log.clone();
    let first = openraft::RaftLogReader::try_get_log_entries(&mut reader, 0..=purged.index)
        .await
        .expect("read");
    assert!(
        first.is_empty(),
        "purged entries still present: {}",
        first.len()
    );
    drop((log, reader));

    let node = reopen(&cfg).await;
    assert_eq!(current_index(&node), index);
    for i in 0..45 {
        assert_eq!(value(&node, &format!("/k{i}")), Some(format!("v{i}")));
    }
    node.shutdown().await.expect("shutdown");
}

/// The newest fjall journal file (by number) under the raft directory.
fn newest_journal(dir: &Path) -> PathBuf {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read dir") {
            let p = e.expect("dirent").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "jnl") {
                out.push(p);
            }
        }
    }
    let mut all = Vec::new();
    walk(&dir.join("member/raft"), &mut all);
    all.into_iter()
        .filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .max_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
        })
        .expect("a journal file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_journal_tail_is_recovered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path());
    let node = RaftNode::open(cfg.clone()).await.expect("open");
    propose_n(&node, 0, 10).await;
    node.shutdown().await.expect("shutdown");
    drop(node);
    // A new journal is preallocated with zeros; recovery trims it to its last record and
    // appends from there, so after one restart the file ends exactly at a record.
    let node = reopen(&cfg).await;
    propose_n(&node, 10, 20).await;
    let index = current_index(&node);
    node.shutdown().await.expect("shutdown");
    drop(node);

    // A crash mid-append leaves a partial record after the last complete one.
    let jnl = newest_journal(tmp.path());
    let mut bytes = std::fs::read(&jnl).expect("read journal");
    assert!(
        bytes.len() > 64 && bytes[bytes.len() - 64..].iter().any(|b| *b != 0),
        "journal still preallocated"
    );
    bytes.extend_from_slice(&[0x01, 0x02, 0xff, 0x00, 0x17, 0x2a, 0x99, 0x03]);
    std::fs::write(&jnl, &bytes).expect("append garbage");
    let node = reopen(&cfg).await;
    assert_eq!(current_index(&node), index);
    assert_eq!(value(&node, "/k19").as_deref(), Some("v19"));
    node.shutdown().await.expect("shutdown");
    drop(node);

    // The last record cut short: it is dropped, everything before it survives.
    let jnl = newest_journal(tmp.path());
    let len = std::fs::metadata(&jnl).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&jnl)
        .expect("open journal");
    f.set_len(len - 5).expect("truncate");
    drop(f);
    let node = reopen(&cfg).await;
    assert!(
        current_index(&node) >= index - 1,
        "lost more than the torn record"
    );
    assert_eq!(value(&node, "/k18").as_deref(), Some("v18"));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_newest_snapshot_falls_back_then_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(tmp.path());
    cfg.snapshot_count = 5;
    let node = RaftNode::open(cfg.clone()).await.expect("open");
    propose_n(&node, 0, 14).await;
    node.raft()
        .wait(Some(Duration::from_secs(10)))
        // The purge behind a snapshot runs apart from it: the last case below needs the
        // log purged, so wait for that too.
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= 10) && m.purged.is_some_and(|p| p.index >= 5),
            "two snapshots and the log purged behind them",
        )
        .await
        .expect("snapshots taken");
    let index = current_index(&node);
    let purged = node
        .raft()
        .metrics()
        .borrow_watched()
        .purged
        .map_or(0, |p| p.index);
    node.shutdown().await.expect("shutdown");
    drop(node);

    // A flipped bit in the newest: it is set aside, and the older one plus the log cover
    // the state, unless a snapshot built late (under load it lands some entries past
    // where it was asked for) let the purge pass the older one: then the hole is named.
    let mut files = snap_files(tmp.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let newest = files.pop().expect("newest");
    let older_index = snapshot_index(&files[0]);
    let mut bytes = std::fs::read(&newest).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&newest, &bytes).expect("write");
    if older_index >= purged {
        let node = reopen(&cfg).await;
        assert_eq!(current_index(&node), index);
        assert_eq!(value(&node, "/k13").as_deref(), Some("v13"));
        node.shutdown().await.expect("shutdown");
        drop(node);
    } else {
        match RaftNode::open(cfg.clone()).await {
            Err(OpenError::MissingEntries { first, last, .. }) => {
                assert_eq!((first, last), (older_index + 1, purged), "the hole");
            }
            other => panic!("expected MissingEntries, got {other:?}"),
        }
    }
    let mut broken = newest.clone().into_os_string();
    broken.push(".broken");
    assert!(PathBuf::from(broken).exists(), "set aside as .broken");

    // Every snapshot truncated (e.g. disk full while copying a backup) while the log was
    // purged behind them: the entries before the log are in no file, a clear error.
    for f in snap_files(tmp.path()) {
        let bytes = std::fs::read(&f).expect("read");
        std::fs::write(&f, &bytes[..bytes.len() / 3]).expect("write");
    }
    match RaftNode::open(cfg).await {
        Err(e @ OpenError::MissingEntries { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("member/snap") && msg.contains("truncated"),
                "{msg}"
            );
        }
        other => panic!("expected MissingEntries, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_node_id_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path());
    let node = RaftNode::open(cfg.clone()).await.expect("open");
    node.shutdown().await.expect("shutdown");
    drop(node);
    let mut other = cfg;
    other.node_id = 2;
    match RaftNode::open(other).await {
        Err(OpenError::NotAMember {
            node_id: 2,
            members,
            ..
        }) => assert_eq!(members, [1]),
        other => panic!("expected NotAMember, got {other:?}"),
    }
    // What tells the two apart at start: a member left out of the newest membership
    // its own log recorded (its removal appended but not applied) waits for the
    // leader and asks the others; another member's directory never listed it.
    let log = crate::log_store::LogStore::open(
        std::sync::Arc::new(crate::disk::StdDisk::default()),
        &tmp.path().join("member/raft"),
    )
    .expect("log");
    assert!(log.lists_member(1).expect("scan"));
    assert!(!log.lists_member(2).expect("scan"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_log_entry_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = stopped_node_with_three_entries(tmp.path()).await;
    {
        // Valid for fjall, nonsense for us: an entry that does not decode.
        let db = fjall::Database::builder(tmp.path().join("member/raft"))
            .open()
            .expect("fjall");
        let log = db
            .keyspace("log", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        log.insert(crate::log_db::index_key(3), b"{not json".to_vec())
            .expect("insert");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    match RaftNode::open(cfg).await {
        Err(e @ OpenError::LogCorrupt { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("member/raft") && msg.contains("index 3"),
                "{msg}"
            );
        }
        other => panic!("expected LogCorrupt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_log_files_are_not_mistaken_for_a_fresh_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = stopped_node_with_three_entries(tmp.path()).await;
    // Losing the whole log must not quietly start an empty member in its place.
    std::fs::remove_dir_all(tmp.path().join("member/raft")).expect("remove log");
    match RaftNode::open(cfg.clone()).await {
        Err(e @ OpenError::MissingEntries { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("member/raft") && msg.contains("1..="), "{msg}");
        }
        other => panic!("expected MissingEntries, got {other:?}"),
    }
    // Without the committed marker too, the initialized marker still tells.
    std::fs::remove_file(tmp.path().join("member/committed")).expect("remove marker");
    match RaftNode::open(cfg.clone()).await {
        Err(e @ OpenError::LogCorrupt { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("no Raft state"), "{msg}");
        }
        other => panic!("expected LogCorrupt, got {other:?}"),
    }
    // The operator's explicit choice: a new cluster over the empty directory.
    let mut forced = cfg;
    forced.force_new_cluster = true;
    let node = reopen(&forced).await;
    assert_eq!(value(&node, "/k0"), None);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_new_cluster_accepts_a_log_that_lost_its_committed_tail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = stopped_node_with_three_entries(tmp.path()).await;
    let last = {
        // The last two entries vanish while the log's committed index still names them.
        let db = fjall::Database::builder(tmp.path().join("member/raft"))
            .open()
            .expect("fjall");
        let log = db
            .keyspace("log", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        let last = log.last_key_value().expect("entries").key().expect("key");
        let last = u64::from_be_bytes(last.as_ref().try_into().expect("8 bytes"));
        for i in last - 1..=last {
            log.remove(crate::log_db::index_key(i)).expect("remove");
        }
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
        last
    };
    match RaftNode::open(cfg.clone()).await {
        Err(e @ OpenError::MissingEntries { .. }) => {
            let msg = e.to_string();
            let range = format!("entries {}..={last} are missing", last - 1);
            assert!(msg.contains(&range) && msg.contains("member/raft"), "{msg}");
        }
        other => panic!("expected MissingEntries, got {other:?}"),
    }
    let mut forced = cfg.clone();
    forced.force_new_cluster = true;
    let node = reopen(&forced).await;
    assert_eq!(value(&node, "/k0").as_deref(), Some("v0"));
    assert_eq!(value(&node, "/k2"), None, "lost with its entry");
    node.propose(put("/k2", "again"))
        .await
        .expect("writes go on");
    node.shutdown().await.expect("shutdown");
    drop(node);
    // The loss is recorded: the next start needs no flag.
    let node = reopen(&cfg).await;
    assert_eq!(value(&node, "/k2").as_deref(), Some("again"));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_new_cluster_is_refused_on_a_member_with_other_voters() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(tmp.path());
    // Three voters, two never started: open returns without a leader, as a member of a
    // new cluster does.
    for id in [2, 3] {
        cfg.initial_members.insert(
            id,
            crate::Member::with_peer_urls(vec![format!("http://127.0.0.1:{}", 9 + id)]),
        );
    }
    let node = RaftNode::open(cfg.clone()).await.expect("open");
    node.shutdown().await.expect("shutdown");
    drop(node);
    cfg.force_new_cluster = true;
    match RaftNode::open(cfg).await {
        Err(e @ OpenError::ForceNewCluster { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("not supported") && msg.contains("member/raft"),
                "{msg}"
            );
        }
        other => panic!("expected ForceNewCluster, got {other:?}"),
    }
}
