//! Proposals and membership changes, routed to the leader: `propose` and
//! `change_members` follow the leader through `route` (forwarding from a follower),
//! `propose_here` and `change_here` make them where this member leads, `publish`
//! retries a change until it is recorded, and `caught_up` holds a read back until this
//! member applied the writes it acknowledged.
//! Apart from `node.rs` because it is the node's request path, not its lifecycle.

use std::sync::Arc;
use std::time::Duration;

use beacon_store::Command;
use futures_util::StreamExt;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::RaftError;
use tokio::time::Instant;

use super::RaftNode;
use crate::error::{MembershipError, ProposeError};
use crate::membership::{self, CHANGE_RETRY, CHANGE_TIMEOUT};
use crate::observer::InjectedBug;
use crate::peer::forward_member_change;
use crate::route::{self, Attempt, Follow, Route};
use crate::types::{MemberChange, NodeId, Proposed, Request};

/// How long a proposal waits before it looks for the leader again when the leader
/// moved, is gone or is not known yet.
const LEADER_RETRY: Duration = Duration::from_millis(25);
/// How long `publish` waits before it tries again after a change that did not go
/// through (no leader within the change's timeout, say).
const PUBLISH_RETRY: Duration = Duration::from_millis(500);

impl RaftNode {
    /// Where a request that only the leader takes goes now.
    fn route(&self) -> Route {
        match self.status().leader_id {
            None => Route::NoLeader,
            Some(id) if id == self.inner.id => Route::Here,
            Some(id) => Route::Leader {
                id,
                peer_url: self.peer_url_of(id),
            },
        }
    }

    /// Proposes `cmd` and resolves once it is committed and applied to the leader's
    /// store (on the leader, this member's). On a follower the command is forwarded to
    /// the leader and answered with the leader's result, which every member's apply
    /// produces alike; reads here wait until this member applied it (`caught_up`).
    /// While no leader is known, or the leader moved (the proposal surely not sent), it
    /// looks for one for up to `FORWARD_TIMEOUT`, then
    /// answers `NotLeader { leader_id: None }`; the caller's request timeout is shorter.
    pub async fn propose(&self, cmd: Command) -> Result<Proposed, ProposeError> {
        if self.inner.bug == Some(InjectedBug::LocalQuorumReads) {
            if let Some(proposed) = self.read_locally(&cmd) {
                return Ok(proposed);
            }
        }
        let cmd = Arc::new(cmd);
        let follow = Follow::within(crate::peer::FORWARD_TIMEOUT, LEADER_RETRY);
        let cmd = &cmd;
        route::to_leader(
            follow,
            || self.route(),
            |route| async move {
                match route {
                    // Without a known leader, ask openraft here: it may know one our
                    // metrics do not show yet, or lead by now.
                    Route::Here | Route::NoLeader => {
                        match self.propose_shared(Arc::clone(cmd)).await {
                            // Nothing was appended: look for the leader again.
                            Err(ProposeError::NotLeader { leader_id })
                                if leader_id != Some(self.inner.id) =>
                            {
                                Attempt::Again
                            }
                            other => Attempt::Done(other),
                        }
                    }
                    Route::Leader { id, peer_url: None } => {
                        Attempt::Done(Err(ProposeError::NotLeader {
                            leader_id: Some(id),
                        }))
                    }
                    Route::Leader {
                        peer_url: Some(url),
                        ..
                    } => {
                        // Queued to the leader's forwarder, which sends it in a batch
                        // with the others in flight (`peer::forward`).
                        match self
                            .inner
                            .forwarder
                            .forward(&url, cmd, crate::peer::FORWARD_TIMEOUT)
                            .await
                        {
                            Err(ProposeError::NotLeader { .. }) => Attempt::Again,
                            Err(e) => Attempt::Done(Err(e)),
                            // The leader applied it: answered now, and reads here wait
                            // until this member has applied it too (`caught_up`).
                            Ok(proposed) => {
                                self.inner.applied.acknowledge(proposed.raft_index);
                                Attempt::Done(Ok(proposed))
                            }
                        }
                    }
                }
            },
            ProposeError::NotLeader { leader_id: None },
        )
        .await
    }

    /// The negative control's bug (`InjectedBug::LocalQuorumReads`): a quorum read
    /// answered from this member's own store, without the log.
    fn read_locally(&self, cmd: &Command) -> Option<Proposed> {
        let Command::Keys(req) = cmd else {
            return None;
        };
        if req.method != beacon_store::Method::QuorumGet {
            return None;
        }
        let store = self.inner.store.read().unwrap_or_else(|p| p.into_inner());
        let result = store.get(&req.path, req.recursive, req.sorted, req.time_ns);
        Some(Proposed {
            applied: beacon_store::Applied::Keys(result),
            raft_index: 0,
            raft_term: 0,
        })
    }

    /// Proposes on this member, which must be the leader (the peer API's entry point).
    pub async fn propose_here(&self, cmd: Command) -> Result<Proposed, ProposeError> {
        self.propose_shared(Arc::new(cmd)).await
    }

    /// Proposes `cmds` here, where this member must lead, as one submission: openraft
    /// appends them together and in order, and each gets its own answer, in order.
    pub async fn propose_many_here(
        &self,
        cmds: Vec<Command>,
    ) -> Vec<Result<Proposed, ProposeError>> {
        let count = cmds.len();
        let requests = cmds.into_iter().map(|cmd| Request(Arc::new(cmd)));
        let mut answers = Vec::with_capacity(count);
        match self.inner.raft.client_write_many(requests).await {
            Ok(mut results) => {
                while let Some(result) = results.next().await {
                    answers.push(match result {
                        Ok(Ok(written)) => proposed(written.log_id, written.response),
                        Ok(Err(refused)) => Err(RaftError::APIError(refused).into()),
                        Err(fatal) => Err(RaftError::Fatal(fatal).into()),
                    });
                }
            }
            Err(fatal) => answers.push(Err(RaftError::Fatal(fatal).into())),
        }
        // openraft's stream ends early only after a fatal error: the rest share it.
        let last = answers.last().cloned();
        if let Some(Err(e)) = last {
            answers.resize(count, Err(e));
        }
        debug_assert_eq!(answers.len(), count, "one answer per command");
        answers
    }

    async fn propose_shared(&self, cmd: Arc<Command>) -> Result<Proposed, ProposeError> {
        let resp = self.inner.raft.client_write(Request(cmd)).await?;
        proposed(resp.log_id, resp.data)
    }

    /// Makes `change` on the leader (forwarding it from a follower) and returns once it
    /// is committed; gives up with `Timeout` after
    /// `CHANGE_TIMEOUT`.
    pub async fn change_members(&self, change: MemberChange) -> Result<(), MembershipError> {
        let follow = Follow::within(CHANGE_TIMEOUT, CHANGE_RETRY);
        let deadline = Instant::now() + CHANGE_TIMEOUT;
        let change = &change;
        route::to_leader(
            follow,
            || self.route(),
            |route| async move {
                let result = match route {
                    // A leader whose URL is not known yet (a joining member has its
                    // vote before the membership that names it) is looked for again,
                    // as no leader is: giving up here held a new member's publish back
                    // a whole `PUBLISH_RETRY`.
                    Route::NoLeader | Route::Leader { peer_url: None, .. } => {
                        return Attempt::Again
                    }
                    Route::Here => self.change_here(change, deadline).await,
                    Route::Leader {
                        peer_url: Some(url),
                        ..
                    } => {
                        forward_member_change(&self.inner.http, &url, change, CHANGE_TIMEOUT).await
                    }
                };
                match result {
                    Err(MembershipError::NotLeader) => Attempt::Again,
                    other => Attempt::Done(other),
                }
            },
            MembershipError::Timeout,
        )
        .await
    }

    /// Publishes this member's name and client URLs (etcd's `publish`), trying again
    /// until the change is recorded, so that every member lists them; runs until then
    /// or until the caller drops it.
    pub async fn publish(&self, name: String, client_urls: Vec<String>) {
        let change = MemberChange::Publish {
            id: self.inner.id,
            name,
            client_urls,
        };
        let change = &change;
        let forever = Follow {
            deadline: None,
            pause: PUBLISH_RETRY,
        };
        let published = route::retry(
            forever,
            || async move {
                match self.change_members(change.clone()).await {
                    Ok(()) => Attempt::Done(Ok(())),
                    Err(e) => {
                        tracing::debug!(error = %e, "publishing member attributes; will retry");
                        Attempt::Again
                    }
                }
            },
            MembershipError::Timeout,
        )
        .await;
        if published.is_ok() {
            tracing::info!("published this member's name and client URLs to the cluster");
        }
    }

    /// Makes `change` here, where this member must lead, until `deadline`.
    pub(super) async fn change_here(
        &self,
        change: &MemberChange,
        deadline: Instant,
    ) -> Result<(), MembershipError> {
        if self.is_removed(change.member_id()) {
            return Err(MembershipError::IdRemoved);
        }
        let strict = self.inner.strict_reconfig_check;
        let stats = strict.then_some(self.inner.peer_stats.as_ref());
        membership::change_on_leader(&self.inner.raft, &self.inner.http, stats, change, deadline)
            .await
    }

    /// The peer URL of member `id`, from the current membership.
    pub(super) fn peer_url_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.peer_url().to_owned())
    }

    /// Whether a read here may go at once: every write this member acknowledged is
    /// applied here.
    pub fn is_caught_up(&self) -> bool {
        self.inner.applied.read_waits_for().is_none()
    }

    /// Makes a read of this member's state machine linearizable without a log entry
    /// (ReadIndex). On the leader: it confirms that it still leads (a heartbeat round
    /// answered by a quorum) and waits until its state machine has applied everything
    /// committed before. On a follower: it asks the leader for that index over the peer
    /// port (the leader confirms its leadership the same way) and waits until its own
    /// state machine has applied it. `false` when no leader is known, or this could not
    /// be done within `timeout`; the caller then puts the read through the log.
    pub async fn read_index(&self, timeout: std::time::Duration) -> bool {
        let url = match self.route() {
            // The only voter leads a cluster no one else can lead without a membership
            // change, which it would append itself. Once it has applied an entry of its
            // own term (its first, blank one: everything committed before is applied
            // too), what it has applied includes every write it acknowledged (a
            // proposal is answered once applied here), so its keyspace as it is answers
            // linearizably, without a heartbeat round.
            Route::Here if self.sole_voter_caught_up() => return true,
            Route::Here => {
                let confirmed = tokio::time::timeout(
                    timeout,
                    self.inner
                        .raft
                        .ensure_linearizable(openraft::ReadPolicy::ReadIndex),
                )
                .await;
                return matches!(confirmed, Ok(Ok(_)));
            }
            Route::Leader {
                peer_url: Some(url),
                ..
            } => url,
            Route::Leader { peer_url: None, .. } | Route::NoLeader => return false,
        };
        // A follower: the leader's read index, then this member's apply up to it.
        let followed = tokio::time::timeout(timeout, async {
            let index = crate::peer::fetch_read_index(&self.inner.http, &url, timeout).await?;
            self.inner.applied.wait_for(index).await.then_some(())
        })
        .await;
        matches!(followed, Ok(Some(())))
    }

    /// Whether this member is the only voter of the latest membership it holds (a
    /// uniform one: a joint config is a change under way) and has applied an entry of
    /// its current term, by the latest metrics (which lag: a read then takes the
    /// ReadIndex way).
    fn sole_voter_caught_up(&self) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let mut voters = membership.voter_ids();
        membership.get_joint_config().len() == 1
            && voters.next() == Some(self.inner.id)
            && voters.next().is_none()
            && m.last_applied
                .as_ref()
                .is_some_and(|l| l.leader_id.term == m.current_term)
    }

    /// On the leader: its read index for a follower (`read_index` there), confirmed with
    /// a quorum; `None` elsewhere, or when it cannot confirm within the forwarding
    /// timeout.
    pub(crate) async fn leader_read_index(&self) -> Option<u64> {
        if !matches!(self.route(), Route::Here) {
            return None;
        }
        let read = tokio::time::timeout(
            crate::peer::FORWARD_TIMEOUT,
            self.inner
                .raft
                .get_read_log_id(openraft::ReadPolicy::ReadIndex),
        )
        .await;
        match read {
            Ok(Ok((read_log_id, _applied))) => Some(read_log_id.log_id().index),
            _ => None,
        }
    }

    /// Resolves once this member has applied every write it acknowledged, so that a
    /// read here sees them (a forwarded write is answered once the leader applied it).
    pub async fn caught_up(&self) -> Result<(), ProposeError> {
        match self.inner.applied.read_waits_for() {
            None => Ok(()),
            Some(index) => self.wait_applied(index).await,
        }
    }

    /// Waits until this member's store has applied `raft_index`.
    async fn wait_applied(&self, raft_index: u64) -> Result<(), ProposeError> {
        let waited = tokio::time::timeout(
            crate::peer::FORWARD_TIMEOUT,
            self.inner.applied.wait_for(raft_index),
        )
        .await;
        match waited {
            Ok(true) => Ok(()),
            Ok(false) => Err(ProposeError::Forward(format!(
                "applying entry {raft_index} here: the state machine stopped"
            ))),
            Err(_) => Err(ProposeError::Forward(format!(
                "applying entry {raft_index} here: timed out"
            ))),
        }
    }
}

/// A proposal's answer from the entry's log id and what the state machine returned.
fn proposed(
    log_id: crate::types::LogId,
    data: Option<beacon_store::Applied>,
) -> Result<Proposed, ProposeError> {
    let applied = data.ok_or_else(|| {
        // Normal entries always get `Some` from the state machine.
        ProposeError::Fatal(format!("entry {log_id} applied without a store result"))
    })?;
    Ok(Proposed {
        applied,
        raft_index: log_id.index,
        raft_term: log_id.leader_id.term,
    })
}
