//! etcd's v3 API over gRPC, on the same client port as v2's HTTP/1.1, as etcd serves
//! both: `conn` hands this the connections that open with HTTP/2's preface.
//!
//! Served so far: `KV` (the v3 keyspace, `kv.rs`), `Lease` (`lease.rs`), `Watch`
//! (`watch.rs`), `Cluster` (the membership, listed and changed as v2 changes it, and
//! learners added and promoted), `Maintenance.Status`, `Alarm` (listing: none is raised yet), `Defragment`
//! (nothing to do), `Hash` and `HashKV` (etcd's own hash of the history) and
//! `MoveLeader`, `Snapshot` (a backup in Beacon's own format, `snapshot.rs`), etcd's `Election` and `Lock` services (`election.rs`, `lock.rs`: etcd's
//! client recipes run in the server over the KV and Lease services' own functions,
//! `concurrency.rs`), `Auth` (`auth.rs`: users, roles and permissions, checked by the
//! keyspace as it applies each request), and gRPC's standard health service (service
//! `""` serving, as etcd registers it). Any other call is answered `UNIMPLEMENTED`, the
//! gRPC answer to a method a server does not have. A learner serves
//! only Status and serializable Range, as etcd's (`learner.rs`).

pub(crate) mod auth;
pub mod calls;
pub(crate) mod cluster;
mod concurrency;
pub(crate) mod election;
pub(crate) mod kv;
pub(crate) mod learner;
pub(crate) mod lease;
pub(crate) mod lock;
pub(crate) mod maintenance;
pub mod messages;
mod quota;
mod snapshot;
pub(crate) mod watch;

use std::sync::Arc;
use std::time::Duration;

use beacon_proto::etcdserverpb::auth_server::AuthServer;
use beacon_proto::etcdserverpb::cluster_server::ClusterServer;
use beacon_proto::etcdserverpb::kv_server::KvServer;
use beacon_proto::etcdserverpb::lease_server::LeaseServer;
use beacon_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use beacon_proto::etcdserverpb::watch_server::WatchServer;
use beacon_proto::etcdserverpb::ResponseHeader;
use beacon_proto::v3electionpb::election_server::ElectionServer;
use beacon_proto::v3lockpb::lock_server::LockServer;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use beacon_mvcc::{grpc_code, MvccError};
use beacon_proto::beaconpb::{v3_request, v3_response, V3Request, V3Response};
use beacon_store::{Applied, Command, Encoded};
use prost::Message;
use tonic::{Code, Status};

use crate::consensus::{propose_with_timeout, ProposeFailure};
use crate::limits::{
    GRPC_KEEPALIVE_INTERVAL, GRPC_KEEPALIVE_TIMEOUT, GRPC_PING_INTERVAL_MIN,
    GRPC_STREAMS_PER_CONNECTION_MAX,
};
use crate::state::AppState;

/// The gRPC services, routed by path behind the learner check, and how their HTTP/2
/// connections are kept; cheap to clone (one per connection).
#[derive(Clone)]
pub struct Routes {
    service: learner::LearnerGate<tonic::service::Routes>,
    http2: Http2Settings,
    /// The common name of the connection's verified client certificate, if any.
    client_common_name: Option<auth::ClientCommonName>,
}

impl Routes {
    /// The routes of a TLS connection whose client presented a certificate naming
    /// `cn`, if any. etcd serves gRPC over TLS through Go's HTTP/2 server, which holds
    /// no client to a ping policy: neither does Beacon.
    pub fn over_tls(mut self, cn: Option<String>) -> Routes {
        self.client_common_name = cn.map(|cn| auth::ClientCommonName(cn.into()));
        self.http2.ping_interval_min = None;
        self
    }

    /// The minimum time between a client's pings on a plain connection, if policed.
    pub fn ping_interval_min(&self) -> Option<Duration> {
        self.http2.ping_interval_min
    }
}

/// How each gRPC connection is kept: etcd's `--max-concurrent-streams`,
/// `--grpc-keepalive-interval`/`--grpc-keepalive-timeout` and
/// `--grpc-keepalive-min-time`.
#[derive(Clone, Copy, Debug)]
pub struct Http2Settings {
    /// Most calls open at once on one connection.
    pub max_concurrent_streams: u32,
    /// After this long without hearing from the client, the server pings it...
    pub keepalive_interval: Duration,
    /// ...and closes the connection when the ping is not answered within this.
    pub keepalive_timeout: Duration,
    /// A client pinging more often than this is told GOAWAY `too_many_pings`
    /// (`crate::conn`'s ping policy); `None`: never.
    pub ping_interval_min: Option<Duration>,
}

impl Default for Http2Settings {
    /// Beacon bounds the calls of a connection where etcd's default does not; the
    /// keep-alive is grpc-go's default, which etcd's is.
    fn default() -> Self {
        Http2Settings {
            max_concurrent_streams: GRPC_STREAMS_PER_CONNECTION_MAX,
            keepalive_interval: GRPC_KEEPALIVE_INTERVAL,
            keepalive_timeout: GRPC_KEEPALIVE_TIMEOUT,
            ping_interval_min: Some(GRPC_PING_INTERVAL_MIN),
        }
    }
}

/// The implementations of etcd's services, one of each per server: the gRPC routes and
/// the JSON gateway (`crate::gateway`) call the same ones, so both see one lease id
/// generator and take one path to the keyspace.
#[derive(Clone)]
pub struct Services {
    pub kv: Arc<kv::Kv>,
    pub lease: Arc<lease::Lease>,
    pub watch: Arc<watch::Watch>,
    pub cluster: Arc<cluster::Cluster>,
    pub maintenance: Arc<maintenance::Maintenance>,
    pub election: Arc<election::Election>,
    pub lock: Arc<lock::Lock>,
    pub auth: Arc<auth::Auth>,
}

impl Services {
    /// The services of the server over `state`.
    pub fn new(state: &Arc<AppState>) -> Self {
        // One Lease service: the Election and Lock services grant with its id generator.
        let lease = Arc::new(lease::Lease::new(Arc::clone(state)));
        let recipes = Arc::new(concurrency::Recipes::new(
            Arc::clone(state),
            Arc::clone(&lease),
        ));
        Services {
            kv: Arc::new(kv::Kv::new(Arc::clone(state))),
            lease,
            election: Arc::new(election::Election::new(Arc::clone(&recipes))),
            lock: Arc::new(lock::Lock::new(recipes)),
            watch: Arc::new(watch::Watch::new(Arc::clone(state))),
            cluster: Arc::new(cluster::Cluster::new(Arc::clone(state))),
            maintenance: Arc::new(maintenance::Maintenance::new(Arc::clone(state))),
            auth: Arc::new(auth::Auth::new(Arc::clone(state))),
        }
    }
}

/// Every service this member serves over gRPC.
pub async fn routes(state: Arc<AppState>, services: &Services) -> Routes {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    // etcd's limit on what a call may send (`--max-request-bytes` and gRPC's
    // allowance); what it is sent has none.
    let message_max = state.request_bytes_max.grpc_message();
    let cluster = ClusterServer::from_arc(Arc::clone(&services.cluster))
        .max_decoding_message_size(message_max);
    let kv = KvServer::from_arc(Arc::clone(&services.kv)).max_decoding_message_size(message_max);
    let lease =
        LeaseServer::from_arc(Arc::clone(&services.lease)).max_decoding_message_size(message_max);
    let election = ElectionServer::from_arc(Arc::clone(&services.election))
        .max_decoding_message_size(message_max);
    let lock =
        LockServer::from_arc(Arc::clone(&services.lock)).max_decoding_message_size(message_max);
    let watch =
        WatchServer::from_arc(Arc::clone(&services.watch)).max_decoding_message_size(message_max);
    let maintenance = MaintenanceServer::from_arc(Arc::clone(&services.maintenance))
        .max_decoding_message_size(message_max);
    let auth =
        AuthServer::from_arc(Arc::clone(&services.auth)).max_decoding_message_size(message_max);
    let routes = tonic::service::Routes::new(health_service)
        .add_service(auth)
        .add_service(cluster)
        .add_service(kv)
        .add_service(lease)
        .add_service(watch)
        .add_service(maintenance)
        .add_service(election)
        .add_service(lock);
    let http2 = state.http2;
    Routes {
        service: learner::LearnerGate::new(routes, state),
        http2,
        client_common_name: None,
    }
}

/// The header every v3 response carries: the member's ids, its Raft term, and the v3
/// keyspace's current revision as this member has applied it.
fn header(state: &AppState) -> ResponseHeader {
    let revision = state
        .consensus
        .mvcc()
        .read()
        .map_or(0, |m| m.current_revision());
    header_at(state, revision)
}

/// The member's ids and term with `revision`, which the caller already knows: no read
/// of the keyspace (whose lock the caller may hold).
fn header_at(state: &AppState, revision: i64) -> ResponseHeader {
    let status = state.status();
    ResponseHeader {
        cluster_id: state.cluster.id,
        member_id: status.id,
        revision,
        raft_term: status.term,
    }
}

/// The header of a v3 answer: the member's ids and term, and the keyspace's revision
/// the answer carries.
fn header_with(state: &AppState, answered: Option<ResponseHeader>) -> Option<ResponseHeader> {
    Some(header_at(state, answered.map_or(0, |h| h.revision)))
}

/// This member's keyspace, for a read.
fn read_mvcc(
    state: &AppState,
) -> Result<std::sync::RwLockReadGuard<'_, beacon_mvcc::Mvcc>, Status> {
    state
        .consensus
        .mvcc()
        .read()
        .map_err(|_| Status::internal("beacon: the v3 keyspace failed"))
}

/// A stream call's answers as its task queues them, until the task drops its sender.
fn queued<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|answer| (answer, rx))
    })
}

/// The keyspace answered a request of another kind than the one proposed.
fn unexpected() -> Status {
    Status::internal("beacon: the v3 keyspace answered another request")
}

/// Puts a v3 request through the log, as `caller` (who the keyspace checks it
/// against while auth is on), and returns what the keyspace answered.
async fn propose(
    state: &AppState,
    caller: Option<&beacon_auth::Caller>,
    request: v3_request::Request,
) -> Result<v3_response::Response, Status> {
    let encoded = V3Request {
        request: Some(request),
        caller: caller.map(|c| beacon_proto::beaconpb::Caller {
            username: c.username.clone(),
            auth_revision: c.revision,
        }),
    }
    .encode_to_vec();
    let etcd_bytes =
        encoded.len() + etcd_header_extra_bytes(state.cluster.local_id, caller.is_some());
    if etcd_bytes > state.request_bytes_max.proposal() {
        return Err(Status::invalid_argument("etcdserver: request is too large"));
    }
    let cmd = Command::V3(Encoded(encoded));
    let committed = propose_with_timeout(state.consensus.as_ref(), cmd, state.request_timeout)
        .await
        .map_err(|f| failure(&f))?;
    let Applied::V3(answer) = committed.applied else {
        return Err(Status::internal("beacon: a v3 request answered as v2"));
    };
    let answer = V3Response::decode(answer.0.as_slice())
        .map_err(|e| Status::internal(format!("beacon: a v3 answer that does not decode: {e}")))?;
    match answer.response {
        Some(v3_response::Response::Refusal(r)) => Err(Status::new(Code::from(r.code), r.message)),
        Some(response) => Ok(response),
        None => Err(Status::internal("beacon: an empty v3 answer")),
    }
}

/// What etcd's log entry for a request spends beyond Beacon's: etcd marshals it in an
/// `InternalRaftRequest` whose header (field 100) carries a request id, which Beacon's
/// entry has not, beside the caller, which Beacon's carries in field 30 (as many tag
/// bytes). etcd's ids (`idutil`) are the member id's low 16 bits over 48 bits of time
/// and count, so their length depends on the member alone. Counted in, a KV write is
/// held to `--max-request-bytes` at the byte where etcd holds it (their fields are the
/// same in both entries).
fn etcd_header_extra_bytes(member_id: u64, with_caller: bool) -> usize {
    let request_id = ((member_id & 0xffff) << 48) | (1 << 47);
    let id_bytes = 1 + prost::encoding::encoded_len_varint(request_id);
    match with_caller {
        true => id_bytes,
        // The header's own tag (two bytes) and length, which the caller costs Beacon.
        false => 2 + 1 + id_bytes,
    }
}

/// etcd's answer to a refusal found before the log.
fn refused(e: &MvccError) -> Status {
    Status::new(Code::from(grpc_code(e.code())), e.to_string())
}

/// The answer of a call that waited (a campaign, a lock, an observer) when the server
/// stops under it: etcd's words, and a code that sends the client to another member.
fn stopped() -> Status {
    Status::unavailable("etcdserver: server stopped")
}

/// etcd's answer when consensus gave none.
fn failure(f: &ProposeFailure) -> Status {
    match f {
        ProposeFailure::Timeout | ProposeFailure::Stopped => Status::unavailable(f.to_string()),
        ProposeFailure::Other(_) => Status::unknown(f.to_string()),
    }
}

/// Serves one HTTP/2 connection (its preface not yet read) with `routes` until it
/// closes or the server stops; then the connection finishes its calls and closes.
/// Requests that are not gRPC calls (no `application/grpc` content type: a Go client's
/// v2 requests over TLS, which negotiates HTTP/2) are `app`'s, the HTTP/1.1 router's.
pub async fn serve_connection<I>(
    io: I,
    routes: Routes,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::Either;
    use tower::ServiceExt as _;
    let Routes {
        service,
        http2,
        client_common_name,
    } = routes;
    let grpc = calls::Counted::new(tower::util::MapResponse::new(service, etcd_refusals));
    let service =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            if let Some(cn) = &client_common_name {
                req.extensions_mut().insert(cn.clone());
            }
            let is_grpc = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
            let (grpc, app) = (grpc.clone(), app.clone());
            async move {
                if is_grpc {
                    let resp = grpc.oneshot(req).await?;
                    Ok::<_, std::convert::Infallible>(resp.map(Either::Left))
                } else {
                    let resp = app.oneshot(req).await?;
                    Ok(resp.map(Either::Right))
                }
            }
        });
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(http2.max_concurrent_streams)
        .keep_alive_interval(http2.keepalive_interval)
        .keep_alive_timeout(http2.keepalive_timeout)
        .serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let stopping = tokio::select! {
        _ = conn.as_mut() => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    if stopping {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// tonic refuses a call over its size limit with OUT_OF_RANGE in its own words; etcd's
/// gRPC library answers RESOURCE_EXHAUSTED in grpc-go's, which is what clients see.
fn etcd_refusals(mut resp: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    let headers = resp.headers_mut();
    if headers.get("grpc-status").map(|v| v.as_bytes()) != Some(b"11") {
        return resp;
    }
    let message = headers
        .get("grpc-message")
        .map(|v| {
            percent_encoding::percent_decode(v.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let Some((found, limit)) = too_large(&message) else {
        return resp;
    };
    let etcd = format!("grpc: received message larger than max ({found} vs. {limit})");
    if let Ok(etcd) = http::HeaderValue::from_str(&etcd) {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        headers.insert("grpc-message", etcd);
    }
    resp
}

/// The sizes in tonic's refusal of a message over its limit.
fn too_large(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix("Error, decoded message length too large: found ")?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}
