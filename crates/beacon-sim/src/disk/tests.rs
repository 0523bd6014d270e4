//! The disk model's own rules: what a crash keeps, what a failure poisons.

use beacon_raft::disk::{Change, Durability};

use super::*;

const DIR: &str = "/d";

fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// Ten one-entry batches, the first three synced, then a crash: which keys are left.
fn crash_after_writes(seed: u64) -> Vec<Vec<u8>> {
    let disk = SimDisk::new(SeededRng::new(seed), Faults::default());
    let log = disk.open_log(Path::new(DIR)).expect("open");
    for i in 0..10 {
        log.commit(&[Change::Insert(Table::Log, &key(i), b"x")])
            .expect("commit");
        if i == 2 {
            log.persist(Durability::Data).expect("sync");
        }
    }
    disk.crash();
    assert!(
        log.get(Table::Log, &key(0)).is_err(),
        "the crashed host's handle"
    );
    drop(log);
    let log = disk.open_log(Path::new(DIR)).expect("reopen");
    log.scan(
        (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        false,
    )
    .map(|kv| kv.expect("read").0)
    .collect()
}

#[test]
fn a_crash_keeps_the_synced_log_and_a_prefix_of_the_rest_the_same_for_a_seed() {
    let mut lengths = BTreeSet::new();
    for seed in 1..40 {
        let kept = crash_after_writes(seed);
        let expected: Vec<Vec<u8>> = (0..kept.len() as u64).map(|i| key(i).to_vec()).collect();
        assert_eq!(kept, expected, "seed {seed}: a prefix");
        assert!(kept.len() >= 3, "seed {seed}: lost a synced batch");
        assert_eq!(kept, crash_after_writes(seed), "seed {seed}: replays");
        lengths.insert(kept.len());
    }
    assert!(
        lengths.len() > 3,
        "crashes keep different prefixes: {lengths:?}"
    );
}

#[test]
fn a_failed_sync_poisons_until_reopened_and_may_lose_the_unsynced() {
    let disk = SimDisk::new(SeededRng::new(3), Faults::default());
    let log = disk.open_log(Path::new(DIR)).expect("open");
    log.commit(&[Change::Insert(Table::Meta, b"vote", b"1")])
        .expect("commit");
    disk.fail_log_syncs(1);
    assert!(log.persist(Durability::Data).is_err());
    assert!(matches!(
        log.commit(&[Change::Insert(Table::Meta, b"vote", b"2")]),
        Err(DbError::Poisoned)
    ));
    assert!(
        disk.open_log(Path::new(DIR)).is_err(),
        "locked while a handle lives"
    );
    drop(log);
    let log = disk.open_log(Path::new(DIR)).expect("reopen");
    log.commit(&[Change::Insert(Table::Meta, b"vote", b"3")])
        .expect("writes again");
    log.persist(Durability::Data).expect("sync");
}

#[test]
fn names_need_a_directory_sync_and_bytes_a_file_sync() {
    let dir = Path::new(DIR);
    let (a, b) = (dir.join("a"), dir.join("b"));
    let mut outcomes = BTreeSet::new();
    for seed in 1..40 {
        let disk = SimDisk::new(SeededRng::new(seed), Faults::default());
        disk.create_dir_all(dir).expect("mkdir");
        disk.write_synced(&a, b"old").expect("write");
        disk.sync_dir(dir).expect("sync dir");
        // Renamed over without a directory sync: either name may survive a crash.
        disk.write_synced(&b, b"new").expect("write");
        disk.rename(&b, &a).expect("rename");
        disk.crash();
        let got = (disk.file(&a), disk.file(&b));
        assert!(
            [
                (Some(b"old".to_vec()), None),
                (Some(b"old".to_vec()), Some(b"new".to_vec())),
                (Some(b"new".to_vec()), None),
            ]
            .contains(&got),
            "seed {seed}: {got:?}"
        );
        outcomes.insert(got);
    }
    assert_eq!(outcomes.len(), 3, "every outcome happens for some seed");
}

/// What each slow operation costs in the pacing tests.
const COST: std::time::Duration = std::time::Duration::from_millis(300);

fn slow_disk() -> SimDisk {
    let disk = SimDisk::new(SeededRng::new(1), Faults::default());
    disk.slow_compaction(COST);
    disk
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_write_costs_the_blocking_work_its_time_and_other_files_nothing() {
    let disk = slow_disk();
    let snap = Path::new("/d/member/snap");
    disk.create_dir_all(snap).expect("mkdir");
    let write = |path: std::path::PathBuf| {
        let on = disk.clone();
        async move {
            let started = tokio::time::Instant::now();
            beacon_raft::disk::blocking(&on.clone(), move || on.write_synced(&path, b"s"))
                .await
                .expect("ran")
                .expect("written");
            started.elapsed()
        }
    };
    let took = write(snap.join("1-1.snap.tmp")).await;
    assert!((COST..COST * 2).contains(&took), "a snapshot took {took:?}");
    let took = write(Path::new("/d/member/committed").to_owned()).await;
    assert_eq!(took, std::time::Duration::ZERO, "another file");
    assert_eq!(
        disk.slow_ops(),
        SlowOps {
            log_deletions: 0,
            snapshot_writes: 1,
            on_node_tasks: 0,
        }
    );
}

/// The purge marker's meta key and a value of it, as the log store writes them.
const PURGED: &[u8] = b"last_purged";

fn purged_up_to(index: u64) -> Vec<u8> {
    format!(r#"{{"leader_id":{{"term":1,"node_id":1}},"index":{index}}}"#).into_bytes()
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_deletes_purged_entries_goes_on_only_after_their_cost() {
    let disk = slow_disk();
    let log = disk.open_log(Path::new(DIR)).expect("open");
    for i in 1..=3 {
        log.commit(&[Change::Insert(Table::Log, &key(i), b"x")])
            .expect("append");
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let on = Arc::clone(&log);
    let work = async move {
        let started = tokio::time::Instant::now();
        // A truncation removes entries above the purge marker: not compaction, free.
        on.commit(&[Change::Remove(Table::Log, &key(3))])
            .expect("truncate");
        tokio::task::yield_now().await;
        let truncated = started.elapsed();
        // As the purge worker deletes: the marker again, and what is behind it.
        let marker = purged_up_to(1);
        on.commit(&[
            Change::Insert(Table::Meta, PURGED, &marker),
            Change::Remove(Table::Log, &key(1)),
        ])
        .expect("delete");
        tokio::task::yield_now().await;
        let _ = tx.send((truncated, started.elapsed()));
    };
    disk.spawn_worker("purge", Box::pin(work)).expect("spawn");
    let (truncated, deleted) = rx.await.expect("the worker finished");
    assert_eq!(truncated, std::time::Duration::ZERO, "a truncation is free");
    assert!(
        (COST..COST * 2).contains(&deleted),
        "deleted after {deleted:?}"
    );
    // On a task of the node (not blocking work, not a worker), a deletion has nowhere
    // to wait: it costs nothing, and is counted apart.
    let marker = purged_up_to(2);
    log.commit(&[Change::Insert(Table::Meta, PURGED, &marker)])
        .expect("purge marker");
    log.commit(&[Change::Remove(Table::Log, &key(2))])
        .expect("delete");
    let slow = disk.slow_ops();
    assert_eq!((slow.log_deletions, slow.on_node_tasks), (2, 1));
}
