//! Watches (`wait=true`): the store delivers events into a bounded channel; the
//! response body reads it. No task per watcher: the body itself is the consumer, and
//! dropping it (client gone, server stopping) removes the watcher from the store.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use beacon_api::{ErrorCode, EtcdError, Event};
use beacon_store::{WatchSink, WatcherId};
use bytes::Bytes;
use http::StatusCode;
use http_body::Frame;
use tokio::sync::mpsc;

use crate::consensus::{write_store, SharedStore};
use crate::http::{full, set_number, APPLICATION_JSON, X_ETCD_INDEX, X_RAFT_INDEX, X_RAFT_TERM};
use crate::limits::{WATCHERS_MAX, WATCH_EVENTS_BUFFERED_MAX};
use crate::state::AppState;

/// The store's side of a watch: never blocks; a full or closed channel ends the watch.
struct ChannelSink {
    tx: mpsc::Sender<Arc<Event>>,
}

impl WatchSink for ChannelSink {
    fn deliver(&mut self, event: &Arc<Event>) -> bool {
        self.tx.try_send(Arc::clone(event)).is_ok()
    }
}

/// Removes the watcher from the store when the response body goes away.
struct Unwatch {
    store: SharedStore,
    id: WatcherId,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        // Taking a watcher out of the hub is safe even in a store a panic poisoned,
        // and it must happen whatever state the store is in.
        let mut store = self.store.write().unwrap_or_else(|p| p.into_inner());
        store.unwatch(self.id);
    }
}

/// The streamed body of a watch response: one JSON line per event; one event then
/// the end for a long poll.
pub struct WatchBody {
    rx: mpsc::Receiver<Arc<Event>>,
    stream: bool,
    done: bool,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    _unwatch: Unwatch,
}

impl http_body::Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                if !self.stream {
                    self.done = true;
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(event.to_json_line())))))
            }
            // The store dropped the watcher (buffer full, or it was cleared).
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// Registers a watch and answers at once with the headers; events follow in the body.
pub fn start(
    state: &AppState,
    key: &[u8],
    recursive: bool,
    stream: bool,
    wait_index: u64,
) -> Result<Response, EtcdError> {
    let store = Arc::clone(state.consensus.store());
    let (tx, rx) = mpsc::channel(WATCH_EVENTS_BUFFERED_MAX);
    let (id, start_index) = {
        let mut guard = write_store(&store)?;
        if guard.watcher_count() >= WATCHERS_MAX {
            return Err(EtcdError::new(
                ErrorCode::RaftInternal,
                "too many watchers",
                guard.current_index(),
            ));
        }
        guard.watch(
            key,
            recursive,
            stream,
            wait_index,
            Box::new(ChannelSink { tx }),
        )?
    };
    let mut shutdown = state.shutdown.clone();
    let body = WatchBody {
        rx,
        stream,
        done: false,
        shutdown: Box::pin(async move {
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        }),
        _unwatch: Unwatch { store, id },
    };
    let status = state.status();
    let mut resp = full(StatusCode::OK, Some(APPLICATION_JSON), Body::new(body));
    set_number(&mut resp, X_ETCD_INDEX, start_index);
    set_number(&mut resp, X_RAFT_INDEX, status.commit_index);
    set_number(&mut resp, X_RAFT_TERM, status.term);
    Ok(resp)
}
