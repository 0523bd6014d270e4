//! beacon-raft: every write goes through openraft before it reaches the store.
//!
//! The Raft log, vote and log markers live in fjall (`<data-dir>/member/raft`, or
//! `--wal-dir`), the
//! store is snapshotted to checksummed files (`<data-dir>/member/snap`), and
//! [`RaftNode`] ties them to an openraft instance. Members talk over HTTP on their peer
//! URLs ([`peer`]): openraft's messages, and proposals a follower forwards to the leader.
//!
//! The modules form one-way layers, each importing only those below it: the vocabulary
//! (`types`, `error`, `config`, `runtime`, `clock`), storage (the log store, the state
//! machine, snapshot files and markers), the transport (`peer`), the node's parts
//! (`start`, `membership`, `route`, `expiry`, `election`), and the node (`node`), which picks the
//! storage and the transport from its `Seams`.
//!
//! Call [`RaftNode::shutdown`] before dropping the last handle: openraft's tasks keep
//! running, holding the fjall database open, until it is shut down.

mod applied;
pub mod backup;
mod clock;
mod committed_marker;
mod config;
mod coverage;
pub mod disk;
pub mod disk_metrics;
mod election;
mod entry_cache;
mod error;
mod expiry;
pub mod keyspace;
mod log_db;
mod log_purge;
mod log_store;
mod log_writer;
mod membership;
mod node;
mod observer;
pub mod peer;
mod reconfig;
mod route;
mod runtime;
mod seams;
mod snapshot_file;
mod start;
mod state_machine;
#[cfg(any(test, feature = "storage-suite"))]
pub mod storage_suite;
mod types;

#[cfg(test)]
mod tests;

pub use clock::{Clock, SystemClock, TokioClock};
pub use config::RaftConfig;
pub use error::{
    BackupError, MembershipError, MoveLeaderError, OpenError, ProposeError, ShutdownError,
    SnapshotFileError,
};
pub use node::{RaftNode, RaftStatus};
pub use observer::{InjectedBug, NodeObserver};
pub use peer::FollowerStats;
pub use runtime::{with_seed, BeaconRng, BeaconRuntime};
pub use seams::Seams;
pub use types::{
    Member, MemberChange, MemberInfo, NodeId, Proposed, Request, Response, SharedStore, TypeConfig,
};
