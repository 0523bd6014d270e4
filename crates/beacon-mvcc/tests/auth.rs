//! Auth in the keyspace, without a network: the Auth service's entries applied, and
//! every other entry checked against the user it names as etcd 3.4 checks it.

use beacon_mvcc::Mvcc;
use beacon_proto::authpb::Permission;
use beacon_proto::beaconpb::{self, v3_request, v3_response, Caller, V3Request};
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::*;

fn apply(m: &mut Mvcc, who: Option<&str>, request: v3_request::Request) -> String {
    let caller = who.map(|name| Caller {
        username: name.into(),
        auth_revision: m.auth().revision(),
    });
    let answer = m
        .apply(&V3Request {
            caller,
            request: Some(request),
        })
        .expect("no disk here");
    match answer.response {
        Some(v3_response::Response::Refusal(r)) => format!("refused {}: {}", r.code, r.message),
        Some(_) => "ok".into(),
        None => "none".into(),
    }
}

fn put(key: &str) -> v3_request::Request {
    v3_request::Request::Put(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    })
}

fn put_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.into(),
            ..PutRequest::default()
        })),
    }
}

/// Root, and alice who may write `/a/` and nothing else, with auth on.
fn keyspace() -> Mvcc {
    let mut m = Mvcc::default();
    let setup = [
        v3_request::Request::UserAdd(beaconpb::UserAdd {
            name: "root".into(),
            hashed_password: "h".into(),
            options: None,
        }),
        v3_request::Request::UserGrantRole(AuthUserGrantRoleRequest {
            user: "root".into(),
            role: "root".into(),
        }),
        v3_request::Request::UserAdd(beaconpb::UserAdd {
            name: "alice".into(),
            hashed_password: "h".into(),
            options: None,
        }),
        v3_request::Request::RoleAdd(AuthRoleAddRequest { name: "w".into() }),
        v3_request::Request::RoleGrantPermission(AuthRoleGrantPermissionRequest {
            name: "w".into(),
            perm: Some(Permission {
                perm_type: 1,
                key: b"/a/".to_vec(),
                range_end: b"/a0".to_vec(),
            }),
        }),
        v3_request::Request::UserGrantRole(AuthUserGrantRoleRequest {
            user: "alice".into(),
            role: "w".into(),
        }),
        v3_request::Request::AuthEnable(AuthEnableRequest {}),
    ];
    for request in setup {
        assert_eq!(apply(&mut m, None, request), "ok");
    }
    m
}

#[test]
fn writes_are_checked_against_the_users_permissions() {
    let mut m = keyspace();
    assert_eq!(apply(&mut m, Some("alice"), put("/a/1")), "ok");
    assert_eq!(
        apply(&mut m, Some("alice"), put("/b")),
        "refused 7: etcdserver: permission denied"
    );
    assert_eq!(
        apply(&mut m, None, put("/a/1")),
        "refused 3: etcdserver: user name is empty"
    );
    assert_eq!(apply(&mut m, Some("root"), put("/b")), "ok");
    // Reading needs READ, which alice lacks, even for the key she wrote.
    let read = v3_request::Request::Range(RangeRequest {
        key: b"/a/1".to_vec(),
        ..RangeRequest::default()
    });
    assert_eq!(
        apply(&mut m, Some("alice"), read),
        "refused 7: etcdserver: permission denied"
    );
}

#[test]
fn a_nested_transaction_is_checked_too() {
    let mut m = keyspace();
    let nested = TxnRequest {
        success: vec![RequestOp {
            request: Some(Op::RequestTxn(TxnRequest {
                success: vec![put_op("/secret")],
                ..TxnRequest::default()
            })),
        }],
        ..TxnRequest::default()
    };
    // etcd 3.4 lets this through; Beacon does not.
    assert_eq!(
        apply(&mut m, Some("alice"), v3_request::Request::Txn(nested)),
        "refused 7: etcdserver: permission denied"
    );
    let allowed = TxnRequest {
        success: vec![put_op("/a/x")],
        ..TxnRequest::default()
    };
    assert_eq!(
        apply(&mut m, Some("alice"), v3_request::Request::Txn(allowed)),
        "ok"
    );
}

#[test]
fn a_request_checked_before_the_store_changed_is_refused() {
    let mut m = keyspace();
    let stale = V3Request {
        caller: Some(Caller {
            username: "alice".into(),
            auth_revision: m.auth().revision(),
        }),
        request: Some(put("/a/1")),
    };
    let revoke = v3_request::Request::UserRevokeRole(AuthUserRevokeRoleRequest {
        name: "alice".into(),
        role: "w".into(),
    });
    assert_eq!(apply(&mut m, Some("root"), revoke), "ok");
    let answer = m.apply(&stale).expect("no disk here");
    assert_eq!(
        answer.response,
        Some(v3_response::Response::Refusal(beaconpb::Refusal {
            code: 3,
            message: "etcdserver: revision of auth store is old".into()
        }))
    );
}

#[test]
fn admin_requests_need_the_root_role() {
    let mut m = keyspace();
    let add = || v3_request::Request::RoleAdd(AuthRoleAddRequest { name: "r2".into() });
    assert_eq!(
        apply(&mut m, Some("alice"), add()),
        "refused 7: etcdserver: permission denied"
    );
    assert_eq!(
        apply(&mut m, None, add()),
        "refused 3: etcdserver: user name is empty"
    );
    assert_eq!(apply(&mut m, Some("root"), add()), "ok");
    // A user may read their own record and the roles they have.
    let get_self = v3_request::Request::UserGet(AuthUserGetRequest {
        name: "alice".into(),
    });
    assert_eq!(apply(&mut m, Some("alice"), get_self), "ok");
    let get_role = v3_request::Request::RoleGet(AuthRoleGetRequest { role: "w".into() });
    assert_eq!(apply(&mut m, Some("alice"), get_role), "ok");
}

#[test]
fn a_lease_whose_keys_a_user_cannot_write_cannot_be_revoked_by_them() {
    let mut m = keyspace();
    m.lease_grant(&LeaseGrantRequest { ttl: 60, id: 5 }, 0)
        .expect("granted");
    let leased = v3_request::Request::Put(PutRequest {
        key: b"/b".to_vec(),
        lease: 5,
        ..PutRequest::default()
    });
    assert_eq!(apply(&mut m, Some("root"), leased), "ok");
    let attach = v3_request::Request::Put(PutRequest {
        key: b"/a/1".to_vec(),
        lease: 5,
        ..PutRequest::default()
    });
    assert_eq!(
        apply(&mut m, Some("alice"), attach),
        "refused 7: etcdserver: permission denied"
    );
    let revoke = v3_request::Request::LeaseRevoke(LeaseRevokeRequest { id: 5 });
    assert_eq!(
        apply(&mut m, Some("alice"), revoke),
        "refused 7: etcdserver: permission denied"
    );
}

/// Found by the gRPC fuzz campaign (`beacon-server/tests/grpc_fuzz`): a Put inside a
/// transaction was checked for its key alone, so a user who may write a key but not
/// read it got its previous value back (`prev_kv`), and one could attach a key to a
/// lease holding keys they cannot write. etcd fixed the same in 3.4.44 (#21688).
#[test]
fn a_put_in_a_transaction_is_checked_as_a_put_alone_is() {
    let mut m = keyspace();
    let txn = |p: PutRequest| {
        v3_request::Request::Txn(TxnRequest {
            success: vec![RequestOp {
                request: Some(Op::RequestPut(p)),
            }],
            ..TxnRequest::default()
        })
    };
    let read_back = PutRequest {
        key: b"/a/1".to_vec(),
        prev_kv: true,
        ..PutRequest::default()
    };
    assert_eq!(
        apply(&mut m, Some("alice"), txn(read_back)),
        "refused 7: etcdserver: permission denied"
    );
    m.lease_grant(&LeaseGrantRequest { ttl: 60, id: 5 }, 0)
        .expect("granted");
    let leased = PutRequest {
        key: b"/b".to_vec(),
        lease: 5,
        ..PutRequest::default()
    };
    assert_eq!(apply(&mut m, Some("root"), txn(leased)), "ok");
    let attach = PutRequest {
        key: b"/a/1".to_vec(),
        lease: 5,
        ..PutRequest::default()
    };
    assert_eq!(
        apply(&mut m, Some("alice"), txn(attach)),
        "refused 7: etcdserver: permission denied"
    );
    let plain = PutRequest {
        key: b"/a/1".to_vec(),
        ..PutRequest::default()
    };
    assert_eq!(apply(&mut m, Some("alice"), txn(plain)), "ok");
}

/// etcd 3.4 and 3.5 drop their auth check while an alarm is raised
/// (etcd-io/etcd#22386): a user who may write one prefix fills the quota, then deletes
/// others' keys or turns auth off. Here the alarm and auth checks both stand.
#[test]
fn a_raised_alarm_leaves_auth_on() {
    let mut m = keyspace();
    assert_eq!(apply(&mut m, Some("root"), put("/secret")), "ok");
    let nospace = v3_request::Request::Alarm(AlarmRequest {
        action: alarm_request::AlarmAction::Activate as i32,
        member_id: 1,
        alarm: AlarmType::Nospace as i32,
    });
    assert_eq!(apply(&mut m, Some("root"), nospace), "ok");
    let delete = || {
        v3_request::Request::DeleteRange(DeleteRangeRequest {
            key: b"/secret".to_vec(),
            ..DeleteRangeRequest::default()
        })
    };
    let denied = "refused 7: etcdserver: permission denied";
    assert_eq!(apply(&mut m, Some("alice"), delete()), denied);
    let disable = || v3_request::Request::AuthDisable(AuthDisableRequest {});
    assert_eq!(apply(&mut m, Some("alice"), disable()), denied);
    assert_eq!(
        apply(&mut m, Some("alice"), put("/a/2")),
        "refused 8: etcdserver: mvcc: database space exceeded"
    );
    // Root may still free space.
    assert_eq!(apply(&mut m, Some("root"), delete()), "ok");
}
