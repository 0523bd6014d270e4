//! What outlives a simulated member's crash: its "disk" (vote, log, markers, newest
//! snapshot), and the observer's record of what every member applied.
//!
//! turmoil's `crash` drops a host's runtime and every task in it; anything kept here is
//! held by the test instead, so a restarted member finds it as a real one finds its
//! data directory. The disk is written synchronously: every write is durable at once,
//! which is what production's fsync before acknowledgement gives.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use beacon_store::Store;

use crate::types::{Entry, LogId, Snapshot, Vote};

/// One member's durable state.
#[derive(Default)]
pub struct Disk {
    /// The last vote saved.
    pub vote: Option<Vote>,
    /// The log after the purge point, by index.
    pub log: BTreeMap<u64, Entry>,
    /// The last purged log id.
    pub purged: Option<LogId>,
    /// The last committed log id openraft reported.
    pub committed: Option<LogId>,
    /// The newest snapshot built or installed.
    pub snapshot: Option<Snapshot>,
}

/// A member's disk, shared between its incarnations.
pub type SharedDisk = Arc<Mutex<Disk>>;

/// Locks a mutex; a panic while it was held already fails the run, so the data is
/// only read for the report.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the test sees of one member, refreshed by the member while it runs.
#[derive(Default)]
pub struct MemberView {
    /// The store of the running incarnation (replaced at each restart).
    pub store: Option<Arc<Mutex<Store>>>,
    /// Its last applied index.
    pub applied: u64,
    /// Its last log index.
    pub last_log: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// Its current term.
    pub term: u64,
    /// How many times it was started.
    pub starts: u32,
    /// Snapshots it installed from a leader.
    pub snapshots_installed: u32,
    /// Snapshots it built.
    pub snapshots_built: u32,
    /// Set by the nemesis: stop gracefully (hand leadership over first).
    pub stop_requested: bool,
    /// Set by the member once it is ready to stop.
    pub ready_to_stop: bool,
    /// Graceful stops in which it handed leadership over.
    pub handovers: u32,
}

/// One applied entry, as every member must apply it at its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEntry {
    /// The entry's log id.
    pub log_id: LogId,
    /// The payload's JSON.
    pub payload: String,
}

/// Everything the checks read, shared by all hosts of one run.
#[derive(Default)]
pub struct Observed {
    /// Per member.
    pub members: BTreeMap<u64, MemberView>,
    /// The entry first applied at each index, by any member.
    pub applied: BTreeMap<u64, AppliedEntry>,
    /// Safety violations seen while applying (state-machine safety).
    pub violations: Vec<String>,
}

/// The observer, shared by all hosts of one run and the test.
pub type Observer = Arc<Mutex<Observed>>;

impl Observed {
    /// Records that `member` applied `entry` at its index: every member must apply the
    /// same entry at the same index (Raft's state-machine safety), restarts included.
    pub fn record_apply(&mut self, member: u64, entry: AppliedEntry) {
        let index = entry.log_id.index;
        match self.applied.get(&index) {
            None => {
                self.applied.insert(index, entry);
            }
            Some(first) if *first == entry => {}
            Some(first) => self.violations.push(format!(
                "member {member} applied {} {} at index {index}, but {} {} was applied there before",
                entry.log_id, entry.payload, first.log_id, first.payload
            )),
        }
        self.members.entry(member).or_default().applied = index;
    }

    /// The view of `member`.
    pub fn member(&mut self, member: u64) -> &mut MemberView {
        self.members.entry(member).or_default()
    }
}
