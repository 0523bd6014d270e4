//! The member the peer server serves, as the server sees it: who it is, whom it
//! accepts, and what it does with a message once accepted. The node implements it and
//! hands itself to [`router`](super::router), so the transport sits below the node and
//! never names it; another implementation (a test double, a simulated member) can be
//! served the same way.

use std::future::Future;

use beacon_store::Command;
use openraft::errors::{Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};

use crate::error::{MembershipError, ProposeError};
use crate::snapshot_file::SnapshotDir;
use crate::types::{
    LogId, MemberChange, MemberInfo, NodeId, Proposed, Snapshot, StoredMembership, TypeConfig, Vote,
};

/// Whether openraft took an append's sender for this member's leader: any answer but
/// "higher vote". The node counts its election timeout from such an append, and the
/// peer server watches the connection it came on.
pub(crate) fn from_leader(
    reply: &Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>,
) -> bool {
    matches!(reply, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_)))
}

/// What the peer server asks of the local member. Cheap to clone: every request gets a
/// copy.
pub trait LocalMember: Clone + Send + Sync + 'static {
    /// This member's id.
    fn id(&self) -> NodeId;

    /// The cluster id, which every peer request must name.
    fn cluster_id(&self) -> u64;

    /// Whether member `id` was removed from the cluster (its messages are refused 410).
    fn is_removed(&self, id: NodeId) -> bool;

    /// Whether member `id` may send to this one (it is in the membership, or this
    /// member has none yet).
    fn knows_member(&self, id: NodeId) -> bool;

    /// The most value bytes a forwarded proposal may carry: what the client port takes.
    fn proposal_bytes_max(&self) -> usize;

    /// Every member, voters and learners, sorted by id.
    fn members(&self) -> Vec<MemberInfo>;

    /// The membership this member knows now, with the log position that set it.
    fn membership(&self) -> StoredMembership;

    /// The last log position applied here, and the vote this member holds now.
    fn applied_and_vote(&self) -> (Option<LogId>, Vote);

    /// Hands an append to the local Raft.
    fn append(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> impl Future<Output = Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>> + Send;

    /// Hands a vote request to the local Raft.
    fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> impl Future<Output = Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>> + Send;

    /// Hands a pre-vote request to the local Raft.
    fn pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> impl Future<Output = Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>> + Send;

    /// Hands a leadership transfer to the local Raft.
    fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> impl Future<Output = Result<TransferLeaderResponse<TypeConfig>, Fatal<TypeConfig>>> + Send;

    /// Installs a snapshot the server received and verified, answering only once this
    /// member durably holds everything up to the snapshot's last entry; an error is
    /// the text of a 503, after which the sender tries again.
    fn install_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<SnapshotResponse<TypeConfig>, String>> + Send;

    /// Proposes a follower's forwarded command here, where it must lead.
    fn propose_here(
        &self,
        cmd: Command,
    ) -> impl Future<Output = Result<Proposed, ProposeError>> + Send;

    /// Proposes a follower's batch of forwarded commands here, where it must lead, as
    /// one submission, with one answer per command, in order.
    fn propose_many_here(
        &self,
        cmds: Vec<Command>,
    ) -> impl Future<Output = Vec<Result<Proposed, ProposeError>>> + Send;

    /// Makes a follower's forwarded membership change here; a member that does not lead
    /// answers [`MembershipError::NotLeader`].
    fn change_members_here(
        &self,
        change: MemberChange,
    ) -> impl Future<Output = Result<(), MembershipError>> + Send;

    /// On the leader, confirms with a quorum that it still leads (ReadIndex) and
    /// answers the log index a follower must have applied before it reads; `None` when
    /// this member does not lead or could not confirm it.
    fn read_index_here(&self) -> impl Future<Output = Option<u64>> + Send;

    /// Member `from` says this member was removed: a hint, which the member checks
    /// with `from` itself before it believes it.
    fn removal_notice(&self, from: NodeId);

    /// What to run when a connection that carried appends this member took from its
    /// leader closes: a hint that the leader's process died, which the election timer
    /// weighs. It holds only what it needs, not the member: a connection may outlive
    /// the member's shutdown.
    fn on_leader_connection_closed(&self) -> Box<dyn FnOnce() + Send>;

    /// The keyspace's hash at `revision` (0: the current one), or the keyspace's
    /// refusal in its words (a compacted or future revision).
    fn hash_kv(&self, revision: i64) -> Result<super::PeerHashKv, String>;

    /// The snapshot directory, where a snapshot from the leader is received.
    fn snapshot_dir(&self) -> &SnapshotDir;

    /// The lock a snapshot receipt holds; `None` while another one is under way.
    fn try_receive_snapshot(&self) -> Option<tokio::sync::MutexGuard<'_, ()>>;
}
