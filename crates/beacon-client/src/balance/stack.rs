//! The balancer stack, generic over what an instance is (HTTP today, gRPC later).
//!
//! Per instance: `Untried(PeakEwma(Accrual(S)))`, so p2c compares latency-weighted load
//! (trying a new instance first) and skips instances failure accrual does not trust.
//! Over them: a p2c balancer over a plain vector (`p2c.rs`), shared in place by every
//! clone (`shared.rs`, which also fails a request at once when discovery lists no
//! instance), each attempt under a timeout. Retries are the caller's (see `retry.rs`),
//! around this stack, so each attempt is balanced, guarded and timed on its own.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::TryStream;
use tokio::sync::watch;
use tower::discover::Change;
use tower::load::{CompleteOnResponse, PeakEwma};
use tower::{BoxError, Service};

use super::accrual::Accrual;
use super::board::{Board, InstanceState};
use super::classify::Classify;
use super::config::BalanceConfig;
use super::error::BalanceError;
use super::feed;
use super::p2c::P2c;
use super::shared::Shared;
use super::untried::Untried;

/// A balanced, guarded and timed service over discovery's instances; cheap to clone.
pub struct Balanced<Req, Res> {
    // One pointer to clone: every request clones the service it is sent through (and the
    // retry layer once more), so a clone must not allocate.
    dispatch: Arc<dyn Dispatch<Req, Res>>,
    board: Arc<Board>,
}

impl<Req, Res> Clone for Balanced<Req, Res> {
    fn clone(&self) -> Self {
        Self {
            dispatch: self.dispatch.clone(),
            board: self.board.clone(),
        }
    }
}

type BoxFuture<Res> = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

/// The balancer with its type parameters (discovery, instance services) erased.
trait Dispatch<Req, Res>: Send + Sync {
    fn dispatch(&self, request: Req) -> BoxFuture<Res>;
}

/// Each attempt through the shared balancer, bounded by the attempt timeout.
struct Timed<B> {
    shared: Shared<B>,
    timeout: Duration,
}

impl<B, Req, Res> Dispatch<Req, Res> for Timed<B>
where
    B: Service<Req, Response = Res, Error = BoxError> + Send + 'static,
    B::Future: Send + 'static,
    Req: Send + 'static,
{
    fn dispatch(&self, request: Req) -> BoxFuture<Res> {
        let timeout = self.timeout;
        let call = self.shared.call(request);
        Box::pin(async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(result) => result.map_err(BalanceError::from_attempt),
                Err(_) => Err(BalanceError::Timeout(timeout).into()),
            }
        })
    }
}

impl<Req, Res> Balanced<Req, Res>
where
    Req: Send + 'static,
    Res: Send + 'static,
{
    /// Balances over `discover`'s targets, each reached through `make(target)`, keeping
    /// failure accrual on `board` (made by [`Board::shared`] with the same config), which
    /// other balancers over the same instances may share.
    ///
    /// Must be called inside a tokio runtime: it spawns the discovery reader.
    pub fn with_board<D, K, T, M, S, C>(
        discover: D,
        make: M,
        classify: C,
        config: &BalanceConfig,
        board: Arc<Board>,
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
        if !board.judges_as(config) {
            return Err(BalanceError::InvalidConfig(
                "a shared board must be made with the same accrual and panic settings",
            ));
        }
        // Our discovery task would panic without one.
        tokio::runtime::Handle::try_current().map_err(|_| BalanceError::NoRuntime)?;
        let (discovered, discovered_rx) = watch::channel(0);
        let default_rtt = config.load_default_rtt;
        let decay_ns = config.load_decay.as_nanos() as f64;
        let instance_board = board.clone();
        let instances = feed::spawn(
            discover,
            move |target: &T, id| {
                let accrual =
                    Accrual::new(make(target), classify.clone(), instance_board.clone(), id);
                Untried::new(PeakEwma::new(
                    accrual,
                    default_rtt,
                    decay_ns,
                    CompleteOnResponse::default(),
                ))
            },
            board.clone(),
            discovered,
            config.discover_changes_max,
        );
        let shared = Shared::new(
            P2c::new(instances),
            discovered_rx,
            Instant::now() + config.startup_wait,
            config.waiting_requests_max,
        );
        let timed = Timed {
            shared,
            timeout: config.attempt_timeout,
        };
        Ok(Self {
            dispatch: Arc::new(timed),
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
    type Future = BoxFuture<Res>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is the balancer's, and is awaited inside the (timed) call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.dispatch.dispatch(request)
    }
}
