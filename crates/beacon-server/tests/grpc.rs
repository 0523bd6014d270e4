//! etcd's v3 API over gRPC on the client port, through a Rust gRPC client (tonic, with
//! the clients `beacon-proto` generates): the same port serves HTTP/1.1 and HTTP/2, the
//! standard health service answers as etcd's does, and a method etcd 3.4 has not is
//! refused UNIMPLEMENTED.

use beacon_proto::etcdserverpb::cluster_client::ClusterClient;
use beacon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use beacon_proto::etcdserverpb::{
    MemberListRequest, MemberRemoveRequest, MemberUpdateRequest, MoveLeaderRequest, StatusRequest,
};
use beacon_testkit::ServerProcess;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn channel(server: &ServerProcess) -> Channel {
    beacon_testkit::grpc_channel(&server.client_url()).await
}

/// What both servers answer alike: health, the member list's shape, a refused removal.
async fn common_answers(server: &ServerProcess) {
    let ch = channel(server).await;
    let health = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32, "{server:?}");

    let mut cluster = ClusterClient::new(ch.clone());
    let members = cluster
        .member_list(MemberListRequest {})
        .await
        .expect("member list")
        .into_inner();
    assert_eq!(members.members.len(), 1);
    assert_eq!(members.members[0].name, "default");
    let header = members.header.expect("a header");
    assert_eq!(header.member_id, members.members[0].id);
    assert_eq!(header.revision, 0, "cluster calls leave the revision out");
    let refused = cluster
        .member_remove(MemberRemoveRequest { id: 0x1234_abcd })
        .await
        .expect_err("no such member");
    assert_eq!(refused.code(), tonic::Code::NotFound);
    assert_eq!(refused.message(), "etcdserver: member not found");

    // A call over etcd's 2 MiB: grpc-go's own refusal, code and text.
    let huge = MemberUpdateRequest {
        id: 1,
        peer_ur_ls: vec!["x".repeat(3_000_000)],
    };
    let refused = cluster.member_update(huge).await.expect_err("too large");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert_eq!(
        refused.message(),
        "grpc: received message larger than max (3000007 vs. 2097152)"
    );

    let status = MaintenanceClient::new(ch)
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.version, "3.4.23");
    assert_eq!(status.leader, header.member_id, "a single member leads");
    assert!(status.errors.is_empty());
}

#[tokio::test]
async fn grpc_and_http_share_the_client_port() {
    let beacon = ServerProcess::beacon().expect("beacon starts");
    common_answers(&beacon).await;
    // The same port still speaks v2 over HTTP/1.1.
    let v2 = beacon_testkit::http_get(beacon.client_port(), "/version").expect("v2");
    assert_eq!(v2.status, 200);
    // A method etcd 3.4 does not have (3.5's AuthStatus): refused, not hung or reset.
    let mut unserved = tonic::client::Grpc::new(channel(&beacon).await);
    unserved.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/etcdserverpb.Auth/AuthStatus");
    let codec = tonic_prost::ProstCodec::<StatusRequest, StatusRequest>::default();
    let refused = unserved
        .unary(tonic::Request::new(StatusRequest {}), path, codec)
        .await
        .expect_err("not served");
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn etcd_answers_the_same() {
    if !beacon_testkit::etcd_or_skip() {
        return;
    }
    let etcd = ServerProcess::etcd().expect("etcd starts");
    common_answers(&etcd).await;
}

/// The leader's index among `members`, by their v3 Status, within a deadline.
async fn leader_of(members: &[ServerProcess]) -> (usize, u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        for (i, m) in members.iter().enumerate() {
            let Ok(ch) = Channel::from_shared(m.client_url())
                .expect("url")
                .connect()
                .await
            else {
                continue;
            };
            let Ok(status) = MaintenanceClient::new(ch).status(StatusRequest {}).await else {
                continue;
            };
            let status = status.into_inner();
            let own = status.header.map(|h| h.member_id);
            if status.leader != 0 && own == Some(status.leader) {
                return (i, status.leader);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no leader within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_hands_leadership_to_the_chosen_member() {
    let members = ServerProcess::cluster(
        beacon_testkit::ServerKind::Beacon,
        beacon_testkit::beacon_bin(),
        3,
    )
    .expect("the cluster starts");
    let (leader, leader_id) = leader_of(&members).await;
    let follower = (leader + 1) % members.len();
    let follower_id = ClusterClient::new(channel(&members[follower]).await)
        .member_list(MemberListRequest {})
        .await
        .expect("member list")
        .into_inner()
        .header
        .expect("header")
        .member_id;

    // Only the leader hands leadership over.
    let refused = MaintenanceClient::new(channel(&members[follower]).await)
        .move_leader(MoveLeaderRequest {
            target_id: leader_id,
        })
        .await
        .expect_err("a follower cannot");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(refused.message(), "etcdserver: not leader");

    let mut maintenance = MaintenanceClient::new(channel(&members[leader]).await);
    let bad = maintenance
        .move_leader(MoveLeaderRequest { target_id: 7 })
        .await
        .expect_err("not a member");
    assert_eq!(bad.message(), "etcdserver: bad leader transferee");
    maintenance
        .move_leader(MoveLeaderRequest {
            target_id: follower_id,
        })
        .await
        .expect("moved");
    // It answers once the target leads, so the next look sees it.
    let (now, now_id) = leader_of(&members).await;
    assert_eq!((now, now_id), (follower, follower_id));
}

/// Writes through any member reach every member's keyspace alike: at the same revision
/// every member answers the same `HashKV` and `Hash` (etcd's corruption check compares
/// them), and a watcher on a follower sees the writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_hashes_the_keyspace_alike() {
    use beacon_proto::etcdserverpb::kv_client::KvClient;
    use beacon_proto::etcdserverpb::watch_client::WatchClient;
    use beacon_proto::etcdserverpb::watch_request::RequestUnion;
    use beacon_proto::etcdserverpb::{
        CompactionRequest, HashKvRequest, HashRequest, PutRequest, RangeRequest,
        WatchCreateRequest, WatchRequest,
    };

    let members = ServerProcess::cluster(
        beacon_testkit::ServerKind::Beacon,
        beacon_testkit::beacon_bin(),
        3,
    )
    .expect("the cluster starts");
    let (leader, _) = leader_of(&members).await;
    let follower = (leader + 1) % members.len();
    // A watcher on the other follower, from the first revision.
    let watched = (leader + 2) % members.len();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            start_revision: 1,
            ..WatchCreateRequest::default()
        })),
    })
    .await
    .expect("queued");
    let requests =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut events = WatchClient::new(channel(&members[watched]).await)
        .watch(requests)
        .await
        .expect("watch")
        .into_inner();

    let mut kv = KvClient::new(channel(&members[follower]).await);
    for i in 0..20 {
        kv.put(PutRequest {
            key: format!("k{}", i % 7).into_bytes(),
            value: format!("v{i}").into_bytes(),
            ..PutRequest::default()
        })
        .await
        .expect("put through a follower");
    }
    let last = kv
        .range(RangeRequest {
            key: b"k0".to_vec(),
            ..RangeRequest::default()
        })
        .await
        .expect("range")
        .into_inner()
        .header
        .expect("header")
        .revision;
    assert_eq!(last, 21);

    // The watcher hears all 20 puts, in order.
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), events.message())
            .await
            .expect("events in time")
            .expect("open")
            .expect("an answer");
        seen.extend(
            answer
                .events
                .iter()
                .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision)),
        );
    }
    assert_eq!(seen, (2..=21).collect::<Vec<i64>>());
    // Compacted after the watcher heard everything (before, it would be cancelled).
    kv.compact(CompactionRequest {
        revision: 10,
        physical: true,
    })
    .await
    .expect("compact");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut hashes = Vec::new();
        for m in &members {
            let mut maintenance = MaintenanceClient::new(channel(m).await);
            let kv_hash = maintenance
                .hash_kv(HashKvRequest { revision: 21 })
                .await
                .map(|r| r.into_inner().hash);
            let hash = maintenance
                .hash(HashRequest {})
                .await
                .map(|r| r.into_inner().hash);
            hashes.push((kv_hash.ok(), hash.ok()));
        }
        if hashes
            .iter()
            .all(|h| h.0.is_some() && h.1.is_some() && *h == hashes[0])
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "members disagree: {hashes:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A follower's linearizable Range takes the leader's read index (ReadIndex over the
/// peer port) and waits for its own keyspace to apply it: it sees every write
/// acknowledged before it, and adds no entry to the log (etcd's reads never do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_reads_linearizably_without_a_log_entry() {
    use beacon_proto::etcdserverpb::kv_client::KvClient;
    use beacon_proto::etcdserverpb::{PutRequest, RangeRequest};

    let members = ServerProcess::cluster(
        beacon_testkit::ServerKind::Beacon,
        beacon_testkit::beacon_bin(),
        3,
    )
    .expect("the cluster starts");
    let (leader, _) = leader_of(&members).await;
    let mut at_leader = KvClient::new(channel(&members[leader]).await);
    let mut at_follower = KvClient::new(channel(&members[(leader + 1) % 3]).await);
    let read = || RangeRequest {
        key: b"k".to_vec(),
        ..RangeRequest::default()
    };
    for i in 0..20 {
        let value = i.to_string().into_bytes();
        at_leader
            .put(PutRequest {
                key: b"k".to_vec(),
                value: value.clone(),
                ..PutRequest::default()
            })
            .await
            .expect("put");
        let got = at_follower.range(read()).await.expect("range").into_inner();
        assert_eq!(got.kvs[0].value, value, "write {i} acknowledged, then read");
    }
    let raft_index = || async {
        MaintenanceClient::new(channel(&members[leader]).await)
            .status(StatusRequest {})
            .await
            .expect("status")
            .into_inner()
            .raft_index
    };
    let before = raft_index().await;
    for _ in 0..20 {
        at_follower.range(read()).await.expect("range");
    }
    assert_eq!(raft_index().await, before, "reads appended to the log");
}
