//! The server's own tick: it notes the leader it sees for `/v2/stats/self` (etcd's
//! `leaderInfo`: who leads, and since when), so a leader's uptime counts from about
//! when this member first saw it rather than from the first request for the stats.
//! Expiring TTL keys is the node's (beacon-raft's expiry ticker).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::limits::LEADER_SEEN_TICK;
use crate::state::AppState;

/// Runs until `shutdown` turns true.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(LEADER_SEEN_TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        state.status_noting_leader();
    }
}
