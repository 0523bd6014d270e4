//! The production [`Consensus`]: a `beacon_raft::RaftNode`.

use std::time::Duration;

use beacon_raft::{ProposeError, RaftNode};
use beacon_store::Command;

use super::{Committed, Consensus, ConsensusStatus, ProposeFailure, ProposeFuture, SharedStore};

/// How long to wait before asking again while no leader is known.
const NO_LEADER_RETRY: Duration = Duration::from_millis(50);

/// Adapts a Raft node to the HTTP layer.
pub struct RaftConsensus {
    node: RaftNode,
}

impl RaftConsensus {
    /// Wraps an opened node.
    pub fn new(node: RaftNode) -> Self {
        RaftConsensus { node }
    }
}

impl Consensus for RaftConsensus {
    fn store(&self) -> &SharedStore {
        self.node.store()
    }

    fn propose(&self, cmd: Command) -> ProposeFuture<'_> {
        Box::pin(async move {
            loop {
                match self.node.propose(cmd.clone()).await {
                    Ok(p) => {
                        return Ok(Committed {
                            applied: p.applied,
                            raft_index: p.raft_index,
                            raft_term: p.raft_term,
                        })
                    }
                    // No leader yet (e.g. at startup): etcd waits for one until the
                    // request times out; the caller's timeout bounds this loop.
                    Err(ProposeError::NotLeader { leader_id: None }) => {
                        tokio::time::sleep(NO_LEADER_RETRY).await
                    }
                    Err(ProposeError::NotLeader { leader_id: Some(_) }) => {
                        return Err(ProposeFailure::Other("not leader".into()))
                    }
                    Err(ProposeError::Discarded { .. }) => {
                        return Err(ProposeFailure::Other("leader changed".into()))
                    }
                    Err(ProposeError::Stopped) => return Err(ProposeFailure::Stopped),
                    // The leader could not be reached: etcd's answer when a proposal
                    // gets no result is a timeout.
                    Err(ProposeError::Forward(e)) => {
                        tracing::warn!(error = %e, "forwarding a proposal to the leader");
                        return Err(ProposeFailure::Timeout);
                    }
                    Err(e @ ProposeError::Fatal(_)) => {
                        return Err(ProposeFailure::Other(e.to_string()))
                    }
                }
            }
        })
    }

    fn members(&self) -> Vec<crate::cluster::Member> {
        self.node
            .members()
            .into_iter()
            .map(|m| crate::cluster::Member {
                id: m.id,
                name: m.member.name,
                peer_urls: m.member.peer_urls,
                client_urls: m.member.client_urls,
            })
            .collect()
    }

    fn change_members(&self, change: beacon_raft::MemberChange) -> super::MembersFuture<'_> {
        Box::pin(self.node.change_members(change))
    }

    fn follower_stats(&self) -> std::collections::BTreeMap<u64, beacon_raft::FollowerStats> {
        self.node.follower_stats()
    }

    fn status(&self) -> ConsensusStatus {
        let s = self.node.status();
        ConsensusStatus {
            id: s.id,
            leader_id: s.leader_id,
            term: s.term,
            commit_index: s.commit_index,
        }
    }
}
