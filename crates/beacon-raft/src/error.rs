//! Errors of the public API: opening a node (and reading its snapshot files),
//! proposing to it, changing its members, shutting it down. Part of the bottom layer,
//! beside `types`: storage reports them, and the transport carries proposal and
//! membership errors between members.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use openraft::errors::{ClientWriteError, Fatal, RaftError};

use crate::types::TypeConfig;

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
    /// The log database (fjall) refused to open the Raft log (locked, unreadable, or
    /// corrupt beyond a torn tail).
    #[error("raft log at {path} cannot be opened: {source}")]
    LogOpen {
        /// The fjall directory.
        path: PathBuf,
        /// What the log database reported.
        source: crate::disk::DbError,
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

impl From<RaftError<TypeConfig, ClientWriteError<TypeConfig>>> for ProposeError {
    /// What openraft's refusal of a write means for the proposer.
    fn from(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> ProposeError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader {
                leader_id: f.leader_id,
            },
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
                ProposeError::Discarded {
                    leader_id: f.leader_id,
                }
            }
            RaftError::APIError(e) => ProposeError::Fatal(e.to_string()),
            RaftError::Fatal(Fatal::Stopped) => ProposeError::Stopped,
            RaftError::Fatal(f) => ProposeError::Fatal(f.to_string()),
        }
    }
}

/// Why a membership change was refused or did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(from = "MembershipErrorWire", into = "MembershipErrorWire")]
pub enum MembershipError {
    /// The id is already a member.
    #[error("membership: ID exists")]
    IdExists,
    /// Another member already has one of the peer URLs.
    #[error("membership: peerURL exists")]
    PeerUrlExists,
    /// No member has this id.
    #[error("membership: ID not found")]
    IdNotFound,
    /// The id belonged to a member that was removed; it cannot come back.
    #[error("membership: ID removed")]
    IdRemoved,
    /// The change would leave no voter.
    #[error("membership: the last voter cannot be removed")]
    LastVoter,
    /// A learner is to be added while the cluster has one (etcd allows one).
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// The member to promote votes already.
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    /// The learner to promote has not caught up with the leader's log.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// `--strict-reconfig-check`: fewer members published than the change needs
    /// (`reconfig`).
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// `--strict-reconfig-check`: members the change needs have not all been connected
    /// for the last 5 s (`reconfig`).
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// The member asked to make the change does not lead (any more), or the leader
    /// could not be reached before anything was sent: the sender looks for the leader
    /// and asks again.
    #[error("etcdserver: {NOT_LEADER_WIRE}")]
    NotLeader,
    /// No leader took the change in time (or it was lost in a leader change): it may
    /// or may not have happened.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The node is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// openraft refused the change for another reason.
    #[error("etcdserver: {0}")]
    Other(String),
}

/// How [`MembershipError::NotLeader`] travels between members: as `Other` with this
/// text, the form members sent before the variant existed, so that members of both
/// kinds understand each other while a cluster is upgraded one member at a time.
const NOT_LEADER_WIRE: &str = "not the leader";

/// The peer protocol's form of [`MembershipError`] (see [`NOT_LEADER_WIRE`]).
#[derive(serde::Serialize, serde::Deserialize)]
enum MembershipErrorWire {
    IdExists,
    PeerUrlExists,
    IdNotFound,
    IdRemoved,
    LastVoter,
    Timeout,
    Stopped,
    Other(String),
    // Learners came later; appended so that the earlier variants keep their form.
    TooManyLearners,
    NotLearner,
    LearnerNotReady,
    // And the strict reconfiguration check later still.
    NotEnoughStartedMembers,
    Unhealthy,
}

impl From<MembershipError> for MembershipErrorWire {
    fn from(e: MembershipError) -> MembershipErrorWire {
        match e {
            MembershipError::IdExists => MembershipErrorWire::IdExists,
            MembershipError::PeerUrlExists => MembershipErrorWire::PeerUrlExists,
            MembershipError::IdNotFound => MembershipErrorWire::IdNotFound,
            MembershipError::IdRemoved => MembershipErrorWire::IdRemoved,
            MembershipError::LastVoter => MembershipErrorWire::LastVoter,
            MembershipError::TooManyLearners => MembershipErrorWire::TooManyLearners,
            MembershipError::NotLearner => MembershipErrorWire::NotLearner,
            MembershipError::LearnerNotReady => MembershipErrorWire::LearnerNotReady,
            MembershipError::NotEnoughStartedMembers => {
                MembershipErrorWire::NotEnoughStartedMembers
            }
            MembershipError::Unhealthy => MembershipErrorWire::Unhealthy,
            MembershipError::NotLeader => MembershipErrorWire::Other(NOT_LEADER_WIRE.into()),
            MembershipError::Timeout => MembershipErrorWire::Timeout,
            MembershipError::Stopped => MembershipErrorWire::Stopped,
            MembershipError::Other(why) => MembershipErrorWire::Other(why),
        }
    }
}

impl From<MembershipErrorWire> for MembershipError {
    fn from(e: MembershipErrorWire) -> MembershipError {
        match e {
            MembershipErrorWire::IdExists => MembershipError::IdExists,
            MembershipErrorWire::PeerUrlExists => MembershipError::PeerUrlExists,
            MembershipErrorWire::IdNotFound => MembershipError::IdNotFound,
            MembershipErrorWire::IdRemoved => MembershipError::IdRemoved,
            MembershipErrorWire::LastVoter => MembershipError::LastVoter,
            MembershipErrorWire::TooManyLearners => MembershipError::TooManyLearners,
            MembershipErrorWire::NotLearner => MembershipError::NotLearner,
            MembershipErrorWire::LearnerNotReady => MembershipError::LearnerNotReady,
            MembershipErrorWire::NotEnoughStartedMembers => {
                MembershipError::NotEnoughStartedMembers
            }
            MembershipErrorWire::Unhealthy => MembershipError::Unhealthy,
            MembershipErrorWire::Other(why) if why == NOT_LEADER_WIRE => MembershipError::NotLeader,
            MembershipErrorWire::Timeout => MembershipError::Timeout,
            MembershipErrorWire::Stopped => MembershipError::Stopped,
            MembershipErrorWire::Other(why) => MembershipError::Other(why),
        }
    }
}

/// What is wrong with a snapshot file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// The file could not be read.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// Shorter than an empty snapshot.
    #[error("file is {len} bytes, too short for a snapshot (at least {min})")]
    TooShort {
        /// Actual length.
        len: u64,
        /// Minimum length.
        min: u64,
    },
    /// Not written by beacon.
    #[error("not a beacon snapshot (bad magic bytes)")]
    BadMagic,
    /// Written by a newer beacon.
    #[error("unsupported snapshot format version {0}")]
    Version(u32),
    /// The header's lengths disagree with the file size: truncated or padded.
    #[error("file is {actual} bytes but its header describes {expected} (truncated or padded)")]
    Length {
        /// Size the header implies.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// The bytes changed after they were written.
    #[error("checksum mismatch: stored {stored:016x}, computed {computed:016x}")]
    Checksum {
        /// Checksum in the file.
        stored: u64,
        /// Checksum of the bytes read.
        computed: u64,
    },
    /// The checksum holds but the meta does not decode (a bug, not bit rot).
    #[error("snapshot meta does not decode: {0}")]
    Meta(#[from] serde_json::Error),
}

/// Why [`RaftNode::move_leader`](crate::RaftNode::move_leader) did not move it; the
/// texts are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveLeaderError {
    /// Only the leader hands leadership over.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// The target is not a voting member.
    #[error("etcdserver: bad leader transferee")]
    BadTransferee,
    /// The target did not take over in time (it may yet).
    #[error("etcdserver: request timed out, leader transfer took too long")]
    Timeout,
    /// The node is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
}

/// Why [`RaftNode::backup_file`](crate::RaftNode::backup_file) found no file.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The snapshot was not written in time.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The node is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// The snapshot directory could not be read.
    #[error("the snapshot directory: {0}")]
    Io(std::io::Error),
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

#[cfg(test)]
mod tests {
    use super::MembershipError;

    #[test]
    fn not_leader_travels_as_members_before_it_sent_it() {
        let json = serde_json::to_string(&MembershipError::NotLeader).unwrap();
        assert_eq!(json, r#"{"Other":"not the leader"}"#);
        let back: MembershipError = serde_json::from_str(&json).unwrap();
        assert_eq!(back, MembershipError::NotLeader);
        for e in [
            MembershipError::IdRemoved,
            MembershipError::Other("x".into()),
        ] {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<MembershipError>(&json).unwrap(), e);
        }
        assert_eq!(
            serde_json::to_string(&MembershipError::Timeout).unwrap(),
            r#""Timeout""#
        );
    }
}
