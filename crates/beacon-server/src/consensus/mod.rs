//! The seam between the HTTP layer and consensus: a small trait that the Raft node
//! implements in production and an in-memory fake implements in tests.

mod memory;
mod raft;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use beacon_api::{ErrorCode, EtcdError};
use beacon_store::{Applied, Command, Store};

pub use memory::MemoryConsensus;
pub use raft::RaftConsensus;

/// The store shared by consensus (which applies) and the HTTP layer (which reads and
/// registers watchers); the same type as `beacon_raft::SharedStore`.
pub type SharedStore = Arc<RwLock<Store>>;

/// The store, to read. A lock poisoned by a panic inside `Store::apply` guards a store
/// that may be half changed: it is never served (etcd's error 300), just as the state
/// machine refuses to apply on top of it, which stops Raft. A restart rebuilds the
/// store from the snapshot and the log.
pub fn read_store(store: &SharedStore) -> Result<RwLockReadGuard<'_, Store>, EtcdError> {
    store.read().map_err(|_| poisoned_store())
}

/// The store, to register a watcher in; refused as [`read_store`] is.
pub fn write_store(store: &SharedStore) -> Result<RwLockWriteGuard<'_, Store>, EtcdError> {
    store.write().map_err(|_| poisoned_store())
}

fn poisoned_store() -> EtcdError {
    EtcdError::new(
        ErrorCode::RaftInternal,
        "store unusable: a panic while applying a command",
        0,
    )
}

/// A command that was committed and applied.
#[derive(Debug)]
pub struct Committed {
    /// What applying it produced.
    pub applied: Applied,
    /// The log index it was committed at.
    pub raft_index: u64,
    /// The term it was committed in.
    pub raft_term: u64,
}

/// What this node knows of the cluster right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsensusStatus {
    /// This member's id.
    pub id: u64,
    /// The leader, if one is known.
    pub leader_id: Option<u64>,
    /// The current term (`X-Raft-Term`).
    pub term: u64,
    /// The commit index (`X-Raft-Index`, as etcd reports it).
    pub commit_index: u64,
    /// The last index applied to this member's store.
    pub applied_index: u64,
}

impl ConsensusStatus {
    /// Whether this member leads.
    pub fn is_leader(&self) -> bool {
        self.leader_id == Some(self.id)
    }
}

/// Why a proposal did not complete; rendered as etcd's error 300 with these causes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeFailure {
    /// No answer within the request timeout.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The node is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// Anything else the consensus layer reported.
    #[error("etcdserver: {0}")]
    Other(String),
}

/// A boxed membership-change future.
pub type MembersFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), beacon_raft::MembershipError>> + Send + 'a>>;

/// A boxed proposal future, so the trait stays object-safe.
pub type ProposeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Committed, ProposeFailure>> + Send + 'a>>;

/// A boxed leadership transfer.
pub type MoveLeaderFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), beacon_raft::MoveLeaderError>> + Send + 'a>>;

/// A boxed ReadIndex: whether a local read may now be served as linearizable.
pub type ReadIndexFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// A boxed wait for this member to apply what it acknowledged.
pub type CaughtUpFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ProposeFailure>> + Send + 'a>>;

/// A boxed wait for a snapshot file that holds everything applied now.
pub type BackupFuture<'a> =
    Pin<Box<dyn Future<Output = Result<std::path::PathBuf, beacon_raft::BackupError>> + Send + 'a>>;

/// Consensus as the HTTP layer needs it.
pub trait Consensus: Send + Sync + 'static {
    /// The replicated store, for local reads and watches (after [`caught_up`]).
    fn store(&self) -> &SharedStore;
    /// The v3 keyspace, for serializable reads (after [`caught_up`]).
    fn mvcc(&self) -> &beacon_raft::keyspace::SharedMvcc;
    /// On the leader, confirms leadership and waits until everything committed before is
    /// applied, so that a local read is linearizable (ReadIndex); `false` elsewhere or
    /// when it could not within `timeout` (the read then goes through the log).
    fn read_index(&self, timeout: std::time::Duration) -> ReadIndexFuture<'_>;
    /// The v3 keyspace's current revision, changed as applies change it.
    fn v3_revisions(&self) -> tokio::sync::watch::Receiver<i64>;
    /// The shortest lease TTL, in seconds; a grant asking for less gets this.
    fn min_lease_ttl(&self) -> i64 {
        min_lease_ttl(100, 1000)
    }
    /// `None` when every write this member acknowledged is applied to its store, as is
    /// usual; otherwise a wait for it. A write forwarded to the leader is acknowledged
    /// once the leader applied it, and a read here must see it.
    fn read_wait(&self) -> Option<CaughtUpFuture<'_>> {
        None
    }
    /// Proposes `cmd`; resolves once it is committed and applied on the leader (here,
    /// when this member leads; a read here then waits for it, [`Consensus::read_wait`]).
    fn propose(&self, cmd: Command) -> ProposeFuture<'_>;
    /// Leader, term and commit index.
    fn status(&self) -> ConsensusStatus;
    /// The wall clock consensus keeps time by, in Unix nanoseconds: the leader's expiry
    /// ticker proposes it, so TTLs are stamped with it too.
    fn now_ns(&self) -> i64;
    /// The members, sorted by id, as this member knows them now.
    fn members(&self) -> Vec<crate::cluster::Member>;
    /// Whether this member is a learner not yet promoted (v3 refuses it most calls).
    fn is_learner(&self) -> bool {
        false
    }
    /// On the leader: hands leadership to the voting member `target` and waits (within
    /// the request timeout) until it leads (v3's MoveLeader).
    fn move_leader(&self, target: u64, timeout: std::time::Duration) -> MoveLeaderFuture<'_>;
    /// Bytes this member keeps on disk (v3's `dbSize`); 0 where nothing is on disk.
    fn disk_bytes(&self) -> u64 {
        0
    }
    /// A snapshot file holding every entry applied now (v3's `Maintenance.Snapshot`),
    /// within `timeout`; none where nothing is on disk.
    fn backup_file(&self, timeout: std::time::Duration) -> BackupFuture<'_> {
        let _ = timeout;
        Box::pin(async {
            Err(beacon_raft::BackupError::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "this member keeps no snapshot files",
            )))
        })
    }
    /// Adds, removes or updates a member, or publishes one's attributes; resolves once
    /// the change is committed.
    fn change_members(&self, change: beacon_raft::MemberChange) -> MembersFuture<'_>;
    /// Per follower (by member id), what this member measured of its messages to it
    /// while leading; empty without peers.
    fn follower_stats(&self) -> std::collections::BTreeMap<u64, beacon_raft::FollowerStats> {
        std::collections::BTreeMap::new()
    }
}

/// etcd's shortest lease TTL, in seconds: one and a half election timeouts, counted in
/// whole heartbeats, rounded up (2 s with the default 100 ms and 1000 ms).
pub fn min_lease_ttl(heartbeat_interval_ms: u64, election_timeout_ms: u64) -> i64 {
    let heartbeat = heartbeat_interval_ms.max(1);
    let election_ticks = election_timeout_ms / heartbeat;
    let min_ms = (3 * election_ticks / 2) * heartbeat;
    i64::try_from(min_ms.div_ceil(1000)).unwrap_or(i64::MAX)
}

/// Waits, within `timeout`, until a read of this member's store sees every write the
/// member acknowledged; past it, etcd's answer to a request that got no result.
pub async fn caught_up(
    consensus: &dyn Consensus,
    timeout: std::time::Duration,
) -> Result<(), ProposeFailure> {
    let Some(wait) = consensus.read_wait() else {
        return Ok(());
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(result) => result,
        Err(_) => Err(ProposeFailure::Timeout),
    }
}

/// Client proposals of this process under way (`etcd_server_proposals_pending`):
/// every client request that goes through the log passes `propose_with_timeout`.
pub static PROPOSALS_PENDING: AtomicI64 = AtomicI64::new(0);
/// Client proposals that ended without a result: timed out, stopped, no leader
/// (`etcd_server_proposals_failed_total`).
pub static PROPOSALS_FAILED: AtomicU64 = AtomicU64::new(0);

/// Counts one proposal as pending while it lives (a client that leaves drops it).
struct Pending;

impl Pending {
    fn start() -> Pending {
        PROPOSALS_PENDING.fetch_add(1, Ordering::Relaxed);
        Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        PROPOSALS_PENDING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Proposes with a deadline, as etcd bounds every request by its `ReqTimeout`.
pub async fn propose_with_timeout(
    consensus: &dyn Consensus,
    cmd: Command,
    timeout: std::time::Duration,
) -> Result<Committed, ProposeFailure> {
    let _pending = Pending::start();
    let result = match tokio::time::timeout(timeout, consensus.propose(cmd)).await {
        Ok(result) => result,
        Err(_) => Err(ProposeFailure::Timeout),
    };
    if result.is_err() {
        PROPOSALS_FAILED.fetch_add(1, Ordering::Relaxed);
    }
    result
}
