//! The stall check (issue 15): under steady writes, does any write wait behind a log
//! purge or a snapshot? Made slow on purpose, so that the answer does not depend on how
//! fast a machine is: every member's disk makes each log batch that deletes purged
//! entries and each snapshot file write cost [`COMPACTION_COST`] of simulated time (see
//! `disk::pace`), and a small snapshot count makes several snapshots and purges happen
//! in every run. There are no faults (no partitions, crashes or disk failures), so a
//! write that takes longer than [`STALL_THRESHOLD`], half the injected cost and several
//! times a write's round trips, can only have waited on that work. The count must be 0.
//! So must the count of slow operations made on the node's own tasks: they cost nothing
//! here (only blocking work and disk workers can wait, see `disk::pace`), but in
//! production they would block every task of the node.
//!
//! The negative control (`InjectedBug::InlinePurge`: the purge deletes its entries
//! inside openraft's log I/O, as it did before the purge worker) must count stalls on
//! most seeds, or the check would show nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_raft::{InjectedBug, ProposeError};
use beacon_store::{Command, KeysRequest, Method};
use beacon_testkit::SeededRng;

use crate::client::{now, now_ns};
use crate::cluster::Cluster;
use crate::conn::{CallError, Connection};
use crate::disk::SlowOps;
use crate::member::Timing;
use crate::observe::{lock, Observer};
use crate::wire::{Answer, Request};

/// What each slow operation (a log batch that deletes purged entries, a snapshot file's
/// write) costs: longer than anything else a write may wait on in a run without faults, and
/// above the 80-130 ms that issue 15 measured for a purge of 100,000 entries.
pub const COMPACTION_COST: Duration = Duration::from_millis(300);

/// A write slower than this waited behind a slow operation: half of
/// [`COMPACTION_COST`], and far above a write's own time here (four network hops of at
/// most `LATENCY_MAX_MS` each; no disk operation on its path takes time).
pub const STALL_THRESHOLD: Duration = Duration::from_millis(150);

/// Applied entries between snapshots: small, so that a run of a few simulated seconds
/// builds several snapshots and purges behind each (openraft keeps as many entries
/// behind a snapshot, `max_in_snapshot_log_to_keep`, so purges start at the second).
pub const STALL_SNAPSHOT_COUNT: u64 = 50;

/// The most a message takes, in milliseconds; the seed picks the run's latency from 2
/// up to this.
const LATENCY_MAX_MS: u64 = 10;

/// Concurrent writers, each with one write in flight at a time.
const WRITERS: u32 = 4;

/// A writer gives up on a write after this long (it is then counted as a stall, and as
/// a failure: nothing in a run without faults should take this long).
const WRITE_TIMEOUT: Duration = Duration::from_millis(1500);

/// How often a writer looks for the leader while none is known.
const LEADER_POLL: Duration = Duration::from_millis(10);

/// How long after the load the writers' last writes may take before the run fails.
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// What a stall check runs.
#[derive(Debug, Clone)]
pub struct StallOptions {
    /// Cluster size.
    pub members: usize,
    /// Simulated time of steady writes.
    pub load: Duration,
    /// A deliberately injected bug (the negative control: `InjectedBug::InlinePurge`).
    pub bug: Option<InjectedBug>,
}

impl StallOptions {
    /// 3 members, 5 simulated seconds of writes, no bug.
    pub fn standard() -> StallOptions {
        StallOptions {
            members: 3,
            load: Duration::from_secs(5),
            bug: None,
        }
    }
}

/// What one stall check saw.
#[derive(Debug, Clone)]
pub struct StallReport {
    /// The seed.
    pub seed: u64,
    /// Writes made: acknowledged, or timed out.
    pub writes: usize,
    /// Writes slower than [`STALL_THRESHOLD`] (timeouts included): those that waited
    /// behind a purge or a snapshot.
    pub stalled: usize,
    /// The slowest write.
    pub slowest: Duration,
    /// When the first few stalled writes were sent, and how long each took.
    pub first_stalls: Vec<(Duration, Duration)>,
    /// Snapshots built, over all members.
    pub snapshots: u32,
    /// The slow operations, over all members' disks.
    pub slow: SlowOps,
    /// What went wrong besides stalls (a write that failed, a host that failed).
    pub failures: Vec<String>,
    /// The run's largest message latency.
    pub latency_max: Duration,
    /// Simulated time in all.
    pub simulated: Duration,
    /// Wall time.
    pub wall: Duration,
}

impl StallReport {
    /// Whether snapshots and purges happened: a run without them proves nothing.
    pub fn compacted(&self) -> bool {
        self.snapshots > 0 && self.slow.log_deletions > 0 && self.slow.snapshot_writes > 0
    }

    /// Whether the run is a valid measurement: it compacted and nothing failed.
    pub fn valid(&self) -> bool {
        self.compacted() && self.failures.is_empty() && self.writes > 0
    }

    /// Whether no write waited, and no slow operation ran on the node's own tasks
    /// (where it would block the node in production, though it costs nothing here), in
    /// a valid measurement.
    pub fn passed(&self) -> bool {
        self.valid() && self.stalled == 0 && self.slow.on_node_tasks == 0
    }

    /// The seed's line.
    pub fn summary(&self) -> String {
        let verdict = match (self.valid(), self.stalled, self.slow.on_node_tasks) {
            (false, _, _) if !self.compacted() => "INVALID (no snapshot or purge happened)",
            (false, _, _) => "INVALID",
            (true, 0, 0) => "ok",
            (true, 0, _) => "BLOCKING (slow disk work on the node's own tasks)",
            (true, _, _) => "STALLED",
        };
        format!(
            "seed {}: {verdict} | {} writes waited behind a purge or snapshot (> {:?}) of {} \
             (slowest {:?}{}) | {} snapshots built, {} log deletions and {} snapshot writes of \
             {:?} each, {} of them on the node's own tasks | latency <= {:?} | {:?} simulated \
             in {:?}{}",
            self.seed,
            self.stalled,
            STALL_THRESHOLD,
            self.writes,
            self.slowest,
            if self.first_stalls.is_empty() {
                String::new()
            } else {
                format!("; first stalls (sent at, took): {:?}", self.first_stalls)
            },
            self.snapshots,
            self.slow.log_deletions,
            self.slow.snapshot_writes,
            COMPACTION_COST,
            self.slow.on_node_tasks,
            self.latency_max,
            self.simulated,
            self.wall,
            if self.failures.is_empty() {
                String::new()
            } else {
                format!(" | FAILURES: {:?}", self.failures)
            },
        )
    }

    /// The line a seed's process prints for the campaign that started it:
    /// `STALL <seed> <valid> <stalled> <writes> <passed>`.
    pub fn result_line(&self) -> String {
        format!(
            "STALL {} {} {} {} {}",
            self.seed,
            u8::from(self.valid()),
            self.stalled,
            self.writes,
            u8::from(self.passed()),
        )
    }
}

/// A seed's outcome as its process reported it (see [`StallReport::result_line`]).
#[derive(Debug, Clone, Copy)]
pub struct StallOutcome {
    /// The seed.
    pub seed: u64,
    /// Whether the run was a valid measurement.
    pub valid: bool,
    /// Writes that waited.
    pub stalled: u64,
    /// Writes made.
    pub writes: u64,
    /// Whether the seed passed ([`StallReport::passed`]).
    pub passed: bool,
}

/// Parses a [`StallReport::result_line`].
pub fn parse_result(line: &str) -> Option<StallOutcome> {
    let mut f = line
        .strip_prefix("STALL ")?
        .split(' ')
        .map(str::parse::<u64>);
    let mut next = || f.next()?.ok();
    Some(StallOutcome {
        seed: next()?,
        valid: next()? == 1,
        stalled: next()?,
        writes: next()?,
        passed: next()? == 1,
    })
}

/// Every write's send time and latency, and what failed.
#[derive(Default)]
struct Samples {
    writes: Vec<(Duration, Duration)>,
    failures: Vec<String>,
}

/// Runs the stall check of `seed`.
pub fn run(seed: u64, opts: &StallOptions) -> StallReport {
    let started = Instant::now();
    let mut rng = SeededRng::new(seed);
    let latency_max = Duration::from_millis(2 + rng.below(LATENCY_MAX_MS - 1));
    let mut sim = turmoil::Builder::new()
        .rng_seed(rng.next_u64())
        .tick_duration(Duration::from_millis(1))
        .simulation_duration(opts.load + DRAIN_MAX + Duration::from_secs(5))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(latency_max)
        .enable_random_order()
        .build();
    let timing = Timing {
        snapshot_count: STALL_SNAPSHOT_COUNT,
        ..Timing::PRODUCTION
    };
    let initial: Vec<u64> = (1..=opts.members as u64).collect();
    let mut cluster = Cluster::new(seed, timing, initial.clone(), false, opts.bug);
    cluster.slow_compaction(COMPACTION_COST);
    for &id in &initial {
        cluster.start(&mut sim, id, false);
    }
    let samples = Arc::new(Mutex::new(Samples::default()));
    for w in 0..WRITERS {
        sim.client(
            format!("w{w}"),
            writer(w, cluster.observer.clone(), opts.load, Arc::clone(&samples)),
        );
    }
    let mut failures = Vec::new();
    loop {
        match sim.step() {
            Ok(true) => break,
            Ok(false) if sim.elapsed() > opts.load + DRAIN_MAX => {
                failures.push("the writers did not finish".to_string());
                break;
            }
            Ok(false) => {}
            Err(e) => {
                failures.push(format!("a host failed at {:?}: {e}", sim.elapsed()));
                break;
            }
        }
    }
    let simulated = sim.elapsed();
    drop(sim);

    let samples = std::mem::take(&mut *lock(&samples));
    failures.extend(samples.failures);
    let stalls: Vec<(Duration, Duration)> = samples
        .writes
        .iter()
        .copied()
        .filter(|&(_, took)| took > STALL_THRESHOLD)
        .collect();
    let snapshots = lock(&cluster.observer)
        .members
        .values()
        .map(|v| v.snapshots_built)
        .sum();
    StallReport {
        seed,
        writes: samples.writes.len(),
        stalled: stalls.len(),
        slowest: samples
            .writes
            .iter()
            .map(|&(_, took)| took)
            .max()
            .unwrap_or_default(),
        first_stalls: stalls.into_iter().take(3).collect(),
        snapshots,
        slow: cluster.slow_ops(),
        failures,
        latency_max,
        simulated,
        wall: started.elapsed(),
    }
}

/// The member that says it leads, if one is running.
fn leader(observer: &Observer) -> Option<u64> {
    lock(observer)
        .members
        .iter()
        .find(|(id, v)| v.running && v.leader == Some(**id))
        .map(|(id, _)| *id)
}

/// Sets its own key on the leader, one write at a time, until `until`, recording each
/// write's latency.
async fn writer(
    id: u32,
    observer: Observer,
    until: Duration,
    samples: Arc<Mutex<Samples>>,
) -> turmoil::Result {
    let mut connection: Option<(u64, Connection)> = None;
    let mut n: u64 = 0;
    while now() < until {
        let Some(leader) = leader(&observer) else {
            tokio::time::sleep(LEADER_POLL).await;
            continue;
        };
        if connection.as_ref().map(|(to, _)| *to) != Some(leader) {
            connection = Some((leader, Connection::new(leader)));
        }
        let Some((_, conn)) = connection.as_mut() else {
            continue;
        };
        let mut req = KeysRequest::new(Method::Put, format!("/stall/w{id}"), now_ns());
        req.value = n.to_string().into();
        n += 1;
        let called = now();
        let answer = conn
            .call(&Request::Propose(Command::Keys(req)), &[], WRITE_TIMEOUT)
            .await;
        let took = now() - called;
        match answer {
            Ok((Answer::Proposed(Ok(_)), _)) => lock(&samples).writes.push((called, took)),
            // It moved or is not known yet: the write surely was not made; look again.
            Ok((Answer::Proposed(Err(ProposeError::NotLeader { .. })), _))
            | Err(CallError::NotSent(_)) => {
                connection = None;
                tokio::time::sleep(LEADER_POLL).await;
            }
            other => {
                let mut samples = lock(&samples);
                if matches!(other, Err(CallError::Timeout)) {
                    samples.writes.push((called, took));
                }
                samples.failures.push(format!(
                    "writer {id}: a write sent at {called:?} ended with {other:?}"
                ));
                connection = None;
            }
        }
    }
    Ok(())
}
