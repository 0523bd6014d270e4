//! Test-only instruments a simulation hands the node through its seams: an observer of
//! what the state machine applies, builds and installs (so a run can check that every
//! replica applied the same entry at each index), and deliberately injected bugs (so a
//! run can show that its checks catch them). Production sets neither.

/// Told what the state machine does, as it does it. Called on openraft's state-machine
/// task: it must not block.
pub trait NodeObserver: Send + Sync + 'static {
    /// The entry at `index`, of `term`, was applied; `log_id` and `payload` as text
    /// (the payload's JSON), to compare across members.
    fn applied(&self, index: u64, term: u64, log_id: String, payload: String);
    /// A snapshot was built from the store.
    fn snapshot_built(&self);
    /// A snapshot from the leader was installed.
    fn snapshot_installed(&self);
}

/// A bug the node can be told to have, so that a simulation proves it would catch it
/// (its negative control). Never set outside a simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InjectedBug {
    /// `propose` answers a quorum read from this member's own store instead of
    /// through the log, as if a plain read were linearizable.
    LocalQuorumReads,
    /// `LogStore::purge` deletes the purged entries itself, before it returns, as it did
    /// before the purge worker (`log_purge`): inside openraft's log I/O, so that every
    /// append waits behind the deletion. The simulation's stall check must count those
    /// waits.
    InlinePurge,
}
