//! openraft's network over turmoil's TCP: a connection per peer client, kept while it
//! works and dropped on any error or timeout (a late answer must never be taken for the
//! next call's), every call bounded by openraft's deadline for it.

use std::future::Future;
use std::time::Duration;

use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RaftNetworkV2};
use turmoil::net::TcpStream;

use beacon_raft::Member;

use crate::types::{SimConfig, Snapshot, Vote};
use crate::wire::{read_frame, write_frame, Answer, Request};

/// The port every member serves on: peers and clients alike.
pub const MEMBER_PORT: u16 = 2380;

/// How long to wait for a connection, as production's peer client does.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The turmoil host name of member `id`.
pub fn host_name(id: u64) -> String {
    format!("m{id}")
}

/// The peer URL member `id` records in the membership.
pub fn peer_url(id: u64) -> String {
    format!("http://{}:{MEMBER_PORT}", host_name(id))
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// No connection could be made: nothing was sent.
    NotSent(String),
    /// No answer in time: the request may or may not have arrived.
    Timeout,
    /// The connection broke, or the answer made no sense.
    Broken(String),
}

/// A connection to one member, made on first use and after any failure.
pub struct Connection {
    target: u64,
    stream: Option<TcpStream>,
}

impl Connection {
    /// No connection yet to member `target`.
    pub fn new(target: u64) -> Connection {
        Connection {
            target,
            stream: None,
        }
    }

    /// Sends `request` (with `body`) and waits for the answer, all within `ttl`.
    pub async fn call(
        &mut self,
        request: &Request,
        body: &[u8],
        ttl: Duration,
    ) -> Result<(Answer, Vec<u8>), CallError> {
        let deadline = tokio::time::Instant::now() + ttl;
        if self.stream.is_none() {
            let addr = (host_name(self.target), MEMBER_PORT);
            let connecting = TcpStream::connect(addr);
            match tokio::time::timeout(CONNECT_TIMEOUT.min(ttl), connecting).await {
                Ok(Ok(stream)) => self.stream = Some(stream),
                Ok(Err(e)) => return Err(CallError::NotSent(e.to_string())),
                Err(_) => return Err(CallError::NotSent("connect timed out".into())),
            }
        }
        let stream = self.stream.as_mut().expect("connected above");
        let exchange = async {
            write_frame(stream, request, body).await?;
            read_frame::<_, Answer>(stream).await
        };
        let result = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => Err(CallError::Broken(e.to_string())),
            Err(_) => Err(CallError::Timeout),
        };
        self.stream = None;
        result
    }
}

/// Builds member `id`'s peer clients.
pub struct SimNetwork {
    /// The sending member.
    pub id: u64,
}

impl RaftNetworkFactory<SimConfig> for SimNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, _node: &Member) -> PeerClient {
        PeerClient {
            id: self.id,
            target,
            conn: Connection::new(target),
        }
    }
}

/// One member's client for one peer.
pub struct PeerClient {
    id: u64,
    target: u64,
    conn: Connection,
}

impl PeerClient {
    async fn rpc(
        &mut self,
        action: RPCTypes,
        request: Request,
        body: &[u8],
        option: &RPCOption,
    ) -> Result<Answer, RPCError<SimConfig>> {
        let ttl = option.hard_ttl();
        match self.conn.call(&request, body, ttl).await {
            Ok((answer, _)) => Ok(answer),
            Err(e) => Err(self.rpc_error(action, ttl, e)),
        }
    }

    /// The error production's peer client gives for the same failure.
    fn rpc_error(&self, action: RPCTypes, timeout: Duration, e: CallError) -> RPCError<SimConfig> {
        let text = |m: String| format!("member {} at {}: {m}", self.target, host_name(self.target));
        match e {
            CallError::Timeout => RPCError::Timeout(Timeout {
                action,
                id: self.id,
                target: self.target,
                timeout,
            }),
            CallError::NotSent(m) => RPCError::Unreachable(Unreachable::from_string(text(m))),
            CallError::Broken(m) => RPCError::Network(NetworkError::from_string(text(m))),
        }
    }

    fn unexpected(&self, answer: &Answer) -> RPCError<SimConfig> {
        RPCError::Network(NetworkError::from_string(format!(
            "member {} answered out of turn: {answer:?}",
            self.target
        )))
    }

    /// A peer whose Raft answered with an error: back off, as after a 503.
    fn refused(&self, why: String) -> RPCError<SimConfig> {
        RPCError::Unreachable(Unreachable::from_string(format!(
            "member {}: {why}",
            self.target
        )))
    }

    async fn vote_like(
        &mut self,
        request: Request,
        option: RPCOption,
    ) -> Result<VoteResponse<SimConfig>, RPCError<SimConfig>> {
        match self.rpc(RPCTypes::Vote, request, &[], &option).await? {
            Answer::Vote(Ok(r)) => Ok(r),
            Answer::Vote(Err(why)) => Err(self.refused(why)),
            other => Err(self.unexpected(&other)),
        }
    }
}

impl RaftNetworkV2<SimConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<SimConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<SimConfig>, RPCError<SimConfig>> {
        match self
            .rpc(RPCTypes::AppendEntries, Request::Append(rpc), &[], &option)
            .await?
        {
            Answer::Append(Ok(r)) => Ok(r),
            Answer::Append(Err(why)) => Err(self.refused(why)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<SimConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<SimConfig>, RPCError<SimConfig>> {
        self.vote_like(Request::Vote(rpc), option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<SimConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<SimConfig>, RPCError<SimConfig>> {
        self.vote_like(Request::PreVote(rpc), option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<SimConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<SimConfig>, RPCError<SimConfig>> {
        match self
            .rpc(
                RPCTypes::TransferLeader,
                Request::TransferLeader(req),
                &[],
                &option,
            )
            .await?
        {
            Answer::TransferLeader(Ok(r)) => Ok(r),
            Answer::TransferLeader(Err(why)) => Err(self.refused(why)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<SimConfig>, StreamingError<SimConfig>> {
        let request = Request::Snapshot {
            vote,
            meta: snapshot.meta,
        };
        let to_streaming = |e: RPCError<SimConfig>| match e {
            RPCError::Timeout(t) => StreamingError::Timeout(t),
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Network(n) => StreamingError::Network(n),
            RPCError::RemoteError(r) => {
                StreamingError::Network(NetworkError::from_string(r.to_string()))
            }
        };
        let answer = tokio::select! {
            // Biased, so that the order of polling never depends on tokio's RNG.
            biased;
            closed = cancel => return Err(StreamingError::Closed(closed)),
            answer = self.rpc(RPCTypes::InstallSnapshot, request, &snapshot.snapshot, &option) => answer,
        };
        match answer.map_err(to_streaming)? {
            Answer::Snapshot(Ok(r)) => Ok(r),
            Answer::Snapshot(Err(why)) => Err(to_streaming(self.refused(why))),
            other => Err(to_streaming(self.unexpected(&other))),
        }
    }
}
