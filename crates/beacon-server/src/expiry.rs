//! The expiry ticker. Keys expire only when the leader's clock goes through the log
//! (`Command::Sync`), so every replica expires the same keys at the same index.
//! Followers never propose; the leader proposes only while some key has a TTL.

use std::sync::Arc;

use beacon_store::Command;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::consensus::{propose_with_timeout, read_store};
use crate::limits::EXPIRY_TICK;
use crate::state::AppState;

/// Runs until `shutdown` turns true.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        // Also keeps the leader bookkeeping of /v2/stats/self current.
        if !state.status_noting_leader().is_leader() {
            continue;
        }
        // A poisoned store has stopped Raft: nothing to propose to.
        let has_ttl = read_store(state.consensus.store()).is_ok_and(|s| s.has_ttl_keys());
        if !has_ttl {
            continue;
        }
        let cmd = Command::Sync {
            time_ns: state.now_ns(),
        };
        if let Err(e) =
            propose_with_timeout(state.consensus.as_ref(), cmd, state.request_timeout).await
        {
            tracing::debug!(error = %e, "expiry sync not committed");
        }
    }
}
