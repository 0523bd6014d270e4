//! The Raft network, behind openraft's factory trait so the cluster transport can replace
//! it without touching the rest of the crate.
//!
//! A single-member cluster never sends an RPC; should openraft try (it would only after a
//! membership change), every call reports the peer `Unreachable`, which makes openraft
//! back off and retry rather than fail.

use std::future::Future;

use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RaftNetworkV2};

use crate::types::{Node, NodeId, Snapshot, SnapshotData, TypeConfig, Vote};

/// Builds a client per peer; the peer's address is `node.addr` (its peer URL).
#[derive(Debug, Clone, Default)]
pub struct NetworkFactory;

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
        }
    }
}

/// A client for one peer; without a transport, every call fails `Unreachable`.
#[derive(Debug, Clone)]
pub struct PeerClient {
    target: NodeId,
    addr: String,
}

impl PeerClient {
    fn unreachable(&self) -> Unreachable<TypeConfig> {
        Unreachable::from_string(format!(
            "no raft transport yet: cannot reach member {:x} at {}",
            self.target, self.addr
        ))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn pre_vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        // The default grants the pre-vote; an unreachable peer must not.
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(self.unreachable()))
    }
}
