//! v3 writes are durable once acknowledged: `kill -9` in the middle of a stream of puts
//! and transactions loses none that was answered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use beacon_testkit::ServerProcess;
use tonic::transport::Channel;

async fn kv(server: &ServerProcess) -> KvClient<Channel> {
    let channel = Channel::from_shared(server.client_url())
        .expect("a URL")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("gRPC connects");
    KvClient::new(channel)
}

/// Writes `w<i>` (a put, or every third one a transaction) until the server stops
/// answering; records each write that was acknowledged.
async fn write_until_killed(mut kv: KvClient<Channel>, acked: Arc<Mutex<Vec<u32>>>) {
    for i in 0..10_000u32 {
        let key = format!("w{i:05}").into_bytes();
        let put = PutRequest {
            key: key.clone(),
            value: i.to_be_bytes().to_vec(),
            ..PutRequest::default()
        };
        let answered = if i % 3 == 0 {
            kv.txn(TxnRequest {
                success: vec![RequestOp {
                    request: Some(Op::RequestPut(put)),
                }],
                ..TxnRequest::default()
            })
            .await
            .is_ok()
        } else {
            kv.put(put).await.is_ok()
        };
        if !answered {
            return;
        }
        acked.lock().unwrap().push(i);
    }
}

async fn check_acked_survive(server: &mut ServerProcess) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = tokio::spawn(write_until_killed(kv(server).await, Arc::clone(&acked)));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 200 {
        assert!(std::time::Instant::now() < deadline, "writes too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    writer.await.expect("the writer ends");
    let acked = acked.lock().unwrap().clone();
    server.restart().expect("restarts");
    let found: Vec<Vec<u8>> = kv(server)
        .await
        .range(RangeRequest {
            key: b"w".to_vec(),
            range_end: b"x".to_vec(),
            keys_only: true,
            ..RangeRequest::default()
        })
        .await
        .expect("range after the restart")
        .into_inner()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    for i in &acked {
        let key = format!("w{i:05}").into_bytes();
        assert!(
            found.binary_search(&key).is_ok(),
            "acknowledged write {i} lost ({} acknowledged, {} found)",
            acked.len(),
            found.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_v3_writes_survive_kill_9() {
    let mut beacon = ServerProcess::beacon().expect("beacon starts");
    check_acked_survive(&mut beacon).await;
}
