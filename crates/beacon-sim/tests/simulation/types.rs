//! The simulation's openraft type configuration: Beacon's log payload, apply result and
//! member record, with a runtime whose randomness (election timeout jitter, tick phase)
//! comes from a seed instead of the thread's RNG.

use std::sync::Arc;
use std::time::Duration;

use beacon_raft::{Member, RaftConfig, Request, Response};
use openraft::rt::deterministic_rng::DeterministicRng;
use openraft_rt_tokio::TokioRuntime;

/// tokio (turmoil's per-host runtime) with openraft's RNG drawn from a task-local seed.
pub type SimRuntime = DeterministicRng<TokioRuntime>;

openraft::declare_raft_types!(
    /// Beacon's types ([`beacon_raft::TypeConfig`]) on the seeded runtime.
    pub SimConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = Member,
        AsyncRuntime = SimRuntime,
);

/// A log position.
pub type LogId = openraft::type_config::alias::LogIdOf<SimConfig>;
/// A log entry.
pub type Entry = openraft::type_config::alias::EntryOf<SimConfig>;
/// A persisted vote.
pub type Vote = openraft::type_config::alias::VoteOf<SimConfig>;
/// The membership with the log id that introduced it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<SimConfig>;
/// Which log position and membership a snapshot covers.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<SimConfig>;
/// A snapshot: meta plus `Store::save` bytes.
pub type Snapshot = openraft::type_config::alias::SnapshotOf<SimConfig, Vec<u8>>;
/// The openraft handle of one simulated member.
pub type Raft = openraft::Raft<SimConfig, crate::state_machine::SimStateMachine>;

/// Raft timing and snapshot settings of a run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Leader heartbeat period.
    pub heartbeat_ms: u64,
    /// etcd's election timeout (openraft draws from [t/2, t), see `RaftConfig`).
    pub election_ms: u64,
    /// Applied entries between snapshots; small, so that snapshots are built, sent to
    /// lagging members and installed in every run.
    pub snapshot_count: u64,
}

impl Timing {
    /// Production's heartbeat and election timeout (etcd's defaults); a snapshot every
    /// 24 entries instead of 100000, so that runs build, send and install them.
    pub const PRODUCTION: Timing = Timing {
        heartbeat_ms: 100,
        election_ms: 1000,
        snapshot_count: 24,
    };

    /// The election timeout as a duration.
    pub fn election(&self) -> Duration {
        Duration::from_millis(self.election_ms)
    }
}

/// openraft's config exactly as a Beacon member builds it (`RaftConfig::openraft_config`),
/// from `RaftConfig::new` with only the timing and snapshot count changed.
pub fn openraft_config(id: u64, timing: Timing) -> Arc<openraft::Config> {
    let mut config = RaftConfig::new("sim-data", id, crate::network::peer_url(id));
    config.heartbeat_interval_ms = timing.heartbeat_ms;
    config.election_timeout_ms = timing.election_ms;
    config.snapshot_count = timing.snapshot_count;
    Arc::new(
        config
            .openraft_config()
            .expect("Beacon's settings are a valid openraft config"),
    )
}

/// Converts any error into the `io::Error` openraft's storage traits return.
pub fn io_other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
