//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn and Compact over the v3 keyspace
//! (Compact also for the automatic compactor).
//!
//! Every write is a `Command::V3` in the Raft log, applied by each member's keyspace
//! alike; the answer is the leader's. A linearizable Range on the leader confirms
//! leadership (ReadIndex) and reads the keyspace; on a follower it goes through the log
//! as a write does. A serializable Range reads this member's keyspace as it is. etcd's checks that need no state (empty keys,
//! `ignore_*` with a value, operation counts, duplicate keys in a txn, the request size)
//! refuse a request here, before the log, as etcd's API layer does.

use std::sync::Arc;

use beacon_auth::Caller;
use beacon_mvcc::{check_put_fields, check_txn, MvccError};
use beacon_proto::beaconpb::{v3_request, v3_response};
use beacon_proto::etcdserverpb::{
    kv_server, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::{failure, refused};
use crate::consensus::caught_up;
use crate::state::AppState;

pub struct Kv {
    state: Arc<AppState>,
}

impl Kv {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// `KV.Range` as a client's call runs it; also the reads of the Election and Lock
/// recipes, which etcd runs through its own KV server too.
pub(crate) async fn range(
    state: &AppState,
    caller: Option<&Caller>,
    req: RangeRequest,
) -> Result<RangeResponse, Status> {
    // etcd's interceptor refuses before the request's own checks.
    super::learner::refuse_linearizable(state, req.serializable)?;
    if req.key.is_empty() {
        return Err(refused(&MvccError::EmptyKey));
    }
    // A linearizable read on the leader: ReadIndex, then this member's keyspace.
    let local = req.serializable || state.consensus.read_index(state.request_timeout).await;
    let mut resp = if local {
        // This member's keyspace as it is, once it has applied what it acknowledged.
        caught_up(state.consensus.as_ref(), state.request_timeout)
            .await
            .map_err(|f| failure(&f))?;
        let mvcc = super::read_mvcc(state)?;
        // etcd checks a read served without the log against the store as it is.
        mvcc.check_range(caller, &req).map_err(|e| refused(&e))?;
        mvcc.range(&req).map_err(|e| refused(&e))?
    } else {
        match super::propose(state, caller, v3_request::Request::Range(req)).await? {
            v3_response::Response::Range(resp) => resp,
            _ => return Err(super::unexpected()),
        }
    };
    resp.header = super::header_with(state, resp.header);
    Ok(resp)
}

/// `KV.DeleteRange` as a client's call runs it (and Unlock, and the recipes' cleanups).
pub(super) async fn delete_range(
    state: &AppState,
    caller: Option<&Caller>,
    req: DeleteRangeRequest,
) -> Result<DeleteRangeResponse, Status> {
    if req.key.is_empty() {
        return Err(refused(&MvccError::EmptyKey));
    }
    match super::propose(state, caller, v3_request::Request::DeleteRange(req)).await? {
        v3_response::Response::DeleteRange(mut resp) => {
            resp.header = super::header_with(state, resp.header);
            Ok(resp)
        }
        _ => Err(super::unexpected()),
    }
}

/// `KV.Txn` as a client's call runs it (and the recipes' transactions).
pub(crate) async fn txn(
    state: &AppState,
    caller: Option<&Caller>,
    req: TxnRequest,
) -> Result<TxnResponse, Status> {
    // etcd's quota server wraps the KV server: the quota is checked first.
    super::quota::check(state, super::quota::txn_cost(&req)).await?;
    // etcd's API layer counts operations against this member's own --max-txn-ops; the
    // keyspace applying the entry does not count them again.
    check_txn(&req, state.txn_ops_max).map_err(|e| refused(&e))?;
    match super::propose(state, caller, v3_request::Request::Txn(req)).await? {
        v3_response::Response::Txn(mut resp) => {
            resp.header = super::header_with(state, resp.header);
            Ok(resp)
        }
        _ => Err(super::unexpected()),
    }
}

/// `KV.Compact` as a client's call runs it, and as the automatic compactor
/// (`crate::compactor`) runs it for the server itself.
pub(crate) async fn compact(
    state: &AppState,
    caller: Option<&Caller>,
    req: CompactionRequest,
) -> Result<CompactionResponse, Status> {
    // `physical` asks etcd to answer only once the compacted revisions are deleted;
    // here they are gone from the index when the entry applies, and from the disk in
    // the same write, so every compaction is physical.
    match super::propose(state, caller, v3_request::Request::Compaction(req)).await? {
        v3_response::Response::Compaction(mut resp) => {
            resp.header = super::header_with(state, resp.header);
            Ok(resp)
        }
        _ => Err(super::unexpected()),
    }
}

#[tonic::async_trait]
impl kv_server::Kv for Kv {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let caller = caller(&self.state, &request)?;
        range(&self.state, caller.as_ref(), request.into_inner())
            .await
            .map(Response::new)
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let caller = caller(&self.state, &request)?;
        let req = request.into_inner();
        super::quota::check(&self.state, super::quota::put_cost(&req)).await?;
        check_put_fields(&req).map_err(|e| refused(&e))?;
        let req = v3_request::Request::Put(req);
        match super::propose(&self.state, caller.as_ref(), req).await? {
            v3_response::Response::Put(mut resp) => {
                resp.header = super::header_with(&self.state, resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(super::unexpected()),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let caller = caller(&self.state, &request)?;
        delete_range(&self.state, caller.as_ref(), request.into_inner())
            .await
            .map(Response::new)
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let caller = caller(&self.state, &request)?;
        txn(&self.state, caller.as_ref(), request.into_inner())
            .await
            .map(Response::new)
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        // Root's alone since etcd 3.4.45 (3.4.23 let anyone compact).
        super::auth::check_admin(&self.state, &request)?;
        let caller = caller(&self.state, &request)?;
        compact(&self.state, caller.as_ref(), request.into_inner())
            .await
            .map(Response::new)
    }
}
