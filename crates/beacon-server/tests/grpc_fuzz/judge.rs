//! What the test makes of a call's bytes: whether they decode as the server decodes
//! them, and what an accepted call needed by the model (the ranges it read or wrote, as
//! its request or its answer names them).

use beacon_proto::etcdserverpb::watch_request::RequestUnion;
use beacon_proto::etcdserverpb::*;
use beacon_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, ProclaimRequest, ResignRequest,
};
use beacon_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest};
use prost::Message;

use crate::model::{self, Access, Need, Who};
use crate::requests::{self, Method};

/// Whether `body` decodes as `method`'s request, as the server decodes it.
pub fn decodes(method: Method, body: &[u8]) -> bool {
    fn ok<T: Message + Default>(body: &[u8]) -> bool {
        T::decode(body).is_ok()
    }
    use Method::*;
    match method {
        Range => ok::<RangeRequest>(body),
        Put => ok::<PutRequest>(body),
        DeleteRange => ok::<DeleteRangeRequest>(body),
        Txn => ok::<TxnRequest>(body),
        Compact => ok::<CompactionRequest>(body),
        LeaseGrant => ok::<LeaseGrantRequest>(body),
        LeaseRevoke => ok::<LeaseRevokeRequest>(body),
        LeaseTimeToLive => ok::<LeaseTimeToLiveRequest>(body),
        LeaseLeases => ok::<LeaseLeasesRequest>(body),
        MemberAdd => ok::<MemberAddRequest>(body),
        MemberRemove => ok::<MemberRemoveRequest>(body),
        MemberUpdate => ok::<MemberUpdateRequest>(body),
        MemberList => ok::<MemberListRequest>(body),
        MemberPromote => ok::<MemberPromoteRequest>(body),
        Status => ok::<StatusRequest>(body),
        Alarm => ok::<AlarmRequest>(body),
        Hash => ok::<HashRequest>(body),
        HashKv => ok::<HashKvRequest>(body),
        Defragment => ok::<DefragmentRequest>(body),
        MoveLeader => ok::<MoveLeaderRequest>(body),
        AuthEnable => ok::<AuthEnableRequest>(body),
        AuthDisable => ok::<AuthDisableRequest>(body),
        Authenticate => ok::<AuthenticateRequest>(body),
        UserAdd => ok::<AuthUserAddRequest>(body),
        UserGet => ok::<AuthUserGetRequest>(body),
        UserList => ok::<AuthUserListRequest>(body),
        UserDelete => ok::<AuthUserDeleteRequest>(body),
        UserChangePassword => ok::<AuthUserChangePasswordRequest>(body),
        UserGrantRole => ok::<AuthUserGrantRoleRequest>(body),
        UserRevokeRole => ok::<AuthUserRevokeRoleRequest>(body),
        RoleAdd => ok::<AuthRoleAddRequest>(body),
        RoleGet => ok::<AuthRoleGetRequest>(body),
        RoleList => ok::<AuthRoleListRequest>(body),
        RoleDelete => ok::<AuthRoleDeleteRequest>(body),
        RoleGrantPermission => ok::<AuthRoleGrantPermissionRequest>(body),
        RoleRevokePermission => ok::<AuthRoleRevokePermissionRequest>(body),
        Campaign => ok::<CampaignRequest>(body),
        Proclaim => ok::<ProclaimRequest>(body),
        Leader => ok::<LeaderRequest>(body),
        Resign => ok::<ResignRequest>(body),
        Lock => ok::<LockRequest>(body),
        Unlock => ok::<UnlockRequest>(body),
        Watch => ok::<WatchRequest>(body),
    }
}

/// What an accepted call of `method` needed of the keyspace, by the model.
pub fn needs_of(method: Method, body: &[u8], answer: &[u8]) -> Vec<Need> {
    let write = |key: Vec<u8>| vec![(Access::Write, key, Vec::new())];
    match method {
        Method::Range => RangeRequest::decode(body).map_or(Vec::new(), |r| model::range_needs(&r)),
        Method::Put => PutRequest::decode(body).map_or(Vec::new(), |p| model::put_needs(&p)),
        Method::DeleteRange => {
            DeleteRangeRequest::decode(body).map_or(Vec::new(), |d| model::delete_needs(&d))
        }
        Method::Txn => TxnRequest::decode(body).map_or(Vec::new(), |t| model::txn_needs(&t)),
        Method::Campaign => CampaignResponse::decode(answer)
            .ok()
            .and_then(|r| r.leader)
            .map_or(Vec::new(), |l| write(l.key)),
        Method::Proclaim => ProclaimRequest::decode(body)
            .ok()
            .and_then(|r| r.leader)
            .map_or(Vec::new(), |l| write(l.key)),
        Method::Resign => ResignRequest::decode(body)
            .ok()
            .and_then(|r| r.leader)
            .map_or(Vec::new(), |l| write(l.key)),
        Method::Lock => LockResponse::decode(answer).map_or(Vec::new(), |l| write(l.key)),
        Method::Unlock => UnlockRequest::decode(body).map_or(Vec::new(), |u| write(u.key)),
        Method::Leader => LeaderRequest::decode(body).map_or(Vec::new(), |l| {
            let prefix = [l.name.as_slice(), b"/"].concat();
            vec![(Access::Read, prefix.clone(), requests::prefix_end(&prefix))]
        }),
        Method::Watch => {
            let created = WatchResponse::decode(answer).is_ok_and(|w| w.created && !w.canceled);
            match WatchRequest::decode(body).map(|w| w.request_union) {
                Ok(Some(RequestUnion::CreateRequest(c))) if created => {
                    vec![(Access::Read, c.key, c.range_end)]
                }
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// The auth reads a user may make of itself (its own user, a role it holds), and every
/// call that is not an auth read.
pub fn own_auth_read(method: Method, who: Who, body: &[u8]) -> bool {
    match method {
        Method::UserGet => AuthUserGetRequest::decode(body).is_ok_and(|g| g.name == who.name()),
        Method::RoleGet => {
            AuthRoleGetRequest::decode(body).is_ok_and(|g| who.roles().contains(&g.role.as_str()))
        }
        _ => true,
    }
}
