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
//! A request's `Authorization` header is the token of the call (etcd's gateway sends it
//! as the `authorization` metadata, which etcd's auth reads).

mod json;
mod stream;

use std::future::Future;

use axum::body::Body;
use axum::response::Response;
use beacon_proto::etcdserverpb::auth_server::Auth as _;
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
use crate::limits::{RequestBytesMax, REQUEST_BODY_READ_TIMEOUT};
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
    AuthEnable,
    AuthDisable,
    Authenticate,
    UserAdd,
    UserGet,
    UserList,
    UserDelete,
    UserChangePassword,
    UserGrantRole,
    UserRevokeRole,
    RoleAdd,
    RoleGet,
    RoleList,
    RoleDelete,
    RoleGrantPermission,
    RoleRevokePermission,
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
            b"auth/enable" => Rpc::AuthEnable,
            b"auth/disable" => Rpc::AuthDisable,
            b"auth/authenticate" => Rpc::Authenticate,
            b"auth/user/add" => Rpc::UserAdd,
            b"auth/user/get" => Rpc::UserGet,
            b"auth/user/list" => Rpc::UserList,
            b"auth/user/delete" => Rpc::UserDelete,
            b"auth/user/changepw" => Rpc::UserChangePassword,
            b"auth/user/grant" => Rpc::UserGrantRole,
            b"auth/user/revoke" => Rpc::UserRevokeRole,
            b"auth/role/add" => Rpc::RoleAdd,
            b"auth/role/get" => Rpc::RoleGet,
            b"auth/role/list" => Rpc::RoleList,
            b"auth/role/delete" => Rpc::RoleDelete,
            b"auth/role/grant" => Rpc::RoleGrantPermission,
            b"auth/role/revoke" => Rpc::RoleRevokePermission,
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
            Rpc::AuthEnable => "/etcdserverpb.Auth/AuthEnable",
            Rpc::AuthDisable => "/etcdserverpb.Auth/AuthDisable",
            Rpc::Authenticate => "/etcdserverpb.Auth/Authenticate",
            Rpc::UserAdd => "/etcdserverpb.Auth/UserAdd",
            Rpc::UserGet => "/etcdserverpb.Auth/UserGet",
            Rpc::UserList => "/etcdserverpb.Auth/UserList",
            Rpc::UserDelete => "/etcdserverpb.Auth/UserDelete",
            Rpc::UserChangePassword => "/etcdserverpb.Auth/UserChangePassword",
            Rpc::UserGrantRole => "/etcdserverpb.Auth/UserGrantRole",
            Rpc::UserRevokeRole => "/etcdserverpb.Auth/UserRevokeRole",
            Rpc::RoleAdd => "/etcdserverpb.Auth/RoleAdd",
            Rpc::RoleGet => "/etcdserverpb.Auth/RoleGet",
            Rpc::RoleList => "/etcdserverpb.Auth/RoleList",
            Rpc::RoleDelete => "/etcdserverpb.Auth/RoleDelete",
            Rpc::RoleGrantPermission => "/etcdserverpb.Auth/RoleGrantPermission",
            Rpc::RoleRevokePermission => "/etcdserverpb.Auth/RoleRevokePermission",
        }
    }
}

/// Serves `path` (what follows `/v3/`) with `method` and `body`.
pub async fn serve(
    state: &AppState,
    services: &Services,
    method: &Method,
    path: &[u8],
    token: Option<&http::HeaderValue>,
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
    let auth = services.auth.as_ref();
    match rpc {
        Rpc::Range => unary(state, method, token, body, |r| kv.range(r)).await,
        Rpc::Put => unary(state, method, token, body, |r| kv.put(r)).await,
        Rpc::DeleteRange => unary(state, method, token, body, |r| kv.delete_range(r)).await,
        Rpc::Txn => unary(state, method, token, body, |r| kv.txn(r)).await,
        Rpc::Compact => unary(state, method, token, body, |r| kv.compact(r)).await,
        Rpc::LeaseGrant => unary(state, method, token, body, |r| lease.lease_grant(r)).await,
        Rpc::LeaseRevoke => unary(state, method, token, body, |r| lease.lease_revoke(r)).await,
        Rpc::LeaseTimeToLive => {
            unary(state, method, token, body, |r| lease.lease_time_to_live(r)).await
        }
        Rpc::LeaseLeases => unary(state, method, token, body, |r| lease.lease_leases(r)).await,
        Rpc::LeaseKeepAlive => {
            stream::serve(state, method, token, body, |r| lease.lease_keep_alive(r)).await
        }
        Rpc::Watch => {
            let watch = services.watch.as_ref();
            stream::serve(state, method, token, body, |r| watch.watch(r)).await
        }
        Rpc::MemberAdd => unary(state, method, token, body, |r| cluster.member_add(r)).await,
        Rpc::MemberRemove => unary(state, method, token, body, |r| cluster.member_remove(r)).await,
        Rpc::MemberUpdate => unary(state, method, token, body, |r| cluster.member_update(r)).await,
        Rpc::MemberList => unary(state, method, token, body, |r| cluster.member_list(r)).await,
        Rpc::MemberPromote => {
            unary(state, method, token, body, |r| cluster.member_promote(r)).await
        }
        Rpc::Alarm => unary(state, method, token, body, |r| maintenance.alarm(r)).await,
        Rpc::Status => unary(state, method, token, body, |r| maintenance.status(r)).await,
        Rpc::Defragment => unary(state, method, token, body, |r| maintenance.defragment(r)).await,
        Rpc::Hash => unary(state, method, token, body, |r| maintenance.hash(r)).await,
        Rpc::MoveLeader => unary(state, method, token, body, |r| maintenance.move_leader(r)).await,
        Rpc::Lock => unary(state, method, token, body, |r| services.lock.lock(r)).await,
        Rpc::Unlock => unary(state, method, token, body, |r| services.lock.unlock(r)).await,
        Rpc::Campaign => unary(state, method, token, body, |r| election.campaign(r)).await,
        Rpc::Proclaim => unary(state, method, token, body, |r| election.proclaim(r)).await,
        Rpc::Leader => unary(state, method, token, body, |r| election.leader(r)).await,
        Rpc::Resign => unary(state, method, token, body, |r| election.resign(r)).await,
        Rpc::Observe => {
            stream::serve_one(state, method, token, body, |r| election.observe(r)).await
        }
        Rpc::Snapshot => {
            stream::serve_one(state, method, token, body, |r| maintenance.snapshot(r)).await
        }
        Rpc::AuthEnable => unary(state, method, token, body, |r| auth.auth_enable(r)).await,
        Rpc::AuthDisable => unary(state, method, token, body, |r| auth.auth_disable(r)).await,
        Rpc::Authenticate => unary(state, method, token, body, |r| auth.authenticate(r)).await,
        Rpc::UserAdd => unary(state, method, token, body, |r| auth.user_add(r)).await,
        Rpc::UserGet => unary(state, method, token, body, |r| auth.user_get(r)).await,
        Rpc::UserList => unary(state, method, token, body, |r| auth.user_list(r)).await,
        Rpc::UserDelete => unary(state, method, token, body, |r| auth.user_delete(r)).await,
        Rpc::UserChangePassword => {
            unary(state, method, token, body, |r| auth.user_change_password(r)).await
        }
        Rpc::UserGrantRole => unary(state, method, token, body, |r| auth.user_grant_role(r)).await,
        Rpc::UserRevokeRole => {
            unary(state, method, token, body, |r| auth.user_revoke_role(r)).await
        }
        Rpc::RoleAdd => unary(state, method, token, body, |r| auth.role_add(r)).await,
        Rpc::RoleGet => unary(state, method, token, body, |r| auth.role_get(r)).await,
        Rpc::RoleList => unary(state, method, token, body, |r| auth.role_list(r)).await,
        Rpc::RoleDelete => unary(state, method, token, body, |r| auth.role_delete(r)).await,
        Rpc::RoleGrantPermission => {
            unary(state, method, token, body, |r| {
                auth.role_grant_permission(r)
            })
            .await
        }
        Rpc::RoleRevokePermission => {
            unary(state, method, token, body, |r| {
                auth.role_revoke_permission(r)
            })
            .await
        }
    }
}

/// A call's request, with the HTTP request's `Authorization` as the `authorization`
/// metadata (grpc-gateway's forwarding), which names the call's user.
pub(super) fn with_token<T>(message: T, token: Option<&http::HeaderValue>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = token.and_then(|t| tonic::metadata::MetadataValue::try_from(t.as_bytes()).ok());
    if let Some(value) = value {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// The one request of a unary or server-streaming call, read whole and decoded; or
/// the answer to a body that is too large or does not decode, as etcd's gateway gives.
async fn one_request<Req>(body: Body, limits: RequestBytesMax) -> Result<Req, Response>
where
    Req: DeserializeOwned + Default + Message,
{
    let read = read_capped(body, limits.gateway_request(), REQUEST_BODY_READ_TIMEOUT).await;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { limit_bytes }) => {
            return Err(json::refused(&json::too_large(
                format!("more than {limit_bytes}"),
                limits.grpc_message(),
            )))
        }
        Err(e) => return Err(json::not_called(&Status::invalid_argument(e.to_string()))),
    };
    let request: Req = match json::request(&bytes) {
        Ok(request) => request,
        Err(e) => return Err(json::not_called(&Status::invalid_argument(e.0))),
    };
    match json::oversized(&request, limits.grpc_message()) {
        Some(refused) => Err(json::refused(&refused)),
        None => Ok(request),
    }
}

/// One unary call of the gRPC `method`: the body decoded, the call made (and counted,
/// as a call of etcd's gateway counts on its server), its answer or refusal as JSON.
async fn unary<Req, Resp, F, Fut>(
    state: &AppState,
    method: &str,
    token: Option<&http::HeaderValue>,
    body: Body,
    call: F,
) -> Response
where
    Req: DeserializeOwned + Default + Message,
    Resp: Serialize + Message,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let request: Req = match one_request(body, state.request_bytes_max).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let counted = Call::start(method);
    counted.message(Way::Received, request.encoded_len());
    let answer = match learner::refuse_unserved(state, method) {
        Ok(()) => call(with_token(request, token)).await,
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
        assert_eq!(Rpc::from_path(b"auth/user/get"), Some(Rpc::UserGet));
        assert_eq!(Rpc::from_path(b"auth/status"), None);
    }
}
