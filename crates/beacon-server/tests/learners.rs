//! Learners, against etcd 3.4 and Beacon alike: `MemberAdd` with `isLearner`, etcd's
//! limit of one learner, a promotion refused until the learner has caught up, what a
//! running learner serves (Status and serializable Range) and refuses (everything else,
//! "rpc not supported for learner"), and a promotion that makes it a voter that takes
//! writes. Every answer is written down as text and both servers' lists must be equal.

use std::time::{Duration, Instant};

use beacon_proto::etcdserverpb::cluster_client::ClusterClient;
use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::lease_client::LeaseClient;
use beacon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use beacon_proto::etcdserverpb::{
    LeaseGrantRequest, MemberAddRequest, MemberListRequest, MemberPromoteRequest, PutRequest,
    RangeRequest, StatusRequest,
};
use beacon_testkit::{
    assert_same_answers, beacon_bin, etcd_bin, etcd_or_skip, free_ports, ServerKind, ServerProcess,
};
use tonic::transport::Channel;

async fn channel(url: &str) -> Channel {
    beacon_testkit::grpc_channel(url).await
}

/// An answer as text: `ok ...` or the refusal's code and message.
fn told<T>(answer: Result<tonic::Response<T>, tonic::Status>, ok: impl Fn(T) -> String) -> String {
    match answer {
        Ok(resp) => format!("ok {}", ok(resp.into_inner())),
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    }
}

fn put(key: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    }
}

fn range(key: &str, serializable: bool) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: vec![0],
        serializable,
        ..RangeRequest::default()
    }
}

/// The member list as (learner?, has a name) pairs, in id order.
async fn roles(url: &str) -> String {
    let list = ClusterClient::new(channel(url).await)
        .member_list(MemberListRequest {})
        .await
        .expect("member list")
        .into_inner();
    let roles: Vec<&str> = list
        .members
        .iter()
        .map(|m| match (m.is_learner, m.name.is_empty()) {
            (true, true) => "learner (unstarted)",
            (true, false) => "learner",
            (false, true) => "voter (unstarted)",
            (false, false) => "voter",
        })
        .collect();
    let mut roles = roles;
    roles.sort_unstable();
    roles.join(", ")
}

/// Waits (bounded) until `check` holds.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A JSON gateway answer as text: the status, and a refusal's body (an answer's has
/// ids that differ).
async fn gateway_answer(url: &str, path: &str, body: &str) -> String {
    let answer = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .body(body.to_string())
        .send()
        .await
        .expect("a gateway answer");
    let status = answer.status();
    let text = answer.text().await.expect("its body");
    let shown = if status.is_success() {
        ""
    } else {
        text.as_str()
    };
    format!("{path}: {} {shown}", status.as_u16())
}

async fn learner_answers(kind: ServerKind) -> Vec<String> {
    let bin = match kind {
        ServerKind::Beacon => beacon_bin(),
        ServerKind::Etcd => etcd_bin(),
    };
    let first = ServerProcess::start(kind, bin.clone()).expect("server starts");
    let url = first.client_url();
    let ports = free_ports(3);
    let (client_port, peer_port, other_peer) = (ports[0], ports[1], ports[2]);
    let mut out = Vec::new();
    let mut kv = KvClient::new(channel(&url).await);
    for i in 0..20 {
        kv.put(put(&format!("k{i:02}"))).await.expect("put");
    }
    let mut cluster = ClusterClient::new(channel(&url).await);
    let add = |port: u16, is_learner: bool| MemberAddRequest {
        peer_ur_ls: vec![format!("http://127.0.0.1:{port}")],
        is_learner,
    };
    let added = cluster
        .member_add(add(peer_port, true))
        .await
        .expect("a learner is added")
        .into_inner();
    let learner = added.member.expect("the added member");
    out.push(format!(
        "added: learner {} members {}",
        learner.is_learner,
        added.members.len()
    ));
    out.push(roles(&url).await);
    out.push(told(cluster.member_add(add(other_peer, true)).await, |r| {
        r.members.len().to_string()
    }));
    out.push(told(
        cluster
            .member_promote(MemberPromoteRequest { id: learner.id })
            .await,
        |r| r.members.len().to_string(),
    ));
    // A learner does not count toward the quorum: the one voter still writes alone.
    out.push(told(kv.put(put("while-unstarted")).await, |_| {
        String::new()
    }));

    let joined = ServerProcess::join(
        kind,
        bin,
        "learner",
        (client_port, peer_port),
        &[&first],
        &[],
    )
    .expect("the learner starts");
    let learner_url = joined.client_url();
    let mut at_learner = KvClient::new(channel(&learner_url).await);
    wait_until("the learner has the data", || {
        let mut kv = at_learner.clone();
        async move {
            kv.range(range("k", true))
                .await
                .is_ok_and(|r| r.into_inner().count == 21)
        }
    })
    .await;
    // etcd serves clients only once the member has published its name; Beacon serves
    // before (issue 17's readiness), so wait for the name here: the listing compares
    // what the list shows once the learner runs, not how soon it says so.
    wait_until("the learner published its name", || {
        let url = url.clone();
        async move { roles(&url).await == "learner, voter" }
    })
    .await;
    out.push(roles(&url).await);
    let status = MaintenanceClient::new(channel(&learner_url).await)
        .status(StatusRequest {})
        .await;
    out.push(told(status, |s| format!("is_learner {}", s.is_learner)));
    out.push(told(at_learner.range(range("k", true)).await, |r| {
        format!("serializable range: {} keys", r.count)
    }));
    out.push(told(at_learner.range(range("k", false)).await, |r| {
        r.count.to_string()
    }));
    out.push(told(at_learner.range(range("", false)).await, |r| {
        r.count.to_string()
    }));
    out.push(told(at_learner.put(put("at-learner")).await, |_| {
        String::new()
    }));
    out.push(told(
        ClusterClient::new(channel(&learner_url).await)
            .member_list(MemberListRequest {})
            .await,
        |r| r.members.len().to_string(),
    ));
    out.push(told(
        LeaseClient::new(channel(&learner_url).await)
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
            .await,
        |_| String::new(),
    ));
    // The JSON gateway's calls pass the same check.
    for (path, body) in [
        (
            "/v3/kv/range",
            r#"{"key":"aw==","range_end":"AA==","serializable":true}"#,
        ),
        ("/v3/kv/range", r#"{"key":"aw==","range_end":"AA=="}"#),
        ("/v3/kv/put", r#"{"key":"aw==","value":"dg=="}"#),
        ("/v3/watch", r#"{"create_request":{"key":"aw=="}}"#),
    ] {
        out.push(gateway_answer(&learner_url, path, body).await);
    }

    // Caught up now: the promotion goes through.
    let promoted = cluster
        .member_promote(MemberPromoteRequest { id: learner.id })
        .await;
    out.push(told(promoted, |r| {
        let learners = r.members.iter().filter(|m| m.is_learner).count();
        format!("{} members, {learners} learners", r.members.len())
    }));
    out.push(roles(&url).await);
    out.push(told(
        cluster
            .member_promote(MemberPromoteRequest { id: learner.id })
            .await,
        |_| String::new(),
    ));
    // A voter now: it takes writes (Beacon makes it a voter within a tick of the
    // promotion, so the first write may still meet the learner).
    wait_until("the promoted member takes writes", || {
        let mut kv = at_learner.clone();
        async move { kv.put(put("at-promoted")).await.is_ok() }
    })
    .await;
    let status = MaintenanceClient::new(channel(&learner_url).await)
        .status(StatusRequest {})
        .await;
    out.push(told(status, |s| format!("is_learner {}", s.is_learner)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learners_are_added_refused_and_promoted_as_in_etcd() {
    let beacon = learner_answers(ServerKind::Beacon).await;
    if !etcd_or_skip() {
        return;
    }
    let etcd = learner_answers(ServerKind::Etcd).await;
    assert_same_answers(&etcd, &beacon);
}
