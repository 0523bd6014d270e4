//! The v2 writes as v3 transactions, each with etcd's emulation's checks and words.
//!
//! `set`, `update` and `create` read what they decide on, then commit only if none of
//! it changed meanwhile (etcd runs them in its client's software transactional memory),
//! trying again a bounded number of times. The compare-and-* writes and the deletes are
//! single transactions. Every write also records its action (see `layout`).

use beacon_api::{Action, ByteString, ErrorCode, EtcdError, Event, NodeExtern};
use beacon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::response_op::Response as OpResponse;
use beacon_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, TxnResponse,
};
use beacon_proto::mvccpb::KeyValue;

use super::layout::{key_of, parents, v2_index, v3_revision, ROOT};
use super::{commit, event, range_op, ranged, read, revision_of, V2v3};
use crate::api_v2::params::KeyParams;
use crate::limits::V2V3_WRITE_ATTEMPTS_MAX;
use crate::state::AppState;

/// etcd's emulation keeps no TTLs: any `ttl` or `refresh` is refused, as its words.
fn refuse_ttl(params: &KeyParams) -> Result<(), EtcdError> {
    if params.ttl_s.is_some() || params.refresh == Some(true) {
        return Err(EtcdError::new(
            ErrorCode::RaftInternal,
            "TTLs are unsupported",
            0,
        ));
    }
    Ok(())
}

fn refuse_root(path: &[u8]) -> Result<(), EtcdError> {
    if path == ROOT {
        return Err(EtcdError::new(ErrorCode::RootReadOnly, key_of(path), 0));
    }
    Ok(())
}

fn failed(code: ErrorCode, path: &[u8], revision: i64) -> EtcdError {
    EtcdError::new(code, key_of(path), v2_index(revision))
}

/// A read-decide-commit write: `decide` sees the values of the keys it named (in that
/// order, at one revision) and answers the operations to commit, or its refusal.
struct Attempt {
    keys: Vec<Vec<u8>>,
}

impl Attempt {
    async fn run(
        &self,
        state: &AppState,
        decide: impl Fn(&[Option<KeyValue>], i64) -> Result<Vec<RequestOp>, EtcdError>,
    ) -> Result<TxnResponse, EtcdError> {
        for _ in 0..V2V3_WRITE_ATTEMPTS_MAX {
            let (revision, seen) = read(state, &self.keys).await?;
            let ops = decide(&seen, revision)?;
            // Unchanged since the read: each key still has the revision it was read at.
            let unchanged = self
                .keys
                .iter()
                .zip(&seen)
                .map(|(k, kv)| {
                    equal(
                        k,
                        CompareTarget::Mod,
                        kv.as_ref().map_or(0, |kv| kv.mod_revision),
                    )
                })
                .collect();
            let resp = commit(
                state,
                TxnRequest {
                    compare: unchanged,
                    success: ops,
                    failure: Vec::new(),
                },
            )
            .await?;
            if resp.succeeded {
                return Ok(resp);
            }
        }
        Err(EtcdError::new(
            ErrorCode::RaftInternal,
            "beacon: the v2v3 write lost every race to change its keys",
            0,
        ))
    }
}

/// The keys of the directories above `path`, each as a file and as a directory,
/// nearest first: what a write that creates the missing ones reads.
fn parent_keys(v: &V2v3, path: &[u8]) -> Vec<Vec<u8>> {
    parents(path)
        .flat_map(|p| [v.layout.file(p), v.layout.dir(p)])
        .collect()
}

/// The puts that create the directories above `path` that are missing, given the
/// values of [`parent_keys`]; one that is a file refuses the write.
fn missing_dirs(
    v: &V2v3,
    path: &[u8],
    seen: &[Option<KeyValue>],
    revision: i64,
) -> Result<Vec<RequestOp>, EtcdError> {
    let mut puts = Vec::new();
    for (i, p) in parents(path).enumerate() {
        if seen[2 * i].is_some() {
            return Err(failed(ErrorCode::NotDir, path, revision));
        }
        if seen[2 * i + 1].is_none() {
            puts.push(put(&v.layout.dir(p), b"", false));
        }
    }
    Ok(puts)
}

/// `PUT` without conditions (etcd's `Set`).
pub async fn set(
    state: &AppState,
    v: &V2v3,
    path: &[u8],
    params: &KeyParams,
) -> Result<Event, EtcdError> {
    refuse_ttl(params)?;
    refuse_root(path)?;
    let l = &v.layout;
    let mut keys = parent_keys(v, path);
    let own = keys.len();
    keys.extend([l.file(path), l.dir(path)]);
    let attempt = Attempt { keys };
    let resp = attempt
        .run(state, |seen, revision| {
            let mut ops = missing_dirs(v, path, seen, revision)?;
            let key = if params.dir {
                if seen[own].is_some() {
                    return Err(failed(ErrorCode::NotDir, path, revision));
                }
                l.dir(path)
            } else {
                if seen[own + 1].is_some() {
                    return Err(failed(ErrorCode::NotFile, path, revision));
                }
                l.file(path)
            };
            ops.push(put(&key, &params.value, true));
            ops.push(put(&l.action_key(), b"set", false));
            Ok(ops)
        })
        .await?;
    let revision = revision_of(&resp);
    let prev = prev_of_puts(&resp);
    let created = prev.as_ref().map_or(revision, |p| p.create_revision);
    let node = NodeExtern {
        key: key_of(path),
        value: (!params.dir).then(|| params.value.clone()),
        dir: params.dir,
        modified_index: v2_index(revision),
        created_index: v2_index(created),
        ..NodeExtern::default()
    };
    let prev = prev.and_then(|p| l.node(&p));
    Ok(event(Action::Set, Some(node), prev, revision))
}

/// `PUT` with `prevExist=true` and nothing to compare (etcd's `Update`). As etcd's, it
/// refuses a missing key as "Not a file".
pub async fn update(
    state: &AppState,
    v: &V2v3,
    path: &[u8],
    params: &KeyParams,
) -> Result<Event, EtcdError> {
    refuse_root(path)?;
    refuse_ttl(params)?;
    let l = &v.layout;
    let attempt = Attempt {
        keys: vec![l.dir(path), l.file(path)],
    };
    let resp = attempt
        .run(state, |seen, revision| {
            if seen[0].is_some() || seen[1].is_none() {
                return Err(failed(ErrorCode::NotFile, path, revision));
            }
            Ok(vec![
                put(&l.file(path), &params.value, true),
                put(&l.action_key(), b"update", false),
            ])
        })
        .await?;
    Ok(replaced(v, Action::Update, path, params, &resp))
}

/// `PUT` with `prevExist=false`, and `POST` (`unique`: a new key in the directory at
/// `path`, named by the time, which etcd's v2 store names by index).
pub async fn create(
    state: &AppState,
    v: &V2v3,
    path: &[u8],
    params: &KeyParams,
    unique: bool,
) -> Result<Event, EtcdError> {
    refuse_root(path)?;
    refuse_ttl(params)?;
    if !unique {
        return create_at(state, v, path, path, params).await;
    }
    // A name taken meanwhile (two POSTs in one nanosecond) moves on to the next.
    let first = u64::try_from(state.now_ns()).unwrap_or(0);
    let mut tries = 0..V2V3_WRITE_ATTEMPTS_MAX as u64;
    loop {
        let mut target = path.to_vec();
        let n = tries.next().map_or(first, |i| first.saturating_add(i));
        target.extend_from_slice(format!("/{n:020}").as_bytes());
        match create_at(state, v, path, &target, params).await {
            Err(e) if e.code == ErrorCode::NodeExist && !tries.is_empty() => continue,
            done => return done,
        }
    }
}

/// [`create`] of the node at `target` (`path` itself, or a new key in it).
async fn create_at(
    state: &AppState,
    v: &V2v3,
    path: &[u8],
    target: &[u8],
    params: &KeyParams,
) -> Result<Event, EtcdError> {
    let l = &v.layout;
    let mut keys = parent_keys(v, target);
    let own = keys.len();
    keys.extend([l.file(target), l.dir(target)]);
    let attempt = Attempt { keys };
    let resp = attempt
        .run(state, |seen, revision| {
            if seen[own].is_some() || seen[own + 1].is_some() {
                return Err(failed(ErrorCode::NodeExist, path, revision));
            }
            let mut ops = missing_dirs(v, target, seen, revision)?;
            let key = if params.dir {
                l.dir(target)
            } else {
                l.file(target)
            };
            ops.push(put(&key, &params.value, false));
            ops.push(put(&l.action_key(), b"create", false));
            Ok(ops)
        })
        .await?;
    let revision = revision_of(&resp);
    let node = NodeExtern {
        key: key_of(target),
        value: (!params.dir).then(|| params.value.clone()),
        dir: params.dir,
        modified_index: v2_index(revision),
        created_index: v2_index(revision),
        ..NodeExtern::default()
    };
    Ok(event(Action::Create, Some(node), None, revision))
}

/// `PUT` with `prevValue` or `prevIndex`.
pub async fn compare_and_swap(
    state: &AppState,
    v: &V2v3,
    path: &[u8],
    params: &KeyParams,
) -> Result<Event, EtcdError> {
    refuse_root(path)?;
    refuse_ttl(params)?;
    let swap = put(&v.layout.file(path), &params.value, true);
    let resp = compare_and(state, v, path, params, swap, b"compareAndSwap").await?;
    Ok(replaced(v, Action::CompareAndSwap, path, params, &resp))
}

/// `DELETE` with `prevValue` or `prevIndex`.
pub async fn compare_and_delete(
    state: &AppState,
    v: &V2v3,
    path: &[u8],
    params: &KeyParams,
) -> Result<Event, EtcdError> {
    refuse_root(path)?;
    let delete = delete_op(&v.layout.file(path), None);
    let resp = compare_and(state, v, path, params, delete, b"compareAndDelete").await?;
    Ok(deleted(v, path, &resp, true, Action::CompareAndDelete))
}

/// A compare-and-* write: `op`, and `action` recorded, if the file has the index and
/// value asked for; otherwise etcd's words for why not.
async fn compare_and(
    state: &AppState,
    v: &V2v3,
    path: &[u8],
    params: &KeyParams,
    op: RequestOp,
    action: &[u8],
) -> Result<TxnResponse, EtcdError> {
    let l = &v.layout;
    let resp = commit(
        state,
        TxnRequest {
            compare: expected(v, path, params),
            success: vec![op, put(&l.action_key(), action, false)],
            failure: vec![range_op(&l.file(path)), range_op(&l.dir(path))],
        },
    )
    .await?;
    if !resp.succeeded {
        return Err(compare_failed(path, params, &resp));
    }
    Ok(resp)
}

/// The event of a write that gave the file at `path` a new value.
fn replaced(
    v: &V2v3,
    action: Action,
    path: &[u8],
    params: &KeyParams,
    resp: &TxnResponse,
) -> Event {
    let revision = revision_of(resp);
    let prev = prev_of_puts(resp).unwrap_or_default();
    let node = NodeExtern {
        key: key_of(path),
        value: Some(params.value.clone()),
        modified_index: v2_index(revision),
        created_index: v2_index(prev.create_revision),
        ..NodeExtern::default()
    };
    event(action, Some(node), v.layout.node(&prev), revision)
}

/// `DELETE`: a file; an empty directory (`dir`); a directory and all below it
/// (`recursive`). etcd's words for each refusal, "Key already exists" for a directory
/// that is not there included.
pub async fn delete(
    state: &AppState,
    v: &V2v3,
    path: &[u8],
    params: &KeyParams,
) -> Result<Event, EtcdError> {
    refuse_root(path)?;
    let l = &v.layout;
    let act = put(&l.action_key(), b"delete", false);
    let (compare, success, refusal, with_node) = if !params.dir && !params.recursive {
        let compare = vec![equal(&l.dir(path), CompareTarget::Version, 0)];
        (
            compare,
            vec![delete_op(&l.file(path), None), act],
            ErrorCode::NotFile,
            true,
        )
    } else if !params.recursive {
        let below = l.below(path, 1);
        let mut empty = equal(&below, CompareTarget::Version, 0);
        empty.range_end = beacon_proto::prefix_end(&below);
        let success = vec![delete_op(&l.dir(path), None), act];
        (vec![empty], success, ErrorCode::DirNotEmpty, false)
    } else {
        let compare = vec![
            greater(&l.dir(path), CompareTarget::Version, 0),
            equal(&l.below(path, DEPTH_MAX), CompareTarget::Version, 0),
        ];
        let mut success = vec![delete_op(&l.dir(path), None)];
        for depth in 1..DEPTH_MAX {
            let below = l.below(path, depth);
            let end = beacon_proto::prefix_end(&below);
            success.push(delete_op(&below, Some(end)));
        }
        success.push(act);
        (compare, success, ErrorCode::NodeExist, false)
    };
    let resp = commit(
        state,
        TxnRequest {
            compare,
            success,
            failure: Vec::new(),
        },
    )
    .await?;
    let revision = revision_of(&resp);
    if !resp.succeeded {
        return Err(failed(refusal, path, revision));
    }
    if prev_of_delete(&resp).is_none() {
        let code = if with_node {
            ErrorCode::KeyNotFound
        } else {
            ErrorCode::NodeExist
        };
        return Err(failed(code, path, revision));
    }
    Ok(deleted(v, path, &resp, with_node, Action::Delete))
}

/// How deep etcd's recursive delete reaches below the directory.
const DEPTH_MAX: usize = 63;

/// The event of a delete: the node (a file's, with its indexes) and the one before.
fn deleted(v: &V2v3, path: &[u8], resp: &TxnResponse, with_node: bool, action: Action) -> Event {
    let revision = revision_of(resp);
    let prev = prev_of_delete(resp).unwrap_or_default();
    let node = with_node.then(|| NodeExtern {
        key: key_of(path),
        modified_index: v2_index(revision),
        created_index: v2_index(prev.create_revision),
        ..NodeExtern::default()
    });
    event(action, node, v.layout.node(&prev), revision)
}

/// The compares of a compare-and-*: the file exists, and has the index and value
/// asked for.
fn expected(v: &V2v3, path: &[u8], params: &KeyParams) -> Vec<Compare> {
    let key = v.layout.file(path);
    let mut compares = vec![greater(&key, CompareTarget::Version, 0)];
    if params.prev_index != 0 {
        compares.push(equal(
            &key,
            CompareTarget::Mod,
            v3_revision(params.prev_index),
        ));
    }
    if !params.prev_value.is_empty() {
        compares.push(Compare {
            key: key.clone(),
            target: CompareTarget::Value as i32,
            result: CompareResult::Equal as i32,
            target_union: Some(TargetUnion::Value(params.prev_value.as_bytes().to_vec())),
            range_end: Vec::new(),
        });
    }
    compares
}

/// Why a compare-and-* failed, from the file and directory its other branch read.
/// The cause compares `prevIndex` with the key's v3 revision, as etcd's does.
fn compare_failed(path: &[u8], params: &KeyParams, resp: &TxnResponse) -> EtcdError {
    let revision = revision_of(resp);
    if !ranged(resp, 1).is_empty() {
        return failed(ErrorCode::NotFile, path, revision);
    }
    let Some(kv) = ranged(resp, 0).into_iter().next() else {
        return failed(ErrorCode::KeyNotFound, path, revision);
    };
    let index_match =
        params.prev_index == 0 || i64::try_from(params.prev_index) == Ok(kv.mod_revision);
    let value_match = params.prev_value.is_empty() || params.prev_value.as_bytes() == kv.value;
    let (pv, value) = (
        params.prev_value.to_str_lossy(),
        String::from_utf8_lossy(&kv.value),
    );
    let cause = match (index_match, value_match) {
        (true, false) => format!("[{pv} != {value}]"),
        (false, true) => format!("[{} != {}]", params.prev_index, kv.mod_revision),
        _ => format!(
            "[{pv} != {value}] [{} != {}]",
            params.prev_index, kv.mod_revision
        ),
    };
    EtcdError::new(
        ErrorCode::TestFailed,
        ByteString::from(cause),
        v2_index(revision),
    )
}

fn equal(key: &[u8], target: CompareTarget, n: i64) -> Compare {
    compare_with(key, target, CompareResult::Equal, n)
}

fn greater(key: &[u8], target: CompareTarget, n: i64) -> Compare {
    compare_with(key, target, CompareResult::Greater, n)
}

fn compare_with(key: &[u8], target: CompareTarget, result: CompareResult, n: i64) -> Compare {
    let target_union = match target {
        CompareTarget::Version => TargetUnion::Version(n),
        CompareTarget::Create => TargetUnion::CreateRevision(n),
        CompareTarget::Mod => TargetUnion::ModRevision(n),
        CompareTarget::Value | CompareTarget::Lease => TargetUnion::Lease(n),
    };
    Compare {
        key: key.to_vec(),
        target: target as i32,
        result: result as i32,
        target_union: Some(target_union),
        range_end: Vec::new(),
    }
}

fn put(key: &[u8], value: &[u8], prev_kv: bool) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            prev_kv,
            ..PutRequest::default()
        })),
    }
}

/// A delete of `key` (to `range_end`) that answers what it deleted.
fn delete_op(key: &[u8], range_end: Option<Vec<u8>>) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            range_end: range_end.unwrap_or_default(),
            prev_kv: true,
        })),
    }
}

/// The value the write's one put with `prev_kv` replaced, if there was one.
fn prev_of_puts(resp: &TxnResponse) -> Option<KeyValue> {
    resp.responses.iter().find_map(|r| match &r.response {
        Some(OpResponse::ResponsePut(p)) => p.prev_kv.clone().filter(|kv| kv.create_revision > 0),
        _ => None,
    })
}

/// What the write's first delete deleted.
fn prev_of_delete(resp: &TxnResponse) -> Option<KeyValue> {
    match resp.responses.first().and_then(|r| r.response.as_ref()) {
        Some(OpResponse::ResponseDeleteRange(d)) => d.prev_kvs.first().cloned(),
        _ => None,
    }
}
