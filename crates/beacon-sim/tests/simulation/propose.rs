//! A member's proposal path, as production's `RaftNode::propose`: a follower forwards to
//! the leader it knows (dropped after an election timeout without a quorum, as
//! production's check-quorum report does), retries while the leader moves, and
//! answers only once it has applied the entry itself.

use std::sync::Arc;
use std::time::Duration;

use beacon_raft::{ProposeError, Proposed, Request};
use beacon_store::Command;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, Fatal, RaftError};
use openraft::ServerState;

use crate::member::MemberCtx;
use crate::network::{CallError, Connection};
use crate::wire::{Answer, Request as WireRequest};

/// How long a proposal may take, forwarding and waiting included. Production allows
/// 30 s (its client request times out first); the simulated clients give up sooner
/// too, and a shorter bound keeps abandoned tasks from piling up.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a follower waits before forwarding again when the leader moved.
const LEADER_RETRY: Duration = Duration::from_millis(25);

/// The leader this member knows of, unless it is this member and its quorum lease ran
/// out (production's `RaftNode::status`).
fn known_leader(ctx: &MemberCtx) -> Option<u64> {
    let metrics = ctx.raft.metrics();
    let m = metrics.borrow_watched();
    let lease_lost = m.state == ServerState::Leader
        && m.membership_config
            .membership()
            .voter_ids()
            .nth(1)
            .is_some()
        && m.last_quorum_acked
            .as_ref()
            .is_some_and(|t| openraft::Instant::elapsed(&**t) > ctx.timing.election());
    m.current_leader.filter(|_| !lease_lost)
}

/// Proposes `cmd` through the leader and answers once this member applied it.
pub async fn propose(ctx: &MemberCtx, cmd: Command) -> Result<Proposed, ProposeError> {
    let cmd = Arc::new(cmd);
    let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        let Some(leader) = known_leader(ctx).filter(|l| *l != ctx.id) else {
            return write_here(ctx, Arc::clone(&cmd)).await;
        };
        let request = WireRequest::Forwarded((*cmd).clone());
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let proposed = match Connection::new(leader).call(&request, &[], left).await {
            Ok((Answer::Proposed(Err(ProposeError::NotLeader { .. })), _))
            | Err(CallError::NotSent(_)) => {
                // Nothing was appended: follow the leader wherever it went.
                tokio::time::sleep(LEADER_RETRY).await;
                continue;
            }
            Ok((Answer::Proposed(result), _)) => result?,
            Ok((other, _)) => {
                return Err(ProposeError::Forward(format!(
                    "leader {leader} answered out of turn: {other:?}"
                )))
            }
            Err(e) => return Err(ProposeError::Forward(format!("leader {leader}: {e:?}"))),
        };
        wait_applied(ctx, proposed.raft_index, deadline).await?;
        return Ok(proposed);
    }
    Err(ProposeError::NotLeader { leader_id: None })
}

/// A forwarded proposal: this member must be the leader.
pub async fn propose_here(ctx: &MemberCtx, cmd: Command) -> Result<Proposed, ProposeError> {
    write_here(ctx, Arc::new(cmd)).await
}

async fn write_here(ctx: &MemberCtx, cmd: Arc<Command>) -> Result<Proposed, ProposeError> {
    match ctx.raft.client_write(Request(cmd)).await {
        Ok(resp) => {
            let applied = resp.data.ok_or_else(|| {
                ProposeError::Fatal(format!("entry {} applied without a result", resp.log_id))
            })?;
            Ok(Proposed {
                applied,
                raft_index: resp.log_id.index,
                raft_term: resp.log_id.leader_id.term,
            })
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::NotLeader {
                leader_id: f.leader_id,
            })
        }
        Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
            Err(ProposeError::Discarded {
                leader_id: f.leader_id,
            })
        }
        Err(RaftError::APIError(e)) => Err(ProposeError::Fatal(e.to_string())),
        Err(RaftError::Fatal(Fatal::Stopped)) => Err(ProposeError::Stopped),
        Err(RaftError::Fatal(f)) => Err(ProposeError::Fatal(f.to_string())),
    }
}

async fn wait_applied(
    ctx: &MemberCtx,
    raft_index: u64,
    deadline: tokio::time::Instant,
) -> Result<(), ProposeError> {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    ctx.raft
        .wait(Some(left))
        .applied_index_at_least(Some(raft_index), "forwarded proposal applied here")
        .await
        .map(|_| ())
        .map_err(|e| ProposeError::Forward(format!("applying entry {raft_index} here: {e}")))
}
