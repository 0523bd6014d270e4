//! The real node's storage over the simulated disk (`beacon_sim::disk`): openraft's
//! storage suite, an append that waits out a failed sync, a crash that keeps a prefix of
//! the log, and a torn snapshot that falls back to the older one.
//!
//! Each "host" is a tokio runtime of its own: dropping it drops every task of the node,
//! as a crash does, and the disk outlives it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon_raft::disk::Disk;
use beacon_raft::{OpenError, RaftConfig, RaftNode, Seams};
use beacon_sim::disk::{Faults, SimDisk};
use beacon_store::{Command, KeysRequest, Method};
use beacon_testkit::SeededRng;

const DATA_DIR: &str = "/sim/member-1";
/// How long a test waits for a condition before it fails.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long an append whose sync failed must stay unacknowledged: well under log_db's
/// 500 ms wait before the database is re-opened and the sync retried.
const UNACKNOWLEDGED_MS: u64 = 200;

fn disk(seed: u64) -> SimDisk {
    SimDisk::new(SeededRng::new(seed), Faults::default())
}

fn seams(disk: &SimDisk) -> Seams {
    let mut seams = Seams::production();
    seams.disk = Arc::new(disk.clone());
    seams
}

fn config() -> RaftConfig {
    let mut c = RaftConfig::new(DATA_DIR, 1, "http://127.0.0.1:2380");
    c.heartbeat_interval_ms = 50;
    c.election_timeout_ms = 300;
    c
}

fn new_host() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Crashes the host: its tasks are dropped mid-flight, then the disk loses what it
/// does not keep.
fn crash(host: tokio::runtime::Runtime, node: RaftNode, disk: &SimDisk) {
    drop(node);
    host.shutdown_background();
    disk.crash();
}

fn put(key: &str, value: &str) -> Command {
    let mut req = KeysRequest::new(Method::Put, key, 1_000);
    req.value = value.into();
    Command::Keys(req)
}

fn value(node: &RaftNode, key: &str) -> Option<String> {
    beacon_sim::check::value(node.store(), key)
}

/// Waits (on the host's clock) until `done` holds, or panics after [`DEADLINE`].
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn openraft_storage_suite_on_the_simulated_disk() {
    let seed = AtomicU64::new(1);
    beacon_raft::storage_suite::run(move || {
        let disk = disk(seed.fetch_add(1, Ordering::Relaxed));
        Ok((Arc::new(disk) as Arc<dyn Disk>, PathBuf::from(DATA_DIR), ()))
    })
    .await
    .expect("openraft storage suite on the simulated disk");
}

#[test]
fn an_append_whose_sync_failed_is_acknowledged_only_after_a_retry() {
    for seed in 1..=4 {
        let disk = disk(seed);
        let host = new_host();
        let node = host
            .block_on(RaftNode::open_with(config(), seams(&disk)))
            .expect("open");
        let acknowledged = host.block_on(async {
            node.propose(put("/before", "1")).await.expect("propose");
            disk.fail_log_syncs(1);
            let n = node.clone();
            let mut write = tokio::spawn(async move { n.propose(put("/k", "v")).await });
            let early =
                tokio::time::timeout(Duration::from_millis(UNACKNOWLEDGED_MS), &mut write).await;
            assert!(
                early.is_err(),
                "seed {seed}: answered before the failed sync was retried: {early:?}"
            );
            let answer = tokio::time::timeout(DEADLINE, write)
                .await
                .expect("answered once the sync was retried")
                .expect("propose task");
            // The re-opened log may have lost the entry (the disk dropped what the failed
            // sync could not write): then the node says so instead of acknowledging it.
            answer.is_ok()
        });
        crash(host, node, &disk);
        let host = new_host();
        let node = host
            .block_on(RaftNode::open_with(config(), seams(&disk)))
            .expect("reopen after the crash");
        assert_eq!(value(&node, "/before").as_deref(), Some("1"), "seed {seed}");
        if acknowledged {
            assert_eq!(value(&node, "/k").as_deref(), Some("v"), "seed {seed}");
        }
        host.block_on(node.shutdown()).expect("shutdown");
    }
}

#[test]
fn a_crash_keeps_a_prefix_of_the_log_that_verifies() {
    for seed in 1..=4 {
        let disk = disk(seed);
        let host = new_host();
        let node = host
            .block_on(RaftNode::open_with(config(), seams(&disk)))
            .expect("open");
        let acked = Arc::new(AtomicUsize::new(0));
        host.block_on(async {
            let (n, a) = (node.clone(), Arc::clone(&acked));
            tokio::spawn(async move {
                for i in 0.. {
                    if n.propose(put(&format!("/k{i}"), "v")).await.is_err() {
                        break;
                    }
                    a.store(i + 1, Ordering::Release);
                }
            });
            wait_until("30 acknowledged writes", || {
                acked.load(Ordering::Acquire) >= 30
            })
            .await;
        });
        // Nothing runs on the host outside `block_on`: the count is final.
        let acked = acked.load(Ordering::Acquire);
        crash(host, node, &disk);

        let host = new_host();
        let node = host
            .block_on(RaftNode::open_with(config(), seams(&disk)))
            .expect("the log verifies after a crash");
        let present: Vec<usize> = (0..acked + 10)
            .filter(|i| value(&node, &format!("/k{i}")).is_some())
            .collect();
        let kept = present.len();
        assert_eq!(
            present,
            (0..kept).collect::<Vec<_>>(),
            "seed {seed}: a prefix"
        );
        assert!(
            (acked..=acked + 1).contains(&kept),
            "seed {seed}: {acked} acknowledged, {kept} kept (one may have been in flight)"
        );
        host.block_on(node.propose(put("/after", "x")))
            .expect("writes go on after the crash");
        host.block_on(node.shutdown()).expect("shutdown");
    }
}

/// The snapshot files in `dir`, oldest first (their names sort by term, then index).
fn snapshots(disk: &SimDisk, dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = disk
        .list_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.to_str().is_some_and(|n| n.ends_with(".snap")))
        .map(|n| dir.join(n))
        .collect();
    names.sort();
    names
}

#[test]
fn a_torn_snapshot_falls_back_to_the_older_one() {
    let disk = disk(7);
    let mut cfg = config();
    cfg.snapshot_count = 5;
    let snap_dir = Path::new(DATA_DIR).join("member/snap");
    let host = new_host();
    let node = host
        .block_on(RaftNode::open_with(cfg.clone(), seams(&disk)))
        .expect("open");
    host.block_on(async {
        for i in 0..14 {
            node.propose(put(&format!("/k{i}"), "v"))
                .await
                .expect("propose");
        }
        wait_until("two snapshots", || snapshots(&disk, &snap_dir).len() == 2).await;
    });
    crash(host, node, &disk);

    let newest = snapshots(&disk, &snap_dir).pop().expect("a snapshot");
    let len = disk.file(&newest).expect("newest").len();
    assert!(disk.tear(&newest, len / 2));
    let host = new_host();
    match host.block_on(RaftNode::open_with(cfg.clone(), seams(&disk))) {
        // The older snapshot and the log cover what was committed.
        Ok(node) => {
            for i in 0..14 {
                assert_eq!(value(&node, &format!("/k{i}")).as_deref(), Some("v"));
            }
            host.block_on(node.shutdown()).expect("shutdown");
        }
        // The log was purged past the older snapshot: the hole is named, never loaded.
        Err(OpenError::MissingEntries { .. }) => {}
        Err(other) => panic!("expected a fallback or MissingEntries, got {other}"),
    }
    let mut broken = newest.into_os_string();
    broken.push(".broken");
    assert!(disk.exists(Path::new(&broken)), "set aside as .broken");
}

#[test]
fn a_snapshot_write_that_fails_is_retried_and_raft_goes_on() {
    let disk = disk(11);
    let mut cfg = config();
    cfg.snapshot_count = 5;
    let snap_dir = Path::new(DATA_DIR).join("member/snap");
    let host = new_host();
    let node = host
        .block_on(RaftNode::open_with(cfg.clone(), seams(&disk)))
        .expect("open");
    // A full disk while the snapshot is written: the write waits and is tried again,
    // as the log's writes are, instead of stopping Raft for good (a storage error is
    // fatal to openraft).
    disk.fail_file_writes(".snap.tmp", 2);
    host.block_on(async {
        for i in 0..14 {
            node.propose(put(&format!("/k{i}"), "v"))
                .await
                .expect("propose");
        }
        wait_until("two snapshots", || snapshots(&disk, &snap_dir).len() == 2).await;
        node.propose(put("/after", "x"))
            .await
            .expect("raft goes on after the failed snapshot writes");
    });
    host.block_on(node.shutdown()).expect("shutdown");
}

/// How many seeds the fault campaign below runs, and how many crashes each.
const CAMPAIGN_SEEDS: u64 = 4;
const CAMPAIGN_CRASHES: usize = 3;
/// Writes per life of the node between two crashes.
const CAMPAIGN_WRITES: usize = 40;

/// The seeds the campaign runs: `BEACON_SIM_DISK_SEED=<seed>` runs that one alone.
fn campaign_seeds() -> Vec<u64> {
    match std::env::var("BEACON_SIM_DISK_SEED") {
        Ok(seed) => vec![seed.parse().expect("BEACON_SIM_DISK_SEED is a number")],
        Err(_) => (1..=CAMPAIGN_SEEDS).collect(),
    }
}

/// A seed fixes the disk's draws; which operation meets each draw still depends on the
/// real clock here (the node's timers), so a seed replays exactly only under turmoil.
#[test]
fn acknowledged_writes_survive_seeded_disk_faults_and_crashes() {
    for seed in campaign_seeds() {
        eprintln!(
            "seed {seed}: reproduce with BEACON_SIM_DISK_SEED={seed} cargo test -p beacon-sim \
             --test disk acknowledged_writes -- --nocapture"
        );
        let faults = Faults {
            log_write_per_mille: 15,
            log_sync_per_mille: 15,
            file_write_per_mille: 15,
            file_sync_per_mille: 15,
        };
        let disk = SimDisk::new(SeededRng::new(seed), faults);
        let mut cfg = config();
        cfg.snapshot_count = 16;
        let mut acknowledged: Vec<String> = Vec::new();
        let mut next = 0;
        for life in 0..CAMPAIGN_CRASHES {
            // Opening may itself meet a fault (a marker that does not write, a sync that
            // loses the entry waiting on it): that is an error, and the operator's
            // restart of the process is the next try. A new host each time: the failed
            // one's tasks may still hold the log open, as a process would.
            let (host, node) = (0..10)
                .find_map(|_| {
                    let host = new_host();
                    let opened = host.block_on(RaftNode::open_with(cfg.clone(), seams(&disk)));
                    match opened {
                        Ok(node) => Some((host, node)),
                        Err(e) => {
                            eprintln!("seed {seed} life {life}: open failed: {e}");
                            host.shutdown_background();
                            None
                        }
                    }
                })
                .unwrap_or_else(|| panic!("seed {seed} life {life}: never opened"));
            for key in &acknowledged {
                assert_eq!(
                    value(&node, key).as_deref(),
                    Some("v"),
                    "seed {seed} life {life}: acknowledged {key} lost"
                );
            }
            host.block_on(async {
                for _ in 0..CAMPAIGN_WRITES {
                    let key = format!("/k{next}");
                    next += 1;
                    match tokio::time::timeout(DEADLINE, node.propose(put(&key, "v"))).await {
                        Ok(Ok(_)) => acknowledged.push(key),
                        // A write the disk lost is refused, and the node stops: crash it.
                        Ok(Err(e)) => {
                            eprintln!("seed {seed} life {life}: {key} refused: {e}");
                            break;
                        }
                        Err(_) => panic!("seed {seed} life {life}: {key} never answered"),
                    }
                }
            });
            crash(host, node, &disk);
        }
        eprintln!("seed {seed}: {} writes acknowledged", acknowledged.len());
    }
}
