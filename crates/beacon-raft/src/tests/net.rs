//! The peer transport's seam: two real nodes whose only way to each other is an
//! in-memory network handed to them as `Seams::net` and to their peer servers as the
//! accept source. Their peer URLs name hosts no resolver knows, so whatever reaches the
//! other member went through the seam: the election, a proposal forwarded to the
//! leader, the member list. And the client's failures keep their meaning over it: a
//! refused connection was never sent, one that never opens times out as a connect.
//! An accept source may ask for answers without a `Date` header (the simulation's
//! does, since hyper reads it from the wall clock).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::{config, put};
use crate::peer::call::CallError;
use crate::peer::{
    discovery_client_over, fetch_members, router, serve_listener, Connecting, PeerAccept, PeerHttp,
    PeerNet, PeerStream,
};
use crate::{Member, ProposeError, RaftNode, Seams};

/// Bytes buffered in each direction of an in-memory connection.
const PIPE_BYTES: usize = 64 << 10;

type Incoming = (DuplexStream, SocketAddr);

/// A network of in-memory pipes: a connection to `host:port` reaches the accept
/// source registered for it, or is refused.
#[derive(Default)]
pub(super) struct MemoryNet {
    hosts: Mutex<HashMap<(String, u16), mpsc::UnboundedSender<Incoming>>>,
    connects: AtomicUsize,
}

impl MemoryNet {
    /// Registers `host:port` and returns what its server accepts from.
    pub(super) fn listen(&self, host: &str, port: u16) -> MemoryAccept {
        let (tx, rx) = mpsc::unbounded_channel();
        self.hosts
            .lock()
            .unwrap()
            .insert((host.to_owned(), port), tx);
        MemoryAccept(rx)
    }

    /// How many connections were asked for so far.
    pub(super) fn connects(&self) -> usize {
        self.connects.load(Ordering::Relaxed)
    }
}

impl PeerNet for MemoryNet {
    fn connect(&self, host: &str, port: u16) -> Connecting {
        self.connects.fetch_add(1, Ordering::Relaxed);
        let server = self
            .hosts
            .lock()
            .unwrap()
            .get(&(host.to_owned(), port))
            .cloned();
        Box::pin(async move {
            let server = server.ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
            let from = SocketAddr::from(([127, 0, 0, 1], 1));
            server
                .send((theirs, from))
                .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            Ok(Box::new(ours) as PeerStream)
        })
    }
}

pub(super) struct MemoryAccept(mpsc::UnboundedReceiver<Incoming>);

impl PeerAccept for MemoryAccept {
    type Io = DuplexStream;

    async fn accept(&mut self) -> io::Result<Incoming> {
        match self.0.recv().await {
            Some(incoming) => Ok(incoming),
            // The network is gone: nothing will ever connect again.
            None => std::future::pending().await,
        }
    }

    fn dates_answers(&self) -> bool {
        false
    }
}

/// A network whose connections never open.
struct BlackHole;

impl PeerNet for BlackHole {
    fn connect(&self, _: &str, _: u16) -> Connecting {
        Box::pin(std::future::pending())
    }
}

pub(super) fn url(id: u64) -> String {
    format!("http://member-{id}.invalid:{id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_talk_only_through_the_injected_network() {
    let net = Arc::new(MemoryNet::default());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let members: BTreeMap<u64, Member> = [1, 2]
        .into_iter()
        .map(|id| (id, Member::with_peer_urls(vec![url(id)])))
        .collect();
    let mut nodes = Vec::new();
    for (id, dir) in [1u64, 2].into_iter().zip(&dirs) {
        let mut cfg = config(dir.path());
        cfg.node_id = id;
        cfg.peer_url = url(id);
        cfg.cluster_id = 0xc2;
        cfg.initial_members = members.clone();
        let mut seams = Seams::production();
        seams.net = net.clone();
        let node = RaftNode::open_with(cfg, seams).await.expect("open");
        let accept = net.listen(&format!("member-{id}.invalid"), id as u16);
        tokio::spawn(serve_listener(accept, router(node.clone())));
        nodes.push(node);
    }

    // A write on either member is committed by both, so the messages flowed; on the
    // follower it was forwarded to the leader.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for (i, node) in nodes.iter().enumerate() {
        loop {
            match node.propose(put(&format!("/via{i}"), "v")).await {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "no leader yet");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("member {} never took a write: {e}", i + 1),
            }
        }
    }
    let leader = nodes[0].status().leader_id.expect("a leader");
    assert!(nodes.iter().all(|n| n.status().leader_id == Some(leader)));

    let listed = fetch_members(
        &discovery_client_over(net.clone()),
        &url(1),
        Duration::from_secs(5),
    )
    .await
    .expect("member list");
    assert_eq!(listed.0, 0xc2);
    assert_eq!(listed.1.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
    assert!(net.connects.load(Ordering::Relaxed) >= 2);
    // This accept source asked for answers without the wall clock's `Date`.
    let answer = discovery_client_over(net.clone())
        .get(&format!("{}/members", url(2)), Duration::from_secs(5))
        .await
        .expect("member list");
    assert!(answer.status.is_success());
    assert!(answer.headers.get(http::header::DATE).is_none());
    for node in &nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_refused_connection_was_never_sent() {
    let http = PeerHttp::new(Arc::new(MemoryNet::default()), http::HeaderMap::new());
    let (cmd, to) = (put("/k", "v"), url(9));
    // The forwarder looks for a new leader rather than failing the proposal.
    let forwarder = crate::peer::Forwarder::new(http.clone());
    let forwarded = forwarder.forward(&to, &cmd, Duration::from_secs(5));
    assert!(matches!(
        forwarded.await,
        Err(ProposeError::NotLeader { leader_id: None })
    ));
    let got = http.get(&url(9), Duration::from_secs(5)).await;
    assert!(
        matches!(
            got,
            Err(CallError::NotSent {
                timed_out: false,
                ..
            })
        ),
        "{:?}",
        got.err()
    );
}

// Real time (one connect timeout, 1 s): beacon-raft's tests run without tokio's
// test-util, so its clock cannot be paused here.
#[tokio::test]
async fn a_connection_that_never_opens_times_out_as_a_connect() {
    let http = PeerHttp::new(Arc::new(BlackHole), http::HeaderMap::new());
    let started = tokio::time::Instant::now();
    let got = http.get(&url(9), Duration::from_secs(30)).await;
    assert!(
        matches!(
            got,
            Err(CallError::NotSent {
                timed_out: true,
                ..
            })
        ),
        "{:?}",
        got.err()
    );
    let took = started.elapsed();
    assert!(
        took >= crate::peer::CONNECT_TIMEOUT && took < Duration::from_secs(10),
        "{took:?}"
    );
    // Within a shorter deadline for the whole call, the call times out first.
    let got = http.get(&url(9), Duration::from_millis(100)).await;
    assert!(matches!(got, Err(CallError::Timeout)), "{:?}", got.err());
}
