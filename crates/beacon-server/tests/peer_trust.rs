//! The peer port against a hostile client (issue 13, defect 3): each test sends one
//! forged or oversized peer request, as anyone who can reach the port could, and then
//! proves the member still runs, still holds its acknowledged data, and restarts.
//! Each of these requests stopped, bricked or rewrote a member before the peer port
//! checked the cluster id and the sender of every message.

use std::io::Read as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod support;

use beacon_store::{Command, KeysRequest, Method};
use beacon_testkit::{rss_bytes, ServerKind, ServerProcess};
use serde_json::{json, Value};
use support::{get_json, http, leader, peer_identity, put, put_until_ok, wait_value, PeerIdentity};

fn bin() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_beacon").into()
}

fn cluster(n: usize, extra: &[&str]) -> Vec<ServerProcess> {
    ServerProcess::cluster_with(ServerKind::Beacon, bin(), n, extra).expect("the cluster starts")
}

/// An id no member has.
const STRANGER: u64 = 0xdead_beef;

/// What a forger reads from a member's peer `GET /members` (the cluster id and this
/// member's id).
async fn known(_http: &reqwest::Client, m: &ServerProcess) -> PeerIdentity {
    peer_identity(m)
}

/// A POST to `m`'s peer `path` that names `cluster_id` and `from`, as a forger who read
/// `GET /members` would send it.
fn forged(
    http: &reqwest::Client,
    m: &ServerProcess,
    path: &str,
    cluster_id: u64,
    from: u64,
) -> reqwest::RequestBuilder {
    http.post(format!("http://127.0.0.1:{}{path}", m.peer_port()))
        .header("x-etcd-cluster-id", format!("{cluster_id:x}"))
        .header("x-server-from", format!("{from:x}"))
}

/// The last Raft index and term `m` applied, from a read's headers.
async fn raft_position(http: &reqwest::Client, m: &ServerProcess) -> (u64, u64) {
    let r = http
        .get(format!("{}/v2/keys/", m.client_url()))
        .send()
        .await
        .unwrap();
    let header = |name: &str| r.headers()[name].to_str().unwrap().parse::<u64>().unwrap();
    (header("x-raft-index"), header("x-raft-term"))
}

/// `m` still runs (it has not exited within `within`) and still answers reads.
async fn still_serves(http: &reqwest::Client, m: &mut ServerProcess, within: Duration) {
    assert!(
        m.wait_exit(within).is_none(),
        "the member exited: {}",
        m.log_tail(20)
    );
    let v = get_json(http, &format!("{}/v2/keys/", m.client_url())).await;
    assert_eq!(v["action"], "get", "{v}");
}

/// Restarts `m` from its data directory and waits until it serves `key` = `value`.
async fn restarts_with(http: &reqwest::Client, m: &mut ServerProcess, key: &str, value: &str) {
    m.restart()
        .expect("the member restarts on its data directory");
    wait_value(http, &m.client_url(), key, value).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_removal_notice_does_not_stop_a_member() {
    let mut members = cluster(3, &[]);
    let http = http();
    let deadline = Instant::now() + Duration::from_secs(20);
    put_until_ok(&http, &members[1].client_url(), "kept", "1", deadline).await;
    let target = known(&http, &members[1]).await;
    let other = known(&http, &members[0]).await;
    // Without headers, from a stranger, and in the name of a real member.
    let answers = [
        http.post(format!(
            "http://127.0.0.1:{}/raft/removed",
            members[1].peer_port()
        ))
        .json(&target.own_id)
        .send()
        .await
        .unwrap()
        .status(),
        forged(
            &http,
            &members[1],
            "/raft/removed",
            target.cluster_id,
            STRANGER,
        )
        .json(&target.own_id)
        .send()
        .await
        .unwrap()
        .status(),
        forged(
            &http,
            &members[1],
            "/raft/removed",
            target.cluster_id,
            other.own_id,
        )
        .json(&target.own_id)
        .send()
        .await
        .unwrap()
        .status(),
    ];
    assert_eq!(answers.map(|s| s.as_u16()), [412, 404, 200]);
    // The notice in a real member's name is checked against that member's own list,
    // which still holds the target: it keeps running.
    still_serves(&http, &mut members[1], Duration::from_secs(3)).await;
    restarts_with(&http, &mut members[1], "kept", "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_junk_snapshot_is_refused_and_never_replaces_the_saved_ones() {
    let mut members = cluster(3, &["--snapshot-count", "20"]);
    let http = http();
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..60 {
        put_until_ok(
            &http,
            &members[0].client_url(),
            &format!("k{i}"),
            "v",
            deadline,
        )
        .await;
    }
    let l = leader(&http, &members).await;
    let f = (l + 1) % 3;
    let leader_id = known(&http, &members[l]).await.own_id;
    let target = known(&http, &members[f]).await;
    wait_value(&http, &members[f].client_url(), "k59", "v").await;
    // The leader's name, a vote from a far later term, and 22 bytes of junk.
    let vote = json!({"leader_id": {"term": 1000, "node_id": leader_id}, "committed": true});
    let meta = json!({
        "last_log_id": {"leader_id": {"term": 1000, "node_id": leader_id}, "index": 100_000},
        "last_membership": {"log_id": null, "membership": {"configs": [], "nodes": {}}},
    });
    for from in [leader_id, STRANGER] {
        let status = forged(
            &http,
            &members[f],
            "/raft/snapshot",
            target.cluster_id,
            from,
        )
        .header("x-beacon-vote", vote.to_string())
        .header("x-beacon-snapshot-meta", meta.to_string())
        .body(b"0123456789abcdefghijkl".to_vec())
        .send()
        .await
        .unwrap()
        .status();
        assert!(status.is_client_error(), "the junk snapshot got {status}");
    }
    still_serves(&http, &mut members[f], Duration::from_secs(2)).await;
    put_until_ok(&http, &members[f].client_url(), "after", "1", deadline).await;
    // Nothing but real snapshots on disk, and a restart loads one.
    let snap_dir = members[f].data_dir().join("member/snap");
    for dirent in std::fs::read_dir(&snap_dir).unwrap() {
        let path = dirent.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes.starts_with(b"BCNSNAP\0"),
            "{} is not a snapshot",
            path.display()
        );
    }
    restarts_with(&http, &mut members[f], "after", "1").await;
    wait_value(&http, &members[f].client_url(), "k0", "v").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_well_formed_snapshot_cannot_replace_the_store() {
    let mut members = cluster(3, &["--snapshot-count", "20"]);
    let http = http();
    let deadline = Instant::now() + Duration::from_secs(20);
    put_until_ok(&http, &members[0].client_url(), "acked", "old", deadline).await;
    for i in 0..30 {
        put_until_ok(
            &http,
            &members[0].client_url(),
            &format!("k{i}"),
            "v",
            deadline,
        )
        .await;
    }
    let l = leader(&http, &members).await;
    let f = (l + 1) % 3;
    wait_value(&http, &members[f].client_url(), "k29", "v").await;
    // A real, checksummed snapshot of this cluster that still says acked=old ...
    let snap_dir = members[f].data_dir().join("member/snap");
    let old_snapshot = std::fs::read_dir(&snap_dir)
        .unwrap()
        .map(|d| d.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .map(|p| std::fs::read(p).unwrap())
        .expect("the follower wrote a snapshot");
    // ... replayed after acked=new was acknowledged, in the leader's name with a
    // later term, and from a stranger.
    put_until_ok(&http, &members[f].client_url(), "acked", "new", deadline).await;
    let leader_id = known(&http, &members[l]).await.own_id;
    let target = known(&http, &members[f]).await;
    let vote = json!({"leader_id": {"term": 1000, "node_id": leader_id}, "committed": true});
    // The same store bytes as a bare body, with a meta header that claims a later
    // position (how snapshots travelled before they were sent as checksummed files).
    let meta_len = u32::from_be_bytes(old_snapshot[12..16].try_into().unwrap()) as usize;
    let mut meta: Value = serde_json::from_slice(&old_snapshot[24..24 + meta_len]).unwrap();
    meta["last_log_id"] =
        json!({"leader_id": {"term": 1000, "node_id": leader_id}, "index": 100_000});
    let store_bytes = old_snapshot[24 + meta_len..old_snapshot.len() - 8].to_vec();
    for from in [leader_id, STRANGER] {
        for body in [store_bytes.clone(), old_snapshot.clone()] {
            let status = forged(
                &http,
                &members[f],
                "/raft/snapshot",
                target.cluster_id,
                from,
            )
            .header("x-beacon-vote", vote.to_string())
            .header("x-beacon-snapshot-meta", meta.to_string())
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
            assert!(
                status.is_client_error(),
                "the replayed snapshot got {status}"
            );
        }
    }
    still_serves(&http, &mut members[f], Duration::from_secs(2)).await;
    wait_value(&http, &members[f].client_url(), "acked", "new").await;
    restarts_with(&http, &mut members[f], "acked", "new").await;
}

/// An append in `leader`'s name at a later term that puts one entry after the
/// member's last one and commits it.
fn forged_append(leader: u64, last: (u64, u64), member: u64, payload: Value) -> Value {
    let (index, term) = last;
    json!({
        "vote": {"leader_id": {"term": term + 100, "node_id": leader}, "committed": true},
        "prev_log_id": {"leader_id": {"term": term, "node_id": member}, "index": index},
        "entries": [{
            "log_id": {"leader_id": {"term": term + 100, "node_id": leader}, "index": index + 1},
            "payload": payload,
        }],
        "leader_commit": {"leader_id": {"term": term + 100, "node_id": leader}, "index": index + 1},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_append_from_a_non_member_cannot_remove_a_member() {
    let mut m = ServerProcess::beacon().expect("beacon starts");
    let http = http();
    put(&http, &m.client_url(), "kept", "1").await.unwrap();
    let target = known(&http, &m).await;
    let last = raft_position(&http, &m).await;
    // A membership of the stranger alone.
    let membership = json!({"Membership": {
        "configs": [[STRANGER]],
        "nodes": {STRANGER.to_string(): {"name": "x", "peer_urls": ["http://127.0.0.1:1"], "client_urls": []}},
    }});
    let body = forged_append(STRANGER, last, target.own_id, membership);
    let bare = http
        .post(format!("http://127.0.0.1:{}/raft/append", m.peer_port()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    let named = forged(&http, &m, "/raft/append", target.cluster_id, STRANGER)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    let other_cluster = forged(&http, &m, "/raft/append", target.cluster_id ^ 1, STRANGER)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        [bare, named, other_cluster].map(|s| s.as_u16()),
        [412, 404, 412]
    );
    still_serves(&http, &mut m, Duration::from_secs(2)).await;
    restarts_with(&http, &mut m, "kept", "1").await;
}

fn put_command(key: &str, value: String) -> Command {
    let mut req = KeysRequest::new(Method::Put, key, 0);
    req.value = value.into();
    Command::Keys(req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_append_cannot_overwrite_a_key() {
    let mut m = ServerProcess::beacon().expect("beacon starts");
    let http = http();
    put(&http, &m.client_url(), "kept", "1").await.unwrap();
    let target = known(&http, &m).await;
    let last = raft_position(&http, &m).await;
    let normal = json!({"Normal": put_command("/kept", "forged".into())});
    let body = forged_append(STRANGER, last, target.own_id, normal);
    for from in [STRANGER, target.own_id] {
        let status = forged(&http, &m, "/raft/append", target.cluster_id, from)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 404);
    }
    still_serves(&http, &mut m, Duration::from_secs(1)).await;
    wait_value(&http, &m.client_url(), "kept", "1").await;
    restarts_with(&http, &mut m, "kept", "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_proposals_obey_the_client_limits_and_never_carry_time() {
    let mut members = cluster(3, &[]);
    let http = http();
    let deadline = Instant::now() + Duration::from_secs(20);
    put_until_ok(&http, &members[0].client_url(), "kept", "1", deadline).await;
    let ttl = http
        .put(format!("{}/v2/keys/ttl", members[0].client_url()))
        .form(&[("value", "t"), ("ttl", "300")])
        .send()
        .await
        .unwrap();
    assert_eq!(ttl.status().as_u16(), 201);
    let l = leader(&http, &members).await;
    let f = (l + 1) % 3;
    let target = known(&http, &members[l]).await;
    let follower = known(&http, &members[f]).await.own_id;
    let propose = |cmd: &Command, from: u64| {
        forged(&http, &members[l], "/raft/propose", target.cluster_id, from)
            .json(cmd)
            .send()
    };
    // Time far in the future, in a real member's name: every TTL key would expire.
    let sync = Command::Sync { time_ns: i64::MAX };
    assert_eq!(
        propose(&sync, follower).await.unwrap().status().as_u16(),
        400
    );
    // A value the client port would refuse (its body limit is 10 MiB).
    let big = put_command("/big", "x".repeat(11 << 20));
    assert_eq!(
        propose(&big, follower).await.unwrap().status().as_u16(),
        400
    );
    // An overwrite from a stranger.
    let overwrite = put_command("/kept", "forged".into());
    assert_eq!(
        propose(&overwrite, STRANGER)
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    // A read index goes to members only (it costs the leader a heartbeat round).
    let read_index = |from: u64| {
        forged(
            &http,
            &members[l],
            "/raft/read-index",
            target.cluster_id,
            from,
        )
        .json(&())
        .send()
    };
    assert_eq!(read_index(STRANGER).await.unwrap().status().as_u16(), 404);
    let asked = read_index(follower).await.unwrap();
    assert_eq!(asked.status().as_u16(), 200);
    let index: Option<u64> = asked.json().await.unwrap();
    assert!(index.is_some_and(|i| i > 0), "the leader's read index");
    // The same in a batch: refused whole, the good command beside them too.
    let propose_batch = |cmds: &[&Command], from: u64| {
        forged(
            &http,
            &members[l],
            "/raft/propose-batch",
            target.cluster_id,
            from,
        )
        .json(cmds)
        .send()
    };
    let beside = put_command("/beside", "x".into());
    for batch in [[&beside, &sync], [&beside, &big]] {
        let status = propose_batch(&batch, follower).await.unwrap().status();
        assert_eq!(status.as_u16(), 400);
    }
    let status = propose_batch(&[&overwrite], STRANGER)
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 404);
    for m in [l, f] {
        let url = members[m].client_url();
        let v = get_json(&http, &format!("{url}/v2/keys/beside")).await;
        assert_eq!(v["errorCode"], 100, "{v}");
        wait_value(&http, &url, "kept", "1").await;
        let v = get_json(&http, &format!("{url}/v2/keys/ttl")).await;
        assert_eq!(v["node"]["value"], "t", "the TTL key expired: {v}");
        let v = get_json(&http, &format!("{url}/v2/keys/big")).await;
        assert_eq!(v["errorCode"], 100, "{v}");
    }
    still_serves(&http, &mut members[l], Duration::from_millis(200)).await;
}

/// Opens `n` TCP connections to `port` that never send a byte.
fn idle_connections(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_peer_connections_cannot_starve_the_client_port_and_are_closed() {
    let mut m = ServerProcess::beacon().expect("beacon starts");
    let http = support::http_with_timeout(Duration::from_secs(2));
    put(&http, &m.client_url(), "kept", "1").await.unwrap();
    // More than the peer port serves at once (1024); the rest wait unaccepted.
    let flood = idle_connections(m.peer_port(), 2000);
    for i in 0..20 {
        let started = Instant::now();
        let v = put(&http, &m.client_url(), &format!("k{i}"), "v").await;
        assert!(v.is_ok(), "the client port stopped answering: {v:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // An idle peer connection is closed after etcd's 10 s: reading it ends.
    let mut first = flood.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = first.read(&mut buf);
    let closed = match &read {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    assert!(closed, "an idle peer connection stayed open: {read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "closed only after {:?}",
        started.elapsed()
    );
    still_serves(&http, &mut m, Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_peer_bodies_are_refused_without_being_buffered() {
    let mut members = cluster(3, &[]);
    let http = http();
    let deadline = Instant::now() + Duration::from_secs(20);
    put_until_ok(&http, &members[0].client_url(), "kept", "1", deadline).await;
    let l = leader(&http, &members).await;
    let f = (l + 1) % 3;
    let target = known(&http, &members[l]).await;
    let follower = known(&http, &members[f]).await.own_id;
    let pid = members[l].pid().unwrap();
    let before = rss_bytes(pid);
    let junk = vec![b'x'; 256 << 20];
    let vote = json!({"leader_id": {"term": 1000, "node_id": follower}, "committed": true});
    let sends = [
        forged(
            &http,
            &members[l],
            "/raft/propose",
            target.cluster_id,
            follower,
        ),
        forged(
            &http,
            &members[l],
            "/raft/snapshot",
            target.cluster_id,
            follower,
        )
        .header("x-beacon-vote", vote.to_string()),
        forged(
            &http,
            &members[l],
            "/raft/vote",
            target.cluster_id,
            follower,
        ),
        http.post(format!(
            "http://127.0.0.1:{}/raft/append",
            members[l].peer_port()
        )),
    ];
    for send in sends {
        // The member may answer and close before the body is sent in full.
        if let Ok(r) = send.body(junk.clone()).send().await {
            assert!(r.status().is_client_error(), "{}", r.status());
        }
    }
    let grown_mib = rss_bytes(pid).saturating_sub(before) >> 20;
    assert!(
        grown_mib < 64,
        "256 MiB bodies grew the member by {grown_mib} MiB"
    );
    still_serves(&http, &mut members[l], Duration::from_millis(200)).await;
    wait_value(&http, &members[l].client_url(), "kept", "1").await;
}
