//! `wait=true` in the emulation: the v3 keyspace's changes under the prefix, one v2
//! event per revision that a v2 write made (its action key says which), as etcd's
//! emulation turns its v3 watch into v2 events.
//!
//! As etcd's, `waitIndex` is taken as the v3 revision to start from (so the first
//! event may have the index before it), and a compacted start ends the answer with no
//! event. A revision without an action (a v3 client's write under the prefix, or a
//! delete of a missing key) is skipped, where etcd's server crashes on it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use beacon_api::{Action, ErrorCode, EtcdError, Event};
use beacon_proto::mvccpb::KeyValue;
use bytes::Bytes;
use http::StatusCode;

use super::layout::v2_index;
use super::V2v3;
use crate::api_v2::params::KeyParams;
use crate::http::{full, set_number, APPLICATION_JSON, X_ETCD_INDEX, X_RAFT_INDEX, X_RAFT_TERM};
use crate::limits::{WATCHERS_MAX, WATCH_CATCH_UP_REVISIONS_MAX};
use crate::state::AppState;

/// Gives the watcher's place back when its answer ends.
struct Counted(Arc<V2v3>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a watch follows: where it is in the keyspace's history and what it wants.
struct Follow {
    state: Arc<AppState>,
    v: Counted,
    path: Vec<u8>,
    recursive: bool,
    stream: bool,
    /// The first revision not yet read.
    next: i64,
    /// Events read but not yet sent, oldest last.
    ready: Vec<Event>,
    done: bool,
}

/// Answers the headers at once; the events follow in the body.
pub fn start(
    state: &Arc<AppState>,
    v: &Arc<V2v3>,
    path: &[u8],
    params: &KeyParams,
) -> Result<Response, EtcdError> {
    let current = state
        .consensus
        .mvcc()
        .read()
        .map(|m| m.current_revision())
        .map_err(|_| {
            EtcdError::new(ErrorCode::RaftInternal, "beacon: the v3 keyspace failed", 0)
        })?;
    if v.watchers.fetch_add(1, Ordering::Relaxed) >= WATCHERS_MAX {
        v.watchers.fetch_sub(1, Ordering::Relaxed);
        return Err(EtcdError::new(
            ErrorCode::RaftInternal,
            "too many watchers",
            v2_index(current),
        ));
    }
    let since = i64::try_from(params.wait_index).unwrap_or(i64::MAX);
    let follow = Follow {
        state: Arc::clone(state),
        v: Counted(Arc::clone(v)),
        path: path.to_vec(),
        recursive: params.recursive,
        stream: params.stream,
        next: if since == 0 { current + 1 } else { since },
        ready: Vec::new(),
        done: false,
    };
    let lines = futures_util::stream::unfold(follow, |mut f| async move {
        let event = f.next_event().await?;
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from(event.to_json_line())),
            f,
        ))
    });
    let status = state.status();
    let mut resp = full(
        StatusCode::OK,
        Some(APPLICATION_JSON),
        Body::from_stream(lines),
    );
    set_number(&mut resp, X_ETCD_INDEX, v2_index(current));
    set_number(&mut resp, X_RAFT_INDEX, status.commit_index);
    set_number(&mut resp, X_RAFT_TERM, status.term);
    Ok(resp)
}

impl Follow {
    /// The next event this watch sends; `None` once it ends (after one unless
    /// streaming, at a compacted revision, or when the server stops).
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let mut revisions = self.state.consensus.v3_revisions();
        let mut shutdown = self.state.shutdown.clone();
        loop {
            if let Some(event) = self.ready.pop() {
                self.done = !self.stream;
                return Some(event);
            }
            if *shutdown.borrow_and_update() {
                return None;
            }
            let current = *revisions.borrow_and_update();
            if current >= self.next {
                let to = current.min(self.next + WATCH_CATCH_UP_REVISIONS_MAX - 1);
                self.read(to)?;
                continue;
            }
            tokio::select! {
                changed = revisions.changed() => changed.ok()?,
                _ = shutdown.changed() => return None,
            }
        }
    }

    /// Reads the revisions up to `to` into `ready`: one event per revision that a v2
    /// write made under the watched path.
    fn read(&mut self, to: i64) -> Option<()> {
        let l = &self.v.0.layout;
        let action_key = l.action_key();
        let mut events = Vec::new();
        {
            let mvcc = self.state.consensus.mvcc().read().ok()?;
            let changes = mvcc.changes(self.next, to).ok()?;
            let mut i = 0;
            while i < changes.len() {
                let main = changes[i].0.main;
                let end = changes[i..]
                    .iter()
                    .position(|(r, _)| r.main != main)
                    .map_or(changes.len(), |n| i + n);
                let group = &changes[i..end];
                i = end;
                let action = group
                    .iter()
                    .find(|(_, kv)| kv.key == action_key)
                    .and_then(|(_, kv)| action_named(&kv.value));
                // The longest key is the node written: a create's new parents are shorter.
                let mut written: Option<&KeyValue> = None;
                for (_, kv) in group {
                    if l.path_of(&kv.key).is_some()
                        && written.is_none_or(|w| w.key.len() < kv.key.len())
                    {
                        written = Some(kv);
                    }
                }
                let (Some(action), Some(kv)) = (action, written) else {
                    continue;
                };
                let Some((path, _)) = l.path_of(&kv.key) else {
                    continue;
                };
                if !self.wants(&path) {
                    continue;
                }
                let prev = mvcc.event(kv.clone(), true).ok()?.prev_kv;
                events.push(Event {
                    action,
                    node: l.node(kv),
                    prev_node: prev.as_ref().and_then(|p| l.node(p)),
                    etcd_index: v2_index(main),
                    refresh: false,
                });
            }
        }
        self.next = to + 1;
        events.reverse();
        self.ready = events;
        Some(())
    }

    /// Whether a change at `path` (a store path) is this watch's: the path itself, or,
    /// recursively, a path below it that no hidden name (`_...`) below it leads to.
    fn wants(&self, path: &[u8]) -> bool {
        if path == self.path.as_slice() {
            return true;
        }
        let Some(rest) = path.strip_prefix(self.path.as_slice()) else {
            return false;
        };
        self.recursive && rest.starts_with(b"/") && !rest.windows(2).any(|w| w == b"/_")
    }
}

fn action_named(name: &[u8]) -> Option<Action> {
    Some(match name {
        b"set" => Action::Set,
        b"create" => Action::Create,
        b"update" => Action::Update,
        b"delete" => Action::Delete,
        b"compareAndSwap" => Action::CompareAndSwap,
        b"compareAndDelete" => Action::CompareAndDelete,
        _ => return None,
    })
}
