//! `etcdserverpb.Watch`: one bidirectional stream multiplexes a client's watchers.
//!
//! A stream is one task. It keeps each watcher's range, options and next revision, and
//! reads the changes it owes them from the keyspace itself (`Mvcc::changes`), up to
//! the revision the state machine last published: there is no per-watcher queue of
//! events, so a watcher whose client reads slowly (the stream's answers wait in a queue
//! of [`WATCH_RESPONSES_QUEUED_MAX`]) just falls behind and catches up from storage
//! later, in order, with nothing lost and no memory growing (etcd's slow watchers pile
//! events up in memory as "victims"). As etcd: a watcher that catches up gets batches
//! of at most [`WATCH_CATCH_UP_REVISIONS_MAX`] revisions with the current revision in
//! the header; one that is caught up gets one answer per revision, with that revision.
//! A watcher whose next revision was compacted away is cancelled with the compacted
//! revision.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use beacon_mvcc::MvccError;
use beacon_proto::etcdserverpb::watch_create_request::FilterType;
use beacon_proto::etcdserverpb::watch_request::RequestUnion;
use beacon_proto::etcdserverpb::{
    watch_server, ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse,
};
use beacon_proto::mvccpb::{Event, KeyValue};
use futures_util::{Stream, StreamExt};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

use crate::limits::{
    WATCHERS_PER_STREAM_MAX, WATCH_CATCH_UP_REVISIONS_MAX, WATCH_RESPONSES_QUEUED_MAX,
};
use crate::state::AppState;

pub struct Watch {
    state: Arc<AppState>,
}

impl Watch {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl watch_server::Watch for Watch {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(WATCH_RESPONSES_QUEUED_MAX);
        // Only the credentials: each create is checked as the stream's user.
        let mut credentials = tonic::metadata::MetadataMap::new();
        for name in super::auth::TOKEN_KEYS {
            if let Some(value) = request.metadata().get(name) {
                credentials.insert(name, value.clone());
            }
        }
        let auth_seen = super::read_mvcc(&self.state)
            .map(|m| (m.auth().is_enabled(), m.auth().revision()))
            .unwrap_or_default();
        let common_name = request
            .extensions()
            .get::<super::auth::ClientCommonName>()
            .cloned();
        let session = Session {
            common_name,
            auth_seen,
            user: None,
            credentials: (!credentials.is_empty()).then(|| Box::new(credentials)),
            revisions: self.state.consensus.v3_revisions(),
            state: Arc::clone(&self.state),
            watchers: BTreeMap::new(),
            next_id: 0,
            tx,
            behind: false,
            scanned_at: None,
        };
        tokio::spawn(session.run(request.into_inner()));
        Ok(Response::new(Box::pin(super::queued(rx).map(Ok))))
    }
}

/// One watcher of a stream.
struct Watcher {
    key: Vec<u8>,
    /// Empty: the key alone; `"\0"`: every key from `key` on.
    range_end: Vec<u8>,
    /// The first revision not yet sent.
    next: i64,
    /// Caught up once: answers per revision from then on.
    synced: bool,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    fragment: bool,
    /// Sent something since the last progress tick.
    sent: bool,
}

impl Watcher {
    fn covers(&self, key: &[u8]) -> bool {
        match self.range_end.as_slice() {
            [] => key == self.key,
            [0] => key >= self.key.as_slice(),
            end => key >= self.key.as_slice() && key < end,
        }
    }

    fn wants(&self, kv: &KeyValue) -> bool {
        let filtered = if kv.version == 0 {
            self.no_delete
        } else {
            self.no_put
        };
        self.covers(&kv.key) && !filtered
    }
}

/// Why a stream ends.
struct Gone;

struct Session {
    state: Arc<AppState>,
    /// The stream's token, if it came with one.
    credentials: Option<Box<tonic::metadata::MetadataMap>>,
    /// Its connection's client certificate name, the user when there is no token.
    common_name: Option<super::auth::ClientCommonName>,
    /// The user the token named when a watcher was last created, whose permissions
    /// the watchers are checked against again when the auth store changes.
    user: Option<String>,
    /// Whether auth was on, and its revision, when the watchers were last checked.
    auth_seen: (bool, u64),
    revisions: watch::Receiver<i64>,
    watchers: BTreeMap<i64, Watcher>,
    /// The next automatic watch id to try.
    next_id: i64,
    tx: mpsc::Sender<WatchResponse>,
    /// Whether some watcher may owe events, as of the revision `scanned_at` (`None`:
    /// look again). Kept rather than found on every turn of the loop: that was a scan
    /// of every watcher per request, so creating n watchers on one stream cost n².
    behind: bool,
    scanned_at: Option<i64>,
}

impl Session {
    async fn run(mut self, mut requests: Streaming<WatchRequest>) {
        let mut shutdown = self.state.shutdown.clone();
        let mut progress = tokio::time::interval(self.state.watch_progress_notify_interval);
        progress.tick().await;
        // A client that closed its side still gets its watchers' events, as etcd's.
        let mut open = true;
        loop {
            let current = *self.revisions.borrow_and_update();
            if self.scanned_at != Some(current) {
                self.behind = self.watchers.values().any(|w| w.next <= current);
                self.scanned_at = Some(current);
            }
            let behind = self.behind;
            let step = tokio::select! {
                biased;
                () = async { let _ = shutdown.wait_for(|s| *s).await; } => Err(Gone),
                request = requests.next(), if open => match request {
                    Some(Ok(request)) => self.handle(request).await,
                    Some(Err(_)) => Err(Gone),
                    None => {
                        open = false;
                        Ok(())
                    }
                },
                () = std::future::ready(()), if behind => {
                    // What it left owed (a batch limit, a full queue) is found again.
                    self.scanned_at = None;
                    self.dispatch(current).await
                }
                _ = self.revisions.changed() => Ok(()),
                _ = progress.tick() => self.progress().await,
                () = self.tx.closed() => Err(Gone),
            };
            if step.is_err() {
                return;
            }
        }
    }

    fn header(&self, revision: Option<i64>) -> Option<ResponseHeader> {
        Some(match revision {
            Some(revision) => super::header_at(&self.state, revision),
            None => super::header(&self.state),
        })
    }

    async fn send(&self, response: WatchResponse) -> Result<(), Gone> {
        self.tx.send(response).await.map_err(|_| Gone)
    }

    async fn handle(&mut self, request: WatchRequest) -> Result<(), Gone> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                // An unknown id gets no answer at all, as etcd's.
                if self.watchers.remove(&cancel.watch_id).is_some() {
                    self.send(WatchResponse {
                        header: self.header(None),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..WatchResponse::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.send(WatchResponse {
                    header: self.header(None),
                    watch_id: -1,
                    ..WatchResponse::default()
                })
                .await
            }
            None => Ok(()),
        }
    }

    async fn refuse(&self, reason: &str) -> Result<(), Gone> {
        self.send(WatchResponse {
            header: self.header(None),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason.into(),
            ..WatchResponse::default()
        })
        .await
    }

    /// etcd's `isWatchPermitted`: the stream's user may read what the watcher would
    /// see. A refusal's reason is the gRPC error's text as grpc-go prints it.
    fn permitted(&mut self, key: &[u8], range_end: &[u8]) -> Result<(), String> {
        let empty = tonic::metadata::MetadataMap::new();
        let metadata = self.credentials.as_deref().unwrap_or(&empty);
        let caller = super::auth::caller_of(&self.state, metadata, self.common_name.as_ref())
            .map_err(|status| go_text(&status))?;
        let mvcc = super::read_mvcc(&self.state).map_err(|status| go_text(&status))?;
        mvcc.check_watch(caller.as_ref(), key, range_end)
            .map_err(|e| go_text(&super::auth::refused(e)))?;
        self.user = caller.map(|c| c.username);
        Ok(())
    }

    /// Cancels the watchers whose user may no longer read what they watch. etcd checks
    /// a watcher once, when it is created, so a revoked permission, a deleted user or
    /// auth turned on goes on sending it events; here, whenever the auth store changed,
    /// every watcher is checked again (as the user, not the token: a token that only
    /// aged does not end a watch) before anything more is sent.
    async fn recheck(&mut self) -> Result<(), Gone> {
        let denied: Vec<(i64, String)> = {
            let Ok(mvcc) = super::read_mvcc(&self.state) else {
                return Err(Gone);
            };
            let auth = mvcc.auth();
            let now = (auth.is_enabled(), auth.revision());
            if now == self.auth_seen {
                return Ok(());
            }
            self.auth_seen = now;
            let caller = self.user.as_deref().map(|u| auth.caller_named(u));
            self.watchers
                .iter()
                .filter_map(|(id, w)| {
                    let refused = mvcc
                        .check_watch(caller.as_ref(), &w.key, &w.range_end)
                        .err()?;
                    Some((*id, go_text(&super::auth::refused(refused))))
                })
                .collect()
        };
        for (id, reason) in denied {
            self.watchers.remove(&id);
            self.send(WatchResponse {
                header: self.header(None),
                watch_id: id,
                canceled: true,
                cancel_reason: reason,
                ..WatchResponse::default()
            })
            .await?;
        }
        Ok(())
    }

    async fn create(&mut self, create: WatchCreateRequest) -> Result<(), Gone> {
        let key = if create.key.is_empty() {
            vec![0]
        } else {
            create.key
        };
        let range_end = create.range_end;
        if let Err(reason) = self.permitted(&key, &range_end) {
            return self.refuse(&reason).await;
        }
        if !matches!(range_end.as_slice(), [] | [0]) && key >= range_end {
            return self.refuse("mvcc: watcher range is empty").await;
        }
        if self.watchers.len() >= WATCHERS_PER_STREAM_MAX {
            let reason =
                format!("beacon: more than {WATCHERS_PER_STREAM_MAX} watchers on one stream");
            return self.refuse(&reason).await;
        }
        let id = if create.watch_id == 0 {
            // The next unused one, and never again on this stream (etcd's).
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        } else {
            create.watch_id
        };
        if self.watchers.contains_key(&id) {
            return self
                .refuse("mvcc: duplicate watch ID provided on the WatchStream")
                .await;
        }
        let current = *self.revisions.borrow();
        let next = if create.start_revision <= 0 {
            current + 1
        } else {
            create.start_revision
        };
        // Owed history from the start: the loop's next turn dispatches (a watcher from
        // now owes nothing until the revision moves, when the loop looks again).
        if next <= current {
            self.behind = true;
        }
        let filters = |f: FilterType| create.filters.contains(&(f as i32));
        self.watchers.insert(
            id,
            Watcher {
                key,
                range_end,
                next,
                synced: next > current,
                prev_kv: create.prev_kv,
                no_put: filters(FilterType::Noput),
                no_delete: filters(FilterType::Nodelete),
                progress_notify: create.progress_notify,
                fragment: create.fragment,
                sent: false,
            },
        );
        self.send(WatchResponse {
            header: self.header(Some(current)),
            watch_id: id,
            created: true,
            ..WatchResponse::default()
        })
        .await
    }

    /// Sends the watchers that are behind what they owe them, from the lowest revision
    /// any of them needs, at most [`WATCH_CATCH_UP_REVISIONS_MAX`] revisions at once.
    async fn dispatch(&mut self, current: i64) -> Result<(), Gone> {
        self.recheck().await?;
        // Without the keyspace's revision: a second read lock on this thread, under the
        // one taken below, would wait behind a queued apply that waits for the first (a
        // deadlock the etcd3 client suites found). Each answer sets its own revision.
        let base = super::header_at(&self.state, 0);
        let (compacted, outcome) = {
            let Ok(mvcc) = super::read_mvcc(&self.state) else {
                return Err(Gone);
            };
            let compacted = mvcc.compact_revision();
            let from = self
                .watchers
                .values()
                .map(|w| w.next)
                .filter(|&n| n >= compacted)
                .min();
            let outcome = match from {
                Some(from) => {
                    let to = current.min(from + WATCH_CATCH_UP_REVISIONS_MAX - 1);
                    self.collect(&mvcc, base, from, to)
                        .map(|batch| Some((to, batch)))
                }
                None => Ok(None),
            };
            (compacted, outcome)
        };
        // Watchers whose next revision is gone: cancelled with the compacted revision.
        let lost: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.next < compacted)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.watchers.remove(&id);
            self.send(WatchResponse {
                header: self.header(Some(0)),
                watch_id: id,
                canceled: true,
                compact_revision: compacted,
                ..WatchResponse::default()
            })
            .await?;
        }
        let (to, batch) = match outcome {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(()),
            // Compacted between two reads: the next round cancels who needs it.
            Err(MvccError::Compacted) => return Ok(()),
            Err(_) => return Err(Gone),
        };
        for (id, responses) in batch {
            for response in responses {
                self.send(response).await?;
            }
            if let Some(w) = self.watchers.get_mut(&id) {
                w.sent = true;
            }
        }
        for w in self.watchers.values_mut() {
            if w.next <= to {
                w.next = to + 1;
                if to == current {
                    w.synced = true;
                }
            }
        }
        Ok(())
    }

    /// Every behind watcher's answers for the changes in `from..=to`.
    fn collect(
        &self,
        mvcc: &beacon_mvcc::Mvcc,
        base: ResponseHeader,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Vec<WatchResponse>)>, MvccError> {
        let changes = mvcc.changes(from, to)?;
        let current = mvcc.current_revision();
        let message_max = self.state.request_bytes_max.grpc_message();
        let mut out = Vec::new();
        for (&id, w) in self.watchers.iter().filter(|(_, w)| w.next <= to) {
            let mut events: Vec<(i64, Event)> = Vec::new();
            for (rev, kv) in changes.iter().filter(|(rev, _)| rev.main >= w.next) {
                if w.wants(kv) {
                    events.push((rev.main, mvcc.event(kv.clone(), w.prev_kv)?));
                }
            }
            if events.is_empty() {
                continue;
            }
            let mut responses = Vec::new();
            if w.synced {
                // One answer per revision, headed by it.
                let mut events = events.into_iter().peekable();
                while let Some((rev, first)) = events.next() {
                    let mut of_rev = vec![first];
                    while let Some((_, e)) = events.next_if(|(r, _)| *r == rev) {
                        of_rev.push(e);
                    }
                    responses.extend(answers(base, id, w, rev, of_rev, message_max));
                }
            } else {
                let events = events.into_iter().map(|(_, e)| e).collect();
                responses.extend(answers(base, id, w, current, events, message_max));
            }
            out.push((id, responses));
        }
        Ok(out)
    }

    /// etcd's progress notification: each caught-up watcher that asked for them and got
    /// nothing since the last tick hears the current revision.
    async fn progress(&mut self) -> Result<(), Gone> {
        let current = *self.revisions.borrow();
        let due: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.progress_notify && w.synced && !w.sent && w.next > current)
            .map(|(id, _)| *id)
            .collect();
        for w in self.watchers.values_mut() {
            w.sent = false;
        }
        for id in due {
            self.send(WatchResponse {
                header: self.header(Some(current)),
                watch_id: id,
                ..WatchResponse::default()
            })
            .await?;
        }
        Ok(())
    }
}

/// One answer to watcher `id` with `events`, headed by `revision`, or several if the
/// watcher asked for fragments and it would be over `message_max`, the server's gRPC
/// message limit, at which etcd cuts too (a single event is never split).
fn answers(
    base: ResponseHeader,
    id: i64,
    w: &Watcher,
    revision: i64,
    events: Vec<Event>,
    message_max: usize,
) -> Vec<WatchResponse> {
    let whole = WatchResponse {
        header: Some(ResponseHeader { revision, ..base }),
        watch_id: id,
        events,
        ..WatchResponse::default()
    };
    if !w.fragment || whole.events.len() < 2 || whole.encoded_len() < message_max {
        return vec![whole];
    }
    let WatchResponse { header, events, .. } = whole;
    let piece = |events, fragment| WatchResponse {
        header,
        watch_id: id,
        fragment,
        events,
        ..WatchResponse::default()
    };
    let (mut pieces, mut part, mut size) = (Vec::new(), Vec::new(), 0);
    for event in events {
        let len = event.encoded_len();
        if !part.is_empty() && size + len >= message_max {
            pieces.push(piece(std::mem::take(&mut part), true));
            size = 0;
        }
        size += len;
        part.push(event);
    }
    pieces.push(piece(part, false));
    pieces
}

/// A gRPC error as grpc-go's `Error()` prints it, which etcd puts in a cancel reason.
fn go_text(status: &Status) -> String {
    format!(
        "rpc error: code = {:?} desc = {}",
        status.code(),
        status.message()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::GRPC_MESSAGE_BYTES_MAX;

    fn watcher(key: &[u8], range_end: &[u8]) -> Watcher {
        Watcher {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            next: 1,
            synced: true,
            prev_kv: false,
            no_put: false,
            no_delete: false,
            progress_notify: false,
            fragment: false,
            sent: false,
        }
    }

    #[test]
    fn a_watcher_covers_its_key_its_range_or_everything_from_its_key() {
        let w = watcher;
        assert!(w(b"a", b"").covers(b"a") && !w(b"a", b"").covers(b"ab"));
        assert!(w(b"a", b"b").covers(b"ab") && !w(b"a", b"b").covers(b"b"));
        assert!(w(b"a", b"\0").covers(b"zzz") && !w(b"a", b"\0").covers(b"0"));
    }

    #[test]
    fn an_answer_over_the_limit_is_fragmented_between_events_when_asked() {
        let event = |i: u8| Event {
            kv: Some(KeyValue {
                key: vec![i],
                value: vec![i; 1 << 20],
                mod_revision: 5,
                version: 1,
                create_revision: 5,
                lease: 0,
            }),
            ..Event::default()
        };
        let mut w = watcher(&[0], &[0]);
        let events = || (1..=3).map(event).collect::<Vec<_>>();
        let base = ResponseHeader::default();
        assert_eq!(
            answers(base, 4, &w, 5, events(), GRPC_MESSAGE_BYTES_MAX).len(),
            1,
            "not asked"
        );
        w.fragment = true;
        let pieces = answers(base, 4, &w, 5, events(), GRPC_MESSAGE_BYTES_MAX);
        let shape: Vec<(usize, bool)> = pieces
            .iter()
            .map(|p| (p.events.len(), p.fragment))
            .collect();
        assert_eq!(shape, vec![(1, true), (1, true), (1, false)]);
        assert!(pieces
            .iter()
            .all(|p| p.watch_id == 4 && p.header.is_some_and(|h| h.revision == 5)));
        // A single event is never split, however large.
        assert_eq!(
            answers(base, 4, &w, 5, vec![event(9)], GRPC_MESSAGE_BYTES_MAX).len(),
            1
        );
    }
}
