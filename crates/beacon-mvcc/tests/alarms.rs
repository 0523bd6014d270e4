//! The space count the quota reads, and alarms applied from the log: what a raised
//! `NOSPACE` or `CORRUPT` refuses, what it lets through, and clearing it.

use beacon_mvcc::{Mvcc, REVISION_OVERHEAD_BYTES};
use beacon_proto::beaconpb::{v3_request, v3_response, LeaseGrant, V3Request};
use beacon_proto::etcdserverpb::alarm_request::AlarmAction;
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{
    AlarmRequest, AlarmType, CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
};

fn apply(m: &mut Mvcc, request: v3_request::Request) -> String {
    let answer = m
        .apply(&V3Request {
            caller: None,
            request: Some(request),
        })
        .expect("no disk here");
    match answer.response.expect("an answer") {
        v3_response::Response::Refusal(r) => format!("refused {} {}", r.code, r.message),
        v3_response::Response::Alarm(a) => format!(
            "alarms {:?}",
            a.alarms
                .iter()
                .map(|m| (m.member_id, m.alarm))
                .collect::<Vec<_>>()
        ),
        _ => "ok".to_string(),
    }
}

fn put(key: &str, value: &str) -> v3_request::Request {
    v3_request::Request::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    })
}

fn alarm(action: AlarmAction, member: u64, alarm: AlarmType) -> v3_request::Request {
    v3_request::Request::Alarm(AlarmRequest {
        action: action as i32,
        member_id: member,
        alarm: alarm as i32,
    })
}

#[test]
fn stored_bytes_count_every_revision_until_compacted() {
    let mut m = Mvcc::default();
    let empty = REVISION_OVERHEAD_BYTES;
    assert_eq!(m.stored_bytes(), empty, "the state record");
    apply(&mut m, put("k", "12345"));
    apply(&mut m, put("k", "1234567890"));
    let two = empty + (1 + 5) + (1 + 10) + 2 * REVISION_OVERHEAD_BYTES;
    assert_eq!(m.stored_bytes(), two);
    apply(
        &mut m,
        v3_request::Request::DeleteRange(DeleteRangeRequest {
            key: b"k".to_vec(),
            ..DeleteRangeRequest::default()
        }),
    );
    assert_eq!(m.stored_bytes(), two + 1 + REVISION_OVERHEAD_BYTES);
    let current = m.current_revision();
    apply(
        &mut m,
        v3_request::Request::Compaction(CompactionRequest {
            revision: current,
            physical: true,
        }),
    );
    assert_eq!(
        m.stored_bytes(),
        empty,
        "a compacted tombstone takes its history along"
    );
}

#[test]
fn nospace_refuses_what_takes_space_until_cleared() {
    let mut m = Mvcc::default();
    apply(&mut m, put("a", "1"));
    assert_eq!(
        apply(&mut m, alarm(AlarmAction::Activate, 7, AlarmType::Nospace)),
        "alarms [(7, 1)]"
    );
    // Raising it again answers the same and raises nothing more.
    assert_eq!(
        apply(&mut m, alarm(AlarmAction::Activate, 7, AlarmType::Nospace)),
        "alarms [(7, 1)]"
    );
    assert_eq!(
        apply(&mut m, alarm(AlarmAction::Get, 0, AlarmType::None)),
        "alarms [(7, 1)]"
    );
    let no_space = "refused 8 etcdserver: mvcc: database space exceeded";
    assert_eq!(apply(&mut m, put("b", "2")), no_space);
    let txn = |op: Op| {
        v3_request::Request::Txn(TxnRequest {
            failure: vec![RequestOp { request: Some(op) }],
            ..TxnRequest::default()
        })
    };
    let put_b = Op::RequestPut(PutRequest {
        key: b"b".to_vec(),
        ..PutRequest::default()
    });
    assert_eq!(
        apply(&mut m, txn(put_b.clone())),
        no_space,
        "a put in any branch"
    );
    let nested = Op::RequestTxn(TxnRequest {
        success: vec![RequestOp {
            request: Some(put_b),
        }],
        ..TxnRequest::default()
    });
    assert_eq!(apply(&mut m, txn(nested)), no_space, "nested too");
    let grant = v3_request::Request::LeaseGrant(LeaseGrant {
        request: Some(LeaseGrantRequest { ttl: 60, id: 1 }),
        now_ns: 0,
    });
    assert_eq!(apply(&mut m, grant.clone()), no_space);
    // What frees or reads space goes on.
    let read = Op::RequestRange(RangeRequest {
        key: b"a".to_vec(),
        ..RangeRequest::default()
    });
    assert_eq!(apply(&mut m, txn(read)), "ok");
    let delete = v3_request::Request::DeleteRange(DeleteRangeRequest {
        key: b"a".to_vec(),
        ..DeleteRangeRequest::default()
    });
    assert_eq!(apply(&mut m, delete), "ok");
    // Another member's alarm, or another kind, is not this one: clearing it clears
    // nothing.
    assert_eq!(
        apply(
            &mut m,
            alarm(AlarmAction::Deactivate, 8, AlarmType::Nospace)
        ),
        "alarms []"
    );
    assert_eq!(
        apply(
            &mut m,
            alarm(AlarmAction::Deactivate, 7, AlarmType::Nospace)
        ),
        "alarms [(7, 1)]"
    );
    assert_eq!(apply(&mut m, put("b", "2")), "ok");
    assert_eq!(apply(&mut m, grant), "ok");
}

#[test]
fn corrupt_refuses_every_write() {
    let mut m = Mvcc::default();
    apply(&mut m, alarm(AlarmAction::Activate, 1, AlarmType::Corrupt));
    let corrupt = "refused 15 etcdserver: corrupt cluster";
    assert_eq!(apply(&mut m, put("a", "1")), corrupt);
    let delete = v3_request::Request::DeleteRange(DeleteRangeRequest {
        key: b"a".to_vec(),
        ..DeleteRangeRequest::default()
    });
    assert_eq!(apply(&mut m, delete), corrupt);
    // Raising NONE raises nothing.
    assert_eq!(
        apply(&mut m, alarm(AlarmAction::Activate, 1, AlarmType::None)),
        "alarms []"
    );
}
