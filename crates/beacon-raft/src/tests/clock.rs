//! Time and randomness inside a real node: a seeded node (the simulation's way) opens,
//! leads and applies.

use super::{config, put};
use crate::{RaftNode, Seams};

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
