//! The receiving side: an axum router for the peer listener, handing each message to
//! the local openraft instance.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ForwardAnswer;
use super::{
    APPEND_PATH, MEMBERS_PATH, MEMBER_LIST_PATH, MESSAGE_BYTES_MAX, PRE_VOTE_PATH, PROPOSE_PATH,
    REMOVED_PATH, SNAPSHOT_BYTES_MAX, SNAPSHOT_META_HEADER, SNAPSHOT_PATH, TRANSFER_LEADER_PATH,
    VOTE_HEADER, VOTE_PATH,
};
use crate::membership::{MembershipError, NOT_LEADER};
use crate::node::RaftNode;
use crate::types::{Snapshot, SnapshotMeta, Vote};

/// The routes a member serves on its peer URLs.
pub fn router(node: RaftNode) -> Router {
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(PRE_VOTE_PATH, post(pre_vote))
        .route(TRANSFER_LEADER_PATH, post(transfer_leader))
        .route(PROPOSE_PATH, post(propose))
        .route(MEMBERS_PATH, post(change_members))
        .route(REMOVED_PATH, post(removed))
        .route(MEMBER_LIST_PATH, get(member_list))
        .layer(DefaultBodyLimit::max(MESSAGE_BYTES_MAX))
        // Routed after the layer above, so that this one keeps its own, larger limit.
        .route(
            SNAPSHOT_PATH,
            post(snapshot).layer(DefaultBodyLimit::max(SNAPSHOT_BYTES_MAX)),
        )
        .with_state(node)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("bad message: {e}"))
}

fn bad_request(why: String) -> Response {
    (StatusCode::BAD_REQUEST, why).into_response()
}

fn answer<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Response {
    match result {
        Ok(value) => match serde_json::to_vec(&value) {
            Ok(json) => (StatusCode::OK, json).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        // The local Raft stopped or failed: the sender backs off and retries.
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// Decodes a JSON message, hands it to the local Raft, and answers with the result.
async fn relay<Req, T, E, Fut>(body: &[u8], call: impl FnOnce(Req) -> Fut) -> Response
where
    Req: DeserializeOwned,
    T: Serialize,
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    match decode(body) {
        Ok(request) => answer(call(request).await),
        Err(why) => bad_request(why),
    }
}

/// etcd's answer to a message from a removed member: 410 "removed member", which
/// makes the sender stop.
fn refuse_removed(node: &RaftNode, headers: &HeaderMap) -> Option<Response> {
    let from = headers.get(super::SERVER_FROM_HEADER)?.to_str().ok()?;
    let from = u64::from_str_radix(from, 16).ok()?;
    node.is_removed(from)
        .then(|| (StatusCode::GONE, "removed member\n").into_response())
}

async fn append(State(node): State<RaftNode>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = refuse_removed(&node, &headers) {
        return refused;
    }
    relay(&body, |rpc| node.raft_handle().append_entries(rpc)).await
}

async fn vote(State(node): State<RaftNode>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = refuse_removed(&node, &headers) {
        return refused;
    }
    relay(&body, |rpc| node.raft_handle().vote(rpc)).await
}

async fn pre_vote(State(node): State<RaftNode>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = refuse_removed(&node, &headers) {
        return refused;
    }
    relay(&body, |rpc| node.raft_handle().pre_vote(rpc)).await
}

async fn transfer_leader(State(node): State<RaftNode>, body: Bytes) -> Response {
    relay(&body, |req| node.raft_handle().handle_transfer_leader(req)).await
}

async fn snapshot(State(node): State<RaftNode>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes()).unwrap_or_default();
    let vote: Vote = match decode(header(VOTE_HEADER)) {
        Ok(v) => v,
        Err(why) => return bad_request(why),
    };
    let meta: SnapshotMeta = match decode(header(SNAPSHOT_META_HEADER)) {
        Ok(m) => m,
        Err(why) => return bad_request(why),
    };
    let snapshot = Snapshot {
        meta,
        // Uniquely owned after the body was collected, so this takes the buffer as is.
        snapshot: Vec::from(body),
    };
    answer(
        node.raft_handle()
            .install_full_snapshot(vote, snapshot)
            .await,
    )
}

/// A follower's forwarded proposal. The answer is always 200 with a `Result`, so that
/// the follower can tell "not the leader any more" from a broken call.
async fn propose(State(node): State<RaftNode>, body: Bytes) -> Response {
    relay(&body, |cmd| async move {
        Ok::<_, std::convert::Infallible>(ForwardAnswer::new(node.propose_here(cmd).await))
    })
    .await
}

/// A follower's forwarded membership change; answered like a forwarded proposal.
async fn change_members(State(node): State<RaftNode>, body: Bytes) -> Response {
    relay(&body, |change| async move {
        let deadline = std::time::Instant::now() + super::FORWARD_TIMEOUT;
        let result = if node.status().leader_id == Some(node.id()) {
            node.change_here(&change, deadline).await
        } else {
            Err(MembershipError::Other(NOT_LEADER.into()))
        };
        Ok::<_, std::convert::Infallible>(result)
    })
    .await
}

/// One member as etcd's peer `/members` lists it.
#[derive(Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    /// The member id (a JSON number, as etcd's peer API sends it).
    pub id: u64,
    /// Its peer URLs.
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    /// Its name, empty until it publishes it.
    pub name: String,
    /// Its client URLs, empty until it publishes them.
    #[serde(rename = "clientURLs")]
    pub client_urls: Vec<String>,
}

/// etcd's peer `GET /members`: the member list and the cluster id, which a member
/// started with `--initial-cluster-state existing` reads to learn who it is.
async fn member_list(State(node): State<RaftNode>) -> Response {
    let members: Vec<ListedMember> = node
        .members()
        .into_iter()
        .map(|m| ListedMember {
            id: m.id,
            peer_urls: m.member.peer_urls,
            name: m.member.name,
            client_urls: m.member.client_urls,
        })
        .collect();
    match serde_json::to_vec(&members) {
        Ok(json) => (
            StatusCode::OK,
            [
                ("content-type", "application/json".to_string()),
                ("x-etcd-cluster-id", format!("{:x}", node.cluster_id())),
            ],
            json,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The leader's word that this member was removed: it stops, as etcd's members stop
/// when their peers answer them "removed member".
async fn removed(State(node): State<RaftNode>, body: Bytes) -> Response {
    relay(&body, |id: crate::types::NodeId| async move {
        if id == node.id() {
            node.mark_removed();
        }
        Ok::<_, std::convert::Infallible>(())
    })
    .await
}
