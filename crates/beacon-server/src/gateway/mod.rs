//! etcd's JSON gateway: the v3 API as JSON over HTTP/1.1 on the client port, under
//! `/v3/` and `/v3beta/` (etcd rewrites the second to the first; `/v3alpha/` is gone in
//! 3.4), as etcd 3.4 serves it with grpc-gateway.
//!
//! etcd's gateway is a gRPC client of its own server; here a handler decodes the JSON
//! request (`json`) and calls the very service the gRPC routes call (`grpc::Services`),
//! behind the same learner check and counted in the same call metrics, so there is one
//! path to the keyspace. Every call is a `POST`; another method on a known path is 405, an unknown path 404, both in
//! grpc-gateway's plain words. Streaming calls are in `stream`.
//!
//! Not served: Auth (Beacon has none; its calls are answered UNIMPLEMENTED, as over
//! gRPC).

mod json;
mod stream;

use std::future::Future;

use axum::body::Body;
use axum::response::Response;
use beacon_proto::etcdserverpb::cluster_server::Cluster as _;
use beacon_proto::etcdserverpb::kv_server::Kv as _;
use beacon_proto::etcdserverpb::lease_server::Lease as _;
use beacon_proto::etcdserverpb::maintenance_server::Maintenance as _;
use beacon_proto::etcdserverpb::watch_server::Watch as _;
use beacon_proto::v3electionpb::election_server::Election as _;
use beacon_proto::v3lockpb::lock_server::Lock as _;
use http::{Method, StatusCode};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Status;

use crate::grpc::calls::Call;
use crate::grpc::messages::Way;
use crate::grpc::{learner, Services};
use crate::http::body::{read_capped, BodyError};
use crate::http::go_error;
use crate::limits::{GATEWAY_REQUEST_BYTES_MAX, REQUEST_BODY_READ_TIMEOUT};
use crate::state::AppState;

/// Where the gateway's paths start: `/v3/`, and `/v3beta/`, which etcd rewrites to it.
pub fn route(path: &[u8]) -> Option<&[u8]> {
    path.strip_prefix(b"/v3/")
        .or_else(|| path.strip_prefix(b"/v3beta/"))
}

/// Every call etcd's gateway serves, by its path under `/v3/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rpc {
    Range,
    Put,
    DeleteRange,
    Txn,
    Compact,
    LeaseGrant,
    LeaseRevoke,
    LeaseKeepAlive,
    LeaseTimeToLive,
    LeaseLeases,
    Watch,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberList,
    MemberPromote,
    Alarm,
    Status,
    Defragment,
    Hash,
    Snapshot,
    MoveLeader,
    Lock,
    Unlock,
    Campaign,
    Proclaim,
    Leader,
    Observe,
    Resign,
    Auth,
}

impl Rpc {
    fn from_path(path: &[u8]) -> Option<Rpc> {
        Some(match path {
            b"kv/range" => Rpc::Range,
            b"kv/put" => Rpc::Put,
            b"kv/deleterange" => Rpc::DeleteRange,
            b"kv/txn" => Rpc::Txn,
            b"kv/compaction" => Rpc::Compact,
            b"lease/grant" => Rpc::LeaseGrant,
            b"lease/revoke" | b"kv/lease/revoke" => Rpc::LeaseRevoke,
            b"lease/keepalive" => Rpc::LeaseKeepAlive,
            b"lease/timetolive" | b"kv/lease/timetolive" => Rpc::LeaseTimeToLive,
            b"lease/leases" | b"kv/lease/leases" => Rpc::LeaseLeases,
            b"watch" => Rpc::Watch,
            b"cluster/member/add" => Rpc::MemberAdd,
            b"cluster/member/remove" => Rpc::MemberRemove,
            b"cluster/member/update" => Rpc::MemberUpdate,
            b"cluster/member/list" => Rpc::MemberList,
            b"cluster/member/promote" => Rpc::MemberPromote,
            b"maintenance/alarm" => Rpc::Alarm,
            b"maintenance/status" => Rpc::Status,
            b"maintenance/defragment" => Rpc::Defragment,
            // etcd binds HashKV to this path too; Hash's binding is the one served.
            b"maintenance/hash" => Rpc::Hash,
            b"maintenance/snapshot" => Rpc::Snapshot,
            b"maintenance/transfer-leadership" => Rpc::MoveLeader,
            b"lock/lock" => Rpc::Lock,
            b"lock/unlock" => Rpc::Unlock,
            b"election/campaign" => Rpc::Campaign,
            b"election/proclaim" => Rpc::Proclaim,
            b"election/leader" => Rpc::Leader,
            b"election/observe" => Rpc::Observe,
            b"election/resign" => Rpc::Resign,
            b"auth/enable"
            | b"auth/disable"
            | b"auth/authenticate"
            | b"auth/user/add"
            | b"auth/user/get"
            | b"auth/user/list"
            | b"auth/user/delete"
            | b"auth/user/changepw"
            | b"auth/user/grant"
            | b"auth/user/revoke"
            | b"auth/role/add"
            | b"auth/role/get"
            | b"auth/role/list"
            | b"auth/role/delete"
            | b"auth/role/grant"
            | b"auth/role/revoke" => Rpc::Auth,
            _ => return None,
        })
    }

    /// The gRPC method's path, for the learner check.
    fn grpc_path(self) -> &'static str {
        match self {
            Rpc::Range => "/etcdserverpb.KV/Range",
            Rpc::Put => "/etcdserverpb.KV/Put",
            Rpc::DeleteRange => "/etcdserverpb.KV/DeleteRange",
            Rpc::Txn => "/etcdserverpb.KV/Txn",
            Rpc::Compact => "/etcdserverpb.KV/Compact",
            Rpc::LeaseGrant => "/etcdserverpb.Lease/LeaseGrant",
            Rpc::LeaseRevoke => "/etcdserverpb.Lease/LeaseRevoke",
            Rpc::LeaseKeepAlive => "/etcdserverpb.Lease/LeaseKeepAlive",
            Rpc::LeaseTimeToLive => "/etcdserverpb.Lease/LeaseTimeToLive",
            Rpc::LeaseLeases => "/etcdserverpb.Lease/LeaseLeases",
            Rpc::Watch => "/etcdserverpb.Watch/Watch",
            Rpc::MemberAdd => "/etcdserverpb.Cluster/MemberAdd",
            Rpc::MemberRemove => "/etcdserverpb.Cluster/MemberRemove",
            Rpc::MemberUpdate => "/etcdserverpb.Cluster/MemberUpdate",
            Rpc::MemberList => "/etcdserverpb.Cluster/MemberList",
            Rpc::MemberPromote => "/etcdserverpb.Cluster/MemberPromote",
            Rpc::Alarm => "/etcdserverpb.Maintenance/Alarm",
            Rpc::Status => "/etcdserverpb.Maintenance/Status",
            Rpc::Defragment => "/etcdserverpb.Maintenance/Defragment",
            Rpc::Hash => "/etcdserverpb.Maintenance/Hash",
            Rpc::Snapshot => "/etcdserverpb.Maintenance/Snapshot",
            Rpc::MoveLeader => "/etcdserverpb.Maintenance/MoveLeader",
            Rpc::Lock => "/v3lockpb.Lock/Lock",
            Rpc::Unlock => "/v3lockpb.Lock/Unlock",
            Rpc::Campaign => "/v3electionpb.Election/Campaign",
            Rpc::Proclaim => "/v3electionpb.Election/Proclaim",
            Rpc::Leader => "/v3electionpb.Election/Leader",
            Rpc::Observe => "/v3electionpb.Election/Observe",
            Rpc::Resign => "/v3electionpb.Election/Resign",
            Rpc::Auth => "/etcdserverpb.Auth/",
        }
    }
}

/// Serves `path` (what follows `/v3/`) with `method` and `body`.
pub async fn serve(
    state: &AppState,
    services: &Services,
    method: &Method,
    path: &[u8],
    body: Body,
) -> Response {
    let Some(rpc) = Rpc::from_path(path) else {
        return go_error(StatusCode::NOT_FOUND, "Not Found");
    };
    if method != Method::POST {
        return go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    // From here on, the method is the gRPC one the call is counted and checked as.
    let method = rpc.grpc_path();
    let (kv, lease) = (services.kv.as_ref(), services.lease.as_ref());
    let (cluster, maintenance) = (services.cluster.as_ref(), services.maintenance.as_ref());
    let election = services.election.as_ref();
    match rpc {
        Rpc::Range => unary(state, method, body, |r| kv.range(r)).await,
        Rpc::Put => unary(state, method, body, |r| kv.put(r)).await,
        Rpc::DeleteRange => unary(state, method, body, |r| kv.delete_range(r)).await,
        Rpc::Txn => unary(state, method, body, |r| kv.txn(r)).await,
        Rpc::Compact => unary(state, method, body, |r| kv.compact(r)).await,
        Rpc::LeaseGrant => unary(state, method, body, |r| lease.lease_grant(r)).await,
        Rpc::LeaseRevoke => unary(state, method, body, |r| lease.lease_revoke(r)).await,
        Rpc::LeaseTimeToLive => unary(state, method, body, |r| lease.lease_time_to_live(r)).await,
        Rpc::LeaseLeases => unary(state, method, body, |r| lease.lease_leases(r)).await,
        Rpc::LeaseKeepAlive => {
            stream::serve(state, method, body, |r| lease.lease_keep_alive(r)).await
        }
        Rpc::Watch => {
            let watch = services.watch.as_ref();
            stream::serve(state, method, body, |r| watch.watch(r)).await
        }
        Rpc::MemberAdd => unary(state, method, body, |r| cluster.member_add(r)).await,
        Rpc::MemberRemove => unary(state, method, body, |r| cluster.member_remove(r)).await,
        Rpc::MemberUpdate => unary(state, method, body, |r| cluster.member_update(r)).await,
        Rpc::MemberList => unary(state, method, body, |r| cluster.member_list(r)).await,
        Rpc::MemberPromote => unary(state, method, body, |r| cluster.member_promote(r)).await,
        Rpc::Alarm => unary(state, method, body, |r| maintenance.alarm(r)).await,
        Rpc::Status => unary(state, method, body, |r| maintenance.status(r)).await,
        Rpc::Defragment => unary(state, method, body, |r| maintenance.defragment(r)).await,
        Rpc::Hash => unary(state, method, body, |r| maintenance.hash(r)).await,
        Rpc::MoveLeader => unary(state, method, body, |r| maintenance.move_leader(r)).await,
        Rpc::Lock => unary(state, method, body, |r| services.lock.lock(r)).await,
        Rpc::Unlock => unary(state, method, body, |r| services.lock.unlock(r)).await,
        Rpc::Campaign => unary(state, method, body, |r| election.campaign(r)).await,
        Rpc::Proclaim => unary(state, method, body, |r| election.proclaim(r)).await,
        Rpc::Leader => unary(state, method, body, |r| election.leader(r)).await,
        Rpc::Resign => unary(state, method, body, |r| election.resign(r)).await,
        Rpc::Observe => stream::serve_one(state, method, body, |r| election.observe(r)).await,
        Rpc::Snapshot => stream::serve_one(state, method, body, |r| maintenance.snapshot(r)).await,
        // What Beacon's gRPC answers, as it has no Auth.
        Rpc::Auth => json::refused(&Status::unimplemented("unknown service etcdserverpb.Auth")),
    }
}

/// The one request of a unary or server-streaming call, read whole and decoded; or
/// the answer to a body that is too large or does not decode, as etcd's gateway gives.
async fn one_request<Req>(body: Body) -> Result<Req, Response>
where
    Req: DeserializeOwned + Default + Message,
{
    let bytes = match read_capped(body, GATEWAY_REQUEST_BYTES_MAX, REQUEST_BODY_READ_TIMEOUT).await
    {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { limit_bytes }) => {
            return Err(json::refused(&json::too_large(format!(
                "more than {limit_bytes}"
            ))))
        }
        Err(e) => return Err(json::not_called(&Status::invalid_argument(e.to_string()))),
    };
    let request: Req = match json::request(&bytes) {
        Ok(request) => request,
        Err(e) => return Err(json::not_called(&Status::invalid_argument(e.0))),
    };
    match json::oversized(&request) {
        Some(refused) => Err(json::refused(&refused)),
        None => Ok(request),
    }
}

/// One unary call of the gRPC `method`: the body decoded, the call made (and counted,
/// as a call of etcd's gateway counts on its server), its answer or refusal as JSON.
async fn unary<Req, Resp, F, Fut>(state: &AppState, method: &str, body: Body, call: F) -> Response
where
    Req: DeserializeOwned + Default + Message,
    Resp: Serialize + Message,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let request: Req = match one_request(body).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let counted = Call::start(method);
    counted.message(Way::Received, request.encoded_len());
    let answer = match learner::refuse_unserved(state, method) {
        Ok(()) => call(tonic::Request::new(request)).await,
        Err(refused) => Err(refused),
    };
    match answer {
        Ok(answer) => {
            counted.message(Way::Sent, answer.get_ref().encoded_len());
            counted.end(tonic::Code::Ok);
            json::answered(answer.get_ref())
        }
        Err(status) => {
            counted.end(status.code());
            json::refused(&status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3beta_is_v3_and_v3alpha_is_gone() {
        assert_eq!(route(b"/v3/kv/range"), Some(&b"kv/range"[..]));
        assert_eq!(route(b"/v3beta/kv/range"), Some(&b"kv/range"[..]));
        assert_eq!(route(b"/v3alpha/kv/range"), None);
        assert_eq!(Rpc::from_path(b"kv/lease/leases"), Some(Rpc::LeaseLeases));
        assert_eq!(Rpc::from_path(b"kv/range/"), None);
        assert_eq!(Rpc::from_path(b"maintenance/hashkv"), None);
        // Served, as Beacon's gRPC serves them: UNIMPLEMENTED (etcd without auth
        // enabled answers them itself, e.g. "user name not found").
        assert_eq!(Rpc::from_path(b"auth/user/get"), Some(Rpc::Auth));
        assert_eq!(Rpc::from_path(b"auth/status"), None);
    }
}
