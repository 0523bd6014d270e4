//! The space quota (`--quota-backend-bytes`), against etcd 3.4 and Beacon alike: puts
//! until one is refused with "database space exceeded", the `NOSPACE` alarm that
//! raised, what it refuses (puts, transactions with a put, lease grants) and lets
//! through (reads, transactions without a put, deletes, compaction, defrag), and
//! `alarm disarm` after space was freed. Where the limit falls differs (etcd counts its
//! database file, Beacon the stored revisions), so the transcript says only that the
//! fill was refused, not after how many puts.

use beacon_proto::etcdserverpb::alarm_request::AlarmAction;
use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::lease_client::LeaseClient;
use beacon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, DefragmentRequest,
    DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, StatusRequest,
    TxnRequest,
};
use beacon_testkit::{assert_same_answers, etcd_or_skip, ServerKind, ServerProcess};

/// 1 MiB: reached after a few dozen 16 KiB puts.
const QUOTA: &str = "1048576";
const FILL_PUTS_MAX: usize = 400;

fn told<T>(answer: Result<tonic::Response<T>, tonic::Status>, ok: impl Fn(T) -> String) -> String {
    match answer {
        Ok(resp) => format!("ok {}", ok(resp.into_inner())),
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    }
}

fn put(key: &str, bytes: usize) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: vec![b'x'; bytes],
        ..PutRequest::default()
    }
}

fn txn(op: Op) -> TxnRequest {
    TxnRequest {
        success: vec![RequestOp { request: Some(op) }],
        ..TxnRequest::default()
    }
}

async fn quota_answers(kind: ServerKind) -> Vec<String> {
    let bin = kind.bin();
    let server = ServerProcess::cluster_with(kind, bin, 1, &["--quota-backend-bytes", QUOTA])
        .expect("server starts")
        .remove(0);
    let channel = beacon_testkit::grpc_channel(&server.client_url()).await;
    let mut kv = KvClient::new(channel.clone());
    let mut maintenance = MaintenanceClient::new(channel.clone());
    let me = maintenance
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .header
        .expect("a header")
        .member_id;
    let alarms = move |a: AlarmResponse| {
        let listed: Vec<String> = a
            .alarms
            .iter()
            .map(|m| {
                let who = if m.member_id == me { "self" } else { "other" };
                format!("{who}:{:?}", AlarmType::try_from(m.alarm))
            })
            .collect();
        format!("[{}]", listed.join(" "))
    };
    let alarm = |action: AlarmAction| AlarmRequest {
        action: action as i32,
        member_id: me,
        alarm: AlarmType::Nospace as i32,
    };
    let mut out = Vec::new();

    let mut refused = None;
    for i in 0..FILL_PUTS_MAX {
        if let Err(status) = kv.put(put(&format!("big/{i:04}"), 16 << 10)).await {
            refused = Some(format!(
                "fill refused: {:?}: {}",
                status.code(),
                status.message()
            ));
            break;
        }
    }
    out.push(refused.unwrap_or_else(|| format!("{FILL_PUTS_MAX} puts, none refused")));
    out.push(told(
        maintenance.alarm(alarm(AlarmAction::Get)).await,
        alarms,
    ));
    out.push(told(kv.put(put("small", 1)).await, |_| String::new()));
    let read = Op::RequestRange(RangeRequest {
        key: b"big/0000".to_vec(),
        ..RangeRequest::default()
    });
    out.push(told(kv.txn(txn(read)).await, |r| {
        format!("{}", r.succeeded)
    }));
    out.push(told(kv.txn(txn(Op::RequestPut(put("t", 1)))).await, |_| {
        String::new()
    }));
    out.push(told(
        LeaseClient::new(channel.clone())
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
            .await,
        |_| String::new(),
    ));
    out.push(told(
        kv.range(RangeRequest {
            key: b"big/0000".to_vec(),
            ..RangeRequest::default()
        })
        .await,
        |r| format!("{} kvs", r.kvs.len()),
    ));
    // /health is false while an alarm is raised.
    let health = beacon_testkit::http_get(server.client_port(), "/health").expect("/health");
    out.push(format!(
        "/health {} {}",
        health.status,
        health.body.trim_end()
    ));
    let status = maintenance.status(StatusRequest {}).await;
    out.push(told(status, |s| {
        s.errors
            .iter()
            .map(|e| e.replace(&me.to_string(), "<self>"))
            .collect::<Vec<_>>()
            .join("|")
    }));

    // Free the space: delete, compact, defragment (etcd's file shrinks only then).
    let deleted = kv
        .delete_range(DeleteRangeRequest {
            key: b"big/".to_vec(),
            range_end: b"big0".to_vec(),
            ..DeleteRangeRequest::default()
        })
        .await;
    out.push(told(deleted, |d| format!("deleted any: {}", d.deleted > 0)));
    let revision = kv
        .range(RangeRequest {
            key: b"x".to_vec(),
            ..RangeRequest::default()
        })
        .await
        .expect("range")
        .into_inner()
        .header
        .expect("a header")
        .revision;
    out.push(told(
        kv.compact(CompactionRequest {
            revision,
            physical: true,
        })
        .await,
        |_| String::new(),
    ));
    out.push(told(
        maintenance.defragment(DefragmentRequest {}).await,
        |_| String::new(),
    ));
    // Still refused until the alarm is cleared.
    out.push(told(kv.put(put("small", 1)).await, |_| String::new()));
    out.push(told(
        maintenance.alarm(alarm(AlarmAction::Deactivate)).await,
        alarms,
    ));
    out.push(told(kv.put(put("small", 1)).await, |_| String::new()));
    out.push(told(
        maintenance.alarm(alarm(AlarmAction::Get)).await,
        alarms,
    ));
    let health = beacon_testkit::http_get(server.client_port(), "/health").expect("/health");
    out.push(format!(
        "/health {} {}",
        health.status,
        health.body.trim_end()
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_space_quota_raises_nospace_as_etcd_does() {
    let beacon = quota_answers(ServerKind::Beacon).await;
    if !etcd_or_skip() {
        return;
    }
    let etcd = quota_answers(ServerKind::Etcd).await;
    assert_same_answers(&etcd, &beacon);
}
