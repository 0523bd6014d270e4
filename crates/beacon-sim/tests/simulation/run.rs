//! One simulated run from a seed: build the cluster and clients in turmoil, step the
//! simulation while the nemesis injects faults, heal, read every key, wait for the
//! members to converge, and check.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_testkit::SeededRng;
use porcupine_rs::CheckResult;

use crate::client::{self, Shared, Tally};
use crate::durable::{lock, Observer, SharedDisk};
use crate::member::{self, MemberSetup};
use crate::nemesis::{FaultCounts, Nemesis};
use crate::network::host_name;
use crate::types::{SimRuntime, Timing};
use crate::{check, client::Record};

/// The simulation's clock step: messages are delivered on step boundaries.
const TICK: Duration = Duration::from_millis(1);
/// How long, after the load, the final reads and convergence may take.
const SETTLE_MAX: Duration = Duration::from_secs(30);
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
    /// Simulated time of load and faults.
    pub load: Duration,
    /// Raft timing.
    pub timing: Timing,
    /// Whether the nemesis may crash members.
    pub crashes: bool,
    /// The deliberately broken variant: reads served by any member from its own store.
    pub local_reads: bool,
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
    /// Member restarts, and leaderships handed over at a graceful stop, over all members.
    pub restarts: (u32, u32),
    /// Snapshots built and snapshots installed from a leader, over all members.
    pub snapshots: (u32, u32),
    /// The highest applied index.
    pub applied: u64,
    /// porcupine's verdict.
    pub verdict: CheckResult,
    /// Every other failed check.
    pub violations: Vec<String>,
    /// Entries applied by index (term-index and payload), to compare two runs.
    pub applied_log: Vec<String>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.verdict == CheckResult::Ok && self.violations.is_empty()
    }
}

/// A seed for the RNG of incarnation `n` of member `id`.
fn incarnation_seed(run: u64, id: u64, n: u64) -> u64 {
    let mut rng = SeededRng::new(run ^ (id << 48) ^ (n << 32) ^ 0x5eed);
    rng.next_u64()
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

    let observer: Observer = Arc::default();
    let members: Vec<u64> = (1..=opts.members as u64).collect();
    for &id in &members {
        let setup = MemberSetup {
            id,
            members: members.clone(),
            timing: opts.timing,
            disk: SharedDisk::default(),
            observer: Arc::clone(&observer),
        };
        let incarnations = AtomicU64::new(0);
        sim.host(host_name(id), move || {
            let n = incarnations.fetch_add(1, Ordering::Relaxed);
            SimRuntime::scope(incarnation_seed(seed, id, n), member::run(setup.clone()))
        });
    }

    let shared = Shared {
        members: members.clone(),
        keys: opts.keys,
        local_reads: opts.local_reads,
        last_seen: Arc::new(Mutex::new(BTreeMap::new())),
        records: Arc::default(),
        tally: Arc::default(),
    };
    for c in 0..opts.clients {
        let client_rng = SeededRng::new(rng.next_u64());
        sim.client(
            format!("c{c}"),
            client::run(c, shared.clone(), client_rng, opts.load, OPS_PER_CLIENT_MAX),
        );
    }

    let hosts: Vec<String> = members
        .iter()
        .map(|m| host_name(*m))
        .chain((0..opts.clients).map(|c| format!("c{c}")))
        .collect();
    let mut nemesis = Nemesis::new(
        SeededRng::new(rng.next_u64()),
        members.clone(),
        hosts.clone(),
        opts.crashes,
        (latency_max, fail_rate),
    );
    let mut violations = Vec::new();
    let stepped = drive(&mut sim, &mut nemesis, &observer, &shared, opts, &hosts);
    if let Err(e) = stepped {
        violations.push(e);
    }
    let simulated = sim.elapsed();
    // Stop every host (and its openraft tasks) before reading the stores.
    drop(sim);

    let records = lock(&shared.records).clone();
    let tally = *lock(&shared.tally);
    let (verdict, _) = check::linearizable(&records);
    let observed = lock(&observer);
    violations.extend(observed.violations.iter().cloned());
    violations.extend(check::acknowledged_writes_kept(&records, &observed));
    if violations.is_empty() {
        violations.extend(check::converged(
            &observed,
            &members,
            opts.keys,
            !opts.local_reads,
        ));
    }
    let views = observed.members.values();
    let restarts = (
        views.clone().map(|v| v.starts.saturating_sub(1)).sum(),
        views.clone().map(|v| v.handovers).sum(),
    );
    let snapshots = (
        views.clone().map(|v| v.snapshots_built).sum(),
        views.clone().map(|v| v.snapshots_installed).sum(),
    );
    let applied = views.map(|v| v.applied).max().unwrap_or(0);
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
        applied,
        verdict,
        violations,
        applied_log,
    }
}

/// Steps the simulation through the load, the heal, the final reads and convergence.
fn drive(
    sim: &mut turmoil::Sim<'_>,
    nemesis: &mut Nemesis,
    observer: &Observer,
    shared: &Shared,
    opts: &Options,
    hosts: &[String],
) -> Result<(), String> {
    let members = &shared.members;
    let step = |sim: &mut turmoil::Sim<'_>| {
        sim.step()
            .map_err(|e| format!("a host failed at {:?}: {e}", sim.elapsed()))
    };
    while sim.elapsed() < opts.load {
        nemesis.step(sim, sim.elapsed(), observer);
        step(sim)?;
    }
    nemesis.heal(sim, observer);
    sim.set_fail_rate(0.0);
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            sim.repair(a.as_str(), b.as_str());
        }
    }
    sim.client(
        "reader",
        client::final_reads(shared.clone(), FINAL_READ_ATTEMPTS),
    );
    let settle_end = opts.load + SETTLE_MAX;
    while !step(sim)? {
        if sim.elapsed() > settle_end {
            return Err("the final reads did not finish".into());
        }
    }
    while !check::settled(&lock(observer), members) {
        if sim.elapsed() > settle_end {
            return Err(format!(
                "members did not converge after the faults healed: {}",
                describe(&lock(observer), members)
            ));
        }
        step(sim)?;
    }
    Ok(())
}

fn describe(observed: &crate::durable::Observed, members: &[u64]) -> String {
    members
        .iter()
        .map(|m| match observed.members.get(m) {
            Some(v) => format!(
                "m{m}: leader {:?} term {} applied {} last log {}",
                v.leader, v.term, v.applied, v.last_log
            ),
            None => format!("m{m}: never started"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
