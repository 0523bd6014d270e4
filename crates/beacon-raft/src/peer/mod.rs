//! The peer transport: openraft's messages between members, as HTTP/1.1 requests on
//! the members' peer URLs (`--listen-peer-urls`), plus proposals a follower forwards to
//! the leader.
//!
//! Every message is one POST: JSON for the small ones; the snapshot's bytes as the
//! body itself, with its meta and the sender's vote in headers, so that neither side
//! holds it twice. Bodies are bounded (`*_BYTES_MAX`), every call has a timeout, and a
//! peer that cannot be reached is reported `Unreachable`, which makes openraft back off
//! and retry.

mod client;
mod server;
mod stats;

pub use client::{discovery_client, fetch_members, NetworkFactory};
pub(crate) use client::{forward_member_change, forward_proposal, notify_removed};
pub use server::{router, ListedMember};
pub use stats::{FollowerStats, PeerStats};

use std::time::Duration;

use beacon_store::Applied;
use serde::{Deserialize, Serialize};

use crate::error::ProposeError;
use crate::node::Proposed;

/// The peer API's paths.
pub(crate) const APPEND_PATH: &str = "/raft/append";
pub(crate) const VOTE_PATH: &str = "/raft/vote";
pub(crate) const PRE_VOTE_PATH: &str = "/raft/pre-vote";
pub(crate) const SNAPSHOT_PATH: &str = "/raft/snapshot";
pub(crate) const TRANSFER_LEADER_PATH: &str = "/raft/transfer-leader";
pub(crate) const PROPOSE_PATH: &str = "/raft/propose";
pub(crate) const MEMBERS_PATH: &str = "/raft/members";
pub(crate) const REMOVED_PATH: &str = "/raft/removed";
/// etcd's peer handler path for the member list, which a joining member reads.
pub const MEMBER_LIST_PATH: &str = "/members";

/// Headers of a snapshot request: the sender's vote and the snapshot's meta, as JSON.
pub(crate) const VOTE_HEADER: &str = "x-beacon-vote";
pub(crate) const SNAPSHOT_META_HEADER: &str = "x-beacon-snapshot-meta";
/// The sender's member id in lower-case hex, on every peer request (etcd's rafthttp
/// sends the same header).
pub const SERVER_FROM_HEADER: &str = "x-server-from";

/// The largest append or proposal body accepted. An entry holds at most one request,
/// itself bounded by etcd's 10 MiB form limit, and openraft sends at most
/// `max_payload_entries` entries per append (set to 64 in `node.rs`).
pub const MESSAGE_BYTES_MAX: usize = 1 << 30;
/// The largest snapshot accepted: etcd's default backend quota (2 GiB) is the most a
/// member is expected to hold.
pub const SNAPSHOT_BYTES_MAX: usize = 2 << 30;

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
