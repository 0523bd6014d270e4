//! A graceful stop, as production's `RaftNode::shutdown` does it on SIGTERM: a leader
//! first hands leadership to the voter that has replicated the most and waits (up to an
//! election timeout) until someone else leads; then the host stops.

use std::collections::BTreeSet;

use openraft::async_runtime::WatchReceiver;

use crate::member::MemberCtx;

/// Hands leadership over if this member leads and has another voter; true when
/// another member leads afterwards.
pub async fn hand_over_leadership(ctx: &MemberCtx) -> bool {
    let id = ctx.id;
    let target = {
        let metrics = ctx.raft.metrics();
        let m = metrics.borrow_watched();
        if m.current_leader != Some(id) {
            return false;
        }
        let voters: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
        m.replication.as_ref().and_then(|replication| {
            replication
                .iter()
                .filter(|(peer, _)| **peer != id && voters.contains(*peer))
                .max_by_key(|(_, matched)| matched.as_ref().map(|l| l.index))
                .map(|(peer, _)| *peer)
        })
    };
    let Some(target) = target else { return false };
    if ctx.raft.trigger().transfer_leader(target).await.is_err() {
        return false;
    }
    // Whether it moved or not, the member stops after this, as production's does.
    ctx.raft
        .wait(Some(ctx.timing.election()))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != id),
            "leadership handed over",
        )
        .await
        .is_ok()
}
