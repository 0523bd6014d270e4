//! One simulated run from a seed: build the cluster and clients in turmoil, step the
//! simulation while the nemesis injects faults, heal, read every key, wait for the
//! members to converge and the TTL keys to expire, and check.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_testkit::SeededRng;
use porcupine_rs::CheckResult;

use crate::check;
use crate::client::{self, Record, Shared, Tally};
use crate::cluster::Cluster;
use crate::member::Timing;
use crate::nemesis::{FaultCounts, Nemesis};
use crate::observe::{lock, Observed};

/// The simulation's clock step: messages are delivered on step boundaries.
const TICK: Duration = Duration::from_millis(1);
/// How long, after the load, the final reads, convergence and expiry may take.
const SETTLE_MAX: Duration = Duration::from_secs(40);
/// At most this many operations per client, whatever the load's length.
const OPS_PER_CLIENT_MAX: u64 = 100_000;
/// Final reads: attempts per key before the run is declared stuck.
const FINAL_READ_ATTEMPTS: u32 = 60;

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Cluster size.
    pub members: usize,
    /// Concurrent clients.
    pub clients: u32,
    /// Keys they share: few, so that they contend.
    pub keys: usize,
    /// Keys set with a TTL.
    pub ttl_keys: usize,
    /// Simulated time of load and faults.
    pub load: Duration,
    /// Raft timing.
    pub timing: Timing,
    /// Whether the nemesis may crash members (power loss: unsynced writes are lost).
    pub crashes: bool,
    /// Whether the nemesis may replace members (remove one, the leader included, and
    /// add a new one).
    pub replacements: bool,
    /// Whether the simulated disks fail writes and syncs now and then.
    pub disk_faults: bool,
    /// A deliberately injected bug in the node (the negative control).
    pub bug: Option<beacon_raft::InjectedBug>,
}

impl Options {
    /// The runs CI and the campaign make: 3 members, every fault.
    pub fn standard() -> Options {
        Options {
            members: 3,
            clients: 4,
            keys: 3,
            ttl_keys: 2,
            load: Duration::from_secs(5),
            timing: Timing::PRODUCTION,
            crashes: true,
            replacements: true,
            disk_faults: true,
            bug: None,
        }
    }
}

/// What a run did and what the checks found.
#[derive(Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Every recorded operation.
    pub records: Vec<Record>,
    /// Per kind: definite success, definite failure, unknown.
    pub tally: Tally,
    /// Faults injected, by kind.
    pub faults: FaultCounts,
    /// turmoil's largest message latency and random link failure rate for the run.
    pub network: (Duration, f64),
    /// Simulated time in all.
    pub simulated: Duration,
    /// Wall time, checks included.
    pub wall: Duration,
    /// Member restarts, and graceful stops of a leader, over all members.
    pub restarts: (u32, u32),
    /// Snapshots built and snapshots installed from a leader, over all members.
    pub snapshots: (u32, u32),
    /// Watch events delivered, over all members.
    pub watch_events: usize,
    /// The highest applied index.
    pub applied: u64,
    /// The members at the end.
    pub final_members: Vec<u64>,
    /// porcupine's verdict.
    pub verdict: CheckResult,
    /// Every other failed check.
    pub violations: Vec<String>,
    /// Entries applied by index (log id and payload), to compare two runs.
    pub applied_log: Vec<String>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.verdict == CheckResult::Ok && self.violations.is_empty()
    }
}

/// Runs the simulation of `seed` and checks it.
pub fn run(seed: u64, opts: &Options) -> Report {
    let started = Instant::now();
    let mut rng = SeededRng::new(seed);
    let latency_max = Duration::from_millis(2 + rng.below(24));
    let fail_rate = [0.0, 0.0, 0.001, 0.005][rng.below(4) as usize];
    let mut sim = turmoil::Builder::new()
        .rng_seed(rng.next_u64())
        .tick_duration(TICK)
        .simulation_duration(opts.load + SETTLE_MAX + Duration::from_secs(5))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(latency_max)
        .fail_rate(fail_rate)
        .repair_rate(0.5)
        // Hosts run in a seeded random order each step: more interleavings per seed.
        .enable_random_order()
        .build();

    let initial: Vec<u64> = (1..=opts.members as u64).collect();
    let mut cluster = Cluster::new(
        seed,
        opts.timing,
        initial.clone(),
        opts.disk_faults,
        opts.bug,
    );
    for &id in &initial {
        cluster.start(&mut sim, id, false);
    }

    let shared = Shared {
        members: cluster.members.clone(),
        keys: opts.keys,
        ttl_keys: opts.ttl_keys,
        last_seen: Arc::new(Mutex::new(BTreeMap::new())),
        records: Arc::default(),
        tally: Arc::default(),
        pending: Arc::default(),
        next_op: Arc::default(),
    };
    for c in 0..opts.clients {
        let client_rng = SeededRng::new(rng.next_u64());
        sim.client(
            format!("c{c}"),
            client::run(c, shared.clone(), client_rng, opts.load, OPS_PER_CLIENT_MAX),
        );
        cluster.hosts.push(format!("c{c}"));
    }

    let mut nemesis = Nemesis::new(
        SeededRng::new(rng.next_u64()),
        opts.crashes,
        opts.replacements,
        (latency_max, fail_rate),
        opts.members as u64 + 1,
    );
    let mut violations = Vec::new();
    if let Err(e) = drive(&mut sim, &mut nemesis, &mut cluster, &shared, opts) {
        violations.push(e);
    }
    let simulated = sim.elapsed();
    // Stop every host (and its openraft tasks) before reading the stores.
    drop(sim);

    let mut records = lock(&shared.records).clone();
    records.extend(lock(&shared.pending).values().cloned());
    let tally = *lock(&shared.tally);
    let (verdict, _) = check::linearizable(&records);
    let final_members = cluster.current();
    let observed = lock(&cluster.observer);
    violations.extend(observed.violations.iter().cloned());
    violations.extend(check::acknowledged_writes_kept(&records, &observed));
    violations.extend(check::watches(&observed));
    if violations.is_empty() {
        violations.extend(check::converged(&observed, &final_members, opts.keys));
        violations.extend(check::expired(&observed, &final_members, opts.ttl_keys));
    }
    let views = observed.members.values();
    let restarts = (
        views.clone().map(|v| v.starts.saturating_sub(1)).sum(),
        views.clone().map(|v| v.stops_as_leader).sum(),
    );
    let snapshots = (
        views.clone().map(|v| v.snapshots_built).sum(),
        views.clone().map(|v| v.snapshots_installed).sum(),
    );
    let applied = views.map(|v| v.applied).max().unwrap_or(0);
    let watch_events = observed.watches.iter().map(|w| w.events.len()).sum();
    let applied_log = observed
        .applied
        .values()
        .map(|e| format!("{} {}", e.log_id, e.payload))
        .collect();
    drop(observed);
    Report {
        seed,
        records,
        tally,
        faults: nemesis.counts,
        network: (latency_max, fail_rate),
        simulated,
        wall: started.elapsed(),
        restarts,
        snapshots,
        watch_events,
        applied,
        final_members,
        verdict,
        violations,
        applied_log,
    }
}

/// Steps the simulation through the load, the heal, the final reads, convergence and
/// expiry.
fn drive(
    sim: &mut turmoil::Sim<'_>,
    nemesis: &mut Nemesis,
    cluster: &mut Cluster,
    shared: &Shared,
    opts: &Options,
) -> Result<(), String> {
    let step = |sim: &mut turmoil::Sim<'_>| {
        sim.step()
            .map_err(|e| format!("a host failed at {:?}: {e}", sim.elapsed()))
    };
    while sim.elapsed() < opts.load {
        nemesis.step(sim, sim.elapsed(), cluster);
        cluster.restart_requested(sim);
        step(sim)?;
    }
    nemesis.heal(sim, cluster);
    sim.set_fail_rate(0.0);
    for (i, a) in cluster.hosts.iter().enumerate() {
        for b in &cluster.hosts[i + 1..] {
            sim.repair(a.as_str(), b.as_str());
        }
    }
    sim.client(
        "reader",
        client::final_reads(shared.clone(), FINAL_READ_ATTEMPTS),
    );
    let settle_end = opts.load + SETTLE_MAX;
    while !step(sim)? {
        cluster.restart_requested(sim);
        if sim.elapsed() > settle_end {
            return Err("the final reads did not finish".into());
        }
    }
    loop {
        let members = cluster.current();
        let done = {
            let observed = lock(&cluster.observer);
            check::settled(&observed, &members) && check::all_expired(&observed, &members)
        };
        if done {
            return Ok(());
        }
        cluster.restart_requested(sim);
        if sim.elapsed() > settle_end {
            return Err(format!(
                "members did not converge (or TTL keys did not expire) after the faults healed: {}",
                describe(&lock(&cluster.observer), &members)
            ));
        }
        step(sim)?;
    }
}

fn describe(observed: &Observed, members: &[u64]) -> String {
    members
        .iter()
        .map(|m| match observed.members.get(m) {
            Some(v) => format!(
                "m{m}: running {} leader {:?} term {} applied {} last log {} voters {:?} learners {:?} ttl keys {}",
                v.running,
                v.leader,
                v.term,
                v.applied,
                v.last_log,
                v.membership.0,
                v.membership.1,
                v.store.as_ref().is_some_and(|s| s.read().unwrap_or_else(|p| p.into_inner()).has_ttl_keys()),
            ),
            None => format!("m{m}: never started"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
