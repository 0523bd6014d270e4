//! The seams a simulated member runs on: the simulated disk, turmoil's network, turmoil's
//! clock (tokio's, which turmoil drives, and a wall clock derived from it), a seeded RNG
//! for openraft, and an observer of what the node applies.

use std::sync::Arc;
use std::time::Duration;

use beacon_raft::{InjectedBug, Seams};

use crate::disk::SimDisk;
use crate::observe::{lock, AppliedEntry, Observer};

/// The simulated wall clock's epoch: 2027-01-15, in nanoseconds since 1970. Every host
/// shares turmoil's clock, so there is no skew between members.
const EPOCH_NS: i64 = 1_800_000_000_000_000_000;

/// The wall time `elapsed` into a run, in nanoseconds since 1970.
pub fn wall_ns(elapsed: Duration) -> i64 {
    EPOCH_NS + elapsed.as_nanos() as i64
}

/// The wall clock the node stamps TTLs and expiry with: the epoch plus simulated time.
pub struct SimClock;

impl beacon_raft::Clock for SimClock {
    fn now_ns(&self) -> i64 {
        wall_ns(turmoil::sim_elapsed().unwrap_or_default())
    }
}

/// Records what one member applies, builds and installs into the run's observer.
pub struct Recorder {
    id: u64,
    observer: Observer,
}

impl beacon_raft::NodeObserver for Recorder {
    fn applied(&self, index: u64, term: u64, log_id: String, payload: String) {
        lock(&self.observer).record_apply(
            self.id,
            index,
            AppliedEntry {
                log_id,
                term,
                payload,
            },
        );
    }

    fn snapshot_built(&self) {
        lock(&self.observer).member(self.id).snapshots_built += 1;
    }

    fn snapshot_installed(&self) {
        lock(&self.observer).member(self.id).snapshots_installed += 1;
    }
}

/// The seams of one incarnation of member `id`: its disk, turmoil's network and clock,
/// openraft's RNG seeded with `seed`, the run's observer, and the bug to inject, if any.
pub fn simulated(
    id: u64,
    disk: &SimDisk,
    observer: &Observer,
    bug: Option<InjectedBug>,
    seed: u64,
) -> Seams {
    let mut seams = Seams::production();
    seams.disk = Arc::new(disk.clone());
    seams.net = Arc::new(crate::net::SimNet);
    seams.clock = Arc::new(SimClock);
    seams.rng_seed = Some(seed);
    seams.observer = Some(Arc::new(Recorder {
        id,
        observer: observer.clone(),
    }));
    seams.bug = bug;
    seams
}
