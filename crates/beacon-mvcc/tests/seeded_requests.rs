//! A seeded generator over the decoding and applying of v3 log entries: valid
//! requests of every kind (auth's included, with and without a caller) are encoded,
//! mutated (bytes flipped, inserted, deleted, spliced, cut), and whatever still
//! decodes is applied to one keyspace in memory. Nothing may panic, and a keyspace
//! with no disk under it must answer every entry (a refusal is an answer), so no
//! entry a replica receives can stop it.

use beacon_mvcc::Mvcc;
use beacon_proto::authpb::Permission;
use beacon_proto::beaconpb::{self, v3_request, Caller, LeaseGrant, LeaseRenew, V3Request};
use beacon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::*;
use beacon_testkit::SeededRng;
use prost::Message;

fn entry(request: v3_request::Request, caller: Option<&str>) -> V3Request {
    V3Request {
        request: Some(request),
        caller: caller.map(|name| Caller {
            username: name.into(),
            auth_revision: 1,
        }),
    }
}

fn put(key: &[u8]) -> PutRequest {
    PutRequest {
        key: key.to_vec(),
        value: b"value".to_vec(),
        ..PutRequest::default()
    }
}

/// One valid entry of each kind, and some with every field set.
fn corpus() -> Vec<V3Request> {
    use v3_request::Request as R;
    let range = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"z".to_vec(),
        limit: 3,
        revision: 2,
        sort_order: 1,
        sort_target: 2,
        serializable: true,
        keys_only: true,
        count_only: false,
        min_mod_revision: 1,
        max_mod_revision: 9,
        min_create_revision: 1,
        max_create_revision: 9,
    };
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Greater as i32,
            target: CompareTarget::Version as i32,
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            target_union: Some(TargetUnion::Version(1)),
        }],
        success: vec![
            RequestOp {
                request: Some(Op::RequestPut(put(b"t"))),
            },
            RequestOp {
                request: Some(Op::RequestTxn(TxnRequest {
                    success: vec![RequestOp {
                        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                            key: b"n".to_vec(),
                            range_end: vec![0],
                            prev_kv: true,
                        })),
                    }],
                    ..TxnRequest::default()
                })),
            },
        ],
        failure: vec![RequestOp {
            request: Some(Op::RequestRange(range.clone())),
        }],
    };
    vec![
        entry(R::Put(put(b"k")), None),
        entry(
            R::Put(PutRequest {
                lease: 7,
                prev_kv: true,
                ignore_lease: true,
                ..put(b"k2")
            }),
            Some("alice"),
        ),
        entry(R::Range(range), None),
        entry(
            R::DeleteRange(DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: vec![0],
                prev_kv: true,
            }),
            None,
        ),
        entry(R::Txn(txn), Some("root")),
        entry(
            R::Compaction(CompactionRequest {
                revision: 3,
                physical: true,
            }),
            None,
        ),
        entry(
            R::LeaseGrant(LeaseGrant {
                request: Some(LeaseGrantRequest { ttl: 60, id: 7 }),
                now_ns: 1_000,
            }),
            None,
        ),
        entry(
            R::LeaseRenew(LeaseRenew {
                id: 7,
                now_ns: 2_000,
            }),
            None,
        ),
        entry(R::LeaseRevoke(LeaseRevokeRequest { id: 7 }), Some("alice")),
        entry(
            R::Alarm(AlarmRequest {
                action: 1,
                member_id: 5,
                alarm: 1,
            }),
            None,
        ),
        entry(
            R::UserAdd(beaconpb::UserAdd {
                name: "root".into(),
                hashed_password: "$2b$04$hash".into(),
                options: None,
            }),
            None,
        ),
        entry(
            R::UserGrantRole(AuthUserGrantRoleRequest {
                user: "root".into(),
                role: "root".into(),
            }),
            None,
        ),
        entry(R::RoleAdd(AuthRoleAddRequest { name: "r".into() }), None),
        entry(
            R::RoleGrantPermission(AuthRoleGrantPermissionRequest {
                name: "r".into(),
                perm: Some(Permission {
                    perm_type: 2,
                    key: b"a".to_vec(),
                    range_end: vec![0],
                }),
            }),
            Some("root"),
        ),
        entry(R::AuthEnable(AuthEnableRequest {}), Some("root")),
        entry(
            R::Authenticate(beaconpb::Authenticate {
                name: "root".into(),
                token: "t.1".into(),
                now_ns: 1,
            }),
            None,
        ),
        entry(R::AuthDisable(AuthDisableRequest {}), Some("root")),
    ]
}

fn mutate(rng: &mut SeededRng, bytes: &mut Vec<u8>, others: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(2) as usize {
        let at = if bytes.is_empty() {
            0
        } else {
            rng.below(bytes.len() as u64) as usize
        };
        match rng.below(6) as usize {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << rng.below(8),
            1 if !bytes.is_empty() => bytes[at] = rng.next_u64() as u8,
            2 => bytes.insert(at, rng.next_u64() as u8),
            3 if !bytes.is_empty() => {
                bytes.remove(at);
            }
            4 => bytes.truncate(at),
            _ => {
                // Another entry's bytes spliced in: fields of one kind inside another.
                let other = &others[rng.below(others.len() as u64) as usize];
                let from = rng.below(other.len().max(1) as u64) as usize;
                bytes.splice(at..at, other[from..].iter().copied());
            }
        }
    }
}

#[test]
fn no_mutated_entry_panics_or_goes_unanswered() {
    let corpus: Vec<Vec<u8>> = corpus().iter().map(Message::encode_to_vec).collect();
    let mut mvcc = Mvcc::default();
    let (mut tried, mut decoded, mut refused) = (0u64, 0u64, 0u64);
    for seed in 0..100_000u64 {
        let mut rng = SeededRng::new(seed);
        let mut bytes = corpus[rng.below(corpus.len() as u64) as usize].clone();
        mutate(&mut rng, &mut bytes, &corpus);
        tried += 1;
        let Ok(request) = V3Request::decode(bytes.as_slice()) else {
            continue;
        };
        decoded += 1;
        let answer = mvcc
            .apply(&request)
            .unwrap_or_else(|e| panic!("seed {seed}: {request:?} failed the keyspace: {e}"));
        let answer = answer.response.expect("an answer");
        if matches!(answer, beaconpb::v3_response::Response::Refusal(_)) {
            refused += 1;
        }
        // Every so often the keyspace commits, as a server's does after a batch.
        if seed % 97 == 0 {
            mvcc.commit(seed).expect("memory commits");
        }
    }
    eprintln!("{tried} mutated entries, {decoded} decoded and applied, {refused} refused");
    assert!(decoded > 8_000, "the mutations decode too rarely to test");
}
