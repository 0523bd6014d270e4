//! Waits and turns across the members of a cluster: each call on another member, so a
//! follower's wait, which reads its own keyspace, must decide only on what it has
//! applied of what the leader answered.

use beacon_testkit::{beacon_bin, ServerKind, ServerProcess};

use crate::story::*;

#[tokio::test]
async fn waits_and_turns_span_the_members_of_a_cluster() {
    let members = ServerProcess::cluster(ServerKind::Beacon, beacon_bin(), 3).expect("a cluster");
    let mut s = Vec::new();
    for member in &members {
        s.push(Story::new(member).await);
    }
    s[0].grant(0xa1, 60).await;
    s[0].grant(0xb2, 60).await;
    s[0].lock("lk", 0xa1).await;
    let mut second = spawn_lock(&s[1], "lk", 0xb2);
    s[2].until_key("lk/b2", true).await;
    s[2].still_waiting("second locker", &mut second).await;
    s[2].unlock("lk/a1").await;
    s[1].answered("second locker", second).await;
    let mut observer = observe(&s[1], "el");
    let leader = s[2].campaign("el", 0xa1, "a").await;
    s[1].observed(&mut observer, "the leader").await;
    s[0].proclaim(leader, "a2").await;
    s[1].observed(&mut observer, "a proclamation").await;
    let mut next = spawn_campaign(&s[0], "el", 0xb2, "b");
    s[1].until_key("el/b2", true).await;
    s[1].still_waiting("next campaigner", &mut next).await;
    s[2].revoke(0xa1).await;
    s[0].answered("next campaigner", next).await;
    s[1].observed(&mut observer, "the next leader").await;
    let answers: Vec<&String> = s.iter().flat_map(|s| &s.answers).collect();
    for answer in &answers {
        assert!(
            !answer.contains("refused") && !answer.contains("early"),
            "{answers:#?}"
        );
    }
    let heard = |prefix: &str| {
        s[1].answers
            .iter()
            .find(|a| a.starts_with(prefix))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        heard("second locker: Some").ends_with(" lk/b2"),
        "{answers:#?}"
    );
    assert!(
        heard("observed a proclamation").contains("value: [97, 50]"),
        "{answers:#?}"
    );
    assert!(
        heard("observed the next leader").contains("value: [98]"),
        "{answers:#?}"
    );
}
