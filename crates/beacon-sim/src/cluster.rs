//! The members of one run: their disks, which outlive their hosts, and how a member's
//! host is started (at the beginning, or when the nemesis adds one), crashed (power lost:
//! its disk keeps only what it synced) and restarted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon_testkit::SeededRng;
use turmoil::Sim;

use crate::conn::host_name;
use crate::disk::{Faults, SimDisk, SlowOps};
use crate::member::{self, MemberSetup, Timing};
use crate::observe::Observer;

/// How often the simulated disks fail, when a run asks for disk faults: often enough
/// that every run retries log writes and syncs and snapshot writes, rarely enough that
/// the cluster still makes progress between them.
const DISK_FAULTS: Faults = Faults {
    log_write_per_mille: 5,
    log_sync_per_mille: 5,
    file_write_per_mille: 5,
    file_sync_per_mille: 5,
};

/// Every member a run started, with what outlives its host.
pub struct Cluster {
    seed: u64,
    timing: Timing,
    /// The run's observer.
    pub observer: Observer,
    initial: Vec<u64>,
    disks: BTreeMap<u64, SimDisk>,
    /// Whether the simulated disks fail writes and syncs now and then.
    disk_faults: bool,
    bug: Option<beacon_raft::InjectedBug>,
    /// What a slow log deletion or snapshot write costs on every disk, if they are slow.
    compaction_cost: Option<Duration>,
    /// The ids clients send to: members added and not removed (shared with them).
    pub members: Arc<Mutex<Vec<u64>>>,
    /// Every host name, clients included, for healing links.
    pub hosts: Vec<String>,
}

/// A seed for the RNG of incarnation `n` of member `id`.
fn incarnation_seed(run: u64, id: u64, n: u64) -> u64 {
    let mut rng = SeededRng::new(run ^ (id << 48) ^ (n << 32) ^ 0x5eed);
    rng.next_u64()
}

impl Cluster {
    /// An empty cluster whose initial members will be `initial`.
    pub fn new(
        seed: u64,
        timing: Timing,
        initial: Vec<u64>,
        disk_faults: bool,
        bug: Option<beacon_raft::InjectedBug>,
    ) -> Cluster {
        Cluster {
            seed,
            timing,
            observer: Arc::default(),
            members: Arc::new(Mutex::new(initial.clone())),
            initial,
            disks: BTreeMap::new(),
            disk_faults,
            bug,
            compaction_cost: None,
            hosts: Vec::new(),
        }
    }

    /// Makes log compaction and snapshots cost `cost` each on the disks of the members
    /// started from now on (`SimDisk::slow_compaction`).
    pub fn slow_compaction(&mut self, cost: Duration) {
        self.compaction_cost = Some(cost);
    }

    /// The slow operations every member's disk made so far.
    pub fn slow_ops(&self) -> SlowOps {
        self.disks
            .values()
            .map(SimDisk::slow_ops)
            .fold(SlowOps::default(), |a, b| SlowOps {
                log_deletions: a.log_deletions + b.log_deletions,
                snapshot_writes: a.snapshot_writes + b.snapshot_writes,
                on_node_tasks: a.on_node_tasks + b.on_node_tasks,
            })
    }

    /// Starts the host of member `id` (a new member joins the running cluster when
    /// `join_existing`).
    pub fn start(&mut self, sim: &mut Sim<'_>, id: u64, join_existing: bool) {
        let disk_seed = incarnation_seed(self.seed, id, u64::from(u32::MAX));
        let faults = if self.disk_faults {
            DISK_FAULTS
        } else {
            Faults::default()
        };
        let disk = SimDisk::new(SeededRng::new(disk_seed), faults);
        if let Some(cost) = self.compaction_cost {
            disk.slow_compaction(cost);
        }
        self.disks.insert(id, disk.clone());
        let setup = MemberSetup {
            id,
            initial: self.initial.clone(),
            join_existing,
            timing: self.timing,
            disk,
            observer: self.observer.clone(),
            bug: self.bug,
        };
        let incarnations = AtomicU64::new(0);
        let run_seed = self.seed;
        sim.host(host_name(id), move || {
            let n = incarnations.fetch_add(1, Ordering::Relaxed);
            member::run(setup.clone(), incarnation_seed(run_seed, id, n))
        });
        self.hosts.push(host_name(id));
    }

    /// Crashes member `id`'s host as a power loss: its links are cut for the moment (what
    /// its sockets send as they are dropped is lost, as a dead machine sends nothing;
    /// otherwise tokio's order of dropping the host's tasks, which follows process-wide
    /// task ids, would order those messages and turmoil's random draws for them, and a
    /// seed would not replay), and its disk loses what was not synced.
    pub fn crash(&self, sim: &mut Sim<'_>, id: u64, fail_rate: f64) {
        let host = host_name(id);
        // No random link failure either: it would draw from turmoil's RNG per message.
        sim.set_fail_rate(0.0);
        let others = self.hosts.iter().filter(|h| **h != host);
        for other in others.clone() {
            sim.partition(host.as_str(), other.as_str());
        }
        sim.crash(host.as_str());
        for other in others {
            sim.repair(host.as_str(), other.as_str());
        }
        sim.set_fail_rate(fail_rate);
        if let Some(disk) = self.disks.get(&id) {
            disk.crash();
        }
        crate::observe::lock(&self.observer).member(id).running = false;
    }

    /// Restarts the members that exited to be restarted, as a supervisor (systemd) does
    /// with beacon after a non-zero exit: not a power loss, what they wrote stays.
    pub fn restart_requested(&self, sim: &mut Sim<'_>) {
        let asked: Vec<u64> = {
            let mut observed = crate::observe::lock(&self.observer);
            observed
                .members
                .iter_mut()
                .filter_map(|(id, v)| std::mem::take(&mut v.restart_requested).then_some(*id))
                .collect()
        };
        for id in asked {
            sim.crash(host_name(id));
            sim.bounce(host_name(id));
        }
    }

    /// Member ids clients may send to now.
    pub fn current(&self) -> Vec<u64> {
        crate::observe::lock(&self.members).clone()
    }
}
