//! A client for etcd's v3 gRPC API, for what the framework needs of it: a prefix
//! listing, a put, leases with their keep-alive stream, and a prefix watch.
//!
//! Like [`Client`](crate::Client) it holds a list of endpoints and stays on one until
//! that one cannot be reached (refused, reset, no answer within the call timeout, or a
//! member without a leader), then moves to the next, as etcd's Go client does. etcd's
//! own refusals (a lease not found, say) are answers, not reasons to move on. Streams
//! are opened on the endpoint of the moment; their owner calls [`V3Client::failed`]
//! when one breaks, so the next stream goes elsewhere.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::lease_client::LeaseClient;
use beacon_proto::etcdserverpb::watch_client::WatchClient;
use beacon_proto::etcdserverpb::{
    watch_request, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseRevokeRequest, PutRequest, RangeRequest, RangeResponse, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

use crate::error::{ClusterErrors, EndpointError, EndpointErrorKind, Error};

/// HTTP/2 pings on a connection with open streams, so a member that vanished without
/// closing its connections (a partition, a frozen host) breaks the streams within
/// interval + timeout. etcd refuses pings more often than every 5 s
/// (`--grpc-keepalive-min-time`), and pings on idle connections at all, so none are sent
/// while idle.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests queued on one stream before the sender waits; the framework's streams carry
/// one request at a time.
const STREAM_REQUESTS_QUEUED_MAX: usize = 4;

/// A v3 client over a list of endpoints; cheap to clone (clones share connections).
#[derive(Clone, Debug)]
pub struct V3Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    urls: Vec<String>,
    endpoints: Vec<Endpoint>,
    /// One channel per endpoint, made on first use (a channel needs the runtime).
    channels: Vec<OnceLock<Channel>>,
    /// The endpoint calls and new streams go to.
    current: AtomicUsize,
    /// Opens the channels' connections (TLS for `https` endpoints).
    connect: crate::tls_connect::TlsConnect,
    timeout: Duration,
}

impl V3Client {
    /// A client of `endpoints` (`http://host:port`) whose unary calls each take at most
    /// `timeout` per endpoint tried.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Result<V3Client, Error> {
        V3Client::with_tls(endpoints, timeout, None)
    }

    /// [`V3Client::new`] whose `https` endpoints are reached with `tls` (etcdctl's
    /// `--cacert`, `--cert`, `--key`); without it, with the system's roots and no pair.
    pub fn with_tls(
        endpoints: Vec<String>,
        timeout: Duration,
        tls: Option<&beacon_tls::TlsInfo>,
    ) -> Result<V3Client, Error> {
        let default = beacon_tls::TlsInfo::default();
        let config = tls
            .unwrap_or(&default)
            .client_config(&[b"h2"])
            .map_err(|e| Error::Tls(e.to_string()))?;
        let connect = crate::tls_connect::TlsConnect {
            tls: beacon_tls::Connector::new(config),
        };
        if endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let timeout = timeout.max(Duration::from_millis(1));
        let mut parsed = Vec::with_capacity(endpoints.len());
        let mut urls = Vec::with_capacity(endpoints.len());
        for url in endpoints {
            let url = url.trim_end_matches('/').to_string();
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|_| Error::InvalidEndpoint(url.clone()))?
                .connect_timeout(timeout)
                .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
                .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
                .keep_alive_while_idle(false);
            parsed.push(endpoint);
            urls.push(url);
        }
        Ok(V3Client {
            inner: Arc::new(Inner {
                channels: (0..urls.len()).map(|_| OnceLock::new()).collect(),
                connect,
                urls,
                endpoints: parsed,
                current: AtomicUsize::new(0),
                timeout,
            }),
        })
    }

    /// The endpoints, in the order they are tried.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.urls
    }

    /// The bound on one unary call at one endpoint.
    pub fn timeout(&self) -> std::time::Duration {
        self.inner.timeout
    }

    /// The channel to the endpoint of the moment, and its position.
    fn current(&self) -> (usize, Channel) {
        let at = self.inner.current.load(Ordering::Relaxed) % self.inner.urls.len();
        (at, self.channel(at))
    }

    fn channel(&self, at: usize) -> Channel {
        self.inner.channels[at]
            .get_or_init(|| {
                let connect = self.inner.connect.clone();
                self.inner.endpoints[at].connect_with_connector_lazy(connect)
            })
            .clone()
    }

    /// Moves on from endpoint `at` (if no one has already), after a stream on it broke.
    pub fn failed(&self, at: usize) {
        let next = (at + 1) % self.inner.urls.len();
        let _ = self
            .inner
            .current
            .compare_exchange(at, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Runs one unary call on the current endpoint, then each next one while the
    /// failure is the endpoint's rather than an answer.
    async fn unary<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let (first, _) = self.current();
        let n = self.inner.urls.len();
        let mut errors = Vec::new();
        for i in 0..n {
            let at = (first + i) % n;
            let kind = match self.at_endpoint(call(self.channel(at))).await? {
                Ok(answer) => {
                    self.inner.current.store(at, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(kind) => kind,
            };
            errors.push(self.endpoint_error(at, kind));
        }
        Err(Error::Unavailable(ClusterErrors(errors)))
    }

    /// One call at one endpoint, bounded by the call timeout: its answer, or the
    /// endpoint's failure (`Ok(Err(_))`: the caller moves on), or etcd's refusal.
    async fn at_endpoint<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<Result<T, EndpointErrorKind>, Error> {
        match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(answer)) => Ok(Ok(answer.into_inner())),
            Ok(Err(status)) if !moves_on(&status) => Err(Error::Grpc(status)),
            Ok(Err(status)) => Ok(Err(EndpointErrorKind::Other(status.message().to_string()))),
            Err(_) => Ok(Err(EndpointErrorKind::Timeout)),
        }
    }

    /// Opens a stream at endpoint `at`; a failure of the endpoint moves the client on
    /// from it, so the next stream goes elsewhere.
    async fn open_stream<T>(
        &self,
        at: usize,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Error> {
        match self.at_endpoint(call).await? {
            Ok(answers) => Ok(answers),
            Err(kind) => {
                self.failed(at);
                Err(Error::Unavailable(ClusterErrors(vec![
                    self.endpoint_error(at, kind)
                ])))
            }
        }
    }

    fn endpoint_error(&self, at: usize, kind: EndpointErrorKind) -> EndpointError {
        let endpoint = self.inner.urls[at].clone();
        let authority = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest)
            .to_string();
        EndpointError {
            endpoint,
            authority,
            kind,
        }
    }

    /// Every key under `prefix` (byte-wise: `prefix` up to its successor), read
    /// linearizably; the answer's header holds the revision it was read at.
    pub async fn range_prefix(&self, prefix: &[u8]) -> Result<RangeResponse, Error> {
        let request = RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            ..RangeRequest::default()
        };
        self.unary(|ch| {
            let request = request.clone();
            async move { KvClient::new(ch).range(request).await }
        })
        .await
    }

    /// Puts `value` at `key`, attached to `lease` (0 for none); returns the revision.
    pub async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, Error> {
        let request = PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..PutRequest::default()
        };
        let answer = self
            .unary(|ch| {
                let request = request.clone();
                async move { KvClient::new(ch).put(request).await }
            })
            .await?;
        Ok(answer.header.map_or(0, |h| h.revision))
    }

    /// Grants a lease of `ttl` seconds (the server may raise it to its minimum); returns
    /// its id and granted TTL.
    pub async fn grant(&self, ttl: i64) -> Result<(i64, i64), Error> {
        let request = LeaseGrantRequest { ttl, id: 0 };
        let answer = self
            .unary(|ch| async move { LeaseClient::new(ch).lease_grant(request).await })
            .await?;
        if !answer.error.is_empty() {
            return Err(Error::Grpc(Status::new(Code::Unknown, answer.error)));
        }
        Ok((answer.id, answer.ttl))
    }

    /// Revokes a lease, deleting its keys.
    pub async fn revoke(&self, id: i64) -> Result<(), Error> {
        let request = LeaseRevokeRequest { id };
        self.unary(|ch| async move { LeaseClient::new(ch).lease_revoke(request).await })
            .await
            .map(|_| ())
    }

    /// Opens a keep-alive stream on the current endpoint: requests go into the sender,
    /// answers come out of the stream. The endpoint's position is for [`Self::failed`].
    pub async fn keep_alive(&self, id: i64) -> Result<KeepAliveStream, Error> {
        let (at, ch) = self.current();
        let (tx, rx) = mpsc::channel(STREAM_REQUESTS_QUEUED_MAX);
        // etcd's server sends a stream's headers with its first answer, so the first
        // request is queued before the call is awaited.
        tx.try_send(LeaseKeepAliveRequest { id })
            .expect("a new channel has room");
        let mut lease = LeaseClient::new(ch);
        let call = lease.lease_keep_alive(ReceiverStream::new(rx));
        let answers = self.open_stream(at, call).await?;
        Ok(KeepAliveStream {
            id,
            at,
            requests: tx,
            answers,
        })
    }

    /// Opens a watch of every key under `prefix` from `start_revision` on the current
    /// endpoint; the first answer is the creation's.
    pub async fn watch_prefix(
        &self,
        prefix: &[u8],
        start_revision: i64,
    ) -> Result<WatchStream, Error> {
        let (at, ch) = self.current();
        let (tx, rx) = mpsc::channel(STREAM_REQUESTS_QUEUED_MAX);
        let create = WatchCreateRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            start_revision,
            ..WatchCreateRequest::default()
        };
        tx.try_send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        })
        .expect("a new channel has room");
        let mut watch = WatchClient::new(ch);
        let call = watch.watch(ReceiverStream::new(rx));
        let answers = self.open_stream(at, call).await?;
        Ok(WatchStream {
            at,
            _requests: tx,
            answers,
        })
    }
}

/// A lease's keep-alive stream.
#[derive(Debug)]
pub struct KeepAliveStream {
    id: i64,
    /// The endpoint it runs on.
    pub at: usize,
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    answers: Streaming<LeaseKeepAliveResponse>,
}

impl KeepAliveStream {
    /// Sends one keep-alive and waits for its answer: the lease's new TTL, or 0 when the
    /// lease is gone.
    pub async fn renew(&mut self) -> Result<i64, Status> {
        self.requests
            .send(LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|_| Status::unavailable("keep-alive stream closed"))?;
        self.next().await
    }

    /// The next answer on the stream.
    pub async fn next(&mut self) -> Result<i64, Status> {
        match self.answers.message().await? {
            Some(answer) => Ok(answer.ttl),
            None => Err(Status::unavailable("keep-alive stream ended")),
        }
    }
}

/// A watch stream; dropping it ends the watch.
#[derive(Debug)]
pub struct WatchStream {
    /// The endpoint it runs on.
    pub at: usize,
    // Kept so the stream stays open: the server ends a stream whose requests end.
    _requests: mpsc::Sender<WatchRequest>,
    answers: Streaming<WatchResponse>,
}

impl WatchStream {
    /// The next answer; `Ok(None)` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<WatchResponse>, Status> {
        self.answers.message().await
    }
}

/// True when a call's failure is the endpoint's (unreachable, broken, leaderless,
/// timed out), so another member may answer; false for etcd's refusals.
pub fn moves_on(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => true,
        // A transport failure that tonic could not classify.
        Code::Unknown => status.message().contains("transport"),
        _ => false,
    }
}

/// etcd's end of the range of every key under `prefix` (re-exported for the
/// framework's callers).
pub use beacon_proto::prefix_end;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_endpoints_failures_move_on() {
        assert!(moves_on(&Status::unavailable("etcdserver: no leader")));
        assert!(moves_on(&Status::deadline_exceeded("timed out")));
        assert!(!moves_on(&Status::not_found(
            "etcdserver: requested lease not found"
        )));
        assert!(!moves_on(&Status::invalid_argument(
            "etcdserver: key is not provided"
        )));
    }

    #[test]
    fn no_endpoints_is_an_error() {
        assert!(matches!(
            V3Client::new(Vec::new(), Duration::from_secs(1)),
            Err(Error::NoEndpoints)
        ));
        assert!(V3Client::new(vec!["not a url".into()], Duration::from_secs(1)).is_err());
    }
}
