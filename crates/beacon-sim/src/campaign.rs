//! Many seeds: each run on its own thread (turmoil's world is thread-local), as many at
//! once as there are cores, with one line per seed and a failing seed's replay command.

use std::sync::Mutex;

use porcupine_rs::CheckResult;

use crate::run::{run, Options, Report};

/// Runs `seeds` on every core and returns the reports in seed order, printing each
/// seed's line as it finishes.
pub fn run_seeds(seeds: &[u64], opts: &Options) -> Vec<Report> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = Mutex::new(seeds.iter());
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.min(seeds.len()) {
            s.spawn(|| loop {
                let Some(&seed) = crate::observe::lock(&next).next() else {
                    return;
                };
                let report = run(seed, opts);
                eprintln!("{}", summary(&report));
                crate::observe::lock(&reports).push(report);
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_else(|p| p.into_inner());
    reports.sort_by_key(|r| r.seed);
    reports
}

/// One seed's line.
pub fn summary(r: &Report) -> String {
    let [set, get, cas, delete, ttl] = r.tally;
    let [partitions, holds, crashes, slow, stops, replaced] = r.faults;
    format!(
        "seed {}: {:?}{} | {} ops (set {set:?} get {get:?} cas {cas:?} delete {delete:?} ttl {ttl:?}; \
         ok/failed/unknown) | applied {} | faults: {partitions} partitions, {holds} holds, \
         {crashes} crashes, {slow} slow, {stops} stops, {replaced} replaced (members now {:?}) | \
         {} restarts, {} leader stops | snapshots {} built {} installed | {} watch events | \
         latency <= {:?}, fail rate {} | {:?} simulated in {:?}",
        r.seed,
        r.verdict,
        if r.violations.is_empty() {
            String::new()
        } else {
            format!(" VIOLATIONS: {:?}", r.violations)
        },
        r.records.len(),
        r.applied,
        r.final_members,
        r.restarts.0,
        r.restarts.1,
        r.snapshots.0,
        r.snapshots.1,
        r.watch_events,
        r.network.0,
        r.network.1,
        r.simulated,
        r.wall,
    )
}

/// Prints how to replay each failed seed (and where porcupine's picture of a rejected
/// history went); returns the failed seeds.
pub fn report_failures(reports: &[Report], opts: &Options) -> Vec<u64> {
    let failed: Vec<&Report> = reports.iter().filter(|r| !r.passed()).collect();
    for r in &failed {
        if r.verdict == CheckResult::Illegal {
            eprintln!(
                "seed {}: {}",
                r.seed,
                crate::check::visualize(r.seed, &r.records)
            );
        }
        eprintln!(
            "FAILED seed {}: replay with cargo run -p beacon-sim -- --seed {} --secs {} --members {}",
            r.seed,
            r.seed,
            opts.load.as_secs(),
            opts.members
        );
    }
    failed.iter().map(|r| r.seed).collect()
}
