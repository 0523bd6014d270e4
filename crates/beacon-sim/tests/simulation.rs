//! The simulation's own tests: a couple of seeds run clean, the negative control (a bug
//! injected into the real node behind a test-only switch) is caught within the seeds CI
//! runs, and, built with `--cfg tokio_unstable`, a seed replays exactly; one seed of the
//! stall check counts no write waiting behind a slow purge or snapshot, and counts some
//! with the purge put back inside openraft's log I/O. The CI step that runs the fixed
//! seeds is `cargo run -p beacon-sim -- --seeds 100` (.ci/run), with the stall check's.

use beacon_raft::InjectedBug;
use beacon_sim::campaign::{report_failures, run_seeds};
use beacon_sim::stall::{self, StallOptions};
use beacon_sim::Options;
use porcupine_rs::CheckResult;

/// The seeds `.ci/run` runs: the negative control must be caught within them.
const CI_SEEDS: std::ops::RangeInclusive<u64> = 1..=24;

/// The stall check's runs here, as in `.ci/run`: 3 simulated seconds of writes, 9
/// snapshots per member.
const STALL_RUN: StallOptions = StallOptions {
    members: 3,
    load: std::time::Duration::from_secs(3),
    bug: None,
};

#[test]
fn two_seeds_run_clean() {
    // A smoke test in a plain build (which does not replay exactly): the seeds with
    // every fault run in CI's simulation step, built to replay.
    let opts = Options {
        disk_faults: false,
        ..Options::standard()
    };
    let reports = run_seeds(&[1, 2], &opts);
    let failed = report_failures(&reports, &opts);
    assert!(failed.is_empty(), "seeds failed: {failed:?}");
}

#[test]
fn quorum_reads_served_from_a_members_own_store_are_caught() {
    // The injected bug: the node answers a quorum read from its own store instead of
    // through the log. Under partitions a deposed leader or a lagging follower then
    // returns a stale value, which the linearizability check must reject.
    let opts = Options {
        bug: Some(InjectedBug::LocalQuorumReads),
        crashes: false,
        replacements: false,
        disk_faults: false,
        ..Options::standard()
    };
    let seeds: Vec<u64> = CI_SEEDS.collect();
    let mut caught = None;
    // Seed by seed, stopping at the first catch: the check is what matters, not a tally.
    for chunk in seeds.chunks(4) {
        let reports = run_seeds(chunk, &opts);
        if let Some(r) = reports.iter().find(|r| r.verdict == CheckResult::Illegal) {
            caught = Some(r.seed);
            break;
        }
    }
    assert!(
        caught.is_some(),
        "no seed of {CI_SEEDS:?} caught the stale quorum read"
    );
}

/// Exact replay needs tokio's own RNG seeded too: tokio's watch channels (openraft's
/// metrics and I/O notifications) pick a wake-up shard with it, which orders the tasks
/// woken together, and tokio takes a seed for it only under `--cfg tokio_unstable`
/// (turmoil then passes it one from its own seed). Each run is a process of its own, as
/// in a campaign: process-wide counters (tokio's task ids) differ between two runs in
/// one process.
#[test]
#[cfg_attr(
    not(tokio_unstable),
    ignore = "exact replay needs RUSTFLAGS=\"--cfg tokio_unstable\" (see docs/SIMULATION.md)"
)]
fn a_seed_replays_the_same_run() {
    // A seed with a replacement, disk faults and restarts.
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_beacon-sim"))
            .args(["--seed", "5", "--secs", "4", "--no-disk-faults"])
            .output()
            .expect("the simulation binary runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (first, second) = (run(), run());
    assert!(first.starts_with("RESULT 5 "), "no result: {first:?}");
    assert_eq!(
        first, second,
        "two runs of seed 5 differ (history digest last)"
    );
}

#[test]
fn no_write_waits_behind_a_slow_purge_or_snapshot() {
    // The stall check (issue 15): steady writes while every log deletion and snapshot
    // write takes 300 ms of simulated time; none may wait behind them.
    let report = stall::run(1, &STALL_RUN);
    assert!(
        report.compacted(),
        "nothing to wait on: {}",
        report.summary()
    );
    assert!(report.passed(), "{}", report.summary());
}

#[test]
fn writes_waiting_behind_a_purge_in_the_log_io_are_counted() {
    // The stall check's negative control: the purge deletes its entries inside
    // openraft's log I/O, as before the purge worker, so writes wait behind it.
    let opts = StallOptions {
        bug: Some(InjectedBug::InlinePurge),
        ..STALL_RUN
    };
    let report = stall::run(1, &opts);
    assert!(report.valid(), "{}", report.summary());
    assert!(report.stalled > 0, "no stall counted: {}", report.summary());
}
