//! etcd's v3 Watch service through a Rust gRPC client, against a fresh etcd 3.4 and a
//! fresh Beacon: the same requests on one stream must get the same answers, in the same
//! order, once the member's ids and Raft term are blanked. Every step says how many
//! answers it waits for, so nothing here depends on timing; an answer that is not
//! there within the deadline is a failure.

use std::time::Duration;

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::watch_client::WatchClient;
use beacon_proto::etcdserverpb::watch_create_request::FilterType;
use beacon_proto::etcdserverpb::watch_request::RequestUnion;
use beacon_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, WatchCancelRequest,
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use beacon_testkit::ServerProcess;
use tokio::sync::mpsc;

const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    }
}

fn create(key: &str, end: &str, start_revision: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.into(),
        range_end: end.into(),
        start_revision,
        ..WatchCreateRequest::default()
    }
}

/// One step: a write, or a request on the watch stream, and how many answers follow.
enum Step {
    Put(PutRequest),
    Delete(&'static str, &'static str),
    Txn(Vec<PutRequest>),
    Compact(i64),
    Send(RequestUnion, usize),
    /// Answers still owed by earlier steps (live events after a write).
    Expect(usize),
}

fn script() -> Vec<Step> {
    use RequestUnion::{CancelRequest, CreateRequest, ProgressRequest};
    use Step::*;
    let cancel = |watch_id| CancelRequest(WatchCancelRequest { watch_id });
    vec![
        // History: puts, an overwrite, a two-key transaction, a range delete.
        Put(put("a", "1")),
        Put(put("b", "2")),
        Put(put("a", "3")),
        Txn(vec![put("c/1", "x"), put("c/2", "y")]),
        Delete("c/", "c0"),
        // A watcher from revision 1 with prev_kv: created, then one catch-up answer.
        Send(
            CreateRequest(WatchCreateRequest {
                prev_kv: true,
                ..create("", "\0", 1)
            }),
            2,
        ),
        // Filters, from revision 2.
        Send(
            CreateRequest(WatchCreateRequest {
                filters: vec![FilterType::Noput as i32],
                ..create("a", "\0", 2)
            }),
            2,
        ),
        Send(
            CreateRequest(WatchCreateRequest {
                filters: vec![FilterType::Nodelete as i32],
                ..create("c/", "c0", 1)
            }),
            2,
        ),
        // Ids: a chosen one, the same again (refused), an empty range (refused).
        Send(
            CreateRequest(WatchCreateRequest {
                watch_id: 7,
                ..create("zzz", "", 0)
            }),
            1,
        ),
        Send(
            CreateRequest(WatchCreateRequest {
                watch_id: 7,
                ..create("zzz", "", 0)
            }),
            1,
        ),
        Send(CreateRequest(create("b", "a", 0)), 1),
        // Cancel: a known id is answered, an unknown one is not (the progress answer is
        // the next one).
        Send(cancel(7), 1),
        Send(cancel(99), 0),
        Send(ProgressRequest(WatchProgressRequest {}), 1),
        // Live: a watcher from now, then writes it and the others see.
        Send(
            CreateRequest(WatchCreateRequest {
                prev_kv: true,
                ..create("a", "", 0)
            }),
            1,
        ),
        Put(put("a", "4")),
        // The watcher on everything, the NOPUT one (nothing: it is a put), the live one.
        Expect(2),
        Txn(vec![put("a", "5"), put("c/3", "z")]),
        // Everything, the c/ one (a put), the live one.
        Expect(3),
        // Compaction: a watcher from before it is created, then cancelled with it.
        Compact(7),
        Send(CreateRequest(create("a", "", 3)), 2),
        Send(CreateRequest(create("a", "", 7)), 2),
    ]
}

/// Blanks what differs between two servers.
fn normalized(mut answer: WatchResponse) -> String {
    if let Some(h) = answer.header.as_mut() {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
    format!("{answer:?}")
}

async fn answers(server: &ServerProcess) -> Vec<String> {
    let channel = beacon_testkit::grpc_channel(&server.client_url()).await;
    let mut kv = KvClient::new(channel.clone());
    let (tx, rx) = mpsc::channel(16);
    let requests =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    // grpc-go sends a stream's headers with its first answer, and tonic's call returns
    // only once it has them: ask for something first (answered at once, and the same
    // on both: the empty keyspace's revision).
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    })
    .await
    .expect("queued");
    let mut stream =
        tokio::time::timeout(ANSWER_DEADLINE, WatchClient::new(channel).watch(requests))
            .await
            .expect("the stream opens in time")
            .expect("watch stream")
            .into_inner();
    let first = stream.message().await.expect("open").expect("an answer");
    let mut out = vec![format!("first: {}", normalized(first))];
    for (i, step) in script().into_iter().enumerate() {
        let owed = match step {
            Step::Put(p) => {
                kv.put(p).await.expect("put");
                0
            }
            Step::Delete(key, end) => {
                kv.delete_range(DeleteRangeRequest {
                    key: key.into(),
                    range_end: end.into(),
                    ..DeleteRangeRequest::default()
                })
                .await
                .expect("delete");
                0
            }
            Step::Txn(puts) => {
                let success = puts
                    .into_iter()
                    .map(|p| RequestOp {
                        request: Some(Op::RequestPut(p)),
                    })
                    .collect();
                kv.txn(TxnRequest {
                    success,
                    ..TxnRequest::default()
                })
                .await
                .expect("txn");
                0
            }
            Step::Compact(revision) => {
                kv.compact(CompactionRequest {
                    revision,
                    physical: true,
                })
                .await
                .expect("compact");
                0
            }
            Step::Send(request, owed) => {
                tx.send(WatchRequest {
                    request_union: Some(request),
                })
                .await
                .expect("the stream takes requests");
                owed
            }
            Step::Expect(owed) => owed,
        };
        // In what order watchers hear of the same revision is not defined (etcd's
        // follows a Go map): a step's answers compare as a sorted list.
        let mut step = Vec::new();
        for _ in 0..owed {
            let answer = tokio::time::timeout(ANSWER_DEADLINE, stream.message())
                .await
                .unwrap_or_else(|_| {
                    panic!("{server:?}: step {i}: no answer in time; so far {out:#?}")
                })
                .expect("the stream is open")
                .expect("an answer");
            step.push(format!("step {i}: {}", normalized(answer)));
        }
        step.sort();
        out.extend(step);
    }
    out
}

#[tokio::test]
async fn watch_streams_answer_as_etcds_do() {
    if !beacon_testkit::etcd_or_skip() {
        return;
    }
    let etcd = ServerProcess::etcd().expect("etcd starts");
    let beacon = ServerProcess::beacon().expect("beacon starts");
    let (want, got) = (answers(&etcd).await, answers(&beacon).await);
    beacon_testkit::assert_same_answers(&want, &got);
}

/// Periodic progress notifications (`--experimental-watch-progress-notify-interval`):
/// a caught-up watcher that asked for them and heard nothing during an interval hears
/// the current revision, with its own watch id and no events; one that did not ask
/// hears nothing. The same answers from etcd and Beacon, whose intervals are 300 ms.
#[tokio::test]
async fn progress_notifications_come_every_interval_as_etcds_do() {
    if !beacon_testkit::etcd_or_skip() {
        return;
    }
    let mut want = Vec::new();
    for kind in [
        beacon_testkit::ServerKind::Etcd,
        beacon_testkit::ServerKind::Beacon,
    ] {
        let bin = match kind {
            beacon_testkit::ServerKind::Beacon => beacon_testkit::beacon_bin(),
            beacon_testkit::ServerKind::Etcd => beacon_testkit::etcd_bin(),
        };
        let args = ["--experimental-watch-progress-notify-interval", "300ms"];
        let server = ServerProcess::cluster_with(kind, bin, 1, &args)
            .expect("server starts")
            .remove(0);
        let got = progress_answers(&server).await;
        if want.is_empty() {
            want = got;
        } else {
            beacon_testkit::assert_same_answers(&want, &got);
        }
    }
}

async fn progress_answers(server: &ServerProcess) -> Vec<String> {
    let channel = beacon_testkit::grpc_channel(&server.client_url()).await;
    let mut kv = KvClient::new(channel.clone());
    kv.put(put("p", "0")).await.expect("put");
    let (tx, rx) = mpsc::channel(16);
    let requests =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let watch = |key: &str, watch_id: i64, progress_notify: bool| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            watch_id,
            progress_notify,
            ..create(key, "", 0)
        })),
    };
    // Queued before the call: grpc-go sends the stream's headers with its first answer.
    tx.send(watch("p", 7, true)).await.expect("queued");
    tx.send(watch("q", 8, false)).await.expect("queued");
    let mut stream =
        tokio::time::timeout(ANSWER_DEADLINE, WatchClient::new(channel).watch(requests))
            .await
            .expect("the stream opens in time")
            .expect("watch stream")
            .into_inner();
    let mut next = async || {
        let answer = tokio::time::timeout(ANSWER_DEADLINE, stream.message())
            .await
            .expect("an answer in time")
            .expect("the stream is open")
            .expect("an answer");
        normalized(answer)
    };
    let mut out = vec![next().await, next().await];
    // Quiet: the next answers are p's progress notifications, at the current revision.
    out.push(next().await);
    out.push(next().await);
    // A write to p is an event; the notifications after it carry the new revision.
    // (One at the old revision may still cross the write: it is passed over.)
    kv.put(put("p", "1")).await.expect("put");
    let event = loop {
        let answer = next().await;
        if answer.contains("events: [Event") {
            break answer;
        }
        assert!(answer.contains("revision: 2,"), "{answer}");
    };
    out.push(event);
    out.push(next().await);
    out
}
