//! `--pre-vote`, against etcd 3.4.23: in a 3-member cluster, a follower cut off from
//! both others (they are stopped with SIGSTOP) campaigns once its election timeout
//! passes. With pre-vote it first asks whether it could win, hears nothing, and keeps
//! its term, so the cluster it comes back to keeps its leader and term; without, it
//! raises its term with every campaign, and its return deposes the leader. etcd's
//! Status shows the term of the last entry applied, so the term is read once the
//! cluster agrees again and has applied a write.

use std::time::{Duration, Instant};

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use beacon_proto::etcdserverpb::{PutRequest, StatusRequest};
use beacon_testkit::{beacon_bin, etcd_bin, etcd_or_skip, ServerKind, ServerProcess};

const TIMING: [&str; 2] = ["--heartbeat-interval=50", "--election-timeout=500"];
/// Several election timeouts: enough for many campaigns without pre-vote.
const CUT_OFF_FOR: Duration = Duration::from_secs(3);

/// The member's (leader id, raft term, own id), as its Status call tells them.
async fn status(member: &ServerProcess) -> (u64, u64, u64) {
    let channel = beacon_testkit::grpc_channel(&member.client_url()).await;
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        MaintenanceClient::new(channel).status(StatusRequest {}),
    )
    .await
    .expect("Status answers in time")
    .expect("Status")
    .into_inner();
    let id = status.header.map_or(0, |h| h.member_id);
    (status.leader, status.raft_term, id)
}

/// Sends `signal` (`STOP`, `CONT`) to the member's process.
fn signal(member: &ServerProcess, signal: &str) {
    let pid = member.pid().expect("running").to_string();
    // std sends no signal but SIGKILL; `kill` is in every base system the tests run on.
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Cuts a follower off for [`CUT_OFF_FOR`]; the cluster's term before, and once it
/// agrees again after a write.
async fn cut_off_follower(kind: ServerKind, pre_vote: bool) -> (u64, u64) {
    let bin = match kind {
        ServerKind::Etcd => etcd_bin(),
        ServerKind::Beacon => beacon_bin(),
    };
    let flag = format!("--pre-vote={pre_vote}");
    let args = [TIMING[0], TIMING[1], flag.as_str()];
    let members = ServerProcess::cluster_with(kind, bin, 3, &args).expect("3 members");
    let (leader, term) = agreed(kind, &members).await;
    // The follower left running, and the other two: the leader first.
    let mut ids = Vec::new();
    for m in &members {
        ids.push(status(m).await.2);
    }
    let leading = ids.iter().position(|id| *id == leader).expect("a leader");
    let others = [leading, (leading + 1) % 3];
    for &i in &others {
        signal(&members[i], "STOP");
    }
    // The spell of silence is what is judged: its length is the test.
    tokio::time::sleep(CUT_OFF_FOR).await;
    // The leader comes back first and writes with the follower: a stopped process's
    // timers have all run out when it resumes, and the other follower would
    // otherwise find no lease anywhere to refuse its campaign.
    signal(&members[others[0]], "CONT");
    put_until_written(kind, &members[others[0]]).await;
    signal(&members[others[1]], "CONT");
    put_until_written(kind, &members[others[0]]).await;
    (term, agreed(kind, &members).await.1)
}

/// Puts through `member` until a put succeeds (wherever the leader is by then).
async fn put_until_written(kind: ServerKind, member: &ServerProcess) {
    let put = PutRequest {
        key: b"k".to_vec(),
        ..PutRequest::default()
    };
    let mut kv = KvClient::new(beacon_testkit::grpc_channel(&member.client_url()).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let call = kv.put(put.clone());
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), call).await {
            return;
        }
        assert!(Instant::now() < deadline, "{kind:?}: no write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The (leader, term) every member reports, once they agree.
async fn agreed(kind: ServerKind, members: &[ServerProcess]) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = Vec::new();
        for m in members {
            seen.push(status(m).await);
        }
        let same = seen.iter().all(|s| (s.0, s.1) == (seen[0].0, seen[0].1));
        if seen[0].0 != 0 && same {
            return (seen[0].0, seen[0].1);
        }
        assert!(
            Instant::now() < deadline,
            "{kind:?}: no agreed leader: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_follower_keeps_its_term_with_pre_vote_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    for kind in [ServerKind::Etcd, ServerKind::Beacon] {
        let (before, after) = cut_off_follower(kind, true).await;
        assert_eq!(after, before, "{kind:?}, pre-vote: the term moved");
        let (before, after) = cut_off_follower(kind, false).await;
        assert!(
            after > before,
            "{kind:?}, no pre-vote: the term stayed {before}"
        );
    }
}
