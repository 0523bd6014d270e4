//! Errors of the public API: opening a node, proposing to it, shutting it down.

use std::path::PathBuf;
use std::time::Duration;

use crate::snapshot_file::SnapshotFileError;

/// Why [`RaftNode::open`](crate::RaftNode::open) failed. Each disk problem names the
/// path and what is wrong with it, so an operator can act on the message alone.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A data directory could not be created or read.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// fjall refused to open the Raft log (locked, unreadable, or corrupt beyond a torn tail).
    #[error("raft log at {path} cannot be opened: {source}")]
    LogOpen {
        /// The fjall directory.
        path: PathBuf,
        /// What fjall reported.
        source: fjall::Error,
    },
    /// The Raft log opened but its contents are inconsistent or undecodable.
    #[error("raft log at {path} is corrupt: {detail}")]
    LogCorrupt {
        /// The fjall directory.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The newest snapshot file is damaged.
    #[error("snapshot {path} is corrupt: {source}")]
    SnapshotCorrupt {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        source: SnapshotFileError,
    },
    /// The newest snapshot's checksum holds but the store rejected its contents.
    #[error("snapshot {path} cannot be loaded into the store: {source}")]
    SnapshotRecover {
        /// The snapshot file.
        path: PathBuf,
        /// The store's reason.
        source: beacon_store::RecoverError,
    },
    /// The snapshot and the log end before what this member knew committed, or have a
    /// hole: acknowledged writes would be lost by starting.
    #[error("data directory incomplete at {path}: entries {first}..={last} are missing: {detail}")]
    MissingEntries {
        /// The directory whose files are missing entries (`member/raft` or `member/snap`).
        path: PathBuf,
        /// First missing index.
        first: u64,
        /// Last missing index.
        last: u64,
        /// What was found and what the operator can do.
        detail: String,
    },
    /// `member/committed` is unreadable or damaged.
    #[error("committed marker {path} cannot be used: {detail}; start with --force-new-cluster to ignore it")]
    Marker {
        /// The marker file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// `--force-new-cluster` was given on a member that shares its cluster with other
    /// voters; Beacon does not yet rewrite the membership to this member alone as etcd does.
    #[error(
        "--force-new-cluster on {path}: the membership has voters {voters:x?}, not only this member; \
         shrinking a cluster to one member is not supported: remove the others first, or restore a backup"
    )]
    ForceNewCluster {
        /// The Raft log directory.
        path: PathBuf,
        /// The voters recorded.
        voters: Vec<u64>,
    },
    /// The data directory belongs to a cluster this node id is not a member of.
    #[error(
        "data directory {path} has members {members:?}, which do not include node id {node_id:x}"
    )]
    NotAMember {
        /// The data directory.
        path: PathBuf,
        /// This node's id.
        node_id: u64,
        /// The voters recorded in the log or snapshot.
        members: Vec<u64>,
    },
    /// This member was removed from the cluster; its data directory must be removed.
    #[error("member {node_id:x} has been permanently removed from the cluster")]
    Removed {
        /// This member's id.
        node_id: u64,
    },
    /// The timing or snapshot settings were rejected by openraft.
    #[error("invalid raft configuration: {0}")]
    Config(#[from] openraft::ConfigError),
    /// openraft failed while starting (it read the storage and found a problem).
    #[error("raft failed to start: {0}")]
    Start(String),
    /// The single-member cluster did not elect this node in time.
    #[error("node {node_id:x} did not become leader within {waited:?}: {detail}")]
    NoLeader {
        /// This node's id.
        node_id: u64,
        /// How long open waited.
        waited: Duration,
        /// What openraft reported.
        detail: String,
    },
}

/// Why a proposal did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ProposeError {
    /// This node is not the leader; nothing was appended. Retry on `leader_id`.
    #[error("not the leader (leader: {leader_id:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader_id: Option<u64>,
    },
    /// The entry was appended but then discarded on a leader change: it may or may not
    /// commit elsewhere, so a blind retry may apply twice.
    #[error("proposal discarded on leader change (leader: {leader_id:?}); outcome unknown")]
    Discarded {
        /// The new leader, if known.
        leader_id: Option<u64>,
    },
    /// The node is shutting down or has shut down.
    #[error("raft node stopped")]
    Stopped,
    /// Raft stopped on an unrecoverable error (storage failure, panic); the node must restart.
    #[error("raft fatal error: {0}")]
    Fatal(String),
    /// A follower could not get its proposal to the leader (or the leader's answer back);
    /// the outcome is unknown, as after a timeout.
    #[error("forwarding to the leader: {0}")]
    Forward(String),
}

/// Why [`RaftNode::shutdown`](crate::RaftNode::shutdown) did not finish cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// The openraft core task could not be joined.
    #[error("raft core did not stop cleanly: {0}")]
    Raft(String),
    /// The final sync of the Raft log failed.
    #[error("final sync of the raft log at {path} failed: {source}")]
    Persist {
        /// The fjall directory.
        path: PathBuf,
        /// What fjall reported.
        source: std::io::Error,
    },
}
