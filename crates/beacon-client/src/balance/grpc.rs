//! `GrpcChannel`: the balancer stack over tonic channels, one per instance, for any
//! tonic-generated client (`HealthClient::new(channel)`, and so on).
//!
//! gRPC requests are streams, so they are not retried here (a retry would need the whole
//! body kept); balancing, failure accrual, panic mode and the attempt timeout apply.
//! Each instance's channel connects lazily and keeps its HTTP/2 connection, which
//! multiplexes every request to that instance.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::TryStream;
use http::uri::Authority;
use http::{Request, Response};
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::discover::Change;
use tower::{BoxError, Service, ServiceExt};

use super::board::{Board, InstanceState};
use super::classify::{error_outcome, Classify, Outcome};
use super::config::BalanceConfig;
use super::error::BalanceError;
use super::stack::Balanced;

/// A balanced gRPC channel over discovered instances; clones share everything.
#[derive(Clone)]
pub struct GrpcChannel {
    balanced: Balanced<Request<Body>, Response<Body>>,
}

impl GrpcChannel {
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

    /// Balances over the `host:port` targets `discover` lists (plain-text HTTP/2);
    /// needs a tokio runtime.
    pub fn new<D, K>(discover: D, config: BalanceConfig) -> Result<Self, BalanceError>
    where
        D: TryStream<Ok = Change<K, Authority>> + Send + 'static,
        K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    {
        let connect_timeout = config.attempt_timeout;
        let make = move |authority: &Authority| {
            let uri = http::Uri::builder()
                .scheme("http")
                .authority(authority.clone())
                .path_and_query("/")
                .build();
            let channel = uri.map(|uri| {
                Endpoint::from(uri)
                    .connect_timeout(connect_timeout)
                    .connect_lazy()
            });
            Instance {
                channel: channel.map_err(|e| e.to_string()),
            }
        };
        let board = Board::shared(&config);
        let balanced = Balanced::with_board(discover, make, GrpcErrors, &config, board)?;
        Ok(Self { balanced })
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

impl Service<Request<Body>> for GrpcChannel {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.balanced.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.balanced.call(request)
    }
}

/// One instance's channel (or why its address could not make one).
#[derive(Clone)]
struct Instance {
    channel: Result<Channel, String>,
}

impl Service<Request<Body>> for Instance {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Never an error here: the balancer would drop the instance for good. The
        // channel's own readiness is awaited in the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let channel = self.channel.clone();
        Box::pin(async move {
            let channel = channel.map_err(BoxError::from)?;
            let response = channel.oneshot(request).await?;
            Ok(response)
        })
    }
}

/// gRPC's status code for "try again elsewhere".
const UNAVAILABLE: &[u8] = b"14";

/// Errors fail (unreachable when nothing was sent); so does a trailers-only answer with
/// status UNAVAILABLE, which is how a gRPC server says it cannot serve.
#[derive(Debug, Clone, Copy, Default)]
struct GrpcErrors;

impl Classify<Response<Body>, BoxError> for GrpcErrors {
    fn response(&self, response: &Response<Body>) -> Outcome {
        match response.headers().get("grpc-status") {
            Some(status) if status.as_bytes() == UNAVAILABLE => Outcome::Failure,
            _ => Outcome::Success,
        }
    }

    fn error(&self, error: &BoxError) -> Outcome {
        error_outcome(error)
    }
}
