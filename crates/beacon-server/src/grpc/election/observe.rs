//! `Election.Observe`: one task per call, sending each leader of an election and each
//! value it posts, as etcd's recipe finds them. It reads the leader (the oldest key under
//! the prefix) with a linearizable read; with none, it waits for the first key put under
//! the prefix. It then follows that key's changes from the keyspace (`Mvcc::changes`,
//! woken by the published revisions, as a watch is), sending each put, until the key
//! is deleted, and starts over. It ends when its client goes or the server stops; a
//! failed read ends the stream without an error, as etcd's.

use std::sync::Arc;

use beacon_auth::Caller;
use beacon_mvcc::Revision;
use beacon_proto::etcdserverpb::range_request::SortOrder;
use beacon_proto::mvccpb::KeyValue;
use beacon_proto::v3electionpb::LeaderResponse;
use tokio::sync::{mpsc, watch};
use tonic::Status;

use crate::grpc::concurrency as recipe;
use crate::grpc::kv;
use crate::limits::WATCH_CATCH_UP_REVISIONS_MAX;
use crate::state::AppState;

type Answers = mpsc::Sender<Result<LeaderResponse, Status>>;

/// Why the observation ended: the stream just closes.
struct Ended;

/// Observes the election whose keys are under `prefix` until the client goes or the
/// server stops.
pub async fn run(state: Arc<AppState>, caller: Option<Caller>, prefix: Vec<u8>, tx: Answers) {
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        _ = follow(&state, caller.as_ref(), &prefix, &tx) => {}
        () = tx.closed() => {}
        _ = shutdown.wait_for(|s| *s) => {
            let _ = tx.try_send(Err(crate::grpc::stopped()));
        }
    }
}

/// The leader is read as `caller` each time it changes, so a caller whose permission
/// goes ends the observation.
async fn follow(
    state: &AppState,
    caller: Option<&Caller>,
    prefix: &[u8],
    tx: &Answers,
) -> Result<(), Ended> {
    loop {
        let first = recipe::top(prefix, SortOrder::Ascend);
        let found = kv::range(state, caller, first).await.map_err(|_| Ended)?;
        let read_at = found.header.as_ref().map_or(0, |h| h.revision);
        let (revision, leader) = match found.kvs.into_iter().next() {
            Some(kv) => (read_at, kv),
            None => first_put(state, prefix, read_at).await?,
        };
        send(state, tx, revision, leader.clone()).await?;
        // The leader's puts until its key is deleted (a delete ends the revision's
        // changes too, as etcd stops reading its watch answer there).
        let mut changes = Changes::from(state, revision + 1);
        'leading: loop {
            for (rev, kv) in changes.next(state).await? {
                if kv.key != leader.key {
                    continue;
                }
                if kv.version == 0 {
                    break 'leading;
                }
                send(state, tx, rev.main, kv).await?;
            }
        }
    }
}

/// With no leader at `read_at`: the first key put under `prefix` after it, and its
/// revision (etcd takes the first put its watch reports, deletes skipped).
async fn first_put(
    state: &AppState,
    prefix: &[u8],
    read_at: i64,
) -> Result<(i64, KeyValue), Ended> {
    let mut changes = Changes::from(state, read_at);
    loop {
        for (rev, kv) in changes.next(state).await? {
            if kv.version != 0 && kv.key.starts_with(prefix) {
                return Ok((rev.main, kv));
            }
        }
    }
}

async fn send(state: &AppState, tx: &Answers, revision: i64, kv: KeyValue) -> Result<(), Ended> {
    let answer = LeaderResponse {
        header: Some(crate::grpc::header_at(state, revision)),
        kv: Some(kv),
    };
    tx.send(Ok(answer)).await.map_err(|_| Ended)
}

/// Every change of the keyspace from a revision on, read as a watch reads them.
struct Changes {
    revisions: watch::Receiver<i64>,
    /// The first revision not yet read.
    next: i64,
}

impl Changes {
    fn from(state: &AppState, next: i64) -> Self {
        Changes {
            revisions: state.consensus.v3_revisions(),
            next,
        }
    }

    /// The changes after the last ones read, once there are any (at most
    /// [`WATCH_CATCH_UP_REVISIONS_MAX`] revisions' worth). A compacted revision ends
    /// the observation, as it ends etcd's watch.
    async fn next(&mut self, state: &AppState) -> Result<Vec<(Revision, KeyValue)>, Ended> {
        loop {
            let current = *self.revisions.borrow_and_update();
            if current >= self.next {
                let to = current.min(self.next + WATCH_CATCH_UP_REVISIONS_MAX - 1);
                let changes = {
                    let mvcc = crate::grpc::read_mvcc(state).map_err(|_| Ended)?;
                    mvcc.changes(self.next, to).map_err(|_| Ended)?
                };
                self.next = to + 1;
                return Ok(changes);
            }
            self.revisions.changed().await.map_err(|_| Ended)?;
        }
    }
}
