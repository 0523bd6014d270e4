//! The gRPC methods the generator calls, and a well-formed random request for each,
//! encoded: keys and ranges from a small universe around the roles' permissions, lease
//! ids the run knows of (and some it does not), the users' and roles' names.

use beacon_proto::authpb::{Permission, UserAddOptions};
use beacon_proto::etcdserverpb::compare::{CompareTarget, TargetUnion};
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::watch_request::RequestUnion;
use beacon_proto::etcdserverpb::*;
use beacon_proto::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
};
use beacon_proto::v3lockpb::{LockRequest, UnlockRequest};
use beacon_testkit::SeededRng;
use prost::Message;

use crate::model::{ROLES, USERS};

/// Every method called, with its gRPC path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Method {
    Range,
    Put,
    DeleteRange,
    Txn,
    Compact,
    LeaseGrant,
    LeaseRevoke,
    LeaseTimeToLive,
    LeaseLeases,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberList,
    MemberPromote,
    Status,
    Alarm,
    Hash,
    HashKv,
    Defragment,
    MoveLeader,
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
    Campaign,
    Proclaim,
    Leader,
    Resign,
    Lock,
    Unlock,
    /// One create request on a Watch stream.
    Watch,
}

use Method::*;

/// Every method but KV's once; KV's more often, as what the auth model judges most.
const OTHERS: &[Method] = &[
    Compact,
    LeaseGrant,
    LeaseRevoke,
    LeaseTimeToLive,
    LeaseLeases,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberList,
    MemberPromote,
    Status,
    Alarm,
    Hash,
    HashKv,
    Defragment,
    MoveLeader,
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
    Campaign,
    Proclaim,
    Leader,
    Resign,
    Lock,
    Unlock,
    Watch,
];

/// A method: half the time one of KV's four requests, else any other.
pub fn method(rng: &mut SeededRng) -> Method {
    const KV: &[Method] = &[Range, Put, Put, DeleteRange, Txn, Txn];
    if rng.below(2) == 0 {
        KV[rng.below(KV.len() as u64) as usize]
    } else {
        OTHERS[rng.below(OTHERS.len() as u64) as usize]
    }
}

impl Method {
    pub fn path(self) -> &'static str {
        match self {
            Range => "/etcdserverpb.KV/Range",
            Put => "/etcdserverpb.KV/Put",
            DeleteRange => "/etcdserverpb.KV/DeleteRange",
            Txn => "/etcdserverpb.KV/Txn",
            Compact => "/etcdserverpb.KV/Compact",
            LeaseGrant => "/etcdserverpb.Lease/LeaseGrant",
            LeaseRevoke => "/etcdserverpb.Lease/LeaseRevoke",
            LeaseTimeToLive => "/etcdserverpb.Lease/LeaseTimeToLive",
            LeaseLeases => "/etcdserverpb.Lease/LeaseLeases",
            MemberAdd => "/etcdserverpb.Cluster/MemberAdd",
            MemberRemove => "/etcdserverpb.Cluster/MemberRemove",
            MemberUpdate => "/etcdserverpb.Cluster/MemberUpdate",
            MemberList => "/etcdserverpb.Cluster/MemberList",
            MemberPromote => "/etcdserverpb.Cluster/MemberPromote",
            Status => "/etcdserverpb.Maintenance/Status",
            Alarm => "/etcdserverpb.Maintenance/Alarm",
            Hash => "/etcdserverpb.Maintenance/Hash",
            HashKv => "/etcdserverpb.Maintenance/HashKV",
            Defragment => "/etcdserverpb.Maintenance/Defragment",
            MoveLeader => "/etcdserverpb.Maintenance/MoveLeader",
            AuthEnable => "/etcdserverpb.Auth/AuthEnable",
            AuthDisable => "/etcdserverpb.Auth/AuthDisable",
            Authenticate => "/etcdserverpb.Auth/Authenticate",
            UserAdd => "/etcdserverpb.Auth/UserAdd",
            UserGet => "/etcdserverpb.Auth/UserGet",
            UserList => "/etcdserverpb.Auth/UserList",
            UserDelete => "/etcdserverpb.Auth/UserDelete",
            UserChangePassword => "/etcdserverpb.Auth/UserChangePassword",
            UserGrantRole => "/etcdserverpb.Auth/UserGrantRole",
            UserRevokeRole => "/etcdserverpb.Auth/UserRevokeRole",
            RoleAdd => "/etcdserverpb.Auth/RoleAdd",
            RoleGet => "/etcdserverpb.Auth/RoleGet",
            RoleList => "/etcdserverpb.Auth/RoleList",
            RoleDelete => "/etcdserverpb.Auth/RoleDelete",
            RoleGrantPermission => "/etcdserverpb.Auth/RoleGrantPermission",
            RoleRevokePermission => "/etcdserverpb.Auth/RoleRevokePermission",
            Campaign => "/v3electionpb.Election/Campaign",
            Proclaim => "/v3electionpb.Election/Proclaim",
            Leader => "/v3electionpb.Election/Leader",
            Resign => "/v3electionpb.Election/Resign",
            Lock => "/v3lockpb.Lock/Lock",
            Unlock => "/v3lockpb.Lock/Unlock",
            Watch => "/etcdserverpb.Watch/Watch",
        }
    }

    /// Calls that change the auth state or the membership: root does not make them
    /// (the model's users and roles would change under it); anyone else must be refused.
    pub fn changes_auth_or_members(self) -> bool {
        matches!(
            self,
            MemberAdd
                | MemberRemove
                | MemberUpdate
                | MemberPromote
                | AuthEnable
                | AuthDisable
                | UserAdd
                | UserDelete
                | UserChangePassword
                | UserGrantRole
                | UserRevokeRole
                | RoleAdd
                | RoleDelete
                | RoleGrantPermission
                | RoleRevokePermission
        )
    }

    /// Calls etcd lets only root make while auth is on, besides those that change auth
    /// or members: the maintenance server's admin calls and the auth listings.
    pub fn admin_only(self) -> bool {
        self.changes_auth_or_members()
            || matches!(self, Hash | HashKv | Defragment | UserList | RoleList)
    }

    /// Calls that may wait for another holder (a lock, a campaign): sent with a short
    /// deadline, which may expire.
    pub fn may_wait(self) -> bool {
        matches!(self, Lock | Campaign)
    }
}

/// What the generator knows: the leases root granted, the member's id, and the keys
/// the caller's permissions name (so that its requests are often allowed, and judged).
pub struct Known {
    pub leases: Vec<i64>,
    pub member_id: u64,
    pub focus: Vec<Vec<u8>>,
}

/// Keys at and around the edges of the roles' permissions.
pub const KEYS: &[&[u8]] = &[
    b"a", b"a", b"b", b"b", b"c", b"foo", b"foo", b"foo1", b"zz", b"zz", b"\0", b"a\0", b"fop",
    b"fo", b"zzz", b"\xff", b"",
];

pub fn key(rng: &mut SeededRng, known: &Known) -> Vec<u8> {
    if !known.focus.is_empty() && rng.below(2) == 0 {
        return known.focus[rng.below(known.focus.len() as u64) as usize].clone();
    }
    if rng.below(16) == 0 {
        return (0..rng.below(4)).map(|_| rng.next_u64() as u8).collect();
    }
    KEYS[rng.below(KEYS.len() as u64) as usize].to_vec()
}

/// A range end for `key`: none (mostly), `"\0"`, the prefix's end, or another key.
pub fn range_end(rng: &mut SeededRng, known: &Known, key: &[u8]) -> Vec<u8> {
    match rng.below(6) {
        0 => vec![0],
        1 => prefix_end(key),
        2 => self::key(rng, known),
        _ => Vec::new(),
    }
}

/// The end of the range of keys that start with `key`, as etcd's clients compute it.
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn value(rng: &mut SeededRng) -> Vec<u8> {
    format!("v{}", rng.below(1000)).into_bytes()
}

fn flag(rng: &mut SeededRng) -> bool {
    rng.below(4) == 0
}

/// A lease id: one the run knows of, or none, or a made-up one.
fn lease(rng: &mut SeededRng, known: &Known) -> i64 {
    match rng.below(8) {
        0 | 1 if !known.leases.is_empty() => {
            known.leases[rng.below(known.leases.len() as u64) as usize]
        }
        2 => GRANTABLE[rng.below(GRANTABLE.len() as u64) as usize],
        3 => rng.next_u64() as i64,
        _ => 0,
    }
}

/// The ids a fuzzed LeaseGrant names, and other requests use: chosen here, never by
/// the server (whose ids vary from run to run), so that a seed sends the same bytes.
const GRANTABLE: &[i64] = &[0x6001, 0x6002, 0x6003, 0x6004];

fn small(rng: &mut SeededRng) -> i64 {
    rng.below(40) as i64 - 5
}

fn user_name(rng: &mut SeededRng) -> String {
    match rng.below(USERS.len() as u64 + 2) as usize {
        i if i < USERS.len() => USERS[i].0.to_string(),
        i if i == USERS.len() => "root".to_string(),
        _ => "mallory".to_string(),
    }
}

fn role_name(rng: &mut SeededRng) -> String {
    match rng.below(ROLES.len() as u64 + 1) as usize {
        i if i < ROLES.len() => ROLES[i].0.to_string(),
        _ => "root".to_string(),
    }
}

pub fn put(rng: &mut SeededRng, known: &Known) -> PutRequest {
    PutRequest {
        key: key(rng, known),
        value: value(rng),
        lease: lease(rng, known),
        prev_kv: flag(rng),
        ignore_value: rng.below(12) == 0,
        ignore_lease: rng.below(12) == 0,
    }
}

fn range(rng: &mut SeededRng, known: &Known) -> RangeRequest {
    let key = key(rng, known);
    RangeRequest {
        range_end: range_end(rng, known, &key),
        key,
        limit: small(rng).max(0),
        revision: if flag(rng) { small(rng) } else { 0 },
        serializable: flag(rng),
        keys_only: flag(rng),
        count_only: flag(rng),
        ..RangeRequest::default()
    }
}

fn delete(rng: &mut SeededRng, known: &Known) -> DeleteRangeRequest {
    let key = key(rng, known);
    DeleteRangeRequest {
        range_end: range_end(rng, known, &key),
        key,
        prev_kv: flag(rng),
    }
}

fn compare(rng: &mut SeededRng, known: &Known) -> Compare {
    let key = key(rng, known);
    let target = rng.below(5) as i32;
    let union = match CompareTarget::try_from(target) {
        Ok(CompareTarget::Value) => TargetUnion::Value(value(rng)),
        Ok(CompareTarget::Lease) => TargetUnion::Lease(lease(rng, known)),
        Ok(CompareTarget::Create) => TargetUnion::CreateRevision(small(rng)),
        Ok(CompareTarget::Mod) => TargetUnion::ModRevision(small(rng)),
        _ => TargetUnion::Version(small(rng)),
    };
    Compare {
        result: rng.below(4) as i32,
        target,
        range_end: if flag(rng) {
            range_end(rng, known, &key)
        } else {
            Vec::new()
        },
        key,
        target_union: Some(union),
    }
}

fn op(rng: &mut SeededRng, known: &Known, depth: u32) -> RequestOp {
    let request = match rng.below(if depth < 2 { 4 } else { 3 }) {
        0 => Op::RequestRange(range(rng, known)),
        1 => Op::RequestPut(put(rng, known)),
        2 => Op::RequestDeleteRange(delete(rng, known)),
        _ => Op::RequestTxn(txn(rng, known, depth + 1)),
    };
    RequestOp {
        request: Some(request),
    }
}

fn txn(rng: &mut SeededRng, known: &Known, depth: u32) -> TxnRequest {
    TxnRequest {
        compare: (0..rng.below(3)).map(|_| compare(rng, known)).collect(),
        success: (0..rng.below(4)).map(|_| op(rng, known, depth)).collect(),
        failure: (0..rng.below(3)).map(|_| op(rng, known, depth)).collect(),
    }
}

fn leader_key(rng: &mut SeededRng, known: &Known) -> LeaderKey {
    let name = key(rng, known);
    LeaderKey {
        key: [
            name.as_slice(),
            b"/",
            format!("{:x}", lease(rng, known)).as_bytes(),
        ]
        .concat(),
        name,
        rev: small(rng),
        lease: lease(rng, known),
    }
}

fn permission(rng: &mut SeededRng, known: &Known) -> Permission {
    let key = key(rng, known);
    Permission {
        perm_type: rng.below(3) as i32,
        range_end: range_end(rng, known, &key),
        key,
    }
}

/// A well-formed random request for `method`, encoded.
pub fn well_formed(method: Method, rng: &mut SeededRng, known: &Known) -> Vec<u8> {
    let name = user_name(rng);
    let role = role_name(rng);
    let password = if flag(rng) { "pw" } else { "wrong" }.to_string();
    match method {
        Range => range(rng, known).encode_to_vec(),
        Put => put(rng, known).encode_to_vec(),
        DeleteRange => delete(rng, known).encode_to_vec(),
        Txn => txn(rng, known, 0).encode_to_vec(),
        Compact => CompactionRequest {
            revision: small(rng),
            physical: flag(rng),
        }
        .encode_to_vec(),
        LeaseGrant => LeaseGrantRequest {
            ttl: small(rng) * 30,
            id: match rng.below(3) {
                0 => GRANTABLE[rng.below(GRANTABLE.len() as u64) as usize],
                1 => rng.next_u64() as i64,
                _ => 0,
            },
        }
        .encode_to_vec(),
        LeaseRevoke => LeaseRevokeRequest {
            id: lease(rng, known),
        }
        .encode_to_vec(),
        LeaseTimeToLive => LeaseTimeToLiveRequest {
            id: lease(rng, known),
            keys: flag(rng),
        }
        .encode_to_vec(),
        LeaseLeases => LeaseLeasesRequest {}.encode_to_vec(),
        MemberAdd => MemberAddRequest {
            peer_ur_ls: vec![format!("http://127.0.0.1:{}", 1 + rng.below(65535))],
            is_learner: flag(rng),
        }
        .encode_to_vec(),
        MemberRemove => MemberRemoveRequest {
            id: member(rng, known),
        }
        .encode_to_vec(),
        MemberUpdate => MemberUpdateRequest {
            id: member(rng, known),
            peer_ur_ls: vec!["http://127.0.0.1:1".into()],
        }
        .encode_to_vec(),
        MemberList => MemberListRequest {}.encode_to_vec(),
        MemberPromote => MemberPromoteRequest {
            id: member(rng, known),
        }
        .encode_to_vec(),
        Status => StatusRequest {}.encode_to_vec(),
        Alarm => AlarmRequest {
            action: rng.below(3) as i32,
            member_id: member(rng, known),
            alarm: rng.below(3) as i32,
        }
        .encode_to_vec(),
        Hash => HashRequest {}.encode_to_vec(),
        HashKv => HashKvRequest {
            revision: small(rng),
        }
        .encode_to_vec(),
        Defragment => DefragmentRequest {}.encode_to_vec(),
        MoveLeader => MoveLeaderRequest {
            target_id: member(rng, known),
        }
        .encode_to_vec(),
        AuthEnable => AuthEnableRequest {}.encode_to_vec(),
        AuthDisable => AuthDisableRequest {}.encode_to_vec(),
        Authenticate => AuthenticateRequest { name, password }.encode_to_vec(),
        UserAdd => AuthUserAddRequest {
            name,
            password,
            options: flag(rng).then_some(UserAddOptions { no_password: true }),
        }
        .encode_to_vec(),
        UserGet => AuthUserGetRequest { name }.encode_to_vec(),
        UserList => AuthUserListRequest {}.encode_to_vec(),
        UserDelete => AuthUserDeleteRequest { name }.encode_to_vec(),
        UserChangePassword => AuthUserChangePasswordRequest { name, password }.encode_to_vec(),
        UserGrantRole => AuthUserGrantRoleRequest { user: name, role }.encode_to_vec(),
        UserRevokeRole => AuthUserRevokeRoleRequest { name, role }.encode_to_vec(),
        RoleAdd => AuthRoleAddRequest { name: role }.encode_to_vec(),
        RoleGet => AuthRoleGetRequest { role }.encode_to_vec(),
        RoleList => AuthRoleListRequest {}.encode_to_vec(),
        RoleDelete => AuthRoleDeleteRequest { role }.encode_to_vec(),
        RoleGrantPermission => AuthRoleGrantPermissionRequest {
            name: role,
            perm: Some(permission(rng, known)),
        }
        .encode_to_vec(),
        RoleRevokePermission => {
            let p = permission(rng, known);
            AuthRoleRevokePermissionRequest {
                role,
                key: p.key,
                range_end: p.range_end,
            }
            .encode_to_vec()
        }
        Campaign => CampaignRequest {
            name: key(rng, known),
            lease: lease(rng, known),
            value: value(rng),
        }
        .encode_to_vec(),
        Proclaim => ProclaimRequest {
            leader: Some(leader_key(rng, known)),
            value: value(rng),
        }
        .encode_to_vec(),
        Leader => LeaderRequest {
            name: key(rng, known),
        }
        .encode_to_vec(),
        Resign => ResignRequest {
            leader: Some(leader_key(rng, known)),
        }
        .encode_to_vec(),
        Lock => LockRequest {
            name: key(rng, known),
            lease: lease(rng, known),
        }
        .encode_to_vec(),
        Unlock => UnlockRequest {
            key: key(rng, known),
        }
        .encode_to_vec(),
        Watch => {
            let key = key(rng, known);
            WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    range_end: range_end(rng, known, &key),
                    key,
                    start_revision: if flag(rng) { small(rng) } else { 0 },
                    prev_kv: flag(rng),
                    watch_id: if flag(rng) { small(rng) } else { 0 },
                    ..WatchCreateRequest::default()
                })),
            }
            .encode_to_vec()
        }
    }
}

/// This member's id, mostly, or another.
fn member(rng: &mut SeededRng, known: &Known) -> u64 {
    if flag(rng) {
        rng.next_u64()
    } else {
        known.member_id
    }
}
