//! The harness of the stories: one server's clients, the answers so far, and the
//! calls that wait, on tasks of their own.

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

/// How long a story waits for something the other side of a call must make happen.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How long a call that must keep waiting is watched not to answer.
pub const STILL_WAITING: Duration = Duration::from_millis(300);

/// Blanks what differs between two servers in a header.
pub fn blank(header: Option<ResponseHeader>) -> Option<ResponseHeader> {
    header.map(|h| ResponseHeader {
        cluster_id: 0,
        member_id: 0,
        raft_term: 0,
        ..h
    })
}

pub fn refusal(s: &tonic::Status) -> String {
    format!("refused {:?}: {}", s.code(), s.message())
}

/// One server's clients, and the answers of a story so far.
pub struct Story {
    pub kv: KvClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub lock: LockClient<Channel>,
    pub election: ElectionClient<Channel>,
    pub answers: Vec<String>,
}

impl Story {
    pub async fn new(server: &ServerProcess) -> Story {
        let channel = beacon_testkit::grpc_channel(&server.client_url()).await;
        Story {
            kv: KvClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            lock: LockClient::new(channel.clone()),
            election: ElectionClient::new(channel),
            answers: Vec::new(),
        }
    }

    pub fn note(&mut self, what: &str, answer: String) {
        self.answers.push(format!("{what}: {answer}"));
    }

    pub async fn grant(&mut self, id: i64, ttl: i64) {
        let granted = self.lease.lease_grant(LeaseGrantRequest { ttl, id }).await;
        let answer =
            granted.map_or_else(|s| refusal(&s), |r| format!("granted {}", r.get_ref().id));
        self.note("grant", answer);
    }

    pub async fn revoke(&mut self, id: i64) {
        let revoked = self.lease.lease_revoke(LeaseRevokeRequest { id }).await;
        let answer = revoked.map_or_else(
            |s| refusal(&s),
            |r| format!("{:?}", blank(r.into_inner().header)),
        );
        self.note("revoke", answer);
    }

    pub async fn put(&mut self, key: &str, value: &str) {
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
    pub async fn keys(&mut self, prefix: &str) {
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
    pub async fn until_key(&mut self, key: &str, present: bool) {
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

    pub async fn lock(&mut self, name: &str, lease: i64) {
        let answer = lock(self.lock.clone(), name, lease).await;
        self.note(&format!("lock {name} {lease:x}"), answer);
    }

    pub async fn unlock(&mut self, key: &str) {
        let unlocked = self.lock.unlock(UnlockRequest { key: key.into() }).await;
        let answer = unlocked.map_or_else(
            |s| refusal(&s),
            |r| format!("{:?}", blank(r.into_inner().header)),
        );
        self.note(&format!("unlock {key}"), answer);
    }

    pub async fn campaign(&mut self, name: &str, lease: i64, value: &str) -> Option<LeaderKey> {
        let (answer, leader) = campaign(self.election.clone(), name, lease, value).await;
        self.note(&format!("campaign {name} {lease:x}"), answer);
        leader
    }

    pub async fn proclaim(&mut self, leader: Option<LeaderKey>, value: &str) {
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

    pub async fn resign(&mut self, leader: Option<LeaderKey>) {
        let answer = match self.election.resign(ResignRequest { leader }).await {
            Ok(r) => format!("{:?}", blank(r.into_inner().header)),
            Err(s) => refusal(&s),
        };
        self.note("resign", answer);
    }

    pub async fn leader(&mut self, name: &str) {
        let request = LeaderRequest { name: name.into() };
        let answer = match self.election.leader(request).await {
            Ok(r) => leader_answer(r.into_inner()),
            Err(s) => refusal(&s),
        };
        self.note(&format!("leader {name}"), answer);
    }

    /// Notes what a lease the server granted for a call without one is like, and
    /// whether `key` is its one key: its id is the server's own, its TTL etcd's.
    pub async fn session_lease(&mut self, what: &str, lease: i64, key: &str) {
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
    pub async fn created(&mut self, key: &str) -> i64 {
        let range = RangeRequest {
            key: key.into(),
            ..RangeRequest::default()
        };
        let found = self.kv.range(range).await.expect("range").into_inner();
        found.kvs.first().map_or(0, |kv| kv.create_revision)
    }

    /// Notes what an observer hears next.
    pub async fn observed(&mut self, observer: &mut mpsc::Receiver<String>, what: &str) {
        let answer = tokio::time::timeout(DEADLINE, observer.recv())
            .await
            .unwrap_or_else(|_| panic!("observed nothing for {what}"))
            .unwrap_or_else(|| "the stream ended".into());
        self.note(&format!("observed {what}"), answer);
    }

    /// Waits for a call on its own task to answer.
    pub async fn answered(&mut self, what: &str, call: JoinHandle<String>) {
        let answer = tokio::time::timeout(DEADLINE, call)
            .await
            .unwrap_or_else(|_| panic!("{what} never answered"))
            .expect("the call's task");
        self.note(what, answer);
    }

    /// Notes that a call on its own task has not answered.
    pub async fn still_waiting(&mut self, what: &str, call: &mut JoinHandle<String>) {
        let early = tokio::time::timeout(STILL_WAITING, &mut *call).await;
        let answer = match early {
            Ok(answer) => format!("answered early: {answer:?}"),
            Err(_) => "still waiting".into(),
        };
        self.note(what, answer);
    }
}

pub async fn lock(mut client: LockClient<Channel>, name: &str, lease: i64) -> String {
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

pub async fn campaign(
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

pub fn leader_answer(r: LeaderResponse) -> String {
    format!("{:?} {:?}", blank(r.header), r.kv)
}

/// An observer of election `name` on a task of its own, which hands on what it hears.
/// etcd sends an Observe call's headers with its first leader, so even opening the
/// call waits for one.
pub fn observe(story: &Story, name: &'static str) -> mpsc::Receiver<String> {
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

/// An Observe call on a task of its own that answers once the call is open (its
/// headers came), with what the opening brought.
pub fn spawn_observe_opening(story: &Story, name: &'static str) -> JoinHandle<String> {
    let mut client = story.election.clone();
    tokio::spawn(async move {
        let request = LeaderRequest { name: name.into() };
        match client.observe(request).await {
            Ok(_) => "opened".into(),
            Err(s) => refusal(&s),
        }
    })
}

pub fn spawn_lock(story: &Story, name: &'static str, lease: i64) -> JoinHandle<String> {
    tokio::spawn(lock(story.lock.clone(), name, lease))
}

pub fn spawn_campaign(
    story: &Story,
    name: &'static str,
    lease: i64,
    value: &'static str,
) -> JoinHandle<String> {
    let client = story.election.clone();
    tokio::spawn(async move { campaign(client, name, lease, value).await.0 })
}
