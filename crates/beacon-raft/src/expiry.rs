//! The expiry ticker, a part of the node. Keys expire only when the leader's clock
//! goes through the log (`Command::Sync`), so every replica expires the same keys (and
//! revokes the same v3 leases) at the same index, whatever its own clock says.
//! Followers never propose; the leader proposes only while some v2 key has a TTL or
//! some v3 lease is due. It runs on tokio's clock and reads the wall
//! clock from the node's `Clock` seam, so a simulation drives both.

use std::sync::Arc;
use std::time::Duration;

use beacon_store::Command;
use tokio::time::MissedTickBehavior;

use crate::clock::Clock;
use crate::keyspace::SharedMvcc;
use crate::route;
use crate::state_machine::Raft;
use crate::types::{NodeId, Request, SharedStore};

/// How often the leader proposes its clock while some key has a TTL. etcd's v2 store
/// expires keys when the leader's `SYNC` request commits, which etcd 3.4's leader sends
/// on every tick of its server's 500 ms `SyncTicker` while the store has TTL keys; so
/// does this.
pub(crate) const EXPIRY_TICK: Duration = Duration::from_millis(500);

/// How long one sync may wait to commit before the next tick tries again, less the
/// elections it may span: etcd bounds every request by its `ReqTimeout`, 5 s plus two
/// election timeouts ([`sync_timeout`]).
const SYNC_TIMEOUT_BASE: Duration = Duration::from_secs(5);

/// What the ticker works with: the node's openraft handle and store, its id and
/// election timeout (to tell whether it leads), and the wall clock.
pub(crate) struct Ticker {
    pub(crate) raft: Raft,
    pub(crate) store: SharedStore,
    pub(crate) mvcc: SharedMvcc,
    pub(crate) id: NodeId,
    pub(crate) election_timeout: Duration,
    pub(crate) clock: Arc<dyn Clock>,
}

/// How long a sync may take to commit: etcd's `ReqTimeout` for this election timeout.
fn sync_timeout(election_timeout: Duration) -> Duration {
    SYNC_TIMEOUT_BASE + 2 * election_timeout
}

impl Ticker {
    /// Whether some v3 lease expires at or before `now_ns` (false on a poisoned lock:
    /// Raft has stopped, there is nothing to propose).
    fn lease_due(&self, now_ns: i64) -> bool {
        self.mvcc
            .read()
            .is_ok_and(|m| m.next_lease_expiry().is_some_and(|at| at <= now_ns))
    }

    /// Ticks until the task is aborted (the node's shutdown does).
    pub(crate) async fn run(self) {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut more_due = false;
        loop {
            // A clock entry revokes at most `LEASES_EXPIRED_PER_CLOCK_MAX` leases: while
            // more are due, the next entry goes at once, not a tick later.
            if !more_due {
                tick.tick().await;
            }
            more_due = false;
            if !route::leads(&self.raft, self.id, self.election_timeout) {
                continue;
            }
            // A store poisoned by a panic in apply has stopped Raft: nothing to propose.
            let has_ttl = self.store.read().is_ok_and(|s| s.has_ttl_keys());
            let now_ns = self.clock.now_ns();
            let lease_due = self.lease_due(now_ns);
            if !has_ttl && !lease_due {
                continue;
            }
            let sync = Request(Arc::new(Command::Sync { time_ns: now_ns }));
            let timeout = sync_timeout(self.election_timeout);
            match tokio::time::timeout(timeout, self.raft.client_write(sync)).await {
                Ok(Ok(_)) => more_due = self.lease_due(now_ns),
                Ok(Err(e)) => tracing::debug!(error = %e, "expiry sync not committed"),
                Err(_) => tracing::debug!(?timeout, "expiry sync not committed in time"),
            }
        }
    }
}
