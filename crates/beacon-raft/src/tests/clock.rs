//! Time and randomness inside a real node: a seeded node (the simulation's way) opens,
//! leads and applies; the leader's expiry ticker runs on tokio's clock and proposes
//! the time of the node's clock seam, so a paused runtime and a set clock expire a TTL
//! key without waiting on the wall.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use beacon_store::{Command, KeysRequest, Method};

use super::disk::StdDiskWith;
use super::{config, put};
use crate::expiry::EXPIRY_TICK;
use crate::{Clock, RaftNode, Seams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_seed_leads_and_applies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut seams = Seams::production();
    seams.rng_seed = Some(7);
    let node = RaftNode::open_with(config(tmp.path()), seams)
        .await
        .expect("open");
    assert_eq!(node.status().leader_id, Some(1));
    node.propose(put("/a", "1")).await.expect("propose");
    node.shutdown().await.expect("shutdown");
}

/// A wall clock that says what the test sets.
struct SetClock(AtomicI64);

impl Clock for SetClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether `key` is in the node's store.
fn holds(node: &RaftNode, key: &str) -> bool {
    let store = node.store().read().expect("store lock");
    store.get(key, false, false, node.now_ns()).is_ok()
}

/// How long, in real time, the test waits for the node to act.
const REAL_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(20);

#[tokio::test(start_paused = true)]
async fn the_leader_expires_a_ttl_key_when_its_clock_passes_the_expiration() {
    const START_NS: i64 = 1_700_000_000_000_000_000;
    const TTL_NS: i64 = 10_000_000_000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(SetClock(AtomicI64::new(START_NS)));
    let mut seams = Seams::production();
    seams.clock = clock.clone();
    seams.disk = Arc::new(StdDiskWith {
        workers_as_tasks: true,
        ..StdDiskWith::default()
    });
    let node = RaftNode::open_with(config(tmp.path()), seams)
        .await
        .expect("open");
    assert_eq!(node.now_ns(), START_NS, "the node reads its clock seam");

    // Stamped as the server stamps a `ttl=10` PUT.
    let mut req = KeysRequest::new(Method::Put, "/ttl", node.now_ns());
    req.value = "v".into();
    req.expiration_ns = Some(node.now_ns() + TTL_NS);
    node.propose(Command::Keys(req)).await.expect("put");

    // Ticks go by on tokio's (paused) clock, but the wall clock stands still: the
    // leader proposes its time, which expires nothing. The log is a real disk, whose
    // syncs take real time while the paused clock jumps ahead: the deadlines are real.
    let before = node.status().applied_index;
    let deadline = std::time::Instant::now() + REAL_WAIT_MAX;
    while node.status().applied_index == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the leader proposed no sync while a key had a TTL"
        );
        tokio::time::sleep(EXPIRY_TICK / 5).await;
    }
    assert!(holds(&node, "/ttl"), "expired before its time");

    // The wall clock passes the expiration: a later tick expires the key.
    clock.0.store(START_NS + TTL_NS + 1, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + REAL_WAIT_MAX;
    while holds(&node, "/ttl") {
        assert!(
            std::time::Instant::now() < deadline,
            "the key outlived its expiration"
        );
        tokio::time::sleep(EXPIRY_TICK / 5).await;
    }

    // With no TTL key left the leader proposes nothing more.
    let settled = node.status().applied_index;
    tokio::time::sleep(EXPIRY_TICK * 4).await;
    assert_eq!(
        node.status().applied_index,
        settled,
        "a sync without TTL keys"
    );
    node.shutdown().await.expect("shutdown");
}
