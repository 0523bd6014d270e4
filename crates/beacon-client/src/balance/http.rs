//! `HttpClient`: the balancer stack over HTTP/1, with retries.
//!
//! Each instance keeps its own keep-alive connections (`pool.rs`; idle ones closed after
//! `pool_idle_timeout`). Callers write requests with any authority (or none): the path
//! and query are kept and the balancer picks where they go.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::TryStream;
use http::uri::{Authority, PathAndQuery};
use http::{header, HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use tower::discover::Change;
use tower::retry::Retry;
use tower::{BoxError, Service};

use super::board::{Board, InstanceState};
use super::classify::ServerErrors;
use super::config::BalanceConfig;
use super::error::BalanceError;
use super::pool::Pool;
use super::retry::RetryPolicy;
use super::stack::Balanced;

/// A balanced, retrying HTTP/1 client over discovered instances; clones share everything.
#[derive(Clone)]
pub struct HttpClient {
    service: Retry<RetryPolicy, Balanced<Request<Bytes>, Response<Incoming>>>,
    balanced: Balanced<Request<Bytes>, Response<Incoming>>,
}

impl HttpClient {
    /// Balances over every instance of `service` (any datacenter) that `registry` lists,
    /// with discovery's defaults; needs a tokio runtime.
    pub fn for_service(
        registry: impl Into<crate::Registry>,
        service: &str,
        config: BalanceConfig,
    ) -> Result<Self, BalanceError> {
        Self::new(
            crate::Discovery::of_service(registry, service).authorities(),
            config,
        )
    }

    /// Balances over the `host:port` targets `discover` lists; needs a tokio runtime.
    pub fn new<D, K>(discover: D, config: BalanceConfig) -> Result<Self, BalanceError>
    where
        D: TryStream<Ok = Change<K, Authority>> + Send + 'static,
        K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    {
        let board = Board::shared(&config);
        Self::with_board(discover, config, board)
    }

    /// [`HttpClient::new`], keeping failure accrual on `board` (made by [`Board::shared`]
    /// with the same config), which clients over the same instances may share: each
    /// instance is then judged on all their requests, and probed by one of them.
    pub fn with_board<D, K>(
        discover: D,
        config: BalanceConfig,
        board: Arc<Board>,
    ) -> Result<Self, BalanceError>
    where
        D: TryStream<Ok = Change<K, Authority>> + Send + 'static,
        K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    {
        // `Balanced::with_board` validates the config: nothing before it can fail on a bad one,
        // and `RetryPolicy::new`, whose budget would panic on one, runs after it.
        let (idle_max, idle_timeout) =
            (config.pool_idle_per_instance_max, config.pool_idle_timeout);
        let connect_timeout = config.attempt_timeout;
        let make = move |authority: &Authority| {
            Instance::new(Pool::new(
                authority.clone(),
                idle_max,
                idle_timeout,
                connect_timeout,
            ))
        };
        let balanced = Balanced::with_board(discover, make, ServerErrors, &config, board)?;
        let service = Retry::new(RetryPolicy::new(&config.retry), balanced.clone());
        Ok(Self { service, balanced })
    }

    /// Every instance's failure-accrual state, ordered by discovery key.
    pub fn instances(&self) -> Vec<InstanceState> {
        self.balanced.instances()
    }

    /// Whether most instances are untrusted, so that all of them are used.
    pub fn is_panicking(&self) -> bool {
        self.balanced.is_panicking()
    }
}

impl Service<Request<Bytes>> for HttpClient {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = tower::retry::future::ResponseFuture<
        RetryPolicy,
        Balanced<Request<Bytes>, Response<Incoming>>,
        Request<Bytes>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        self.service.call(request)
    }
}

/// One instance: its own pool of connections.
#[derive(Clone)]
struct Instance {
    pool: Pool,
    /// The `Host` header for it, made once (an authority is always a valid one).
    host: Option<HeaderValue>,
}

impl Instance {
    fn new(pool: Pool) -> Self {
        let host = HeaderValue::from_str(pool.authority().as_str()).ok();
        Self { pool, host }
    }
}

type InstanceFuture = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

impl Service<Request<Bytes>> for Instance {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = InstanceFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The pool is always ready; an error here would drop the instance from the
        // balancer until discovery listed it again.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        // On a connection to the instance itself the target is the origin form: the
        // path and query, with the instance named by `Host`.
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let Some(host) = self.host.clone() else {
            return Box::pin(std::future::ready(Err(
                "the authority is not a Host header".into(),
            )));
        };
        parts.uri = Uri::from(path);
        parts.headers.insert(header::HOST, host);
        let request = Request::from_parts(parts, Full::new(body));
        Box::pin(self.pool.clone().send(request))
    }
}
