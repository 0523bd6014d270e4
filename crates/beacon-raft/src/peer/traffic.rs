//! The bytes of peer messages, by peer, for etcd's
//! `etcd_network_peer_sent_bytes_total{To}` and `etcd_network_peer_received_bytes_total{From}`.
//!
//! etcd's rafthttp counts the bytes of every Raft message it writes to or reads from a
//! peer (stream, pipeline and snapshot alike). Beacon's Raft messages are HTTP
//! exchanges, so a member counts both halves of each: as the sender of a message, its
//! body as sent to the peer and the answer's body as received from it; as the
//! receiver, the message's body as received from its sender (counted only once the
//! sender is known to be a member, `guard`, so that no stranger adds a series) and the
//! answer's as sent to it. Bodies only, as etcd counts messages and not their HTTP
//! framing; probes, member lists and forwarded proposals are not Raft messages and are
//! not counted. Process-wide, as Prometheus collectors are; a peer appears with its
//! first message.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::types::NodeId;

/// Bytes sent to and received from each peer.
static SENT: Mutex<BTreeMap<NodeId, u64>> = Mutex::new(BTreeMap::new());
static RECEIVED: Mutex<BTreeMap<NodeId, u64>> = Mutex::new(BTreeMap::new());

fn add(counters: &Mutex<BTreeMap<NodeId, u64>>, peer: NodeId, bytes: usize) {
    let mut counters = counters.lock().unwrap_or_else(|p| p.into_inner());
    let count = counters.entry(peer).or_default();
    *count = count.saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
}

fn read(counters: &Mutex<BTreeMap<NodeId, u64>>) -> Vec<(NodeId, u64)> {
    let counters = counters.lock().unwrap_or_else(|p| p.into_inner());
    counters.iter().map(|(id, n)| (*id, *n)).collect()
}

/// `bytes` of a message or answer went to `peer`.
pub(crate) fn sent(peer: NodeId, bytes: usize) {
    add(&SENT, peer, bytes);
}

/// `bytes` of a message or answer came from `peer`.
pub(crate) fn received(peer: NodeId, bytes: usize) {
    add(&RECEIVED, peer, bytes);
}

/// The bytes sent to each peer so far, by member id.
pub fn sent_bytes() -> Vec<(NodeId, u64)> {
    read(&SENT)
}

/// The bytes received from each peer so far, by member id.
pub fn received_bytes() -> Vec<(NodeId, u64)> {
    read(&RECEIVED)
}
