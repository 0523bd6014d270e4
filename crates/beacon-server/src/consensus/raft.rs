//! The production [`Consensus`]: a `beacon_raft::RaftNode`.

use std::path::{Path, PathBuf};

use beacon_raft::{ProposeError, RaftNode};
use beacon_store::Command;

use super::{
    CaughtUpFuture, Committed, Consensus, ConsensusStatus, ProposeFailure, ProposeFuture,
    SharedStore,
};

/// Adapts a Raft node to the HTTP layer.
pub struct RaftConsensus {
    node: RaftNode,
    /// The node's data directory, whose size Status reports...
    data_dir: PathBuf,
    /// ...with its `--wal-dir`'s, when the log database lives there.
    wal_dir: Option<PathBuf>,
    /// The shortest lease TTL, in seconds.
    min_lease_ttl: i64,
}

impl RaftConsensus {
    /// Wraps a node opened on `data_dir`, with its heartbeat interval and election
    /// timeout (which set the shortest lease TTL).
    pub fn new(
        node: RaftNode,
        data_dir: PathBuf,
        heartbeat_interval_ms: u64,
        election_timeout_ms: u64,
    ) -> Self {
        RaftConsensus {
            node,
            data_dir,
            wal_dir: None,
            min_lease_ttl: super::min_lease_ttl(heartbeat_interval_ms, election_timeout_ms),
        }
    }

    /// The same, with its log database in `wal_dir` (`--wal-dir`).
    pub fn with_wal_dir(mut self, wal_dir: Option<PathBuf>) -> Self {
        self.wal_dir = wal_dir;
        self
    }
}

/// Bytes in the files under `dir`, as far as they can be read (a file removed while
/// counting counts nothing).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

impl Consensus for RaftConsensus {
    fn store(&self) -> &SharedStore {
        self.node.store()
    }

    fn mvcc(&self) -> &beacon_raft::keyspace::SharedMvcc {
        self.node.mvcc()
    }

    fn read_index(&self, timeout: std::time::Duration) -> super::ReadIndexFuture<'_> {
        Box::pin(self.node.read_index(timeout))
    }

    fn v3_revisions(&self) -> tokio::sync::watch::Receiver<i64> {
        self.node.v3_revisions()
    }

    fn min_lease_ttl(&self) -> i64 {
        self.min_lease_ttl
    }

    fn read_wait(&self) -> Option<CaughtUpFuture<'_>> {
        if self.node.is_caught_up() {
            return None;
        }
        Some(Box::pin(async move {
            self.node
                .caught_up()
                .await
                .map_err(|_| ProposeFailure::Timeout)
        }))
    }

    fn propose(&self, cmd: Command) -> ProposeFuture<'_> {
        // The node finds the leader and follows it when it moves (`RaftNode::propose`);
        // the caller's request timeout bounds the wait.
        Box::pin(async move {
            match self.node.propose(cmd).await {
                Ok(p) => Ok(Committed {
                    applied: p.applied,
                    raft_index: p.raft_index,
                    raft_term: p.raft_term,
                }),
                // No leader turned up while the node looked for one (for its forwarding
                // timeout, longer than the request timeout at etcd's default timings):
                // etcd's answer is a timeout.
                Err(ProposeError::NotLeader { leader_id: None }) => Err(ProposeFailure::Timeout),
                Err(ProposeError::NotLeader { leader_id: Some(_) }) => {
                    Err(ProposeFailure::Other("not leader".into()))
                }
                Err(ProposeError::Discarded { .. }) => {
                    Err(ProposeFailure::Other("leader changed".into()))
                }
                Err(ProposeError::Stopped) => Err(ProposeFailure::Stopped),
                // The leader could not be reached: etcd's answer when a proposal gets no
                // result is a timeout.
                Err(ProposeError::Forward(e)) => {
                    tracing::warn!(error = %e, "forwarding a proposal to the leader");
                    Err(ProposeFailure::Timeout)
                }
                Err(e @ ProposeError::Fatal(_)) => Err(ProposeFailure::Other(e.to_string())),
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
                is_learner: m.member.learner,
            })
            .collect()
    }

    fn is_learner(&self) -> bool {
        self.node.is_learner()
    }

    fn change_members(&self, change: beacon_raft::MemberChange) -> super::MembersFuture<'_> {
        Box::pin(self.node.change_members(change))
    }

    fn move_leader(
        &self,
        target: u64,
        timeout: std::time::Duration,
    ) -> super::MoveLeaderFuture<'_> {
        Box::pin(self.node.move_leader(target, timeout))
    }

    fn backup_file(&self, timeout: std::time::Duration) -> super::BackupFuture<'_> {
        Box::pin(self.node.backup_file(timeout))
    }

    fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.data_dir) + self.wal_dir.as_deref().map_or(0, dir_bytes)
    }

    fn follower_stats(&self) -> std::collections::BTreeMap<u64, beacon_raft::FollowerStats> {
        self.node.follower_stats()
    }

    fn now_ns(&self) -> i64 {
        self.node.now_ns()
    }

    fn status(&self) -> ConsensusStatus {
        let s = self.node.status();
        ConsensusStatus {
            id: s.id,
            leader_id: s.leader_id,
            term: s.term,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
        }
    }
}
