//! The replication stream's folding of commit-only appends (`peer::coalesce`), against
//! a scripted follower: what is sent, and the answers openraft gets, in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use openraft::entry::RaftEntry;
use openraft::errors::RPCError;
use openraft::network::{NetAppend, RPCOption};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, StreamAppendError};
use openraft::LogId;

use crate::peer::coalesce::{stream_append, COMMIT_HOLD};
use crate::types::{Entry, TypeConfig, Vote};

type Request = AppendEntriesRequest<TypeConfig>;

fn log_id(index: u64) -> crate::types::LogId {
    let leader = openraft::impls::leader_id_adv::LeaderId {
        term: 1,
        node_id: 1,
    };
    LogId::new(leader, index)
}

/// An append from leader 1 in term 1 after entry `prev`, carrying entries up to
/// `last` (none if `last == prev`), with the commit at `commit`.
fn append(prev: u64, last: u64, commit: u64) -> Request {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: Some(log_id(prev)),
        entries: (prev + 1..=last)
            .map(|i| Entry::new_blank(log_id(i)))
            .collect(),
        leader_commit: Some(log_id(commit)),
    }
}

/// A follower that records what it gets (previous entry, last entry, commit) and
/// answers from a script, `Success` once the script is used up.
#[derive(Default)]
struct Follower {
    got: Arc<Mutex<Vec<(u64, u64, u64)>>>,
    answers: VecDeque<AppendEntriesResponse<TypeConfig>>,
}

impl NetAppend<TypeConfig> for Follower {
    async fn append_entries(
        &mut self,
        rpc: Request,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let index = |id: &Option<crate::types::LogId>| id.as_ref().map_or(0, |id| id.index);
        let last = rpc
            .entries
            .last()
            .map_or(index(&rpc.prev_log_id), |e| e.log_id.index);
        self.got
            .lock()
            .unwrap()
            .push((index(&rpc.prev_log_id), last, index(&rpc.leader_commit)));
        Ok(self
            .answers
            .pop_front()
            .unwrap_or(AppendEntriesResponse::Success))
    }
}

fn option() -> RPCOption {
    RPCOption::new(Duration::from_secs(1))
}

/// The answers openraft would get, as matched indexes or errors.
async fn run(
    follower: &mut Follower,
    input: impl futures_util::Stream<Item = Request> + Send + Unpin + 'static,
) -> Vec<Result<u64, String>> {
    let stream = stream_append(follower, input, option(), COMMIT_HOLD)
        .await
        .expect("stream");
    stream
        .map(|item| match item {
            Ok(Ok(matched)) => Ok(matched.map_or(0, |id| id.index)),
            Ok(Err(StreamAppendError::Conflict(at))) => Err(format!("conflict at {}", at.index)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        })
        .collect()
        .await
}

#[tokio::test(start_paused = true)]
async fn a_commit_only_append_travels_with_the_next_one() {
    let mut follower = Follower::default();
    let input = futures_util::stream::iter([append(5, 5, 5), append(5, 8, 5)]);
    let answers = run(&mut follower, input).await;
    // One message: entries 6..=8 with the commit; both requests answered, in order.
    assert_eq!(*follower.got.lock().unwrap(), vec![(5, 8, 5)]);
    assert_eq!(answers, vec![Ok(5), Ok(8)]);
}

#[tokio::test(start_paused = true)]
async fn a_commit_only_append_goes_alone_when_nothing_follows_in_time() {
    let mut follower = Follower::default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(append(5, 5, 5)).unwrap();
    let started = tokio::time::Instant::now();
    let sender = tokio::spawn(async move {
        // Well after the hold: the commit must not wait for it.
        tokio::time::sleep(COMMIT_HOLD * 10).await;
        tx.send(append(5, 7, 5)).unwrap();
    });
    let input = futures_util::stream::unfold(rx, |mut rx| async move {
        let request = rx.recv().await?;
        Some((request, rx))
    });
    let answers = run(&mut follower, Box::pin(input)).await;
    sender.await.unwrap();
    assert_eq!(*follower.got.lock().unwrap(), vec![(5, 5, 5), (5, 7, 5)]);
    assert_eq!(answers, vec![Ok(5), Ok(7)]);
    assert!(started.elapsed() >= COMMIT_HOLD * 10);
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_never_waits() {
    // A heartbeat is a stream of one request: it ends at once, so nothing is held.
    let mut follower = Follower::default();
    let started = tokio::time::Instant::now();
    let answers = run(&mut follower, futures_util::stream::iter([append(5, 5, 5)])).await;
    assert_eq!(*follower.got.lock().unwrap(), vec![(5, 5, 5)]);
    assert_eq!(answers, vec![Ok(5)]);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_does_not_cover_the_held_one_goes_after_it() {
    let mut follower = Follower::default();
    // The next commit is behind the held one's: both go, in order.
    let input = futures_util::stream::iter([append(5, 5, 5), append(5, 6, 4)]);
    let answers = run(&mut follower, input).await;
    assert_eq!(*follower.got.lock().unwrap(), vec![(5, 5, 5), (5, 6, 4)]);
    assert_eq!(answers, vec![Ok(5), Ok(6)]);
}

#[tokio::test(start_paused = true)]
async fn a_conflict_answers_the_held_request_and_ends_the_stream() {
    let mut follower = Follower {
        answers: [AppendEntriesResponse::Conflict].into(),
        ..Follower::default()
    };
    let input = futures_util::stream::iter([append(5, 5, 5), append(5, 8, 5), append(8, 9, 8)]);
    let answers = run(&mut follower, input).await;
    assert_eq!(*follower.got.lock().unwrap(), vec![(5, 8, 5)]);
    assert_eq!(answers, vec![Err("conflict at 5".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn a_partial_success_answers_the_held_request_and_ends_the_stream() {
    let mut follower = Follower {
        answers: [AppendEntriesResponse::PartialSuccess(Some(log_id(6)))].into(),
        ..Follower::default()
    };
    let input = futures_util::stream::iter([append(5, 5, 5), append(5, 8, 5), append(8, 9, 8)]);
    let answers = run(&mut follower, input).await;
    assert_eq!(*follower.got.lock().unwrap(), vec![(5, 8, 5)]);
    assert_eq!(answers, vec![Ok(5), Ok(6)]);
}
