//! What the checks see of a run, shared by every host and the test: each member's view
//! (refreshed while it runs), every entry applied by any member, and every watch event
//! each member delivered. Kept outside the hosts, so a crash loses none of it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use beacon_raft::SharedStore;

/// Locks a mutex; a panic while it was held already fails the run, so the data is
/// only read for the report.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the test sees of one member, refreshed by the member while it runs.
#[derive(Default)]
pub struct MemberView {
    /// The store of the running incarnation (replaced at each restart).
    pub store: Option<SharedStore>,
    /// Whether an incarnation is running (opened and not yet stopped or crashed).
    pub running: bool,
    /// Its last applied index.
    pub applied: u64,
    /// Its last log index.
    pub last_log: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// Its current term.
    pub term: u64,
    /// The voters and learners of the membership it knows.
    pub membership: (Vec<u64>, Vec<u64>),
    /// How many times it was started.
    pub starts: u32,
    /// Snapshots it installed from a leader.
    pub snapshots_installed: u32,
    /// Snapshots it built.
    pub snapshots_built: u32,
    /// Set by the nemesis: stop gracefully (hand leadership over first).
    pub stop_requested: bool,
    /// Set by the member once it has stopped gracefully.
    pub stopped: bool,
    /// Set once the member learnt it was removed and stopped for good.
    pub removed: bool,
    /// Graceful stops in which it led when asked to stop.
    pub stops_as_leader: u32,
    /// Failed opens since it last opened.
    pub open_failures: u32,
    /// Why Raft stopped for good on it (storage errors), each time.
    pub failures: Vec<String>,
    /// Set by the member when it exited to be restarted (Raft stopped for good, or it
    /// could not open): its supervisor, the run, restarts it.
    pub restart_requested: bool,
}

/// One applied entry, as every member must apply it at its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEntry {
    /// The entry's log id, as text (`term-node-index`).
    pub log_id: String,
    /// The entry's term.
    pub term: u64,
    /// The payload's JSON.
    pub payload: String,
}

/// The events one registration of a member's watcher delivered, in order.
#[derive(Debug, Clone, Default)]
pub struct WatchSegment {
    /// The member.
    pub member: u64,
    /// The first etcd index it watched from.
    pub since: u64,
    /// (etcd index, the event's JSON), in delivery order.
    pub events: Vec<(u64, String)>,
    /// Whether the store dropped the watcher (a snapshot replaced the store).
    pub ended: bool,
}

/// Everything the checks read, shared by all hosts of one run.
#[derive(Default)]
pub struct Observed {
    /// Per member, by id.
    pub members: BTreeMap<u64, MemberView>,
    /// The entry first applied at each index, by any member.
    pub applied: BTreeMap<u64, AppliedEntry>,
    /// Every watch registration of every member incarnation.
    pub watches: Vec<WatchSegment>,
    /// Safety violations seen while the run went on (state-machine safety).
    pub violations: Vec<String>,
}

/// The observer, shared by all hosts of one run and the test.
pub type Observer = Arc<Mutex<Observed>>;

impl Observed {
    /// Records that `member` applied `entry` at `index`: every member must apply the
    /// same entry at the same index (Raft's state-machine safety), restarts included.
    pub fn record_apply(&mut self, member: u64, index: u64, entry: AppliedEntry) {
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
        let view = self.member(member);
        view.applied = view.applied.max(index);
    }

    /// The view of `member`.
    pub fn member(&mut self, member: u64) -> &mut MemberView {
        self.members.entry(member).or_default()
    }
}
