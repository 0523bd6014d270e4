//! The real node's peer transport under turmoil: two `RaftNode`s on two simulated
//! hosts, whose peer clients dial turmoil's TCP (`SimNet`) and whose peer servers
//! (production's router and accept loop) accept from turmoil's listener
//! (`SimListener`). A write on either member is committed by both, one of them
//! forwarded to the leader, and a member list is read across the network.
//!
//! The node still opens fjall on the real disk (the disk seam is another change), so
//! this proves the transport, not a deterministic run.

use std::collections::BTreeMap;
use std::time::Duration;

use beacon_raft::peer::{discovery_client_over, fetch_members, router, serve_listener};
use beacon_raft::{Member, RaftConfig, RaftNode, Seams};
use beacon_sim::net::{SimListener, SimNet};
use beacon_store::{Command, KeysRequest, Method};

const PEER_PORT: u16 = 2380;
const CLUSTER_ID: u64 = 0xc3;

fn url(id: u64) -> String {
    format!("http://m{id}:{PEER_PORT}")
}

fn put(key: &str) -> Command {
    let mut req = KeysRequest::new(Method::Put, key, 1_000);
    req.value = "v".into();
    Command::Keys(req)
}

/// Opens member `id` of the two-member cluster in `dir` over turmoil's network and
/// serves its peer API on this host.
async fn member(id: u64, dir: &std::path::Path) -> RaftNode {
    let mut cfg = RaftConfig::new(dir, id, url(id));
    cfg.cluster_id = CLUSTER_ID;
    cfg.initial_members =
        BTreeMap::from_iter([1, 2].map(|id| (id, Member::with_peer_urls(vec![url(id)]))));
    let mut seams = Seams::production();
    seams.net = std::sync::Arc::new(SimNet);
    let node = RaftNode::open_with(cfg, seams).await.expect("open");
    let listener = SimListener::bind(PEER_PORT).await.expect("bind");
    tokio::spawn(serve_listener(listener, router(node.clone())));
    node
}

/// Proposes `key` on `node` until it is committed, within simulated time.
async fn write(node: &RaftNode, key: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match node.propose(put(key)).await {
            Ok(_) => return,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("{key}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{key} never committed: {e}"),
        }
    }
}

#[test]
fn two_real_nodes_replicate_over_turmoils_network() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let paths: Vec<_> = dirs.iter().map(|d| d.path().to_owned()).collect();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(120))
        .build();
    let dir2 = paths[1].clone();
    sim.host("m2", move || {
        let dir = dir2.clone();
        async move {
            let node = member(2, &dir).await;
            write(&node, "/from2").await;
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let dir1 = paths[0].clone();
    sim.client("m1", async move {
        let node = member(1, &dir1).await;
        write(&node, "/from1").await;
        let listed = fetch_members(
            &discovery_client_over(std::sync::Arc::new(SimNet)),
            &url(2),
            Duration::from_secs(5),
        )
        .await
        .expect("member list from m2");
        assert_eq!(listed.0, CLUSTER_ID);
        assert_eq!(listed.1.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
        // Both writes reached this member's store, whichever member took them.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while node
            .store()
            .read()
            .unwrap()
            .get("/from2", false, false, 0)
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "/from2 never arrived"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = node.status();
        eprintln!(
            "m1 after {:?} of simulated time: leader {:?}, applied {}",
            turmoil::elapsed(),
            status.leader_id,
            status.applied_index
        );
        node.shutdown().await.expect("shutdown");
        Ok(())
    });
    sim.run().expect("simulation");
}
