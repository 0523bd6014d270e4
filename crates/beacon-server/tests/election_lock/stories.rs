//! The stories told to etcd and Beacon alike: locks, then elections.

use beacon_proto::etcdserverpb::RangeRequest;
use beacon_proto::v3electionpb::LeaderKey;
use beacon_testkit::ServerProcess;

use crate::story::*;

pub async fn lock_story(server: &ServerProcess) -> Vec<String> {
    let mut s = Story::new(server).await;
    for id in [0xa1, 0xb2, 0xc3, 0xd4] {
        s.grant(id, 60).await;
    }
    // Uncontended, then again with the same lease: the same key, held.
    s.lock("lk", 0xa1).await;
    s.lock("lk", 0xa1).await;
    // A second locker waits behind the first until it unlocks.
    let mut second = spawn_lock(&s, "lk", 0xb2);
    s.until_key("lk/b2", true).await;
    s.still_waiting("second locker", &mut second).await;
    s.unlock("lk/a1").await;
    s.answered("second locker", second).await;
    // A locker whose call is cancelled takes its key back.
    let third = spawn_lock(&s, "lk", 0xc3);
    s.until_key("lk/c3", true).await;
    third.abort();
    s.until_key("lk/c3", false).await;
    // The holder's lease goes: the next locker holds the lock.
    let mut fourth = spawn_lock(&s, "lk", 0xd4);
    s.until_key("lk/d4", true).await;
    s.still_waiting("fourth locker", &mut fourth).await;
    s.revoke(0xb2).await;
    s.answered("fourth locker", fourth).await;
    s.keys("lk/").await;
    // Refusals and odd keys.
    s.lock("lk", 0x999).await;
    s.lock("other", 0x999).await;
    s.unlock("lk/nothing").await;
    s.unlock("").await;
    s.unlock("lk/d4").await;
    // A key already under the prefix, not a locker's: a lock waits for it too.
    s.put("pre/existing", "x").await;
    let mut fifth = spawn_lock(&s, "pre", 0xa1);
    s.until_key("pre/a1", true).await;
    s.still_waiting("locker behind a plain key", &mut fifth)
        .await;
    s.unlock("pre/existing").await;
    s.answered("locker behind a plain key", fifth).await;
    s.lock("", 0xc3).await;
    s.keys("").await;
    s.keys("/").await;
    // A lock without a lease gets a lease of 60 s, which nobody keeps alive.
    let unleased = lock(s.lock.clone(), "free", 0).await;
    let key = unleased.rsplit(' ').next().unwrap_or_default().to_string();
    let lease = key
        .strip_prefix("free/")
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("no lease in the key of {unleased}"));
    s.session_lease("lock without a lease", lease, &key).await;
    s.answers
}

pub async fn election_story(server: &ServerProcess) -> Vec<String> {
    let mut s = Story::new(server).await;
    for id in [0xa1, 0xb2, 0xc3, 0xd4] {
        s.grant(id, 60).await;
    }
    s.leader("el").await;
    // etcd's Observe call opens (its headers come) only with the first leader.
    let mut opening = spawn_observe_opening(&s, "el");
    s.still_waiting("an observer with no leader", &mut opening)
        .await;
    let mut observer = observe(&s, "el");
    let first = s.campaign("el", 0xa1, "a").await;
    s.answered("an observer with no leader", opening).await;
    s.observed(&mut observer, "the first leader").await;
    s.leader("el").await;
    s.proclaim(first.clone(), "a2").await;
    s.observed(&mut observer, "a proclamation").await;
    // Not the leader's key, or no key at all.
    let wrong = first.clone().map(|l| LeaderKey {
        rev: l.rev + 1,
        ..l
    });
    s.proclaim(wrong.clone(), "wrong").await;
    s.proclaim(None, "none").await;
    s.resign(None).await;
    // The same lease again, with another value: already leading, and the value posted.
    s.campaign("el", 0xa1, "a3").await;
    s.observed(&mut observer, "a campaign's new value").await;
    // A second campaigner waits; its key is there, its proclamation goes through (etcd
    // compares the key's revision, not leadership), and the observer does not see it.
    let mut second = spawn_campaign(&s, "el", 0xb2, "b");
    s.until_key("el/b2", true).await;
    s.still_waiting("second campaigner", &mut second).await;
    let waiting = LeaderKey {
        name: "el".into(),
        key: "el/b2".into(),
        rev: s.created("el/b2").await,
        lease: 0xb2,
    };
    s.proclaim(Some(waiting), "b-early").await;
    s.resign(wrong).await;
    s.keys("el/").await;
    s.resign(first).await;
    s.observed(&mut observer, "the second leader").await;
    s.answered("second campaigner", second).await;
    s.leader("el").await;
    // A cancelled campaign takes its key back.
    let third = spawn_campaign(&s, "el", 0xc3, "c");
    s.until_key("el/c3", true).await;
    third.abort();
    s.until_key("el/c3", false).await;
    // The leader's lease goes: the next campaigner leads.
    let mut fourth = spawn_campaign(&s, "el", 0xd4, "d");
    s.until_key("el/d4", true).await;
    s.still_waiting("fourth campaigner", &mut fourth).await;
    s.revoke(0xb2).await;
    s.observed(&mut observer, "the leader after a revoked lease")
        .await;
    s.answered("fourth campaigner", fourth).await;
    // No leader left: the observer waits for the first key put under the name.
    s.revoke(0xd4).await;
    s.leader("el").await;
    s.put("el/plain", "p").await;
    s.observed(&mut observer, "a plain key").await;
    s.campaign("el", 0x999, "x").await;
    s.keys("el/").await;
    // Without a lease: a lease of 60 s for the campaign, and another for a proclamation
    // without one, which the value is put with.
    let (_, leader) = campaign(s.election.clone(), "free", 0, "f").await;
    let mut leader = leader.expect("a leader");
    let key = String::from_utf8_lossy(&leader.key).into_owned();
    let own = key == format!("free/{:x}", leader.lease);
    s.note(
        "campaign without a lease",
        format!("key of its lease: {own}"),
    );
    s.session_lease("campaign's lease", leader.lease, &key)
        .await;
    leader.lease = 0;
    s.proclaim(Some(leader.clone()), "f2").await;
    let range = RangeRequest {
        key: leader.key.clone(),
        ..RangeRequest::default()
    };
    let found = s.kv.range(range).await.expect("range").into_inner();
    let lease = found.kvs.first().map_or(0, |kv| kv.lease);
    s.session_lease("proclamation's lease", lease, &key).await;
    s.resign(Some(leader)).await;
    s.keys("free/").await;
    s.answers
}
