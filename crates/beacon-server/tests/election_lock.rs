//! etcd's `Election` and `Lock` services through a Rust gRPC client: the same story of
//! calls against a fresh etcd 3.4 and a fresh Beacon must answer the same, response for
//! response and refusal for refusal, with the same keys left behind, once the member's
//! ids and Raft term are blanked. Both keyspaces start at revision 1 and count every
//! write alike, so revisions compare as they are; leases are granted with ids of the
//! story's choosing, so the waiters' keys (`<name>/<lease in hex>`) are the same too.
//! Calls that wait run on tasks of their own; a story moves on once the keyspace shows
//! what it waits for (a waiter's key), within a deadline.

use std::time::{Duration, Instant};

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::lease_client::LeaseClient;
use beacon_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
    ResponseHeader,
};
use beacon_proto::v3electionpb::election_client::ElectionClient;
use beacon_proto::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ResignRequest,
};
use beacon_proto::v3lockpb::lock_client::LockClient;
use beacon_proto::v3lockpb::{LockRequest, UnlockRequest};
use beacon_testkit::ServerProcess;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

mod support;

/// How long a story waits for something the other side of a call must make happen.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long a call that must keep waiting is watched not to answer.
const STILL_WAITING: Duration = Duration::from_millis(300);

/// Blanks what differs between two servers in a header.
fn blank(header: Option<ResponseHeader>) -> Option<ResponseHeader> {
    header.map(|h| ResponseHeader {
        cluster_id: 0,
        member_id: 0,
        raft_term: 0,
        ..h
    })
}

fn refusal(s: &tonic::Status) -> String {
    format!("refused {:?}: {}", s.code(), s.message())
}

/// One server's clients, and the answers of a story so far.
struct Story {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    lock: LockClient<Channel>,
    election: ElectionClient<Channel>,
    answers: Vec<String>,
}

impl Story {
    async fn new(server: &ServerProcess) -> Story {
        let channel = beacon_testkit::grpc_channel(&server.client_url()).await;
        Story {
            kv: KvClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            lock: LockClient::new(channel.clone()),
            election: ElectionClient::new(channel),
            answers: Vec::new(),
        }
    }

    fn note(&mut self, what: &str, answer: String) {
        self.answers.push(format!("{what}: {answer}"));
    }

    async fn grant(&mut self, id: i64, ttl: i64) {
        let granted = self.lease.lease_grant(LeaseGrantRequest { ttl, id }).await;
        let answer =
            granted.map_or_else(|s| refusal(&s), |r| format!("granted {}", r.get_ref().id));
        self.note("grant", answer);
    }

    async fn revoke(&mut self, id: i64) {
        let revoked = self.lease.lease_revoke(LeaseRevokeRequest { id }).await;
        let answer = revoked.map_or_else(
            |s| refusal(&s),
            |r| format!("{:?}", blank(r.into_inner().header)),
        );
        self.note("revoke", answer);
    }

    async fn put(&mut self, key: &str, value: &str) {
        let put = PutRequest {
            key: key.into(),
            value: value.into(),
            ..PutRequest::default()
        };
        let answer = match self.kv.put(put).await {
            Ok(r) => format!("{:?}", blank(r.into_inner().header)),
            Err(s) => refusal(&s),
        };
        self.note("put", answer);
    }

    /// Every key under `prefix`, with its value and lease, as the story notes them.
    async fn keys(&mut self, prefix: &str) {
        let range = RangeRequest {
            key: prefix.into(),
            range_end: beacon_proto::prefix_end(prefix.as_bytes()),
            ..RangeRequest::default()
        };
        let answer = match self.kv.range(range).await {
            Ok(r) => format!("{:?}", r.into_inner().kvs),
            Err(s) => refusal(&s),
        };
        self.note(&format!("keys {prefix}"), answer);
    }

    /// Waits until `key` exists (or, with `present` false, is gone).
    async fn until_key(&mut self, key: &str, present: bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let range = RangeRequest {
                key: key.into(),
                ..RangeRequest::default()
            };
            let count = self
                .kv
                .range(range)
                .await
                .expect("range")
                .into_inner()
                .count;
            if (count > 0) == present {
                self.note(
                    &format!("key {key}"),
                    if present { "there" } else { "gone" }.into(),
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "key {key} never became present={present}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn lock(&mut self, name: &str, lease: i64) {
        let answer = lock(self.lock.clone(), name, lease).await;
        self.note(&format!("lock {name} {lease:x}"), answer);
    }

    async fn unlock(&mut self, key: &str) {
        let unlocked = self.lock.unlock(UnlockRequest { key: key.into() }).await;
        let answer = unlocked.map_or_else(
            |s| refusal(&s),
            |r| format!("{:?}", blank(r.into_inner().header)),
        );
        self.note(&format!("unlock {key}"), answer);
    }

    async fn campaign(&mut self, name: &str, lease: i64, value: &str) -> Option<LeaderKey> {
        let (answer, leader) = campaign(self.election.clone(), name, lease, value).await;
        self.note(&format!("campaign {name} {lease:x}"), answer);
        leader
    }

    async fn proclaim(&mut self, leader: Option<LeaderKey>, value: &str) {
        let proclaim = ProclaimRequest {
            leader,
            value: value.into(),
        };
        let answer = match self.election.proclaim(proclaim).await {
            Ok(r) => format!("{:?}", blank(r.into_inner().header)),
            Err(s) => refusal(&s),
        };
        self.note(&format!("proclaim {value}"), answer);
    }

    async fn resign(&mut self, leader: Option<LeaderKey>) {
        let answer = match self.election.resign(ResignRequest { leader }).await {
            Ok(r) => format!("{:?}", blank(r.into_inner().header)),
            Err(s) => refusal(&s),
        };
        self.note("resign", answer);
    }

    async fn leader(&mut self, name: &str) {
        let request = LeaderRequest { name: name.into() };
        let answer = match self.election.leader(request).await {
            Ok(r) => leader_answer(r.into_inner()),
            Err(s) => refusal(&s),
        };
        self.note(&format!("leader {name}"), answer);
    }

    /// Notes what a lease the server granted for a call without one is like, and
    /// whether `key` is its one key: its id is the server's own, its TTL etcd's.
    async fn session_lease(&mut self, what: &str, lease: i64, key: &str) {
        let ttl = self
            .lease
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: lease,
                keys: true,
            })
            .await
            .expect("time to live")
            .into_inner();
        let own = ttl.keys.iter().all(|k| *k == key.as_bytes());
        let keys = format!("{} key(s), the waiter's: {own}", ttl.keys.len());
        self.note(what, format!("granted {} s, {keys}", ttl.granted_ttl));
    }

    /// The create revision of `key`, 0 when it is absent.
    async fn created(&mut self, key: &str) -> i64 {
        let range = RangeRequest {
            key: key.into(),
            ..RangeRequest::default()
        };
        let found = self.kv.range(range).await.expect("range").into_inner();
        found.kvs.first().map_or(0, |kv| kv.create_revision)
    }

    /// Notes what an observer hears next.
    async fn observed(&mut self, observer: &mut mpsc::Receiver<String>, what: &str) {
        let answer = tokio::time::timeout(DEADLINE, observer.recv())
            .await
            .unwrap_or_else(|_| panic!("observed nothing for {what}"))
            .unwrap_or_else(|| "the stream ended".into());
        self.note(&format!("observed {what}"), answer);
    }

    /// Waits for a call on its own task to answer.
    async fn answered(&mut self, what: &str, call: JoinHandle<String>) {
        let answer = tokio::time::timeout(DEADLINE, call)
            .await
            .unwrap_or_else(|_| panic!("{what} never answered"))
            .expect("the call's task");
        self.note(what, answer);
    }

    /// Notes that a call on its own task has not answered.
    async fn still_waiting(&mut self, what: &str, call: &mut JoinHandle<String>) {
        let early = tokio::time::timeout(STILL_WAITING, &mut *call).await;
        let answer = match early {
            Ok(answer) => format!("answered early: {answer:?}"),
            Err(_) => "still waiting".into(),
        };
        self.note(what, answer);
    }
}

async fn lock(mut client: LockClient<Channel>, name: &str, lease: i64) -> String {
    let request = LockRequest {
        name: name.into(),
        lease,
    };
    match client.lock(request).await {
        Ok(r) => {
            let r = r.into_inner();
            format!("{:?} {}", blank(r.header), String::from_utf8_lossy(&r.key))
        }
        Err(s) => refusal(&s),
    }
}

async fn campaign(
    mut client: ElectionClient<Channel>,
    name: &str,
    lease: i64,
    value: &str,
) -> (String, Option<LeaderKey>) {
    let request = CampaignRequest {
        name: name.into(),
        lease,
        value: value.into(),
    };
    match client.campaign(request).await {
        Ok(r) => {
            let r = r.into_inner();
            (format!("{:?} {:?}", blank(r.header), r.leader), r.leader)
        }
        Err(s) => (refusal(&s), None),
    }
}

fn leader_answer(r: LeaderResponse) -> String {
    format!("{:?} {:?}", blank(r.header), r.kv)
}

/// An observer of election `name` on a task of its own, which hands on what it hears.
/// etcd sends an Observe call's headers with its first leader, so even opening the
/// call waits for one.
fn observe(story: &Story, name: &'static str) -> mpsc::Receiver<String> {
    let mut client = story.election.clone();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let request = LeaderRequest { name: name.into() };
        let mut stream = match client.observe(request).await {
            Ok(stream) => stream.into_inner(),
            Err(s) => {
                let _ = tx.send(refusal(&s)).await;
                return;
            }
        };
        loop {
            let heard = match stream.message().await {
                Ok(Some(r)) => leader_answer(r),
                Ok(None) => return,
                Err(s) => refusal(&s),
            };
            if tx.send(heard).await.is_err() {
                return;
            }
        }
    });
    rx
}

fn spawn_lock(story: &Story, name: &'static str, lease: i64) -> JoinHandle<String> {
    tokio::spawn(lock(story.lock.clone(), name, lease))
}

fn spawn_campaign(
    story: &Story,
    name: &'static str,
    lease: i64,
    value: &'static str,
) -> JoinHandle<String> {
    let client = story.election.clone();
    tokio::spawn(async move { campaign(client, name, lease, value).await.0 })
}

async fn lock_story(server: &ServerProcess) -> Vec<String> {
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

async fn election_story(server: &ServerProcess) -> Vec<String> {
    let mut s = Story::new(server).await;
    for id in [0xa1, 0xb2, 0xc3, 0xd4] {
        s.grant(id, 60).await;
    }
    s.leader("el").await;
    let mut observer = observe(&s, "el");
    let first = s.campaign("el", 0xa1, "a").await;
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

#[tokio::test]
async fn locks_answer_as_etcds() {
    if let Some((want, got)) = support::told_by_both(lock_story).await {
        beacon_testkit::assert_same_answers(&want, &got);
    }
}

#[tokio::test]
async fn elections_answer_as_etcds() {
    if let Some((want, got)) = support::told_by_both(election_story).await {
        beacon_testkit::assert_same_answers(&want, &got);
    }
}

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
