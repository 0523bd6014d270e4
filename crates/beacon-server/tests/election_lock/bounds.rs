//! How long a wait lasts: a waiter whose own lease goes (where Beacon differs from
//! etcd 3.4 on purpose), and waiters when the server stops.

use beacon_testkit::ServerProcess;

use crate::story::*;
use crate::support;

/// A waiter whose own lease goes while it waits: etcd 3.4 does not notice (it waits for
/// the keys before its own, then answers as if it held the lock or led, its key gone);
/// Beacon ends the call at once, with the words etcd 3.5 answers a lock with when it
/// finds its key gone after the wait, so no call waits on a lease that is no more.
async fn lost_lease_story(server: &ServerProcess) -> Vec<String> {
    let mut s = Story::new(server).await;
    for id in [0xa1, 0xb2] {
        s.grant(id, 60).await;
    }
    s.lock("lk", 0xa1).await;
    let mut locker = spawn_lock(&s, "lk", 0xb2);
    s.until_key("lk/b2", true).await;
    let leader = s.campaign("el", 0xa1, "a").await;
    let mut campaigner = spawn_campaign(&s, "el", 0xb2, "b");
    s.until_key("el/b2", true).await;
    s.revoke(0xb2).await;
    if server.kind() == beacon_testkit::ServerKind::Etcd {
        s.still_waiting("locker", &mut locker).await;
        s.still_waiting("campaigner", &mut campaigner).await;
        s.unlock("lk/a1").await;
        s.resign(leader).await;
    }
    s.answered("locker", locker).await;
    s.answered("campaigner", campaigner).await;
    s.keys("lk/").await;
    s.keys("el/").await;
    s.answers
}

#[tokio::test]
async fn a_waiter_whose_lease_goes_ends_on_beacon_and_waits_on_etcd() {
    let Some((etcd_story, beacon_story)) = support::told_by_both(lost_lease_story).await else {
        return;
    };
    // Alike until the lease goes.
    let revoked = 7;
    beacon_testkit::assert_same_answers(&etcd_story[..revoked], &beacon_story[..revoked]);
    let header = |revision| {
        format!("Some(ResponseHeader {{ cluster_id: 0, member_id: 0, revision: {revision}, raft_term: 0 }})")
    };
    let b2 = "key: [101, 108, 47, 98, 50]";
    let etcd_tail = [
        "locker: still waiting".to_string(),
        "campaigner: still waiting".into(),
        format!("unlock lk/a1: {}", header(7)),
        format!("resign: {}", header(8)),
        format!("locker: {} lk/b2", header(7)),
        format!(
            "campaigner: {} Some(LeaderKey {{ name: [101, 108], {b2}, rev: 5, lease: 178 }})",
            header(5)
        ),
        "keys lk/: []".into(),
        "keys el/: []".into(),
    ];
    assert_eq!(
        etcd_story[revoked..],
        etcd_tail,
        "etcd 3.4 waits, then answers a key that is gone"
    );
    let beacon_tail = [
        "locker: refused Unknown: mutex: session is expired".to_string(),
        "campaigner: refused Unknown: election: session is expired".into(),
        "keys lk/: [KeyValue { key: [108, 107, 47, 97, 49], create_revision: 2, mod_revision: 2, version: 1, value: [], lease: 161 }]".into(),
        "keys el/: [KeyValue { key: [101, 108, 47, 97, 49], create_revision: 4, mod_revision: 4, version: 1, value: [97], lease: 161 }]".into(),
    ];
    assert_eq!(beacon_story[revoked..], beacon_tail, "Beacon ends the wait");
}

/// Calls that wait (a lock, a campaign, an observer) end when the server stops: they
/// hold no stop back, and their clients hear of it.
#[tokio::test]
async fn waiting_calls_end_when_the_server_stops() {
    let mut beacon = ServerProcess::beacon().expect("beacon starts");
    let mut s = Story::new(&beacon).await;
    for id in [0xa1, 0xb2] {
        s.grant(id, 60).await;
    }
    s.lock("lk", 0xa1).await;
    let locker = spawn_lock(&s, "lk", 0xb2);
    s.until_key("lk/b2", true).await;
    s.campaign("el", 0xa1, "a").await;
    let campaigner = spawn_campaign(&s, "el", 0xb2, "b");
    s.until_key("el/b2", true).await;
    let mut observer = observe(&s, "el");
    s.observed(&mut observer, "the leader").await;
    let stopped = tokio::task::spawn_blocking(move || beacon.terminate(DEADLINE))
        .await
        .expect("the stop");
    assert!(stopped, "Beacon did not stop within {DEADLINE:?}");
    for (what, call) in [("locker", locker), ("campaigner", campaigner)] {
        s.answered(what, call).await;
    }
    s.observed(&mut observer, "the stop").await;
    for answer in &s.answers[s.answers.len() - 3..] {
        assert!(answer.contains("refused"), "{answer}");
    }
}
