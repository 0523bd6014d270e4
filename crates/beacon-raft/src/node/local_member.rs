//! The node as the peer server sees it: `RaftNode`'s `LocalMember` impl, which hands
//! each accepted message to openraft and makes forwarded proposals and membership
//! changes here. Apart from `node.rs` because it is the transport's view of the node,
//! one trait method per peer API call.

use std::sync::atomic::Ordering;

use beacon_store::Command;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use tokio::time::Instant;

use super::RaftNode;
use crate::error::{MembershipError, ProposeError};
use crate::membership;
use crate::peer::LocalMember;
use crate::snapshot_file::SnapshotDir;
use crate::types::{
    LogId, MemberChange, MemberInfo, NodeId, Proposed, Snapshot, StoredMembership, TypeConfig, Vote,
};

/// The node as the peer server sees it: each accepted message goes to openraft, a
/// forwarded proposal or membership change is made here, and a removal notice is
/// checked with its sender.
impl LocalMember for RaftNode {
    fn id(&self) -> NodeId {
        self.inner.id
    }

    fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    fn is_removed(&self, id: NodeId) -> bool {
        RaftNode::is_removed(self, id)
    }

    /// A member that joins a running cluster has no membership until the leader's first
    /// append, and cannot tell its leader's id beforehand (`--initial-cluster` derives
    /// only the bootstrapped members' ids, not those added later), so until then any
    /// sender of its cluster is taken.
    fn knows_member(&self, id: NodeId) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        membership.nodes().next().is_none() || membership.get_node(&id).is_some()
    }

    fn proposal_bytes_max(&self) -> usize {
        self.inner.proposal_bytes_max
    }

    fn members(&self) -> Vec<MemberInfo> {
        RaftNode::members(self)
    }

    fn hash_kv(&self, revision: i64) -> Result<crate::peer::PeerHashKv, String> {
        let mvcc = self
            .mvcc()
            .read()
            .map_err(|_| "beacon: the v3 keyspace failed".to_string())?;
        crate::peer::PeerHashKv::of(&mvcc, revision)
    }

    fn applied_and_vote(&self) -> (Option<LogId>, Vote) {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        (m.last_applied, m.vote)
    }

    fn membership(&self) -> StoredMembership {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        StoredMembership::clone(&m.membership_config)
    }

    async fn append(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>> {
        let reply = self.inner.raft.append_entries(rpc).await;
        if crate::peer::from_leader(&reply) {
            self.inner.contact.heard();
        }
        reply
    }

    async fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>> {
        let reply = self.inner.raft.vote(rpc).await;
        // Granting a vote restarts the count, as in etcd: the candidate may win.
        if matches!(&reply, Ok(r) if r.vote_granted) {
            self.inner.contact.heard();
        }
        reply
    }

    async fn pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>> {
        self.inner.raft.pre_vote(rpc).await
    }

    async fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> Result<TransferLeaderResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.inner.raft.handle_transfer_leader(req).await
    }

    async fn install_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> Result<SnapshotResponse<TypeConfig>, String> {
        let last = snapshot.meta.last_log_id.map_or(0, |id| id.index);
        let reply = self
            .inner
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| e.to_string())?;
        // Taken: this member's vote is now the sender's (a refusal answers a higher one).
        if reply.vote != vote {
            return Ok(reply);
        }
        self.inner.contact.heard();
        // The leader takes this answer as "holds every entry up to `last`", for good.
        // openraft gives it at once, without installing, for a snapshot no newer than
        // the commit it knows, counting on entries it accepted, and even applied, that
        // the log may not have synced yet: a crash then would take them back
        // (beacon-sim seed 44: the leader then met a conflict below what it had
        // counted as held, and stopped). So the answer waits for the log's sync, and
        // is refused unless the log or an installed snapshot now covers `last`.
        self.inner
            .log
            .sync_written()
            .await
            .map_err(|e| e.to_string())?;
        let synced = self.inner.log.synced_index().load(Ordering::Acquire);
        let installed = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow_watched();
            m.snapshot.as_ref().map_or(0, |id| id.index)
        };
        if synced < last && installed < last {
            return Err(format!(
                "the snapshot up to entry {last} is not installed here, and the log is synced only to {synced}"
            ));
        }
        Ok(reply)
    }

    async fn propose_here(&self, cmd: Command) -> Result<Proposed, ProposeError> {
        RaftNode::propose_here(self, cmd).await
    }

    async fn propose_many_here(&self, cmds: Vec<Command>) -> Vec<Result<Proposed, ProposeError>> {
        RaftNode::propose_many_here(self, cmds).await
    }

    async fn read_index_here(&self) -> Option<u64> {
        self.leader_read_index().await
    }

    async fn change_members_here(&self, change: MemberChange) -> Result<(), MembershipError> {
        if self.status().leader_id != Some(self.inner.id) {
            return Err(MembershipError::NotLeader);
        }
        let deadline = Instant::now() + crate::peer::FORWARD_TIMEOUT;
        self.change_here(&change, deadline).await
    }

    /// The election timer's `Contact` alone, so that a connection outliving this
    /// member's shutdown holds nothing of its storage.
    fn on_leader_connection_closed(&self) -> Box<dyn FnOnce() + Send> {
        let contact = std::sync::Arc::clone(&self.inner.contact);
        Box::new(move || contact.connection_lost())
    }

    /// Stops this member if `from` confirms it: its member list, read from its peer URL
    /// as this member's membership records it, lacks this member.
    fn removal_notice(&self, from: NodeId) {
        let node = self.clone();
        tokio::spawn(async move {
            let Some(url) = node.peer_url_of(from) else {
                return;
            };
            let (http, cluster_id, id) = (&node.inner.http, node.inner.cluster_id, node.inner.id);
            let peer = format!("{from:x}");
            match membership::removal_confirmed(http, &url, cluster_id, id).await {
                Ok(true) => node.mark_removed(),
                Ok(false) => tracing::warn!(
                    %peer,
                    "ignored a removal notice the sender's member list does not confirm"
                ),
                Err(error) => tracing::warn!(
                    %peer,
                    %error,
                    "could not confirm a removal notice; ignored it"
                ),
            }
        });
    }

    fn snapshot_dir(&self) -> &SnapshotDir {
        &self.inner.snapshots
    }

    fn try_receive_snapshot(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.inner.receiving_snapshot.try_lock().ok()
    }
}
