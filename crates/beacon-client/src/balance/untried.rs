//! New instances first: a load metric that gives an instance the benefit of the doubt
//! until it has answered once, as Finagle's peak EWMA does.
//!
//! tower's `PeakEwma` starts a new instance at a default round-trip time. On a fast
//! network every trusted instance measures below any sensible default, so p2c never
//! picks the newcomer and it gets no traffic at all, however long it has been listed.
//! Here an instance that has never answered costs nothing while it has no request in
//! flight, and more than any measured instance while it has one, so it takes exactly
//! one request at a time until its first answer gives it a real estimate.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::load::Load;
use tower::Service;

/// `S`'s load, ordered so that untried beats measured beats untried-but-busy.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub enum Cost<M> {
    /// Never answered, nothing in flight: try it.
    Untried,
    /// The inner service's own measure.
    Measured(M),
    /// Never answered, a request in flight: wait for that one first.
    Waiting(usize),
}

/// Wraps a service whose load is measured once it has answered.
#[derive(Debug)]
pub struct Untried<S> {
    inner: S,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    answered: AtomicBool,
    in_flight: AtomicUsize,
}

impl<S> Untried<S> {
    /// A service that has not answered yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            shared: Arc::default(),
        }
    }
}

impl<S: Load> Load for Untried<S> {
    type Metric = Cost<S::Metric>;

    fn load(&self) -> Self::Metric {
        if self.shared.answered.load(Ordering::Relaxed) {
            return Cost::Measured(self.inner.load());
        }
        match self.shared.in_flight.load(Ordering::Relaxed) {
            0 => Cost::Untried,
            n => Cost::Waiting(n),
        }
    }
}

impl<S, Req> Service<Req> for Untried<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = UntriedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
        UntriedFuture {
            inner: self.inner.call(request),
            flight: InFlight(self.shared.clone()),
        }
    }
}

/// Counts a request out when it ends, answered or dropped.
#[derive(Debug)]
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let before = self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(
            before > 0,
            "a request is counted in before it is counted out"
        );
    }
}

pin_project_lite::pin_project! {
    /// The inner future; marks the instance as answered when it completes.
    #[derive(Debug)]
    pub struct UntriedFuture<F> {
        #[pin]
        inner: F,
        flight: InFlight,
    }
}

impl<F: Future> Future for UntriedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        // A failure answers too: accrual, not load, deals with instances that fail.
        this.flight.0.answered.store(true, Ordering::Relaxed);
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::load::Constant;
    use tower::ServiceExt;

    #[tokio::test]
    async fn untried_beats_measured_until_it_answers_and_busy_untried_loses() {
        let mut svc = Untried::new(Constant::new(
            tower::service_fn(|n: u32| async move { Ok::<_, Infallible>(n) }),
            7u32,
        ));
        let measured: Cost<u32> = Cost::Measured(0);
        assert!(svc.load() < measured, "untried goes first");
        let pending = svc.ready().await.unwrap().call(1);
        assert_eq!(svc.load(), Cost::Waiting(1));
        assert!(svc.load() > Cost::Measured(u32::MAX), "one at a time");
        assert_eq!(pending.await.unwrap(), 1);
        assert_eq!(svc.load(), Cost::Measured(7));
    }

    #[tokio::test]
    async fn a_dropped_request_leaves_the_instance_untried() {
        let mut svc = Untried::new(Constant::new(
            tower::service_fn(|n: u32| async move { Ok::<_, Infallible>(n) }),
            7u32,
        ));
        let pending = svc.ready().await.unwrap().call(1);
        drop(pending);
        assert_eq!(svc.load(), Cost::Untried);
    }
}
