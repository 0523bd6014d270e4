//! Who may send a peer message: a member of this cluster, named by the headers every
//! peer request carries, as etcd's rafthttp checks them. Refusals are etcd's own:
//! another cluster's id is 412 "cluster ID mismatch", a removed member's message is
//! 410 "removed member" (which makes the sender stop), and anyone else who is not a
//! member is 404 "error sender not found". The check reads headers only, so a refused
//! body is never read.
//!
//! Plain HTTP cannot stop a forger who knows the cluster id and a member id (both are
//! readable from `GET /members`); etcd has the same exposure without peer TLS.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use openraft::vote::RaftLeaderId;
use std::borrow::Cow;

use super::local::LocalMember;
use super::{CLUSTER_ID_HEADER, SERVER_FROM_HEADER};
use crate::types::{NodeId, Vote};

/// Why a peer request is refused before it reaches Raft: etcd's status and text, and
/// for a refused sender this cluster's id, which etcd's answers name.
#[derive(Debug)]
pub(super) struct Refused {
    status: StatusCode,
    text: Cow<'static, str>,
    cluster_id: Option<u64>,
}

impl Refused {
    pub(super) fn new(status: StatusCode, text: impl Into<Cow<'static, str>>) -> Refused {
        Refused {
            status,
            text: text.into(),
            cluster_id: None,
        }
    }

    pub(super) fn bad_request(text: impl Into<Cow<'static, str>>) -> Refused {
        Refused::new(StatusCode::BAD_REQUEST, text)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self.cluster_id {
            Some(id) => (
                self.status,
                [(CLUSTER_ID_HEADER, format!("{id:x}"))],
                self.text,
            )
                .into_response(),
            None => (self.status, self.text).into_response(),
        }
    }
}

/// A refusal of the sender, naming this cluster as etcd's answers do.
fn refuse(node: &impl LocalMember, status: StatusCode, text: &'static str) -> Refused {
    Refused {
        cluster_id: Some(node.cluster_id()),
        ..Refused::new(status, text)
    }
}

fn hex_header(headers: &HeaderMap, name: &str) -> Option<u64> {
    let value = headers.get(name)?.to_str().ok()?;
    u64::from_str_radix(value, 16).ok()
}

/// The sender of a peer request, once its headers show it is a member of this cluster;
/// otherwise the answer to send instead.
pub(super) fn sender(node: &impl LocalMember, headers: &HeaderMap) -> Result<NodeId, Refused> {
    if hex_header(headers, CLUSTER_ID_HEADER) != Some(node.cluster_id()) {
        return Err(refuse(
            node,
            StatusCode::PRECONDITION_FAILED,
            "cluster ID mismatch\n",
        ));
    }
    let not_found = || refuse(node, StatusCode::NOT_FOUND, "error sender not found\n");
    let from = hex_header(headers, SERVER_FROM_HEADER).ok_or_else(not_found)?;
    // A member never sends to itself: its own id in the header is a forgery.
    if from == node.id() {
        return Err(not_found());
    }
    if node.is_removed(from) {
        return Err(refuse(node, StatusCode::GONE, "removed member\n"));
    }
    if !node.knows_member(from) {
        return Err(not_found());
    }
    Ok(from)
}

/// Refuses a message whose own sender (a candidate's or a leader's vote) is not the
/// member its headers name: one member may not speak for another.
pub(super) fn same_sender(
    node: &impl LocalMember,
    from: NodeId,
    vote: &Vote,
) -> Result<(), Refused> {
    if *vote.leader_id().node_id() == from {
        Ok(())
    } else {
        Err(refuse(
            node,
            StatusCode::BAD_REQUEST,
            "the message's sender is not the member named by X-Server-From\n",
        ))
    }
}
