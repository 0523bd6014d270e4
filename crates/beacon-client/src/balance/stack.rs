//! The balancer stack, generic over what an instance is (HTTP today, gRPC later).
//!
//! Per instance: `Untried(PeakEwma(Accrual(S)))`, so p2c compares latency-weighted load
//! (trying a new instance first) and skips instances failure accrual does not trust.
//! Over them: tower's p2c `Balance`, behind a `Buffer` (the balancer is neither `Clone` nor shareable; the buffer's worker task owns
//! it), behind a check that fails at once when discovery lists no instance, behind a
//! per-attempt `Timeout`. Retries are the caller's (see `retry.rs`), around this stack, so
//! each attempt is balanced, guarded and timed on its own.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::TryStream;
use tokio::sync::watch;
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::discover::Change;
use tower::load::{CompleteOnResponse, PeakEwma};
use tower::timeout::Timeout;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceExt};

use super::accrual::Accrual;
use super::board::{Board, InstanceState};
use super::classify::Classify;
use super::config::BalanceConfig;
use super::error::BalanceError;
use super::feed;
use super::untried::Untried;

/// A balanced, guarded and timed service over discovery's instances; cheap to clone.
pub struct Balanced<Req, Res> {
    service: BoxCloneSyncService<Req, Res, BoxError>,
    board: Arc<Board>,
}

impl<Req, Res> Clone for Balanced<Req, Res> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            board: self.board.clone(),
        }
    }
}

impl<Req, Res> Balanced<Req, Res>
where
    Req: Send + 'static,
    Res: Send + 'static,
{
    /// Balances over `discover`'s targets, each reached through `make(target)`.
    ///
    /// Must be called inside a tokio runtime: it spawns the discovery reader and the
    /// balancer's buffer worker.
    pub fn new<D, K, T, M, S, C>(
        discover: D,
        make: M,
        classify: C,
        config: &BalanceConfig,
    ) -> Result<Self, BalanceError>
    where
        D: TryStream<Ok = Change<K, T>> + Send + 'static,
        K: Hash + Eq + Clone + Display + Send + Sync + 'static,
        T: Send + 'static,
        M: Fn(&T) -> S + Send + 'static,
        S: Service<Req, Response = Res> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError> + Send + Sync + 'static,
        C: Classify<Res, S::Error>,
    {
        config.validate()?;
        // Buffer::new and our discovery task would panic without one.
        tokio::runtime::Handle::try_current().map_err(|_| BalanceError::NoRuntime)?;
        let board = Arc::new(Board::new(config.accrual.clone(), config.panic_threshold));
        let default_rtt = config.load_default_rtt;
        let decay_ns = config.load_decay.as_nanos() as f64;
        let instance_board = board.clone();
        let instances = feed::spawn(
            discover,
            move |key: &K, target: &T| {
                let accrual = Accrual::new(
                    make(target),
                    classify.clone(),
                    instance_board.clone(),
                    key.to_string(),
                );
                Untried::new(PeakEwma::new(
                    accrual,
                    default_rtt,
                    decay_ns,
                    CompleteOnResponse::default(),
                ))
            },
            board.clone(),
            config.discover_changes_max,
        );
        let buffer = Buffer::new(Balance::new(instances), config.buffer_requests_max);
        let guard = Guard {
            inner: buffer,
            discovered: board.discovered(),
            startup_deadline: Instant::now() + config.startup_wait,
        };
        let timeout = config.attempt_timeout;
        let service =
            Timeout::new(guard, timeout).map_err(move |e| BalanceError::from_attempt(e, timeout));
        Ok(Self {
            service: BoxCloneSyncService::new(service),
            board,
        })
    }

    /// Every instance's failure-accrual state, ordered by key.
    pub fn instances(&self) -> Vec<InstanceState> {
        self.board.snapshot()
    }

    /// Whether most instances are untrusted, so that all of them are used.
    pub fn is_panicking(&self) -> bool {
        self.board.is_panicking()
    }
}

impl<Req, Res> Service<Req> for Balanced<Req, Res> {
    type Response = Res;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.service.call(request)
    }
}

/// Fails a request at once when discovery lists no instance, rather than letting it wait
/// in the balancer until its timeout; just after startup it waits for discovery a little.
///
/// A request still waiting when discovery drops the last instance fails too. That also
/// cancels a request already sent to that instance: tower's buffer does not say which
/// stage a request is in, and waiting out the timeout would be the worse of the two.
#[derive(Clone)]
struct Guard<S> {
    inner: S,
    discovered: watch::Receiver<usize>,
    startup_deadline: Instant,
}

impl<S, Req> Service<Req> for Guard<S>
where
    S: Service<Req, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The buffer's capacity is awaited inside the (timed) call instead.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let inner = self.inner.clone();
        let mut discovered = self.discovered.clone();
        let deadline = tokio::time::Instant::from_std(self.startup_deadline);
        Box::pin(async move {
            if *discovered.borrow_and_update() == 0 {
                let first =
                    tokio::time::timeout_at(deadline, discovered.wait_for(|n| *n > 0)).await;
                if !matches!(first, Ok(Ok(_))) {
                    return Err(BalanceError::NoInstances.into());
                }
            }
            tokio::select! {
                biased;
                response = inner.oneshot(request) => response,
                _ = discovered.wait_for(|n| *n == 0) => Err(BalanceError::NoInstances.into()),
            }
        })
    }
}
