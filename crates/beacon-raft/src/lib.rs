//! beacon-raft: every write goes through openraft before it reaches the store.
//!
//! The Raft log, vote and log markers live in fjall (`<data-dir>/member/raft`), the
//! store is snapshotted to checksummed files (`<data-dir>/member/snap`), and
//! [`RaftNode`] ties them to an openraft instance. Members talk over HTTP on their peer
//! URLs ([`peer`]): openraft's messages, and proposals a follower forwards to the leader.
//!
//! Call [`RaftNode::shutdown`] before dropping the last handle: openraft's tasks keep
//! running, holding the fjall database open, until it is shut down.

mod committed_marker;
mod config;
mod coverage;
mod entry_cache;
mod error;
mod log_db;
mod log_store;
mod log_sync;
mod membership;
mod node;
pub mod peer;
mod snapshot_file;
mod state_machine;
mod types;

#[cfg(test)]
mod tests;

pub use config::RaftConfig;
pub use error::{OpenError, ProposeError, ShutdownError};
pub use membership::{MemberChange, MemberInfo, MembershipError};
pub use node::{Proposed, RaftNode, RaftStatus};
pub use peer::FollowerStats;
pub use snapshot_file::SnapshotFileError;
pub use types::{Member, NodeId, Request, Response, SharedStore, TypeConfig};
