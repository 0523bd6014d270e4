//! beacon-raft: every write goes through openraft before it reaches the store.
//!
//! The Raft log, vote and log markers live in fjall (`<data-dir>/member/raft`), the
//! store is snapshotted to checksummed files (`<data-dir>/member/snap`), and
//! [`RaftNode`] ties them to an openraft instance. Members talk over HTTP on their peer
//! URLs ([`peer`]): openraft's messages, and proposals a follower forwards to the leader.
//!
//! The modules form one-way layers, each importing only those below it: the vocabulary
//! (`types`, `error`, `config`), storage (the log store, the state machine, snapshot
//! files and markers), the transport (`peer`), the node's parts (`start`, `membership`,
//! `route`), and the node (`node`), which picks the storage and the transport.
//!
//! Call [`RaftNode::shutdown`] before dropping the last handle: openraft's tasks keep
//! running, holding the fjall database open, until it is shut down.

mod committed_marker;
mod config;
mod coverage;
pub mod disk;
mod entry_cache;
mod error;
mod log_db;
mod log_store;
mod log_sync;
mod membership;
mod node;
pub mod peer;
mod route;
mod seams;
mod snapshot_file;
mod start;
mod state_machine;
#[cfg(any(test, feature = "storage-suite"))]
pub mod storage_suite;
mod types;

#[cfg(test)]
mod tests;

pub use config::RaftConfig;
pub use error::{MembershipError, OpenError, ProposeError, ShutdownError, SnapshotFileError};
pub use node::{RaftNode, RaftStatus};
pub use peer::FollowerStats;
pub use seams::Seams;
pub use types::{
    Member, MemberChange, MemberInfo, NodeId, Proposed, Request, Response, SharedStore, TypeConfig,
};
