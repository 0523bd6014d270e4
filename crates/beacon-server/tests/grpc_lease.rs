//! Leases on a real Beacon: a lease expires by the leader's clock in the log and takes
//! its keys with it, and its remaining time survives `kill -9` and a restart (etcd 3.4
//! grants every lease its whole TTL again after a restart or a leader change).

use std::time::{Duration, Instant};

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::lease_client::LeaseClient;
use beacon_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
};
use beacon_testkit::ServerProcess;
use tonic::transport::Channel;

async fn channel(server: &ServerProcess) -> Channel {
    beacon_testkit::grpc_channel(&server.client_url()).await
}

async fn remaining(lease: &mut LeaseClient<Channel>, id: i64) -> i64 {
    lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
        .await
        .expect("time to live")
        .into_inner()
        .ttl
}

#[tokio::test]
async fn a_lease_expires_with_its_keys_and_keeps_its_remaining_time_across_a_restart() {
    let mut beacon = ServerProcess::beacon().expect("beacon starts");
    let ch = channel(&beacon).await;
    let (mut kv, mut lease) = (KvClient::new(ch.clone()), LeaseClient::new(ch));

    // The shortest lease: it goes within a tick of its 2 s, and its key with it.
    let short = lease
        .lease_grant(LeaseGrantRequest { ttl: 1, id: 0 })
        .await
        .expect("grant")
        .into_inner();
    assert_eq!(short.ttl, 2, "raised to the minimum");
    kv.put(PutRequest {
        key: b"short".to_vec(),
        value: b"v".to_vec(),
        lease: short.id,
        ..PutRequest::default()
    })
    .await
    .expect("put");
    let long = lease
        .lease_grant(LeaseGrantRequest { ttl: 100, id: 0 })
        .await
        .expect("grant")
        .into_inner()
        .id;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = kv
            .range(RangeRequest {
                key: b"short".to_vec(),
                ..RangeRequest::default()
            })
            .await
            .expect("range")
            .into_inner()
            .count;
        if found == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the 2 s lease never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(remaining(&mut lease, short.id).await, -1);

    // At least 2 s of the long lease gone, then a crash and a restart: it goes on from
    // where it was, not from its whole TTL.
    let deadline = Instant::now() + Duration::from_secs(10);
    while remaining(&mut lease, long).await > 97 {
        assert!(
            Instant::now() < deadline,
            "the long lease's time does not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    beacon.kill9();
    beacon.restart().expect("restarts");
    let mut lease = LeaseClient::new(channel(&beacon).await);
    let after = remaining(&mut lease, long).await;
    assert!(
        (1..=97).contains(&after),
        "remaining {after} s after the restart"
    );
}
