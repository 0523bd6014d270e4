//! A replication stream that folds a commit-only append into the append after it.
//!
//! openraft sends a follower an append with no entries whenever the leader's commit
//! moves and nothing new is waiting to go, and then waits for its answer before the
//! next append. Under a load that comes in waves (writes forwarded by a follower, whose
//! next batch leaves only when the last one is answered; a single client waiting for
//! each answer), every wave cost each follower two messages: its entries, then their
//! commit. Each message is a request, a wake-up of the follower's core and an answer.
//!
//! Here an append with no entries waits up to [`COMMIT_HOLD`] for the next request.
//! If that one covers it (same leader, same previous entry, a commit at least as far),
//! only the next one is sent, and its answer answers both; otherwise the held one goes
//! alone when the wait ends. A follower thus learns a commit at most about
//! `COMMIT_HOLD` later than it would have (tokio's timers round up to their next
//! millisecond tick, so up to 2 ms): it applies that much later, and a read there sees
//! another member's write that much later, well inside the time a read on a follower
//! may lag anyway (a member's own acknowledged writes it always reads, `applied`).
//! Heartbeats are single requests that end their stream, so they never wait.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::RPCError;
use openraft::network::{NetAppend, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, StreamAppendError, StreamAppendResult,
};
use openraft::OptionalSend;

use crate::types::{LogId, TypeConfig};

/// How long an append without entries waits for one with entries to travel with.
/// tokio's timers tick in milliseconds: this is the shortest wait they keep.
pub(crate) const COMMIT_HOLD: Duration = Duration::from_millis(1);

type Request = AppendEntriesRequest<TypeConfig>;
pub(crate) type Item = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

/// openraft's sequential stream (send one, wait for its answer, send the next) with
/// commit-only appends folded into the next append when one follows within `hold`.
pub(crate) fn stream_append<'s, N, S>(
    network: &'s mut N,
    input: S,
    option: RPCOption,
    hold: Duration,
) -> BoxFuture<'s, Result<BoxStream<'s, Item>, RPCError<TypeConfig>>>
where
    N: NetAppend<TypeConfig> + ?Sized,
    S: Stream<Item = Request> + OptionalSend + Unpin + 'static,
{
    let session = Session {
        network,
        input,
        option,
        hold,
        next: None,
        ready: VecDeque::new(),
        done: false,
    };
    let stream = futures_util::stream::unfold(session, |mut s| async move {
        let item = s.next_item().await?;
        Some((item, s))
    });
    let stream: BoxStream<'s, Item> = Box::pin(stream);
    Box::pin(async move { Ok(stream) })
}

struct Session<'s, N: ?Sized, S> {
    network: &'s mut N,
    input: S,
    option: RPCOption,
    hold: Duration,
    /// A request taken from the input that did not cover the held one: it goes next.
    next: Option<Request>,
    /// Answers not yet handed to openraft, in request order.
    ready: VecDeque<Item>,
    /// No request is sent after this one: the input ended, or an answer ended the
    /// session (an error, a conflict, a partial success).
    done: bool,
}

impl<N, S> Session<'_, N, S>
where
    N: NetAppend<TypeConfig> + ?Sized,
    S: Stream<Item = Request> + Unpin,
{
    async fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            let request = match self.next.take() {
                Some(request) => request,
                None => self.input.next().await?,
            };
            let (held, request) = self.fold(request).await;
            self.send(held, request).await;
        }
    }

    /// If `request` is commit-only, waits for the next request and returns the held
    /// one's previous entry with the request that covers it; otherwise `request`.
    async fn fold(&mut self, request: Request) -> (Option<LogId>, Request) {
        let Some(prev) = request.prev_log_id else {
            return (None, request);
        };
        if !request.entries.is_empty() || self.hold.is_zero() {
            return (None, request);
        }
        match tokio::time::timeout(self.hold, self.input.next()).await {
            Ok(Some(later)) if covers(&later, &request) => (Some(prev), later),
            Ok(Some(later)) => {
                self.next = Some(later);
                (None, request)
            }
            Ok(None) => {
                self.done = true;
                (None, request)
            }
            Err(_) => (None, request),
        }
    }

    /// Sends `request` and queues its answer, preceded by the answer to the held
    /// commit-only request it covers (whose range is its previous entry alone).
    async fn send(&mut self, held: Option<LogId>, request: Request) {
        let prev = request.prev_log_id;
        let last = request.entries.last().map(|e| e.log_id).or(prev);
        let answer = match self
            .network
            .append_entries(request, self.option.clone())
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                self.ready.push_back(Err(e));
                self.done = true;
                return;
            }
        };
        if let Some(held) = held {
            // The later request had the same previous entry: the follower holds it
            // unless the answer is a conflict there or a higher vote.
            let result = match &answer {
                AppendEntriesResponse::Conflict => Err(StreamAppendError::Conflict(held)),
                AppendEntriesResponse::HigherVote(vote) => {
                    Err(StreamAppendError::HigherVote(*vote))
                }
                AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_) => {
                    Ok(Some(held))
                }
            };
            let failed = result.is_err();
            self.ready.push_back(Ok(result));
            if failed {
                self.done = true;
                return;
            }
        }
        // As openraft's sequential stream: a partial success short of the last entry
        // ends the session, and so does every error.
        let go_on = match &answer {
            AppendEntriesResponse::Success => true,
            AppendEntriesResponse::PartialSuccess(matched) => *matched == last,
            AppendEntriesResponse::Conflict | AppendEntriesResponse::HigherVote(_) => false,
        };
        self.ready
            .push_back(Ok(answer.into_stream_result(prev, last)));
        if !go_on {
            self.done = true;
        }
    }
}

/// Whether sending `later` alone tells the follower all that `held` (commit-only)
/// would have: the same leader, the same previous entry, and a commit as far.
fn covers(later: &Request, held: &Request) -> bool {
    later.vote == held.vote
        && later.prev_log_id == held.prev_log_id
        && later.leader_commit >= held.leader_commit
}
