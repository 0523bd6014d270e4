//! Counts of gRPC calls by method and outcome, as etcd's go-grpc-prometheus keeps them
//! (`grpc_server_started_total`, `grpc_server_handled_total`), for `/metrics`. The
//! counted service wraps the routes of every connection: a call is started when its
//! request arrives and handled when its `grpc-status` is sent, in the answer's
//! headers (an answer without a message) or in its trailers; a call whose answer is
//! dropped before either (the client left) counts as `Canceled`, as grpc-go counts it.
//! The messages each way are counted as the bodies pass (`messages`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use beacon_raft::disk_metrics::{DurationHistogram, HistogramReading};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::messages::{self, Framing, Way};

/// Every method etcd 3.4's server registers, as (service, method, grpc_type): first,
/// in the order its `/metrics` lists them, those listed from the start (at zero), then
/// from [`LISTED_ONCE_CALLED`] on those it registers after its metrics are set up
/// (Election and Lock), listed only once called and only with the codes they ended
/// with.
pub const METHODS: [(&str, &str, &str); 48] = [
    ("etcdserverpb.Auth", "AuthDisable", "unary"),
    ("etcdserverpb.Auth", "AuthEnable", "unary"),
    ("etcdserverpb.Auth", "Authenticate", "unary"),
    ("etcdserverpb.Auth", "RoleAdd", "unary"),
    ("etcdserverpb.Auth", "RoleDelete", "unary"),
    ("etcdserverpb.Auth", "RoleGet", "unary"),
    ("etcdserverpb.Auth", "RoleGrantPermission", "unary"),
    ("etcdserverpb.Auth", "RoleList", "unary"),
    ("etcdserverpb.Auth", "RoleRevokePermission", "unary"),
    ("etcdserverpb.Auth", "UserAdd", "unary"),
    ("etcdserverpb.Auth", "UserChangePassword", "unary"),
    ("etcdserverpb.Auth", "UserDelete", "unary"),
    ("etcdserverpb.Auth", "UserGet", "unary"),
    ("etcdserverpb.Auth", "UserGrantRole", "unary"),
    ("etcdserverpb.Auth", "UserList", "unary"),
    ("etcdserverpb.Auth", "UserRevokeRole", "unary"),
    ("etcdserverpb.Cluster", "MemberAdd", "unary"),
    ("etcdserverpb.Cluster", "MemberList", "unary"),
    ("etcdserverpb.Cluster", "MemberPromote", "unary"),
    ("etcdserverpb.Cluster", "MemberRemove", "unary"),
    ("etcdserverpb.Cluster", "MemberUpdate", "unary"),
    ("etcdserverpb.KV", "Compact", "unary"),
    ("etcdserverpb.KV", "DeleteRange", "unary"),
    ("etcdserverpb.KV", "Put", "unary"),
    ("etcdserverpb.KV", "Range", "unary"),
    ("etcdserverpb.KV", "Txn", "unary"),
    ("etcdserverpb.Lease", "LeaseGrant", "unary"),
    ("etcdserverpb.Lease", "LeaseKeepAlive", "bidi_stream"),
    ("etcdserverpb.Lease", "LeaseLeases", "unary"),
    ("etcdserverpb.Lease", "LeaseRevoke", "unary"),
    ("etcdserverpb.Lease", "LeaseTimeToLive", "unary"),
    ("etcdserverpb.Maintenance", "Alarm", "unary"),
    ("etcdserverpb.Maintenance", "Defragment", "unary"),
    ("etcdserverpb.Maintenance", "Hash", "unary"),
    ("etcdserverpb.Maintenance", "HashKV", "unary"),
    ("etcdserverpb.Maintenance", "MoveLeader", "unary"),
    ("etcdserverpb.Maintenance", "Snapshot", "server_stream"),
    ("etcdserverpb.Maintenance", "Status", "unary"),
    ("etcdserverpb.Watch", "Watch", "bidi_stream"),
    ("grpc.health.v1.Health", "Check", "unary"),
    ("grpc.health.v1.Health", "Watch", "server_stream"),
    ("v3electionpb.Election", "Campaign", "unary"),
    ("v3electionpb.Election", "Leader", "unary"),
    ("v3electionpb.Election", "Observe", "server_stream"),
    ("v3electionpb.Election", "Proclaim", "unary"),
    ("v3electionpb.Election", "Resign", "unary"),
    ("v3lockpb.Lock", "Lock", "unary"),
    ("v3lockpb.Lock", "Unlock", "unary"),
];

/// The index in [`METHODS`] of the first method `/metrics` lists only once called.
pub const LISTED_ONCE_CALLED: usize = 41;

/// gRPC's status codes by number, as the `grpc_code` label names them.
pub const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

static STARTED: [AtomicU64; METHODS.len()] = [const { AtomicU64::new(0) }; METHODS.len()];
static HANDLED: [[AtomicU64; CODES.len()]; METHODS.len()] =
    [const { [const { AtomicU64::new(0) }; CODES.len()] }; METHODS.len()];

/// go-grpc-prometheus' default buckets (Prometheus' `DefBuckets`), seconds.
pub const HANDLING_BOUNDS_SECONDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long each method's calls took from start to status (`grpc_server_handling_seconds`,
/// which `/metrics` shows under `--metrics extensive`). Measured whatever the flag: one
/// clock read and three atomics per call.
static HANDLING: [DurationHistogram; METHODS.len()] =
    [const { DurationHistogram::with_bounds(&HANDLING_BOUNDS_SECONDS) }; METHODS.len()];

/// The handling times of method `METHODS[method]` so far.
pub fn handling(method: usize) -> HistogramReading {
    HANDLING[method].read()
}

/// Counts a call of `METHODS[method]`, started at `started`, handled with `code`.
fn count_handled(method: usize, code: usize, started: Instant) {
    HANDLED[method][code.min(CODES.len() - 1)].fetch_add(1, Ordering::Relaxed);
    HANDLING[method].observe(started.elapsed());
}

/// Calls of method `METHODS[method]` started so far.
pub fn started(method: usize) -> u64 {
    STARTED[method].load(Ordering::Relaxed)
}

/// Calls of method `METHODS[method]` that ended with code `CODES[code]`.
pub fn handled(method: usize, code: usize) -> u64 {
    HANDLED[method][code].load(Ordering::Relaxed)
}

/// Each method's request path (`/service/method`) and its index in [`METHODS`], built
/// once: a call's lookup is one hash of its path, not a scan of the list.
static BY_PATH: LazyLock<HashMap<String, usize>> = LazyLock::new(|| {
    let paths = METHODS
        .iter()
        .map(|(service, method, _)| format!("/{service}/{method}"));
    paths.zip(0..).collect()
});

/// The index in [`METHODS`] of a request path (`/service/method`).
fn method_index(path: &str) -> Option<usize> {
    BY_PATH.get(path).copied()
}

/// The code a `grpc-status` header value says; `Unknown` for anything unreadable.
fn code_of(headers: &http::HeaderMap) -> Option<usize> {
    let status = headers.get("grpc-status")?;
    let code = std::str::from_utf8(status.as_bytes())
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|c| *c < CODES.len());
    Some(code.unwrap_or(UNKNOWN))
}

/// One call made by the JSON gateway, which etcd makes as a gRPC client of its own
/// server, so its calls count as the routes' do: started when made, handled with the
/// code it ends with; one dropped before it ends (its client left) counts as `Canceled`.
pub struct Call {
    /// The call's method.
    method: Option<usize>,
    /// The call's method while its outcome is not counted yet.
    pending: Option<usize>,
    started: Instant,
}

impl Call {
    /// Counts a call of the method at `path` (`/service/method`) started.
    pub fn start(path: &str) -> Call {
        let pending = method_index(path);
        if let Some(m) = pending {
            STARTED[m].fetch_add(1, Ordering::Relaxed);
        }
        Call {
            method: pending,
            pending,
            started: Instant::now(),
        }
    }

    /// The call's method, its index in [`METHODS`].
    pub fn method(&self) -> Option<usize> {
        self.method
    }

    /// Counts a message of `bytes` bytes (encoded) received or sent by the call.
    pub fn message(&self, way: Way, bytes: usize) {
        messages::count(self.method, way, bytes);
    }

    /// Counts the call handled with `code`.
    pub fn end(mut self, code: tonic::Code) {
        self.count(code as usize);
    }

    fn count(&mut self, code: usize) {
        if let Some(m) = self.pending.take() {
            count_handled(m, code, self.started);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.count(CANCELED);
    }
}

/// A service counting the calls it passes to `inner`.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
}

impl<S> Counted<S> {
    pub fn new(inner: S) -> Self {
        Counted { inner }
    }
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<CountedBody<B>>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_index(req.uri().path());
        let started = Instant::now();
        if let Some(m) = method {
            STARTED[m].fetch_add(1, Ordering::Relaxed);
        }
        let answer = self
            .inner
            .call(req.map(|body| CountedBody::new(body, (method, Way::Received), None, started)));
        Box::pin(async move {
            let answer = answer.await?;
            let mut pending = method;
            if let (Some(m), Some(code)) = (method, code_of(answer.headers())) {
                count_handled(m, code, started);
                pending = None;
            }
            Ok(answer.map(|inner| CountedBody::new(inner, (method, Way::Sent), pending, started)))
        })
    }
}

/// A call's body, either way, whose gRPC messages are counted as they pass; an answer's
/// also counts its call once the trailers carry its status.
pub struct CountedBody<B> {
    inner: B,
    method: Option<usize>,
    way: Way,
    framing: Framing,
    /// The call's method while its outcome is not counted yet (an answer's).
    pending: Option<usize>,
    started: Instant,
}

impl<B> CountedBody<B> {
    fn new(
        inner: B,
        (method, way): (Option<usize>, Way),
        pending: Option<usize>,
        started: Instant,
    ) -> Self {
        CountedBody {
            inner,
            method,
            way,
            framing: Framing::default(),
            pending,
            started,
        }
    }

    fn count(&mut self, code: usize) {
        if let Some(m) = self.pending.take() {
            count_handled(m, code, self.started);
        }
    }
}

// Both ways the data is `Bytes`, contiguous: hyper's incoming body and tonic's answers.
impl<B: Body<Data = Bytes> + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let (method, way) = (self.method, self.way);
                    self.framing
                        .feed(data, |bytes| messages::count(method, way, bytes));
                }
                if let Some(code) = frame.trailers_ref().and_then(code_of) {
                    self.count(code);
                }
            }
            // An answer that ends without a status is grpc-go's Unknown.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.count(UNKNOWN),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        self.count(CANCELED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_statuses_are_read_as_grpc_writes_them() {
        let range = method_index("/etcdserverpb.KV/Range").expect("Range");
        assert_eq!(METHODS[range], ("etcdserverpb.KV", "Range", "unary"));
        assert_eq!(method_index("/etcdserverpb.KV/Nope"), None);
        let lock = method_index("/v3lockpb.Lock/Lock").expect("Lock");
        assert!(lock >= LISTED_ONCE_CALLED, "etcd lists Lock once called");
        let observe = method_index("/v3electionpb.Election/Observe").expect("Observe");
        assert_eq!(METHODS[observe].2, "server_stream");
        assert_eq!(method_index("/v2/keys"), None);
        let mut headers = http::HeaderMap::new();
        assert_eq!(code_of(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(code_of(&headers).map(|c| CODES[c]), Some("NotFound"));
        headers.insert("grpc-status", http::HeaderValue::from_static("99"));
        assert_eq!(code_of(&headers).map(|c| CODES[c]), Some("Unknown"));
    }
}
