//! etcd's concurrency recipes (its client library's `concurrency` package), which
//! etcd's Election and Lock servers run inside the server as a client of its own KV,
//! Lease and Watch services. Here they call the very functions those services answer
//! with (`kv::txn`, `kv::range`, `kv::delete_range`, `Lease::grant`), so every write
//! goes through the log as a client's would, and a wait reads the keyspace as a watch
//! does, woken by the revisions the state machine publishes.
//!
//! A waiter (a campaigner, a locker) owns the key `<name>/<lease id in hex>`, created
//! with its lease by a transaction that takes it only if it is absent; its turn comes
//! once every key under `<name>/` created before its own is deleted.

use std::sync::Arc;

use beacon_auth::Caller;
use beacon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use beacon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp,
    ResponseHeader, TxnRequest,
};
use beacon_proto::mvccpb::KeyValue;
use tonic::Status;

use super::kv;
use super::lease::Lease;
use crate::state::AppState;

/// The TTL of the lease etcd's session grants when a call names none (lease 0): its
/// `defaultSessionTTL`. Nobody keeps it alive: etcd's server orphans the session at once.
const SESSION_TTL_S: i64 = 60;

/// What the Election and Lock services share: the server's state, and its Lease
/// service (a session's grant takes its id from the same generator as a client's).
pub struct Recipes {
    pub state: Arc<AppState>,
    lease: Arc<Lease>,
}

/// A waiter's own key, and the create revision that makes it this waiter's.
pub struct Waiter {
    pub key: Vec<u8>,
    pub create_revision: i64,
}

/// Why a wait for the keys before a waiter's ended without its turn.
pub enum WaitEnd {
    /// A read failed, as relayed to the client.
    Failed(Status),
    /// The waiter's own key is gone (its lease expired or was revoked, or someone
    /// deleted it): its turn can never come.
    Lost,
    /// The server is stopping.
    Stopped,
}

impl Recipes {
    pub fn new(state: Arc<AppState>, lease: Arc<Lease>) -> Self {
        Recipes { state, lease }
    }

    /// The lease of etcd's session for a call: the caller's, or, for 0, a new one of
    /// [`SESSION_TTL_S`] that the caller never learns about but the key it gets is
    /// attached to (etcd's Campaign, Lock, Proclaim and Resign all do so).
    pub async fn session(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let grant = LeaseGrantRequest {
            ttl: SESSION_TTL_S,
            id: 0,
        };
        let granted = self.lease.grant(grant).await.map_err(relayed)?;
        Ok(granted.id)
    }

    /// Waits until no key under `prefix` created before `waiter`'s is left (etcd's
    /// `waitDeletes`): finds the newest of them, waits until it is deleted, and again,
    /// each time with a linearizable read. Answers the header of the read that found
    /// none. Ends early when the waiter's own key goes, which etcd 3.4 does not notice
    /// (it waits for the keys before, however long, then answers as if the key held).
    pub async fn wait_deletes(
        &self,
        caller: Option<&Caller>,
        prefix: &[u8],
        waiter: &Waiter,
    ) -> Result<ResponseHeader, WaitEnd> {
        loop {
            let newest_before = RangeRequest {
                max_create_revision: waiter.create_revision - 1,
                ..top(prefix, SortOrder::Descend)
            };
            let found = kv::range(&self.state, caller, newest_before)
                .await
                .map_err(|s| WaitEnd::Failed(relayed(s)))?;
            let header = found.header.unwrap_or_default();
            let Some(before) = found.kvs.into_iter().next() else {
                return Ok(header);
            };
            self.wait_delete(&before, header.revision, waiter).await?;
        }
    }

    /// Waits until `before`, as read at revision `read_at`, is deleted. etcd watches the
    /// key from that revision for a delete event; the same moment is when the key no
    /// longer has that create revision (gone, or deleted and created again), which one
    /// look at the key's index entry tells after each applied revision.
    async fn wait_delete(
        &self,
        before: &KeyValue,
        read_at: i64,
        waiter: &Waiter,
    ) -> Result<(), WaitEnd> {
        let mut revisions = self.state.consensus.v3_revisions();
        let mut shutdown = self.state.shutdown.clone();
        loop {
            // Until this member has applied what the read saw, its keyspace is behind.
            if *revisions.borrow_and_update() >= read_at {
                let (theirs, ours) = {
                    let mvcc = super::read_mvcc(&self.state).map_err(WaitEnd::Failed)?;
                    (
                        created_at(&mvcc, &before.key),
                        created_at(&mvcc, &waiter.key),
                    )
                };
                if theirs != Some(before.create_revision) {
                    return Ok(());
                }
                if ours != Some(waiter.create_revision) {
                    return Err(WaitEnd::Lost);
                }
            }
            tokio::select! {
                changed = revisions.changed() => changed.map_err(|_| WaitEnd::Stopped)?,
                _ = shutdown.wait_for(|s| *s) => return Err(WaitEnd::Stopped),
            }
        }
    }
}

/// The create revision of `key` in this member's keyspace now, if it exists.
fn created_at(mvcc: &beacon_mvcc::Mvcc, key: &[u8]) -> Option<i64> {
    let look = RangeRequest {
        key: key.to_vec(),
        keys_only: true,
        ..RangeRequest::default()
    };
    let found = mvcc.range(&look).ok()?;
    found.kvs.first().map(|kv| kv.create_revision)
}

/// A waiter's key: `prefix` (the name and `/`) and the lease id as Go's `%x` writes it.
pub fn waiter_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    [prefix, hex.as_bytes()].concat()
}

/// `name` and `/`: the prefix every waiter's key of `name` is under.
pub fn prefix_of(name: &[u8]) -> Vec<u8> {
    [name, b"/"].concat()
}

/// The first (`Ascend`) or last (`Descend`) key created under `prefix` (etcd's
/// `WithFirstCreate` and `WithLastCreate`).
pub fn top(prefix: &[u8], order: SortOrder) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: beacon_proto::prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        ..RangeRequest::default()
    }
}

/// The compare "`key` has create revision `revision`" (0: the key is absent).
pub fn created(key: &[u8], revision: i64) -> Compare {
    Compare {
        key: key.to_vec(),
        target: CompareTarget::Create as i32,
        result: CompareResult::Equal as i32,
        target_union: Some(TargetUnion::CreateRevision(revision)),
        range_end: Vec::new(),
    }
}

pub fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..PutRequest::default()
        })),
    }
}

pub fn range_op(range: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(range)),
    }
}

pub fn get(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..RangeRequest::default()
    }
}

pub fn delete(key: &[u8]) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: key.to_vec(),
        ..DeleteRangeRequest::default()
    }
}

/// The transaction that deletes `key` if it still has create revision `revision`
/// (etcd's `Resign`).
pub fn resign_txn(key: &[u8], revision: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![created(key, revision)],
        success: vec![RequestOp {
            request: Some(Op::RequestDeleteRange(delete(key))),
        }],
        failure: Vec::new(),
    }
}

/// The range answered by operation `i` of a transaction's taken branch.
pub fn range_answer(txn: &beacon_proto::etcdserverpb::TxnResponse, i: usize) -> Vec<KeyValue> {
    use beacon_proto::etcdserverpb::response_op::Response;
    match txn.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(Response::ResponseRange(range)) => range.kvs.clone(),
        _ => Vec::new(),
    }
}

/// A refusal of a call the recipe made, as etcd's servers answer it: its client
/// library turns a known refusal into an error that carries the words but not the
/// gRPC code, and gRPC sends such an error as `UNKNOWN`.
pub fn relayed(status: Status) -> Status {
    Status::unknown(status.message().to_string())
}

/// A cleanup that runs if it is dropped armed: a call whose client cancels it is
/// dropped mid-wait, and etcd's recipes then still give their key back (with the
/// server's own context, not the cancelled one). The cleanup is one request through
/// the log, bounded by the request timeout.
pub struct OnCancel {
    state: Arc<AppState>,
    /// Who made the call: the cleanup runs as them (etcd's runs with its own context,
    /// which carries no user, so with auth on it is refused).
    caller: Option<Caller>,
    cleanup: Option<Cleanup>,
}

pub enum Cleanup {
    /// Delete the key whatever it holds (etcd's `Mutex.Unlock`).
    Delete(Vec<u8>),
    /// Delete the key if it is still the same (etcd's `Election.Resign`).
    Resign(Vec<u8>, i64),
}

impl Cleanup {
    pub async fn run(self, state: &AppState, caller: Option<&Caller>) -> Result<(), Status> {
        match self {
            Cleanup::Delete(key) => kv::delete_range(state, caller, delete(&key))
                .await
                .map(drop),
            Cleanup::Resign(key, revision) => kv::txn(state, caller, resign_txn(&key, revision))
                .await
                .map(drop),
        }
    }
}

impl OnCancel {
    pub fn new(state: Arc<AppState>, caller: Option<Caller>, cleanup: Cleanup) -> Self {
        OnCancel {
            state,
            caller,
            cleanup: Some(cleanup),
        }
    }

    /// The call ends by itself: no cleanup on drop. Returns it, for a call that runs it
    /// before answering.
    pub fn disarm(mut self) -> Option<Cleanup> {
        self.cleanup.take()
    }
}

impl Drop for OnCancel {
    fn drop(&mut self) {
        let Some(cleanup) = self.cleanup.take() else {
            return;
        };
        // No runtime: the server is gone, and the lease takes the key in time.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let state = Arc::clone(&self.state);
        let caller = self.caller.take();
        runtime.spawn(async move {
            if let Err(e) = cleanup.run(&state, caller.as_ref()).await {
                tracing::debug!(error = %e.message(), "cleaning up after a cancelled call");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiter_keys_are_gos_hex() {
        assert_eq!(waiter_key(b"lock/", 0x694d_7c1a_2b3c), b"lock/694d7c1a2b3c");
        assert_eq!(waiter_key(b"e/", -31), b"e/-1f");
        assert_eq!(waiter_key(b"/", i64::MIN), b"/-8000000000000000");
        assert_eq!(prefix_of(b""), b"/");
    }
}
