//! `--strict-reconfig-check` (on by default) against etcd 3.4 and Beacon: in a cluster of
//! three with one member killed, the leader refuses to add a voter ("unhealthy
//! cluster": not every member connected for 5 s) and to remove a member that is up
//! (the quorum left would rest on every survivor), on v2 (500, etcd's "Internal Server
//! Error") and v3 (UNAVAILABLE) alike, a learner's add included, while the member that
//! is down may be removed. With `=false` the same add is taken. A story moves on
//! once the leader has noticed the killed member (`noticed`), within a deadline.

use std::time::{Duration, Instant};

use beacon_proto::etcdserverpb::cluster_client::ClusterClient;
use beacon_proto::etcdserverpb::{MemberAddRequest, MemberRemoveRequest};
use beacon_testkit::{etcd_or_skip, free_ports, ServerKind, ServerProcess};

mod support;

/// How long the leader may take to count a failure to the killed member.
const NOTICE_DEADLINE: Duration = Duration::from_secs(10);

fn bin(kind: ServerKind) -> std::path::PathBuf {
    match kind {
        ServerKind::Etcd => beacon_testkit::etcd_bin(),
        ServerKind::Beacon => beacon_testkit::beacon_bin(),
    }
}

/// A fresh peer URL no member has.
fn new_peer_url() -> String {
    format!("http://127.0.0.1:{}", free_ports(1)[0])
}

/// A v2 answer as status and body (etcd's JSON, or empty).
async fn v2(req: reqwest::RequestBuilder) -> String {
    let resp = req.send().await.expect("a v2 answer");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let body = if status == 201 {
        "<member>"
    } else {
        body.trim()
    };
    format!("{status} {body}")
}

/// A v3 answer as its code and message ("OK" for a success).
fn v3<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> String {
    match answer {
        Ok(_) => "OK".into(),
        Err(status) => format!("{:?} {}", status.code(), status.message()),
    }
}

/// A three-member cluster started with `args`, one follower killed; what its leader
/// answers to each member change, in order; only to the first (a voter's add) unless
/// `every`: without the check etcd's add would cost the quorum (Beacon adds a learner
/// first and promotes it once it caught up, so it keeps its quorum: not comparable).
async fn story(kind: ServerKind, args: &[&str], every: bool) -> Vec<String> {
    // Another test's connection may take a picked port before the member binds it.
    let mut members = ServerProcess::cluster_with(kind, bin(kind), 3, args)
        .or_else(|_| ServerProcess::cluster_with(kind, bin(kind), 3, args))
        .expect("the cluster starts");
    let http = support::http();
    let leader = support::leader(&http, &members).await;
    let (victim, up) = match leader {
        0 => (2, 1),
        1 => (2, 0),
        _ => (1, 0),
    };
    let id_of = |i: usize| support::peer_identity(&members[i]).own_id;
    let (victim_id, up_id) = (id_of(victim), id_of(up));
    members[victim].kill9();
    let base = members[leader].client_url();
    let deadline = Instant::now() + NOTICE_DEADLINE;
    while !noticed(kind, &http, &members[leader], victim_id).await {
        assert!(
            Instant::now() < deadline,
            "{kind:?}: the leader never noticed the killed member"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut cluster = ClusterClient::new(beacon_testkit::grpc_channel(&base).await);
    let mut out = Vec::new();
    let add = http
        .post(format!("{base}/v2/members"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"peerURLs":["{}"]}}"#, new_peer_url()));
    out.push(format!("v2 add: {}", v2(add).await));
    if !every {
        return out;
    }
    let add = |is_learner| MemberAddRequest {
        peer_ur_ls: vec![new_peer_url()],
        is_learner,
    };
    out.push(format!(
        "v3 add: {}",
        v3(cluster.member_add(add(false)).await)
    ));
    let learner = cluster.member_add(add(true)).await;
    let learner_id = learner
        .as_ref()
        .ok()
        .and_then(|r| r.get_ref().member.as_ref())
        .map(|m| m.id);
    out.push(format!("v3 add learner: {}", v3(learner)));
    if let Some(id) = learner_id {
        let removed = cluster.member_remove(MemberRemoveRequest { id }).await;
        out.push(format!("v3 remove learner: {}", v3(removed)));
    }
    let remove = |id: u64| http.delete(format!("{base}/v2/members/{id:x}"));
    out.push(format!("v2 remove up: {}", v2(remove(up_id)).await));
    let removed = cluster
        .member_remove(MemberRemoveRequest { id: up_id })
        .await;
    out.push(format!("v3 remove up: {}", v3(removed)));
    out.push(format!("v2 remove down: {}", v2(remove(victim_id)).await));
    out
}

/// Whether `leader` no longer counts member `victim` as connected: etcd logs it
/// ("peer <id> became inactive"); Beacon's leader counts a failed message to it in
/// `/v2/stats/leader`, which is what its check reads (etcd's count there does not move
/// on a lost connection).
async fn noticed(
    kind: ServerKind,
    http: &reqwest::Client,
    leader: &ServerProcess,
    victim: u64,
) -> bool {
    match kind {
        ServerKind::Etcd => leader
            .log_tail(1000)
            .contains(&format!("peer {victim:x} became inactive")),
        ServerKind::Beacon => {
            let url = format!("{}/v2/stats/leader", leader.client_url());
            let stats = support::try_get_json(http, &url).await;
            let fails = stats
                .as_ref()
                .and_then(|s| s["followers"][format!("{victim:x}")]["counts"]["fail"].as_u64());
            fails.unwrap_or(0) > 0
        }
    }
}

#[tokio::test]
async fn changes_that_would_cost_the_quorum_are_refused_as_by_etcd() {
    if !etcd_or_skip() {
        return;
    }
    let want = story(ServerKind::Etcd, &[], true).await;
    let got = story(ServerKind::Beacon, &[], true).await;
    beacon_testkit::assert_same_answers(&want, &got);
    assert!(got[0].starts_with("v2 add: 500"), "{got:?}");
    assert!(
        got[1].contains("Unavailable etcdserver: unhealthy cluster"),
        "{got:?}"
    );
}

#[tokio::test]
async fn with_the_check_off_the_changes_are_made() {
    if !etcd_or_skip() {
        return;
    }
    let off = ["--strict-reconfig-check=false"];
    let want = story(ServerKind::Etcd, &off, false).await;
    let got = story(ServerKind::Beacon, &off, false).await;
    beacon_testkit::assert_same_answers(&want, &got);
    assert!(got[0].starts_with("v2 add: 201"), "{got:?}");
}
