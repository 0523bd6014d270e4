//! The sending side: one `PeerClient` per peer, all sharing one pooled HTTP client
//! ([`PeerHttp`]) over the node's [`PeerNet`]; and the forwarders, which use the same pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RaftNetworkV2};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::call::{post_json, read_answer, CallError, PeerHttp};
use super::direct::Direct;
use super::net::{PeerNet, TcpNet};
use super::PeerStats;
use super::{
    APPEND_PATH, CLUSTER_ID_HEADER, CONNECT_TIMEOUT, PRE_VOTE_PATH, SERVER_FROM_HEADER,
    SNAPSHOT_PATH, TRANSFER_LEADER_PATH, VOTE_HEADER, VOTE_PATH,
};
use crate::error::MembershipError;
use crate::types::{MemberChange, Node, NodeId, Snapshot, SnapshotData, TypeConfig, Vote};

/// Builds a client per peer; the peer's address is its first peer URL.
#[derive(Clone)]
pub struct NetworkFactory {
    id: NodeId,
    http: PeerHttp,
    /// What the replication streams' own connections are opened over, and send.
    net: Arc<dyn PeerNet>,
    headers: Arc<http::HeaderMap>,
    stats: Arc<PeerStats>,
    /// Set when a peer answers that this member was removed.
    removed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl NetworkFactory {
    /// A factory for the outgoing messages of member `id` of cluster `cluster_id`, sent
    /// over connections `net` opens; `removed` is set when a peer answers that this
    /// member was removed.
    pub fn new(
        id: NodeId,
        cluster_id: u64,
        net: Arc<dyn PeerNet>,
        removed: Arc<tokio::sync::watch::Sender<bool>>,
    ) -> NetworkFactory {
        let headers = member_headers(id, cluster_id);
        NetworkFactory {
            id,
            http: PeerHttp::new(Arc::clone(&net), headers.clone()),
            net,
            headers: Arc::new(headers),
            stats: Arc::default(),
            removed,
        }
    }

    /// The pooled HTTP client its peer clients share; the node forwards proposals on it.
    pub(crate) fn http(&self) -> PeerHttp {
        self.http.clone()
    }

    /// The figures its clients record of their append-entries calls.
    pub fn stats(&self) -> Arc<PeerStats> {
        Arc::clone(&self.stats)
    }
}

impl std::fmt::Debug for NetworkFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkFactory")
            .field("id", &self.id)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// The headers on every request of member `id` of cluster `cluster_id`.
fn member_headers(id: NodeId, cluster_id: u64) -> http::HeaderMap {
    // Every request names its cluster and its sender, as etcd's rafthttp does: the
    // receiver refuses other clusters and non-members, and whoever sits between two
    // members (a fault-injecting proxy in tests) knows which link a request is on.
    let hex = |n: u64| {
        http::HeaderValue::from_str(&format!("{n:x}"))
            .expect("a hex number is a valid header value")
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(SERVER_FROM_HEADER, hex(id));
    headers.insert(CLUSTER_ID_HEADER, hex(cluster_id));
    headers
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        let base = node.peer_url().trim_end_matches('/').to_string();
        let direct = Direct::to(Arc::clone(&self.net), &base, Arc::clone(&self.headers));
        PeerClient {
            id: self.id,
            target,
            base,
            direct: DirectSlot(direct),
            http: self.http.counted_to(target),
            stats: Arc::clone(&self.stats),
            removed: Arc::clone(&self.removed),
        }
    }
}

/// A client for one peer.
#[derive(Debug, Clone)]
pub struct PeerClient {
    id: NodeId,
    target: NodeId,
    base: String,
    /// The connection its appends go on (`peer::direct`); `None` if the peer URL is
    /// not plain http.
    direct: DirectSlot,
    http: PeerHttp,
    stats: Arc<PeerStats>,
    removed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl PeerClient {
    /// One JSON message within openraft's deadline for it.
    async fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        action: RPCTypes,
        request: &Req,
        option: RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl();
        post_json(&self.http, &format!("{}{path}", self.base), request, ttl)
            .await
            .map_err(|e| self.rpc_error(action, ttl, e))
    }

    fn rpc_error(&self, action: RPCTypes, timeout: Duration, e: CallError) -> RPCError<TypeConfig> {
        match e {
            CallError::Timeout
            | CallError::NotSent {
                timed_out: true, ..
            } => RPCError::Timeout(Timeout {
                action,
                id: self.id,
                target: self.target,
                timeout,
            }),
            CallError::Unreachable(m)
            | CallError::NotSent {
                timed_out: false,
                message: m,
            } => RPCError::Unreachable(Unreachable::from_string(format!(
                "member {:x} at {}: {m}",
                self.target, self.base
            ))),
            CallError::Network(m) => RPCError::Network(NetworkError::from_string(format!(
                "member {:x} at {}: {m}",
                self.target, self.base
            ))),
            CallError::Removed => {
                if !self.removed.send_replace(true) {
                    tracing::warn!(
                        peer = %format!("{:x}", self.target),
                        "a peer says this member was removed from the cluster"
                    );
                }
                RPCError::Unreachable(Unreachable::from_string(format!(
                    "member {:x} refuses this removed member",
                    self.target
                )))
            }
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    /// openraft's one-at-a-time stream, except that a commit-only append travels with
    /// the append after it when that one follows soon (`peer::coalesce`).
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, super::coalesce::Item>, RPCError<TypeConfig>>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        super::coalesce::stream_append(self, input, option, super::coalesce::COMMIT_HOLD)
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let started = tokio::time::Instant::now();
        // On the stream's own connection; a peer URL that is not plain http goes to the
        // pooled client, which refuses it as it refuses every other message.
        let result = match self.direct.0.as_ref() {
            Some(direct) => {
                let ttl = option.hard_ttl();
                let sent = match serde_json::to_vec(&rpc) {
                    Ok(body) => {
                        super::traffic::sent(self.target, body.len());
                        direct.post_json(APPEND_PATH, body, ttl).await
                    }
                    Err(e) => Err(CallError::Network(e.to_string())),
                };
                if let Ok(answer) = &sent {
                    super::traffic::received(self.target, answer.body.len());
                }
                sent.and_then(read_answer)
                    .map_err(|e| self.rpc_error(RPCTypes::AppendEntries, ttl, e))
            }
            _ => {
                self.rpc(APPEND_PATH, RPCTypes::AppendEntries, &rpc, option)
                    .await
            }
        };
        match &result {
            Ok(_) => self.stats.succeeded(self.target, started.elapsed()),
            Err(_) => self.stats.failed(self.target),
        }
        result
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(VOTE_PATH, RPCTypes::Vote, &rpc, option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(PRE_VOTE_PATH, RPCTypes::Vote, &rpc, option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(TRANSFER_LEADER_PATH, RPCTypes::TransferLeader, &req, option)
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let ttl = option.hard_ttl();
        let encode = |e: serde_json::Error| {
            StreamingError::Network(NetworkError::from_string(e.to_string()))
        };
        let vote_json = serde_json::to_string(&vote).map_err(encode)?;
        // The snapshot-file format: the receiver checks its length from the first bytes
        // and its checksum before it decodes anything.
        let body = crate::snapshot_file::encode(&snapshot.meta, &snapshot.snapshot);
        drop(snapshot);
        let url = format!("{}{SNAPSHOT_PATH}", self.base);
        let headers = [(VOTE_HEADER, vote_json)];
        let answer = async {
            let answer = self
                .http
                .post(&url, "application/octet-stream", &headers, body, ttl)
                .await?;
            read_answer::<SnapshotResponse<TypeConfig>>(answer)
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            answer = answer => answer.map_err(|e| match self.rpc_error(RPCTypes::InstallSnapshot, ttl, e) {
                RPCError::Timeout(t) => StreamingError::Timeout(t),
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                RPCError::RemoteError(r) => StreamingError::Network(NetworkError::from_string(r.to_string())),
            }),
        }
    }
}

/// A replication stream's own connection. A clone starts without one: each stream
/// opens its own.
#[derive(Default)]
struct DirectSlot(Option<Direct>);

impl Clone for DirectSlot {
    fn clone(&self) -> DirectSlot {
        DirectSlot(None)
    }
}

impl std::fmt::Debug for DirectSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "DirectSlot(..)"
        } else {
            "DirectSlot(None)"
        })
    }
}

/// Sends a membership change to the leader at `peer_url` to be made there.
pub(crate) async fn forward_member_change(
    http: &PeerHttp,
    peer_url: &str,
    change: &MemberChange,
    timeout: Duration,
) -> Result<(), MembershipError> {
    let url = format!("{}{}", peer_url.trim_end_matches('/'), super::MEMBERS_PATH);
    match post_json::<_, Result<(), MembershipError>>(http, &url, change, timeout).await {
        Ok(answer) => answer,
        // Never sent: look for the new leader.
        Err(CallError::NotSent { .. }) => Err(MembershipError::NotLeader),
        Err(
            CallError::Timeout
            | CallError::Unreachable(_)
            | CallError::Network(_)
            | CallError::Removed,
        ) => Err(MembershipError::Timeout),
    }
}

/// Asks the leader at `peer_url` for its read index; `None` when it could not give one
/// (not the leader any more, no quorum, unreachable), and the read goes another way.
pub(crate) async fn fetch_read_index(
    http: &PeerHttp,
    peer_url: &str,
    timeout: Duration,
) -> Option<u64> {
    let url = format!(
        "{}{}",
        peer_url.trim_end_matches('/'),
        super::READ_INDEX_PATH
    );
    post_json::<_, Option<u64>>(http, &url, &(), timeout)
        .await
        .ok()?
}

/// Reads a running member's list of members and its cluster id (etcd's peer
/// `GET /members`), as a member joining with `--initial-cluster-state existing` does.
pub async fn fetch_members(
    http: &PeerHttp,
    peer_url: &str,
    timeout: Duration,
) -> Result<(u64, Vec<super::ListedMember>), String> {
    let url = format!(
        "{}{}",
        peer_url.trim_end_matches('/'),
        super::MEMBER_LIST_PATH
    );
    let answer = http
        .get(&url, timeout)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !answer.status.is_success() {
        return Err(format!("answered {}", answer.status));
    }
    let cluster_id = answer
        .headers
        .get(CLUSTER_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .ok_or("no valid X-Etcd-Cluster-ID header")?;
    let members = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
    Ok((cluster_id, members))
}

/// Member `peer_url`'s hash of its keyspace at `revision`; an error is its refusal
/// (a 400 in the keyspace's words, such as a compacted revision) or the network's.
pub async fn fetch_hash_kv(
    http: &PeerHttp,
    peer_url: &str,
    cluster_id: u64,
    revision: i64,
    timeout: Duration,
) -> Result<super::PeerHashKv, String> {
    let url = format!("{}{}", peer_url.trim_end_matches('/'), super::HASH_KV_PATH);
    let body = serde_json::json!({ "revision": revision }).to_string();
    let headers = [(CLUSTER_ID_HEADER, format!("{cluster_id:x}"))];
    let answer = http
        .post(
            &url,
            "application/json",
            &headers,
            body.into_bytes(),
            timeout,
        )
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !answer.status.is_success() {
        return Err(String::from_utf8_lossy(&answer.body).trim().to_string());
    }
    serde_json::from_slice(&answer.body).map_err(|e| e.to_string())
}

/// One v2 HTTP request outside a running node (etcd's discovery service, which is an
/// etcd's v2 keys API): `form`, if any, is sent as an urlencoded body. The answer's
/// status, its `X-Etcd-Index` (0 without one) and its body.
pub async fn v2_request(
    http: &PeerHttp,
    method: http::Method,
    url: &str,
    form: Option<String>,
    timeout: Duration,
) -> Result<(http::StatusCode, u64, bytes::Bytes), String> {
    let mut builder = http::Request::builder().method(method).uri(url);
    if form.is_some() {
        builder = builder.header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
    }
    let body = bytes::Bytes::from(form.unwrap_or_default());
    let request = super::call::finish(builder, url, body).map_err(|e| e.to_string())?;
    let answer = http
        .call(request, timeout)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let index = answer
        .headers
        .get("x-etcd-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((answer.status, index, answer.body))
}

/// A client for one-off calls to peers outside a running node (start-up discovery),
/// over TCP.
pub fn discovery_client() -> PeerHttp {
    discovery_client_over(Arc::new(TcpNet))
}

/// [`discovery_client`] over the given network.
pub fn discovery_client_over(net: Arc<dyn PeerNet>) -> PeerHttp {
    PeerHttp::new(net, http::HeaderMap::new())
}

/// How long the leader keeps telling a removed member that it was removed.
const NOTIFY_REMOVED_FOR: Duration = Duration::from_secs(10);

/// Tells member `id` at `peer_url` that it was removed, retrying for a while; a member
/// that is down learns it from its peers' refusals when it comes back (not yet) or
/// stays harmlessly outside the cluster.
pub(crate) async fn notify_removed(http: PeerHttp, peer_url: String, id: NodeId) {
    let url = format!("{}{}", peer_url.trim_end_matches('/'), super::REMOVED_PATH);
    let deadline = tokio::time::Instant::now() + NOTIFY_REMOVED_FOR;
    while tokio::time::Instant::now() < deadline {
        if post_json::<_, ()>(&http, &url, &id, CONNECT_TIMEOUT)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!(member = %format!("{id:x}"), "could not tell a removed member that it was removed");
}
