//! An in-memory stand-in for consensus: applies each command to the store (or the v3
//! keyspace, over values in memory) at once.
//! Used by the handler tests and usable by any test that needs a server without Raft.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use beacon_raft::keyspace::SharedMvcc;
use beacon_store::{Applied, Command, Encoded, Store};
use prost::Message;

use super::{Committed, Consensus, ConsensusStatus, ProposeFailure, ProposeFuture, SharedStore};

/// A single member that is always leader (unless told otherwise) and commits instantly.
pub struct MemoryConsensus {
    store: SharedStore,
    mvcc: SharedMvcc,
    revisions: tokio::sync::watch::Sender<i64>,
    id: u64,
    members: Vec<crate::cluster::Member>,
    raft_index: AtomicU64,
    leader: AtomicBool,
}

impl MemoryConsensus {
    /// A fresh empty store, led by member `id`.
    pub fn new(id: u64) -> Self {
        MemoryConsensus {
            store: Arc::new(RwLock::new(Store::new())),
            mvcc: Arc::default(),
            revisions: tokio::sync::watch::Sender::new(1),
            id,
            members: Vec::new(),
            raft_index: AtomicU64::new(1),
            leader: AtomicBool::new(true),
        }
    }

    /// The same, listing `members` as the cluster (which never changes).
    pub fn with_members(mut self, members: Vec<crate::cluster::Member>) -> Self {
        self.members = members;
        self
    }

    /// How many v3 watch streams follow the keyspace's revision (each holds a receiver).
    pub fn v3_revision_followers(&self) -> usize {
        self.revisions.receiver_count()
    }

    /// Pretends the leader is lost (or regained); proposals fail while it is.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
    }
}

impl Consensus for MemoryConsensus {
    fn store(&self) -> &SharedStore {
        &self.store
    }

    fn mvcc(&self) -> &SharedMvcc {
        &self.mvcc
    }

    fn read_index(&self, _: std::time::Duration) -> super::ReadIndexFuture<'_> {
        // Commands apply as they are proposed: every read here is up to date, while it
        // leads.
        Box::pin(std::future::ready(self.leader.load(Ordering::SeqCst)))
    }

    fn v3_revisions(&self) -> tokio::sync::watch::Receiver<i64> {
        self.revisions.subscribe()
    }

    fn propose(&self, cmd: Command) -> ProposeFuture<'_> {
        Box::pin(async move {
            if !self.leader.load(Ordering::SeqCst) {
                return Err(ProposeFailure::Timeout);
            }
            let raft_index = self.raft_index.fetch_add(1, Ordering::SeqCst) + 1;
            let applied = match &cmd {
                Command::V3(v3) => {
                    let req = beacon_proto::beaconpb::V3Request::decode(v3.0.as_slice())
                        .map_err(|e| ProposeFailure::Other(e.to_string()))?;
                    let mut mvcc = self.mvcc.write().unwrap_or_else(|p| p.into_inner());
                    let resp = mvcc
                        .apply(&req)
                        .map_err(|e| ProposeFailure::Other(e.to_string()))?;
                    self.revisions.send_replace(mvcc.current_revision());
                    Applied::V3(Encoded(resp.encode_to_vec()))
                }
                _ => {
                    let mut store = self.store.write().unwrap_or_else(|p| p.into_inner());
                    store.apply(&cmd)
                }
            };
            Ok(Committed {
                applied,
                raft_index,
                raft_term: 2,
            })
        })
    }

    fn members(&self) -> Vec<crate::cluster::Member> {
        self.members.clone()
    }

    fn change_members(&self, _change: beacon_raft::MemberChange) -> super::MembersFuture<'_> {
        Box::pin(async {
            Err(beacon_raft::MembershipError::Other(
                "membership changes need a Raft cluster".into(),
            ))
        })
    }

    fn now_ns(&self) -> i64 {
        beacon_raft::Clock::now_ns(&beacon_raft::SystemClock)
    }

    fn move_leader(&self, target: u64, _: std::time::Duration) -> super::MoveLeaderFuture<'_> {
        // One member: leadership can only move to itself, which it already has.
        let moved = if !self.leader.load(Ordering::SeqCst) {
            Err(beacon_raft::MoveLeaderError::NotLeader)
        } else if target == self.id {
            Ok(())
        } else {
            Err(beacon_raft::MoveLeaderError::BadTransferee)
        };
        Box::pin(std::future::ready(moved))
    }

    fn status(&self) -> ConsensusStatus {
        ConsensusStatus {
            id: self.id,
            leader_id: self.leader.load(Ordering::SeqCst).then_some(self.id),
            term: 2,
            commit_index: self.raft_index.load(Ordering::SeqCst),
            applied_index: self.raft_index.load(Ordering::SeqCst),
        }
    }
}
