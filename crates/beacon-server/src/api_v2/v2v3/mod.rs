//! etcd's v2v3 emulation (`--experimental-enable-v2v3=PREFIX`): the v2 keys API served
//! from the v3 keyspace under a prefix (see `layout`), so that v2 and v3 clients share
//! one store. As etcd's, it is a client of the server's own KV: every v2 write is a v3
//! transaction through the log, indexes are revisions less one, and TTLs are refused.
//!
//! Where etcd's emulation loses data or answers a key it did not write, this one does
//! not (each pinned against etcd in `tests/v2v3.rs`): a directory's listing, emptiness
//! check and recursive delete end at its own children (etcd's also take those of every
//! sibling whose name extends it); `POST` creates its directory and answers the key it
//! made (etcd's leaves the new key out of every listing and answers the directory's
//! path); and a watch skips revisions no v2 write made, where etcd's server crashes.

mod layout;
mod watch;
mod write;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::response::Response;
use beacon_api::{Action, ErrorCode, EtcdError, Event, NodeExtern};
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::response_op::Response as OpResponse;
use beacon_proto::etcdserverpb::{RangeRequest, RequestOp, TxnRequest, TxnResponse};
use beacon_proto::mvccpb::KeyValue;

use super::keys::event_response;
use super::params::KeyParams;
use crate::state::AppState;
use layout::{key_of, store_path, v2_index, Layout, ROOT};

/// The emulation's state: where its tree is, and how many watches it serves.
pub struct V2v3 {
    layout: Layout,
    watchers: AtomicUsize,
}

impl V2v3 {
    pub fn new(prefix: &[u8]) -> Self {
        V2v3 {
            layout: Layout::new(prefix),
            watchers: AtomicUsize::new(0),
        }
    }
}

/// Serves one parsed keys request from the v3 keyspace, choosing the store operation
/// as etcd's v2 applier does.
pub async fn handle(
    state: &Arc<AppState>,
    v: &Arc<V2v3>,
    method: &http::Method,
    params: &KeyParams,
) -> Result<Response, EtcdError> {
    let path = store_path(&params.key);
    let event = match *method {
        http::Method::GET if params.wait && !params.quorum => {
            return watch::start(state, v, &path, params);
        }
        http::Method::GET | http::Method::HEAD => get(state, v, &path, params).await?,
        http::Method::POST => write::create(state, v, &path, params, true).await?,
        http::Method::PUT => match params.prev_exist {
            Some(true) if params.prev_index == 0 && params.prev_value.is_empty() => {
                write::update(state, v, &path, params).await?
            }
            Some(true) => write::compare_and_swap(state, v, &path, params).await?,
            Some(false) => write::create(state, v, &path, params, false).await?,
            None if params.prev_index > 0 || !params.prev_value.is_empty() => {
                write::compare_and_swap(state, v, &path, params).await?
            }
            None => write::set(state, v, &path, params).await?,
        },
        _ if params.prev_index > 0 || !params.prev_value.is_empty() => {
            write::compare_and_delete(state, v, &path, params).await?
        }
        _ => write::delete(state, v, &path, params).await?,
    };
    Ok(event_response(
        &event,
        &state.status(),
        params.no_value_on_success,
    ))
}

/// etcd's `Get`: a directory (or the root) with its children, else the file.
async fn get(
    state: &AppState,
    v: &V2v3,
    path: &[u8],
    params: &KeyParams,
) -> Result<Event, EtcdError> {
    let l = &v.layout;
    let (revision, mut found) = read(state, &[l.dir(path), l.file(path)]).await?;
    let (file, dir) = (found.pop().flatten(), found.pop().flatten());
    if dir.is_some() || path == ROOT {
        let nodes = listing(state, l, path, params.recursive, params.sorted, revision).await?;
        let (created, modified) = dir.map_or((0, 0), |d| (d.create_revision, d.mod_revision));
        let node = NodeExtern {
            key: key_of(path),
            dir: true,
            nodes: nodes.into(),
            created_index: v2_index(created),
            modified_index: v2_index(modified),
            ..NodeExtern::default()
        };
        return Ok(event(Action::Get, Some(node), None, revision));
    }
    match file {
        Some(kv) => Ok(event(Action::Get, l.node(&kv), None, revision)),
        None => Err(EtcdError::new(
            ErrorCode::KeyNotFound,
            key_of(path),
            v2_index(revision),
        )),
    }
}

/// The children of the directory at `path` as of `revision`, and theirs when
/// `recursive`, read a level at a time as etcd's emulation reads them. Only the first
/// level is sorted by key when `sorted` (the rest is in v3 key order), as etcd's is.
async fn listing(
    state: &AppState,
    l: &Layout,
    path: &[u8],
    recursive: bool,
    sorted: bool,
    revision: i64,
) -> Result<Vec<NodeExtern>, EtcdError> {
    let mut levels: Vec<Vec<(Vec<u8>, NodeExtern)>> = Vec::new();
    for depth in 1.. {
        let prefix = l.below(path, depth);
        let req = RangeRequest {
            range_end: beacon_proto::prefix_end(&prefix),
            key: prefix,
            revision,
            ..RangeRequest::default()
        };
        let kvs = crate::grpc::kv::range(state, None, req)
            .await
            .map_err(|s| relayed(&s))?
            .kvs;
        let level: Vec<_> = kvs
            .iter()
            .filter_map(|kv| Some((l.path_of(&kv.key)?.0, l.node(kv)?)))
            .collect();
        if level.is_empty() || !recursive {
            levels.push(level);
            break;
        }
        levels.push(level);
    }
    // Deepest first: each node takes the children gathered for it, then goes to its
    // parent's.
    let mut children: std::collections::HashMap<Vec<u8>, Vec<NodeExtern>> = Default::default();
    let mut top = Vec::new();
    for (i, level) in levels.into_iter().enumerate().rev() {
        for (node_path, mut node) in level {
            if let Some(below) = children.remove(&node_path) {
                node.nodes = below.into();
            }
            if i == 0 {
                top.push(node);
            } else {
                let parent = layout::parent(&node_path).to_vec();
                children.entry(parent).or_default().push(node);
            }
        }
    }
    if sorted {
        top.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    }
    Ok(top)
}

/// Reads `keys` in one linearizable transaction: its revision and each key's value.
async fn read(
    state: &AppState,
    keys: &[Vec<u8>],
) -> Result<(i64, Vec<Option<KeyValue>>), EtcdError> {
    let success = keys.iter().map(|k| range_op(k)).collect();
    let resp = commit(
        state,
        TxnRequest {
            success,
            ..TxnRequest::default()
        },
    )
    .await?;
    let found = (0..keys.len())
        .map(|i| ranged(&resp, i).into_iter().next())
        .collect();
    Ok((revision_of(&resp), found))
}

/// Puts a transaction through the server's own KV, as etcd's emulation does with its
/// in-process client: no caller, so v3 auth refuses it while on, as etcd's does.
async fn commit(state: &AppState, req: TxnRequest) -> Result<TxnResponse, EtcdError> {
    crate::grpc::kv::txn(state, None, req)
        .await
        .map_err(|s| relayed(&s))
}

/// A v3 refusal as etcd's v2 handler writes any error that is not a v2 one.
fn relayed(status: &tonic::Status) -> EtcdError {
    EtcdError::new(ErrorCode::RaftInternal, status.message(), 0)
}

fn range_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: key.to_vec(),
            ..RangeRequest::default()
        })),
    }
}

/// The values operation `i` of a transaction's taken branch read.
fn ranged(resp: &TxnResponse, i: usize) -> Vec<KeyValue> {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(OpResponse::ResponseRange(r)) => r.kvs.clone(),
        _ => Vec::new(),
    }
}

fn revision_of(resp: &TxnResponse) -> i64 {
    resp.header.as_ref().map_or(0, |h| h.revision)
}

fn event(
    action: Action,
    node: Option<NodeExtern>,
    prev_node: Option<NodeExtern>,
    revision: i64,
) -> Event {
    Event {
        action,
        node,
        prev_node,
        etcd_index: v2_index(revision),
        refresh: false,
    }
}
