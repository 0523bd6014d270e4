//! Following the leader: the one helper through which every request that only the
//! leader can take (a proposal, a membership change, a publish) finds it, is handed to
//! it, and looks again when the leader moved or is not known yet. Part of the node:
//! the node says where the leader is ([`Route`]) and what one attempt does; this says
//! how often and for how long to try.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use openraft::ServerState;

use crate::state_machine::Raft;
use crate::types::{NodeId, TypeConfig};

/// The leader as this member knows it from `metrics`. etcd's check-quorum: a leader
/// that has not heard from a quorum for an election timeout steps down. openraft keeps
/// the role but refuses proposals once its quorum lease (`election_timeout`) runs out;
/// it is reported without a leader, as etcd's stepped-down leader is, so /health,
/// stats, forwarding and the expiry ticker agree.
pub(crate) fn known_leader(
    m: &openraft::RaftMetrics<TypeConfig>,
    election_timeout: Duration,
) -> Option<NodeId> {
    let lease_lost = m.state == ServerState::Leader
        && m.membership_config
            .membership()
            .voter_ids()
            .nth(1)
            .is_some()
        && m.last_quorum_acked
            .as_ref()
            .is_some_and(|t| openraft::Instant::elapsed(&**t) > election_timeout);
    m.current_leader.filter(|_| !lease_lost)
}

/// Whether member `id` leads now, as [`known_leader`] tells from `raft`'s metrics.
pub(crate) fn leads(raft: &Raft, id: NodeId, election_timeout: Duration) -> bool {
    let metrics = raft.metrics();
    let m = openraft::async_runtime::WatchReceiver::borrow_watched(&metrics);
    known_leader(&m, election_timeout) == Some(id)
}

/// Where a request goes, as this member sees the cluster now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// This member leads.
    Here,
    /// No leader is known (an election is under way, or this member is cut off).
    NoLeader,
    /// Another member leads; its peer URL, if the membership lists it.
    Leader {
        /// The leader's id.
        id: NodeId,
        /// Where to send to it.
        peer_url: Option<String>,
    },
}

/// What one attempt came to.
pub(crate) enum Attempt<T, E> {
    /// The answer for the caller, success or a failure that trying again cannot mend.
    Done(Result<T, E>),
    /// Nothing was done (the leader moved, is gone or is not known yet): look again.
    Again,
}

/// How long a request follows the leader, and how long it pauses before it looks
/// again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Follow {
    /// When to give up; `None` for never (the caller stops it).
    pub(crate) deadline: Option<Instant>,
    /// The pause between attempts.
    pub(crate) pause: Duration,
}

impl Follow {
    /// Follows for `timeout` from now, pausing `pause` between attempts.
    pub(crate) fn within(timeout: Duration, pause: Duration) -> Follow {
        Follow {
            deadline: Some(Instant::now() + timeout),
            pause,
        }
    }

    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Tries `attempt` on where `route` says the leader is, again after each pause while
/// it answers [`Attempt::Again`], until it is done or the deadline passes; then the
/// answer is `gave_up`.
pub(crate) async fn to_leader<T, E, Fut>(
    follow: Follow,
    mut route: impl FnMut() -> Route,
    mut attempt: impl FnMut(Route) -> Fut,
    gave_up: E,
) -> Result<T, E>
where
    Fut: Future<Output = Attempt<T, E>>,
{
    retry(follow, || attempt(route()), gave_up).await
}

/// Tries `attempt`, again after each pause while it answers [`Attempt::Again`], until
/// it is done or the deadline passes; then the answer is `gave_up`. [`to_leader`] is
/// this with the leader's whereabouts looked up before each attempt; a caller whose
/// attempt routes by itself (a publish, which makes a whole membership change each
/// time) uses this directly.
pub(crate) async fn retry<T, E, Fut>(
    follow: Follow,
    mut attempt: impl FnMut() -> Fut,
    gave_up: E,
) -> Result<T, E>
where
    Fut: Future<Output = Attempt<T, E>>,
{
    while !follow.expired() {
        match attempt().await {
            Attempt::Done(result) => return result,
            Attempt::Again => tokio::time::sleep(follow.pause).await,
        }
    }
    Err(gave_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tries_again_until_done_or_the_deadline() {
        let follow = Follow::within(Duration::from_secs(10), Duration::from_millis(1));
        let mut tries = 0;
        let done: Result<u32, &str> = to_leader(
            follow,
            || Route::NoLeader,
            |_| {
                tries += 1;
                let n = tries;
                async move {
                    if n < 3 {
                        Attempt::Again
                    } else {
                        Attempt::Done(Ok(n))
                    }
                }
            },
            "gave up",
        )
        .await;
        assert_eq!(done, Ok(3));
    }
}
