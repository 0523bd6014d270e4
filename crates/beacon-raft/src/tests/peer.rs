//! The peer router in process, on a loopback listener: who may send (etcd's 412, 404
//! and 410), which snapshots are installed and which refused, messages nested far
//! deeper than a decoder may recurse, and a seeded run of mutated messages that must
//! leave the node working.
//!
//! The node is member 1 of a two-member cluster whose member 2 never starts, so it
//! stays a follower and takes messages in member 2's name.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use openraft::{LogId, Membership, StoredMembership};

use crate::peer::{router, serve_listener};
use crate::snapshot_file::encode;
use crate::types::{Member, SnapshotMeta};
use crate::RaftNode;

const CLUSTER_ID: u64 = 0xc1;
const PEER: u64 = 2;

async fn follower(dir: &Path) -> (RaftNode, String) {
    let mut cfg = super::config(dir);
    cfg.cluster_id = CLUSTER_ID;
    cfg.initial_members = BTreeMap::from([
        (1, Member::with_peer_urls(vec!["http://127.0.0.1:1".into()])),
        (
            PEER,
            Member::with_peer_urls(vec!["http://127.0.0.1:2".into()]),
        ),
    ]);
    let node = RaftNode::open(cfg).await.expect("open");
    // The membership reaches the metrics, which the sender check reads, a moment later.
    node.raft()
        .wait(Some(Duration::from_secs(5)))
        .metrics(
            |m| m.membership_config.membership().nodes().count() == 2,
            "the membership in the metrics",
        )
        .await
        .expect("membership");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve_listener(listener, router(node.clone())));
    (node, base)
}

fn post(base: &str, path: &str, cluster: u64, from: u64) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .timeout(Duration::from_secs(10))
        .header("x-etcd-cluster-id", format!("{cluster:x}"))
        .header("x-server-from", format!("{from:x}"))
}

fn vote_json(term: u64) -> String {
    format!(r#"{{"leader_id":{{"term":{term},"node_id":{PEER}}},"committed":true}}"#)
}

fn pre_vote_body(term: u64) -> String {
    format!(r#"{{"vote":{},"last_log_id":null}}"#, vote_json(term))
}

/// A snapshot in member 2's name, at `index` of `term`, of an empty store, whose
/// membership holds `members`.
fn snapshot_body(term: u64, index: u64, members: &[u64]) -> Vec<u8> {
    let log_id = |index| {
        LogId::new(
            openraft::impls::leader_id_adv::LeaderId {
                term,
                node_id: PEER,
            },
            index,
        )
    };
    let nodes: BTreeMap<u64, Member> = members
        .iter()
        .map(|id| {
            (
                *id,
                Member::with_peer_urls(vec![format!("http://127.0.0.1:{id}")]),
            )
        })
        .collect();
    let membership =
        Membership::new(vec![members.iter().copied().collect()], nodes).expect("membership");
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(index)),
        last_membership: StoredMembership::new(Some(log_id(1)), membership),
    };
    encode(&meta, &beacon_store::Store::new().save())
}

async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.expect("answered").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_outside_the_cluster_are_refused_with_etcds_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, base) = follower(tmp.path()).await;
    let vote = pre_vote_body(1);
    let bare = reqwest::Client::new().post(format!("{base}/raft/pre-vote"));
    assert_eq!(status_of(bare.body(vote.clone())).await, 412);
    let other_cluster = post(&base, "/raft/pre-vote", CLUSTER_ID + 1, PEER);
    assert_eq!(status_of(other_cluster.body(vote.clone())).await, 412);
    let stranger = post(&base, "/raft/pre-vote", CLUSTER_ID, 7);
    assert_eq!(status_of(stranger.body(vote.clone())).await, 404);
    let itself = post(&base, "/raft/pre-vote", CLUSTER_ID, 1);
    assert_eq!(status_of(itself.body(vote.clone())).await, 404);
    // Member 2 may not speak for member 3.
    let other_name =
        r#"{"vote":{"leader_id":{"term":1,"node_id":3},"committed":false},"last_log_id":null}"#;
    let spoofed = post(&base, "/raft/pre-vote", CLUSTER_ID, PEER);
    assert_eq!(status_of(spoofed.body(other_name)).await, 400);
    let member = post(&base, "/raft/pre-vote", CLUSTER_ID, PEER);
    assert_eq!(status_of(member.body(vote)).await, 200);
    // Small messages are small: a vote of 1 MiB is refused before it is read. Its
    // headers alone get the answer (an HTTP client writing the body meanwhile may see
    // the connection close under it, a broken pipe, before it reads the 413).
    let host = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(host).await.expect("connect");
    let head = format!(
        "POST /raft/vote HTTP/1.1\r\nhost: {host}\r\nx-etcd-cluster-id: {CLUSTER_ID:x}\r\n\
         x-server-from: {PEER:x}\r\ncontent-length: {}\r\n\r\n",
        1 << 20
    );
    tokio::io::AsyncWriteExt::write_all(&mut conn, head.as_bytes())
        .await
        .expect("head");
    let mut answer = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut conn, &mut answer)
        .await
        .expect("answer");
    assert_eq!(&answer, b"HTTP/1.1 413");
    // Over TCP, answers carry Go's `Date` header, as etcd's peer port sends it.
    let dated = post(&base, "/raft/pre-vote", CLUSTER_ID, PEER)
        .body(pre_vote_body(1))
        .send()
        .await
        .expect("answered");
    assert!(dated.headers().contains_key("date"));
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_whole_consistent_snapshot_is_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, base) = follower(tmp.path()).await;
    let send = |body: Vec<u8>| {
        post(&base, "/raft/snapshot", CLUSTER_ID, PEER)
            .header("x-beacon-vote", vote_json(5))
            .body(body)
    };
    let good = snapshot_body(5, 10, &[1, PEER]);
    let mut flipped = good.clone();
    flipped[40] ^= 1;
    let refused = [
        b"0123456789abcdefghijkl".to_vec(),
        good[..good.len() - 1].to_vec(),
        [good.clone(), vec![0]].concat(),
        flipped,
        // A membership without this member, which its own membership holds.
        snapshot_body(5, 10, &[PEER]),
    ];
    for body in refused {
        assert_eq!(status_of(send(body)).await, 400);
    }
    let snap_dir = tmp.path().join("member/snap");
    assert_eq!(std::fs::read_dir(&snap_dir).unwrap().count(), 0);
    assert_eq!(status_of(send(good)).await, 200);
    assert_eq!(node.status().applied_index, 10);
    // Older than what was applied now: answered (a leader that lost track of this
    // member's progress moves on to appends), not installed.
    assert_eq!(status_of(send(snapshot_body(5, 8, &[1, PEER]))).await, 200);
    assert_eq!(node.status().applied_index, 10);
    let files: Vec<_> = std::fs::read_dir(&snap_dir)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, ["0000000000000005-000000000000000a.snap"]);
    node.shutdown().await.unwrap();
}

/// xorshift64: a small seeded generator, so a failure replays from its printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Runs of mutated messages per seed: enough to hit every path, bounded in time.
const MUTATED_MESSAGES: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_peer_messages_never_stop_the_node() {
    let seed = std::env::var("BEACON_PEER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    println!("seed {seed}; replay with BEACON_PEER_FUZZ_SEED={seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let (node, base) = follower(tmp.path()).await;
    let samples: Vec<(&str, Vec<u8>)> = vec![
        ("/raft/vote", pre_vote_body(1).into_bytes()),
        ("/raft/pre-vote", pre_vote_body(1).into_bytes()),
        (
            "/raft/append",
            format!(
                r#"{{"vote":{},"prev_log_id":null,"entries":[],"leader_commit":null}}"#,
                vote_json(1)
            )
            .into_bytes(),
        ),
        ("/raft/propose", br#"{"Sync":{"time_ns":1}}"#.to_vec()),
        (
            "/raft/propose-batch",
            br#"[{"Sync":{"time_ns":1}}]"#.to_vec(),
        ),
        ("/raft/members", br#"{"Remove":{"id":1}}"#.to_vec()),
        ("/raft/removed", b"1".to_vec()),
        ("/raft/snapshot", snapshot_body(1, 3, &[1, PEER])),
    ];
    for _ in 0..MUTATED_MESSAGES {
        let (path, sample) = &samples[rng.below(samples.len())];
        let mut body = sample.clone();
        match rng.below(4) {
            0 => body.truncate(rng.below(body.len() + 1)),
            1 => {
                for _ in 0..=rng.below(4) {
                    let i = rng.below(body.len());
                    body[i] ^= 1 << rng.below(8);
                }
            }
            2 => {
                let i = rng.below(body.len());
                body[i] = b"{}[]\",:0123456789-eE.tnf"[rng.below(24)];
            }
            _ => body = (0..rng.below(64)).map(|_| rng.below(256) as u8).collect(),
        }
        let answer = post(&base, path, CLUSTER_ID, PEER)
            .header("x-beacon-vote", vote_json(1))
            .body(body)
            .send()
            .await;
        let status = answer.expect("the peer port answers").status();
        assert!(
            !status.is_server_error() || status.as_u16() == 503,
            "{path}: {status}"
        );
    }
    // Still taking messages, and Raft still running.
    assert_eq!(
        status_of(post(&base, "/raft/pre-vote", CLUSTER_ID, PEER).body(pre_vote_body(1))).await,
        200
    );
    node.shutdown()
        .await
        .expect("Raft still runs and stops cleanly");
}

/// How deep the nested bodies go: far past serde_json's recursion limit (128), yet
/// within the small-message limit (64 KiB), so that the decoder, not the size check,
/// must refuse them.
const NESTING_DEPTH: usize = 60_000;

/// A snapshot file whose checksum holds but whose meta is `meta`, raw.
fn snapshot_with_raw_meta(meta: &[u8]) -> Vec<u8> {
    let data = beacon_store::Store::new().save();
    let mut file = b"BCNSNAP\0".to_vec();
    file.extend_from_slice(&1u32.to_be_bytes());
    file.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    file.extend_from_slice(&(data.len() as u64).to_be_bytes());
    file.extend_from_slice(meta);
    file.extend_from_slice(&data);
    let sum = xxhash_rust::xxh3::xxh3_64(&file);
    file.extend_from_slice(&sum.to_be_bytes());
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_messages_from_a_member_are_refused_by_the_decoder() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, base) = follower(tmp.path()).await;
    let arrays = "[".repeat(NESTING_DEPTH);
    let objects = r#"{"a":"#.repeat(NESTING_DEPTH / 5);
    // Every route decodes JSON from a member: each one gets both kinds of nesting.
    for path in [
        "/raft/append",
        "/raft/vote",
        "/raft/pre-vote",
        "/raft/transfer-leader",
        "/raft/propose",
        "/raft/propose-batch",
        "/raft/members",
        "/raft/removed",
    ] {
        for body in [&arrays, &objects] {
            let nested = post(&base, path, CLUSTER_ID, PEER).body(body.clone());
            assert_eq!(status_of(nested).await, 400, "{path}");
        }
    }
    // A snapshot's vote header, its meta (checksummed, so only decoding can refuse it)
    // and its store.
    let good = snapshot_body(5, 10, &[1, PEER]);
    let nested_vote = post(&base, "/raft/snapshot", CLUSTER_ID, PEER)
        .header("x-beacon-vote", "[".repeat(8 << 10))
        .body(good);
    assert_eq!(status_of(nested_vote).await, 400);
    for meta in [&arrays, &objects] {
        let nested_meta = post(&base, "/raft/snapshot", CLUSTER_ID, PEER)
            .header("x-beacon-vote", vote_json(5))
            .body(snapshot_with_raw_meta(meta.as_bytes()));
        assert_eq!(status_of(nested_meta).await, 400);
    }
    // Still taking messages, and Raft still running.
    assert_eq!(
        status_of(post(&base, "/raft/pre-vote", CLUSTER_ID, PEER).body(pre_vote_body(1))).await,
        200
    );
    node.shutdown()
        .await
        .expect("Raft still runs and stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_proposals_is_refused_whole_when_it_could_not_come_from_a_client() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, base) = follower(tmp.path()).await;
    let put = serde_json::to_string(&super::put("/k", "v")).unwrap();
    let put = put.as_str();
    let sync = r#"{"Sync":{"time_ns":1}}"#;
    let too_many = format!(
        "[{}]",
        vec![put; crate::peer::FORWARD_BATCH_COMMANDS_MAX + 1].join(",")
    );
    for (why, body) in [
        ("a Sync among puts", format!("[{put},{sync},{put}]")),
        ("more commands than a batch holds", too_many),
    ] {
        let batch = post(&base, "/raft/propose-batch", CLUSTER_ID, PEER).body(body);
        assert_eq!(status_of(batch).await, 400, "{why}");
    }
    // A stranger is refused before its body is read.
    let stranger = post(&base, "/raft/propose-batch", CLUSTER_ID, 7).body(format!("[{put}]"));
    assert_eq!(status_of(stranger).await, 404);
    node.shutdown().await.unwrap();
}
