//! The receiving side: an axum router for the peer listener, handing each message to
//! the local openraft instance once its sender is known to be a member (`guard`), its
//! body was read within its bound (`body`) and the message itself names the same
//! sender.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::Router;
use beacon_store::Command;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::body::read_limited;
use super::guard::{same_sender, sender, Refused};
use super::listener::ConnectionEnd;
use super::local::LocalMember;
use super::reply::{answer, answer_to};
use super::{
    append_bytes_max, proposal_body_bytes_max, APPEND_PATH, MEMBERS_PATH, MEMBER_LIST_PATH,
    PRE_VOTE_PATH, PROPOSE_BATCH_PATH, PROPOSE_PATH, READ_INDEX_PATH, REMOVED_PATH,
    SMALL_MESSAGE_BYTES_MAX, SNAPSHOT_PATH, TRANSFER_LEADER_PATH, VOTE_PATH,
};
use super::{ForwardAnswer, FORWARD_BATCH_COMMANDS_MAX};
use crate::types::{MemberChange, NodeId, TypeConfig};

/// The routes a member serves on its peer URLs, each handing what it accepted to
/// `local`.
pub fn router<L: LocalMember>(local: L) -> Router {
    Router::new()
        .route(APPEND_PATH, post(append::<L>))
        .route(VOTE_PATH, post(vote::<L>))
        .route(PRE_VOTE_PATH, post(pre_vote::<L>))
        .route(TRANSFER_LEADER_PATH, post(transfer_leader::<L>))
        .route(PROPOSE_PATH, post(propose::<L>))
        .route(PROPOSE_BATCH_PATH, post(propose_batch::<L>))
        .route(MEMBERS_PATH, post(change_members::<L>))
        .route(READ_INDEX_PATH, post(read_index::<L>))
        .route(REMOVED_PATH, post(removed::<L>))
        .route(SNAPSHOT_PATH, post(super::snapshot_receive::snapshot::<L>))
        .route(MEMBER_LIST_PATH, get(member_list::<L>))
        .route(super::HASH_KV_PATH, post(hash_kv::<L>))
        .route(super::probe::PROBING_PATH, get(probing))
        .with_state(local)
}

/// A probe's answer: only its round trip matters. Unguarded, as etcd's: it tells
/// nothing and changes nothing.
async fn probing() -> StatusCode {
    StatusCode::OK
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refused> {
    serde_json::from_slice(body).map_err(|e| Refused::bad_request(format!("bad message: {e}\n")))
}

/// The sender, checked, and the message, read within `limit` and decoded.
async fn accept<T: DeserializeOwned>(
    node: &impl LocalMember,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(NodeId, T), Refused> {
    let (from, bytes) = read_from_member(node, headers, body, limit).await?;
    Ok((from, decode(&bytes)?))
}

/// [`accept`] for a Raft message, whose bytes count as received from its sender
/// (`traffic`).
async fn accept_message<T: DeserializeOwned>(
    node: &impl LocalMember,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(NodeId, T), Refused> {
    let (from, bytes) = read_from_member(node, headers, body, limit).await?;
    super::traffic::received(from, bytes.len());
    Ok((from, decode(&bytes)?))
}

/// The sender, checked, and the body, read within `limit`.
async fn read_from_member(
    node: &impl LocalMember,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(NodeId, bytes::Bytes), Refused> {
    let from = sender(node, headers)?;
    Ok((from, read_limited(headers, body, limit).await?))
}

/// Unwraps a handler's early answer.
macro_rules! or_answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(refused) => return refused.into_response(),
        }
    };
}

async fn append<L: LocalMember>(
    State(node): State<L>,
    end: Option<Extension<ConnectionEnd>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = append_bytes_max(node.proposal_bytes_max());
    let (from, rpc): (_, AppendEntriesRequest<TypeConfig>) =
        or_answer!(accept_message(&node, &headers, body, limit).await);
    or_answer!(same_sender(&node, from, &rpc.vote));
    let reply = node.append(rpc).await;
    // When the leader's connection closes, the leader may have died.
    if let (true, Some(Extension(end))) = (super::local::from_leader(&reply), end) {
        end.on_close_once(|| node.on_leader_connection_closed());
    }
    answer_to(from, reply)
}

async fn vote<L: LocalMember>(State(node): State<L>, headers: HeaderMap, body: Body) -> Response {
    let (from, rpc): (_, VoteRequest<TypeConfig>) =
        or_answer!(accept_message(&node, &headers, body, SMALL_MESSAGE_BYTES_MAX).await);
    or_answer!(same_sender(&node, from, &rpc.vote));
    answer_to(from, node.vote(rpc).await)
}

async fn pre_vote<L: LocalMember>(
    State(node): State<L>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (from, rpc): (_, VoteRequest<TypeConfig>) =
        or_answer!(accept_message(&node, &headers, body, SMALL_MESSAGE_BYTES_MAX).await);
    or_answer!(same_sender(&node, from, &rpc.vote));
    answer_to(from, node.pre_vote(rpc).await)
}

async fn transfer_leader<L: LocalMember>(
    State(node): State<L>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (from, req): (_, TransferLeaderRequest<TypeConfig>) =
        or_answer!(accept_message(&node, &headers, body, SMALL_MESSAGE_BYTES_MAX).await);
    or_answer!(same_sender(&node, from, req.from_leader()));
    answer_to(from, node.transfer_leader(req).await)
}

/// Why a forwarded command is refused before it reaches Raft: a peer may forward what
/// a client could have sent to this member, and nothing else.
fn refuse_command(cmd: &Command, bytes_max: usize) -> Option<String> {
    match cmd {
        // Time enters the store only from the leader's own expiry ticker; a forged
        // `Sync` far in the future would expire every key with a TTL.
        Command::Sync { .. } => {
            Some("a Sync is proposed by the leader itself, never forwarded\n".into())
        }
        // The client port refuses a body over its limit; value and prevValue both came
        // in that body, and the key in the URL is never longer than a body either.
        Command::Keys(k)
            if k.value.len() + k.prev_value.len() > bytes_max || k.path.len() > bytes_max =>
        {
            Some(format!("request larger than {bytes_max} bytes\n"))
        }
        Command::Keys(_) => None,
        // The gRPC port refuses a message over its limit.
        Command::V3(v3) if v3.0.len() > bytes_max => Some(format!(
            "request larger than {bytes_max} bytes
"
        )),
        Command::V3(_) => None,
        // Built by the client port's auth handlers from a body under its limit.
        Command::Auth(_) => None,
    }
}

/// A follower's forwarded proposal. The answer is always 200 with a `Result`, so that
/// the follower can tell "not the leader any more" from a broken call.
async fn propose<L: LocalMember>(
    State(node): State<L>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes_max = node.proposal_bytes_max();
    let limit = proposal_body_bytes_max(bytes_max);
    let (_, cmd): (_, Command) = or_answer!(accept(&node, &headers, body, limit).await);
    if let Some(why) = refuse_command(&cmd, bytes_max) {
        return Refused::bad_request(why).into_response();
    }
    answer(Ok::<_, std::convert::Infallible>(ForwardAnswer::new(
        node.propose_here(cmd).await,
    )))
}

/// A follower's batch of forwarded proposals (`peer::forward`), answered with one
/// answer per command, in order, in one 200. The same trust as a single proposal: the
/// sender is checked before the body is read; the body is bounded by what one append
/// may carry (a batch holds at most an append's number of commands, each at most a
/// single proposal), and a batch that holds more commands, or any command the client
/// port could not have taken, is refused whole before anything reaches Raft.
async fn propose_batch<L: LocalMember>(
    State(node): State<L>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes_max = node.proposal_bytes_max();
    let limit = append_bytes_max(bytes_max);
    let (_, cmds): (_, Vec<Command>) = or_answer!(accept(&node, &headers, body, limit).await);
    if cmds.len() > FORWARD_BATCH_COMMANDS_MAX {
        return Refused::bad_request(format!(
            "more than {FORWARD_BATCH_COMMANDS_MAX} proposals in one batch\n"
        ))
        .into_response();
    }
    if let Some(why) = cmds.iter().find_map(|cmd| refuse_command(cmd, bytes_max)) {
        return Refused::bad_request(why).into_response();
    }
    // One submission to openraft, which appends the batch's entries in its order and
    // can put them in one append.
    let results = node.propose_many_here(cmds).await;
    let answers: Vec<ForwardAnswer> = results.into_iter().map(ForwardAnswer::new).collect();
    answer(Ok::<_, std::convert::Infallible>(answers))
}

/// A follower's forwarded membership change; answered like a forwarded proposal.
async fn change_members<L: LocalMember>(
    State(node): State<L>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (_, change): (_, MemberChange) =
        or_answer!(accept(&node, &headers, body, SMALL_MESSAGE_BYTES_MAX).await);
    answer(Ok::<_, std::convert::Infallible>(
        node.change_members_here(change).await,
    ))
}

/// A follower's request for the read index; the same trust as a forwarded proposal.
async fn read_index<L: LocalMember>(
    State(node): State<L>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (_, ()): (_, ()) = or_answer!(accept(&node, &headers, body, SMALL_MESSAGE_BYTES_MAX).await);
    answer(Ok::<_, std::convert::Infallible>(
        node.read_index_here().await,
    ))
}

/// A member's hash of its keyspace at a revision, as etcd's peer `/members/hashkv`
/// answers it (its `HashKVResponse`: the revision in the header).
#[derive(Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerHashKv {
    /// The member's current revision (the answer's header's, as etcd's).
    pub revision: i64,
    /// The revision the keyspace was compacted at.
    pub compact_revision: i64,
    /// etcd's HashKV: CRC-32C of the history up to `revision`.
    pub hash: u32,
}

impl PeerHashKv {
    /// `mvcc`'s hash at `revision` (0: the current one), or the keyspace's refusal in
    /// its words (a compacted or future revision).
    pub fn of(mvcc: &beacon_mvcc::Mvcc, revision: i64) -> Result<PeerHashKv, String> {
        let answer = mvcc.hash_kv(revision).map_err(|e| e.to_string())?;
        Ok(PeerHashKv {
            revision: answer.header.map_or(0, |h| h.revision),
            compact_revision: answer.compact_revision,
            hash: answer.hash,
        })
    }
}

/// The keyspace's hash at the revision asked for (0: the current one). As etcd's,
/// guarded by the cluster id alone: a member starting up asks before it is running,
/// and the answer changes nothing. A revision the keyspace cannot hash (compacted,
/// future) is a 400 with the keyspace's words, which the asker reads.
async fn hash_kv<L: LocalMember>(
    State(node): State<L>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ours = format!("{:x}", node.cluster_id());
    let theirs = headers
        .get(super::CLUSTER_ID_HEADER)
        .and_then(|v| v.to_str().ok());
    if theirs != Some(ours.as_str()) {
        return (StatusCode::PRECONDITION_FAILED, "clusterID mismatch\n").into_response();
    }
    let bytes = or_answer!(read_limited(&headers, body, SMALL_MESSAGE_BYTES_MAX).await);
    let asked: HashKvAsked = or_answer!(decode(&bytes));
    match node.hash_kv(asked.revision) {
        Ok(hash) => match serde_json::to_vec(&hash) {
            Ok(json) => ([("content-type", "application/json")], json).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        Err(refused) => (StatusCode::BAD_REQUEST, refused).into_response(),
    }
}

/// etcd's `HashKVRequest` as its peer handler reads it.
#[derive(serde::Deserialize)]
struct HashKvAsked {
    #[serde(default)]
    revision: i64,
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
async fn member_list<L: LocalMember>(State(node): State<L>) -> Response {
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

/// The leader's word that this member was removed. It is only a hint: the member
/// stops once the sender's own member list (read from the sender's peer URL as this
/// member's membership records it, not from the request) confirms it, so a forged
/// notice cannot stop a member.
async fn removed<L: LocalMember>(
    State(node): State<L>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (from, id): (_, NodeId) =
        or_answer!(accept(&node, &headers, body, SMALL_MESSAGE_BYTES_MAX).await);
    if id == node.id() {
        node.removal_notice(from);
    }
    answer(Ok::<_, std::convert::Infallible>(()))
}
