//! etcd's v3 KV and Lease services through a Rust gRPC client: the same calls against a
//! fresh etcd 3.4 and a fresh Beacon must answer the same, response for response and
//! refusal for refusal (code and message), once the member's ids and Raft term are
//! blanked. Both keyspaces start at revision 1 and count every write alike, so revisions
//! compare as they are; leases are granted with ids of the script's choosing.

use beacon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::lease_client::LeaseClient;
use beacon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest,
    LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
    RequestOp, ResponseHeader, TxnRequest,
};
use beacon_testkit::ServerProcess;
use tonic::transport::Channel;

/// One call of the script.
#[derive(Clone)]
enum Call {
    Put(PutRequest),
    Range(RangeRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
    Grant(LeaseGrantRequest),
    Revoke(i64),
    TimeToLive(LeaseTimeToLiveRequest),
    Leases,
    /// One keep-alive on a stream of its own.
    KeepAlive(i64),
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    }
}

fn range(key: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: end.into(),
        ..RangeRequest::default()
    }
}

fn compare(key: &str, target: CompareTarget, result: CompareResult, with: TargetUnion) -> Compare {
    Compare {
        key: key.into(),
        target: target as i32,
        result: result as i32,
        target_union: Some(with),
        range_end: Vec::new(),
    }
}

fn op(request: Op) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

fn script() -> Vec<Call> {
    use Call::*;
    let mut calls = vec![
        Put(put("a", "1")),
        Put(put("b", "2")),
        Put(PutRequest {
            prev_kv: true,
            ..put("a", "11")
        }),
        Put(put("c/x", "3")),
        Put(put("c/y", "4")),
        Put(put("d", "")),
        // Refusals before the log.
        Put(put("", "v")),
        Put(PutRequest {
            ignore_value: true,
            ..put("a", "v")
        }),
        Put(PutRequest {
            ignore_lease: true,
            lease: 5,
            ..put("a", "")
        }),
        // Refusals by the keyspace.
        Put(PutRequest {
            ignore_value: true,
            ..put("nope", "")
        }),
        Put(PutRequest {
            lease: 1234,
            ..put("a", "v")
        }),
        Put(PutRequest {
            ignore_value: true,
            prev_kv: true,
            ..put("a", "")
        }),
        // Reads.
        Range(range("a", "")),
        Range(range("", "")),
        Range(range("a", "c")),
        Range(range("c/", "c0")),
        Range(range("b", "\0")),
        Range(range("\0", "\0")),
        Range(range("z", "a")),
        Range(RangeRequest {
            limit: 2,
            ..range("\0", "\0")
        }),
        Range(RangeRequest {
            limit: 2,
            count_only: true,
            ..range("\0", "\0")
        }),
        Range(RangeRequest {
            keys_only: true,
            ..range("\0", "\0")
        }),
        Range(RangeRequest {
            serializable: true,
            ..range("a", "")
        }),
        Range(RangeRequest {
            revision: 2,
            ..range("\0", "\0")
        }),
        Range(RangeRequest {
            revision: 100,
            ..range("a", "")
        }),
        Range(RangeRequest {
            min_mod_revision: 3,
            max_mod_revision: 5,
            ..range("\0", "\0")
        }),
        Range(RangeRequest {
            min_create_revision: 2,
            max_create_revision: 4,
            ..range("\0", "\0")
        }),
    ];
    for target in [
        SortTarget::Key,
        SortTarget::Version,
        SortTarget::Create,
        SortTarget::Mod,
        SortTarget::Value,
    ] {
        for order in [SortOrder::None, SortOrder::Ascend, SortOrder::Descend] {
            calls.push(Range(RangeRequest {
                sort_order: order as i32,
                sort_target: target as i32,
                limit: 3,
                ..range("\0", "\0")
            }));
        }
    }
    calls.extend([
        // Transactions.
        Txn(TxnRequest {
            compare: vec![compare(
                "a",
                CompareTarget::Value,
                CompareResult::Equal,
                TargetUnion::Value(b"11".to_vec()),
            )],
            success: vec![
                op(Op::RequestPut(put("t1", "yes"))),
                op(Op::RequestRange(range("t1", ""))),
            ],
            failure: vec![op(Op::RequestPut(put("t1", "no")))],
        }),
        Txn(TxnRequest {
            compare: vec![
                compare(
                    "a",
                    CompareTarget::Version,
                    CompareResult::Greater,
                    TargetUnion::Version(1),
                ),
                compare(
                    "c/",
                    CompareTarget::Create,
                    CompareResult::Less,
                    TargetUnion::CreateRevision(1),
                ),
            ],
            success: vec![op(Op::RequestDeleteRange(DeleteRangeRequest {
                key: b"a".to_vec(),
                ..DeleteRangeRequest::default()
            }))],
            failure: vec![
                op(Op::RequestRange(range("a", ""))),
                op(Op::RequestTxn(TxnRequest {
                    compare: vec![compare(
                        "zz",
                        CompareTarget::Mod,
                        CompareResult::Equal,
                        TargetUnion::ModRevision(0),
                    )],
                    success: vec![op(Op::RequestPut(put("t2", "nested")))],
                    failure: vec![],
                })),
            ],
        }),
        Txn(TxnRequest {
            compare: vec![Compare {
                range_end: b"c0".to_vec(),
                ..compare(
                    "c/",
                    CompareTarget::Mod,
                    CompareResult::Greater,
                    TargetUnion::ModRevision(3),
                )
            }],
            success: vec![op(Op::RequestPut(put("t3", "all-newer")))],
            failure: vec![op(Op::RequestPut(put("t3", "not-all-newer")))],
        }),
        Txn(TxnRequest {
            compare: vec![compare(
                "a",
                CompareTarget::Lease,
                CompareResult::Equal,
                TargetUnion::Lease(0),
            )],
            success: vec![
                op(Op::RequestPut(put("x", "1"))),
                op(Op::RequestPut(put("x", "2"))),
            ],
            failure: vec![],
        }),
        Txn(TxnRequest {
            compare: vec![],
            success: vec![
                op(Op::RequestDeleteRange(DeleteRangeRequest {
                    key: b"c/".to_vec(),
                    range_end: b"c0".to_vec(),
                    ..DeleteRangeRequest::default()
                })),
                op(Op::RequestPut(put("c/x", "again"))),
            ],
            failure: vec![],
        }),
        Txn(TxnRequest {
            compare: vec![],
            success: (0..129)
                .map(|i| op(Op::RequestRange(range(&format!("k{i}"), ""))))
                .collect(),
            failure: vec![],
        }),
        Txn(TxnRequest {
            compare: vec![],
            success: vec![op(Op::RequestPut(PutRequest {
                lease: 99,
                ..put("y", "1")
            }))],
            failure: vec![],
        }),
        Txn(TxnRequest {
            compare: vec![],
            success: vec![op(Op::RequestRange(RangeRequest {
                revision: 1000,
                ..range("a", "")
            }))],
            failure: vec![],
        }),
        Txn(TxnRequest::default()),
        // A nested transaction's response: etcd sends its header, empty (etcd-client's
        // differential suite found Beacon leaving it out).
        Txn(TxnRequest {
            compare: vec![],
            success: vec![op(Op::RequestTxn(TxnRequest {
                compare: vec![],
                success: vec![op(Op::RequestRange(range("a", "")))],
                failure: vec![],
            }))],
            failure: vec![],
        }),
        // Deletes.
        Delete(DeleteRangeRequest {
            key: b"c/".to_vec(),
            range_end: b"c0".to_vec(),
            prev_kv: true,
        }),
        Delete(DeleteRangeRequest {
            key: b"nothing".to_vec(),
            ..DeleteRangeRequest::default()
        }),
        Delete(DeleteRangeRequest::default()),
        Put(put("a", "after")),
        // Compaction.
        Compact(CompactionRequest {
            revision: 0,
            physical: false,
        }),
        Compact(CompactionRequest {
            revision: 4,
            physical: true,
        }),
        Compact(CompactionRequest {
            revision: 4,
            physical: false,
        }),
        Compact(CompactionRequest {
            revision: 3,
            physical: false,
        }),
        Compact(CompactionRequest {
            revision: 1000,
            physical: false,
        }),
        Range(RangeRequest {
            revision: 3,
            ..range("\0", "\0")
        }),
        Range(RangeRequest {
            revision: 4,
            ..range("\0", "\0")
        }),
        Range(RangeRequest {
            revision: 6,
            ..range("\0", "\0")
        }),
        Txn(TxnRequest {
            compare: vec![],
            success: vec![op(Op::RequestRange(RangeRequest {
                revision: 2,
                ..range("a", "")
            }))],
            failure: vec![],
        }),
        Range(range("\0", "\0")),
    ]);
    calls.extend(lease_script());
    calls
}

/// Leases, with ids chosen here (a server's own are its own).
fn lease_script() -> Vec<Call> {
    use Call::*;
    let grant = |id, ttl| Grant(LeaseGrantRequest { ttl, id });
    let ttl = |id, keys| TimeToLive(LeaseTimeToLiveRequest { id, keys });
    vec![
        grant(100, 60),
        grant(100, 60),
        // Raised to the minimum, 2 s with the default timing flags.
        grant(101, 1),
        grant(102, 9_000_000_001),
        grant(-5, 30),
        Put(PutRequest {
            lease: 100,
            ..put("leased/a", "1")
        }),
        Put(PutRequest {
            lease: 100,
            ..put("leased/b", "1")
        }),
        Put(PutRequest {
            lease: 999,
            ..put("leased/c", "1")
        }),
        ttl(100, false),
        ttl(999, true),
        KeepAlive(100),
        KeepAlive(999),
        Leases,
        // Put again without the lease: detached, and kept when the lease goes.
        Put(put("leased/b", "2")),
        Revoke(100),
        Revoke(100),
        Revoke(0),
        Revoke(-5),
        Range(range("leased/", "leased0")),
        Leases,
    ]
}

/// Blanks what differs between two servers in a header.
fn blank(header: &mut Option<ResponseHeader>) {
    if let Some(h) = header {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

async fn answer(
    kv: &mut KvClient<Channel>,
    lease: &mut LeaseClient<Channel>,
    call: Call,
) -> String {
    let refusal = |s: tonic::Status| format!("refused {:?}: {}", s.code(), s.message());
    match call {
        Call::Put(r) => match kv.put(r).await {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                blank(&mut resp.header);
                format!("{resp:?}")
            }
            Err(s) => refusal(s),
        },
        Call::Range(r) => match kv.range(r).await {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                blank(&mut resp.header);
                format!("{resp:?}")
            }
            Err(s) => refusal(s),
        },
        Call::Delete(r) => match kv.delete_range(r).await {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                blank(&mut resp.header);
                format!("{resp:?}")
            }
            Err(s) => refusal(s),
        },
        Call::Txn(r) => match kv.txn(r).await {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                blank(&mut resp.header);
                format!("{resp:?}")
            }
            Err(s) => refusal(s),
        },
        Call::Compact(r) => match kv.compact(r).await {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                blank(&mut resp.header);
                format!("{resp:?}")
            }
            Err(s) => refusal(s),
        },
        Call::Grant(r) => match lease.lease_grant(r).await {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                blank(&mut resp.header);
                format!("{resp:?}")
            }
            Err(s) => refusal(s),
        },
        Call::Revoke(id) => match lease.lease_revoke(LeaseRevokeRequest { id }).await {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                blank(&mut resp.header);
                format!("{resp:?}")
            }
            Err(s) => refusal(s),
        },
        Call::TimeToLive(r) => match lease.lease_time_to_live(r).await {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                blank(&mut resp.header);
                format!("{resp:?}")
            }
            Err(s) => refusal(s),
        },
        Call::Leases => match lease.lease_leases(LeaseLeasesRequest {}).await {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                blank(&mut resp.header);
                format!("{resp:?}")
            }
            Err(s) => refusal(s),
        },
        Call::KeepAlive(id) => {
            let once = futures_util::stream::iter([LeaseKeepAliveRequest { id }]);
            let mut answers = match lease.lease_keep_alive(once).await {
                Ok(answers) => answers.into_inner(),
                Err(s) => return refusal(s),
            };
            match answers.message().await {
                Ok(Some(mut resp)) => {
                    blank(&mut resp.header);
                    format!("{resp:?}")
                }
                Ok(None) => "no answer".into(),
                Err(s) => refusal(s),
            }
        }
    }
}

async fn answers(server: &ServerProcess) -> Vec<String> {
    let channel = beacon_testkit::grpc_channel(&server.client_url()).await;
    let mut kv = KvClient::new(channel.clone());
    let mut lease = LeaseClient::new(channel);
    let mut out = Vec::new();
    for call in script() {
        out.push(answer(&mut kv, &mut lease, call).await);
    }
    out
}

#[tokio::test]
async fn kv_and_lease_calls_answer_as_etcd_answers_them() {
    if !beacon_testkit::etcd_or_skip() {
        return;
    }
    let etcd = ServerProcess::etcd().expect("etcd starts");
    let beacon = ServerProcess::beacon().expect("beacon starts");
    let (want, got) = (answers(&etcd).await, answers(&beacon).await);
    beacon_testkit::assert_same_answers(&want, &got);
}
