//! The peer transport: openraft's messages between members, as HTTP/1.1 requests on
//! the members' peer URLs (`--listen-peer-urls`), plus proposals a follower forwards to
//! the leader, in batches (`forward`).
//!
//! A layer below the node: the server hands what it accepts to the [`LocalMember`] it
//! was given, and the client's calls return this crate's own values and errors; the
//! node picks this transport and implements `LocalMember`.
//!
//! Every message is one POST: JSON for the small ones; a snapshot as the body itself,
//! in the checksummed snapshot-file format, with the sender's vote in a header. Every
//! message names its cluster (`X-Etcd-Cluster-ID`) and its sender (`X-Server-From`),
//! as etcd's rafthttp does, and the receiver refuses another cluster's or a
//! non-member's message before reading its body (`guard`). Bodies are bounded
//! (`*_BYTES_MAX`), every call and every connection has a timeout (`listener`), and a
//! peer that cannot be reached is reported `Unreachable`, which makes openraft back off
//! and retry.
//!
//! Appends, the one message sent all the time, go on a connection each replication
//! stream keeps for itself and polls in its own task (`direct`); the other messages
//! share a pool of keep-alive connections (`call`).
//!
//! Every member probes every other one every few seconds (`probe`), for the round-trip
//! figures etcd exports.
//!
//! Below it all, [`PeerNet`] opens the connections the client sends on and
//! [`PeerAccept`] yields those the server reads from: TCP in production, a simulated
//! network in `beacon-sim`, with the same HTTP code above either.

mod body;
pub(crate) mod call;
mod client;
pub(crate) mod coalesce;
pub(crate) mod direct;
mod forward;
mod guard;
mod listener;
mod local;
mod net;
pub(crate) mod probe;
mod proxy;
mod reply;
mod server;
mod snapshot_receive;
mod stats;
mod traffic;

pub use call::PeerHttp;
pub use client::{
    discovery_client, discovery_client_over, fetch_hash_kv, fetch_members, v2_request,
    NetworkFactory,
};
pub(crate) use client::{fetch_read_index, forward_member_change, notify_removed};
pub(crate) use forward::{Forwarder, FORWARD_BATCH_COMMANDS_MAX};
#[cfg(test)]
pub(crate) use listener::ConnectionEnd;
pub use listener::{serve_listener, serve_tls_listener};
pub(crate) use local::from_leader;
pub use local::LocalMember;
pub use net::{Connecting, PeerAccept, PeerIo, PeerNet, PeerStream, TcpNet, TlsNet};
pub use probe::{round_trips, ROUND_TRIP_BOUNDS_SECONDS};
pub use proxy::{HttpProxy, ProxyNet};
pub use server::{router, ListedMember, PeerHashKv};
pub use stats::{FollowerStats, PeerStats};
pub use traffic::{received_bytes, sent_bytes};

use std::time::Duration;

use beacon_store::Applied;
use serde::{Deserialize, Serialize};

use crate::config::APPEND_ENTRIES_MAX;
use crate::error::ProposeError;
use crate::types::Proposed;

/// The peer API's paths.
pub(crate) const APPEND_PATH: &str = "/raft/append";
pub(crate) const VOTE_PATH: &str = "/raft/vote";
pub(crate) const PRE_VOTE_PATH: &str = "/raft/pre-vote";
pub(crate) const SNAPSHOT_PATH: &str = "/raft/snapshot";
pub(crate) const TRANSFER_LEADER_PATH: &str = "/raft/transfer-leader";
pub(crate) const PROPOSE_PATH: &str = "/raft/propose";
/// A batch of forwarded proposals (`forward`); a leader on an older build has only
/// [`PROPOSE_PATH`].
pub(crate) const PROPOSE_BATCH_PATH: &str = "/raft/propose-batch";
pub(crate) const MEMBERS_PATH: &str = "/raft/members";
pub(crate) const REMOVED_PATH: &str = "/raft/removed";
/// A follower's request for the leader's read index (a linearizable read there).
pub(crate) const READ_INDEX_PATH: &str = "/raft/read-index";
/// etcd's peer handler path for the member list, which a joining member reads.
pub const MEMBER_LIST_PATH: &str = "/members";
/// etcd's peer handler path for a member's HashKV, which the corruption checks read.
pub const HASH_KV_PATH: &str = "/members/hashkv";

/// Header of a snapshot request: the sender's vote, as JSON.
pub(crate) const VOTE_HEADER: &str = "x-beacon-vote";
/// The sender's member id in lower-case hex, on every peer request (etcd's rafthttp
/// sends the same header).
pub const SERVER_FROM_HEADER: &str = "x-server-from";
/// The cluster id in lower-case hex, on every peer request and answer, as etcd's
/// rafthttp sends it; a request naming another cluster is refused with 412.
pub const CLUSTER_ID_HEADER: &str = "x-etcd-cluster-id";

/// The largest body of a small message (vote, pre-vote, leadership transfer, member
/// change, removal notice): etcd's rafthttp reads at most 64 KiB of a pipeline message
/// (`connReadLimitByte`), and ours are a few hundred bytes of JSON.
pub(crate) const SMALL_MESSAGE_BYTES_MAX: usize = 64 << 10;

/// How many JSON bytes one value byte may take at most: a control character is
/// escaped as `\u00XX`, six bytes.
const JSON_BYTES_PER_VALUE_BYTE_MAX: usize = 6;

/// The largest forwarded proposal (one command as JSON) for a given limit on the
/// request's value bytes (the client port's body limit, `RaftConfig::proposal_bytes_max`):
/// every value byte escaped, plus room for the other fields.
pub(crate) fn proposal_body_bytes_max(proposal_bytes_max: usize) -> usize {
    proposal_bytes_max
        .saturating_mul(JSON_BYTES_PER_VALUE_BYTE_MAX)
        .saturating_add(SMALL_MESSAGE_BYTES_MAX)
}

/// The largest append body: [`APPEND_ENTRIES_MAX`] entries, each at most one proposal
/// (see [`proposal_body_bytes_max`]). That is what a legitimate leader may send; the
/// sender is authenticated by its headers before a byte of the body is read.
pub(crate) fn append_bytes_max(proposal_bytes_max: usize) -> usize {
    proposal_body_bytes_max(proposal_bytes_max).saturating_mul(APPEND_ENTRIES_MAX as usize)
}

/// The largest snapshot accepted: etcd's default backend quota (2 GiB) is the most a
/// member is expected to hold. The body is streamed to a file, never held in memory
/// whole before it is verified.
pub const SNAPSHOT_BYTES_MAX: u64 = 2 << 30;

/// How long a peer connection may sit idle between requests (or take to send a
/// request head) before it is closed: etcd 3.4 closes an idle peer connection after
/// 10 s (measured on 3.4.23; its peer listener sets 5 s read deadlines).
pub const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may go without a byte arriving: etcd's `ConnReadTimeout`
/// (5 s) on every read of a peer connection.
pub(crate) const PEER_BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How many peer connections are served at once. A member keeps a few per peer (one
/// replication stream, votes, forwarded proposals in flight), so a few hundred members'
/// worth; beyond it new connections wait in the kernel's accept queue, so a flood of
/// them can neither exhaust descriptors nor starve the client port (etcd has no cap of
/// its own and relies on its timeouts).
pub const PEER_CONNECTIONS_MAX: usize = 1024;
/// How long a sender keeps an idle pooled connection: well under the receiver's
/// [`PEER_IDLE_TIMEOUT`], so that a request is never sent on a connection the receiver
/// is just closing.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for a TCP connection to a peer.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a forwarded proposal may take, end to end; the client request that caused
/// it has its own, shorter deadline.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// The leader's answer to a forwarded proposal. An event's `etcd_index` (the store's
/// index when it happened, sent as `X-Etcd-Index`) is not part of its wire JSON, so it
/// travels beside it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ForwardAnswer {
    result: Result<Proposed, ProposeError>,
    event_etcd_index: Option<u64>,
}

impl ForwardAnswer {
    pub(crate) fn new(result: Result<Proposed, ProposeError>) -> ForwardAnswer {
        let event_etcd_index = match &result {
            Ok(Proposed {
                applied: Applied::Keys(Ok(event)),
                ..
            }) => Some(event.etcd_index),
            _ => None,
        };
        ForwardAnswer {
            result,
            event_etcd_index,
        }
    }

    pub(crate) fn into_result(self) -> Result<Proposed, ProposeError> {
        let mut result = self.result;
        if let (
            Ok(Proposed {
                applied: Applied::Keys(Ok(event)),
                ..
            }),
            Some(index),
        ) = (&mut result, self.event_etcd_index)
        {
            event.etcd_index = index;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_api::{Action, Event};

    #[test]
    fn a_forwarded_event_keeps_its_etcd_index() {
        let event = Event {
            action: Action::Set,
            node: None,
            prev_node: None,
            etcd_index: 42,
            refresh: false,
        };
        let proposed = Proposed {
            applied: Applied::Keys(Ok(event)),
            raft_index: 7,
            raft_term: 2,
        };
        let json = serde_json::to_vec(&ForwardAnswer::new(Ok(proposed))).unwrap();
        let back: ForwardAnswer = serde_json::from_slice(&json).unwrap();
        match back.into_result().unwrap().applied {
            Applied::Keys(Ok(event)) => assert_eq!(event.etcd_index, 42),
            other => panic!("{other:?}"),
        }
    }
}
