//! `Shared`: one balancer that every caller calls in place, with no task in between.
//!
//! tower's balancer is neither `Clone` nor shareable. tower's `Buffer` solves that by
//! running it in a task of its own and sending every request there over a channel, so
//! each request crossed two tasks and allocated a channel. Here the callers share the
//! balancer behind a mutex, held only for one
//! `poll_ready` and the `call` that follows it (never across an await), so a ready
//! balancer costs a request one uncontended lock.
//!
//! A balancer that is not ready (no instance admits a request now) registers wakeups with
//! whoever polled it last, but many callers may be waiting. So it is always polled with one
//! waker of our own, [`Waiters`], which wakes every waiting caller; they poll again and the
//! first takes the instance that became ready. A generation count closes the gap between a
//! caller seeing "not ready" and putting its waker on the list.
//!
//! This also knows what stage a request is in, so it keeps the checks the balancer cannot
//! make: a request fails at once while discovery lists no instance (after a short wait for
//! the first listing), and a request still waiting for an instance fails when discovery
//! drops the last one. A request already sent is left to finish or time out.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use tokio::sync::watch;
use tower::{BoxError, Service};

use super::error::BalanceError;

/// A balancer shared by its callers; see the module documentation.
pub(crate) struct Shared<B> {
    inner: Arc<Inner<B>>,
}

struct Inner<B> {
    balancer: Mutex<B>,
    waiters: Arc<Waiters>,
    /// `waiters` as a waker, made once.
    waker: Waker,
    /// How many instances discovery lists; cloned only by a request that must wait on it.
    discovered: watch::Receiver<usize>,
    /// Until then, a request finding no instance waits for discovery's first listing.
    startup_deadline: Instant,
}

/// The callers waiting for the balancer to become ready.
struct Waiters {
    /// Bumped by every wakeup, so a caller can tell one happened since it polled.
    generation: AtomicU64,
    wakers: Mutex<Vec<Waker>>,
    /// Waiting callers at most; past it a request fails instead of queueing.
    max: usize,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, Vec<Waker>> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `waker` on the list unless a wakeup came after `seen`; `Err` if the list is full.
    fn wait(&self, seen: u64, waker: &Waker) -> Result<bool, BalanceError> {
        let mut wakers = self.lock();
        if self.generation.load(Ordering::Acquire) != seen {
            return Ok(false);
        }
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            if wakers.len() >= self.max {
                return Err(BalanceError::Overloaded(self.max));
            }
            wakers.push(waker.clone());
        }
        Ok(true)
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let wakers = {
            let mut wakers = self.lock();
            self.generation.fetch_add(1, Ordering::AcqRel);
            std::mem::take(&mut *wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

impl<B> Shared<B> {
    /// Shares `balancer`; `discovered` follows how many instances discovery lists.
    pub(crate) fn new(
        balancer: B,
        discovered: watch::Receiver<usize>,
        startup_deadline: Instant,
        waiting_max: usize,
    ) -> Self {
        assert!(waiting_max > 0, "requests must be able to wait");
        let waiters = Arc::new(Waiters {
            generation: AtomicU64::new(0),
            wakers: Mutex::new(Vec::new()),
            max: waiting_max,
        });
        Self {
            inner: Arc::new(Inner {
                balancer: Mutex::new(balancer),
                waker: Waker::from(waiters.clone()),
                waiters,
                discovered,
                startup_deadline,
            }),
        }
    }
}

impl<B> Shared<B> {
    /// Starts `request` on its way: it waits for the balancer, then for the instance.
    pub(crate) fn call<Req>(&self, request: Req) -> Call<B, Req>
    where
        B: Service<Req>,
    {
        let listed = *self.inner.discovered.borrow() > 0;
        let stage = if listed {
            Stage::Waiting
        } else if Instant::now() < self.inner.startup_deadline {
            Stage::Startup
        } else {
            Stage::NoInstances
        };
        Call {
            inner: self.inner.clone(),
            request: Some(request),
            stage,
            watch: None,
            sent: None,
        }
    }
}

enum Stage {
    /// Discovery has listed nothing yet: wait for it until the startup deadline.
    Startup,
    /// Discovery lists nothing: fail.
    NoInstances,
    /// Waiting for the balancer to take the request.
    Waiting,
    /// The request went to an instance.
    Sent,
}

type WatchFuture = Pin<Box<dyn Future<Output = bool> + Send>>;

pin_project_lite::pin_project! {
    /// A request on its way through a [`Shared`] balancer.
    pub(crate) struct Call<B: Service<Req>, Req> {
        inner: Arc<Inner<B>>,
        request: Option<Req>,
        stage: Stage,
        // Only while discovery is empty or the balancer is not ready: resolves when the
        // instance count crosses zero (true: something is listed).
        watch: Option<WatchFuture>,
        #[pin]
        sent: Option<B::Future>,
    }
}

impl<B, Req> Future for Call<B, Req>
where
    B: Service<Req>,
    B::Error: Into<BoxError>,
{
    type Output = Result<B::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.stage {
                Stage::Sent => {
                    let sent = this.sent.as_pin_mut().expect("a sent request has a future");
                    return sent.poll(cx).map_err(Into::into);
                }
                Stage::NoInstances => return Poll::Ready(Err(BalanceError::NoInstances.into())),
                Stage::Startup => {
                    let watch = this.watch.get_or_insert_with(|| {
                        let deadline = tokio::time::Instant::from_std(this.inner.startup_deadline);
                        let mut discovered = this.inner.discovered.clone();
                        Box::pin(async move {
                            let listed = discovered.wait_for(|n| *n > 0);
                            matches!(tokio::time::timeout_at(deadline, listed).await, Ok(Ok(_)))
                        })
                    });
                    let listed = std::task::ready!(watch.as_mut().poll(cx));
                    *this.watch = None;
                    *this.stage = if listed {
                        Stage::Waiting
                    } else {
                        Stage::NoInstances
                    };
                }
                Stage::Waiting => {
                    let waiters = &this.inner.waiters;
                    let seen = waiters.generation.load(Ordering::Acquire);
                    let mut balancer = this
                        .inner
                        .balancer
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    let mut own = Context::from_waker(&this.inner.waker);
                    match balancer.poll_ready(&mut own) {
                        Poll::Ready(Ok(())) => {
                            let request = this.request.take().expect("sent only once");
                            let future = balancer.call(request);
                            drop(balancer);
                            this.sent.set(Some(future));
                            *this.stage = Stage::Sent;
                            *this.watch = None;
                            continue;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                        Poll::Pending => drop(balancer),
                    }
                    match waiters.wait(seen, cx.waker()) {
                        Err(e) => return Poll::Ready(Err(e.into())),
                        // Woken since we polled: poll again, but through the scheduler, in
                        // case the wakeup was a cooperative yield inside the balancer.
                        Ok(false) => {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        Ok(true) => {}
                    }
                    let watch = this.watch.get_or_insert_with(|| {
                        let mut discovered = this.inner.discovered.clone();
                        Box::pin(async move {
                            if discovered.wait_for(|n| *n == 0).await.is_err() {
                                // Discovery ended and keeps its last instances.
                                std::future::pending::<()>().await;
                            }
                            false
                        })
                    });
                    if watch.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(BalanceError::NoInstances.into()));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use super::*;

    /// A balancer that is ready once `open` is set, waking whoever polled it last (as a
    /// tower service does): only the shared waker can reach every waiting caller.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<AtomicBool>,
        polled_by: Arc<Mutex<Option<Waker>>>,
    }

    impl Gate {
        fn open(&self) {
            self.open.store(true, Ordering::SeqCst);
            if let Some(waker) = self.polled_by.lock().unwrap().take() {
                waker.wake();
            }
        }
    }

    impl Service<u32> for Gate {
        type Response = u32;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u32, BoxError>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            if self.open.load(Ordering::SeqCst) {
                return Poll::Ready(Ok(()));
            }
            *self.polled_by.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }

        fn call(&mut self, request: u32) -> Self::Future {
            std::future::ready(Ok(request))
        }
    }

    fn shared(
        gate: Gate,
        listed: usize,
        waiting_max: usize,
    ) -> (Shared<Gate>, watch::Sender<usize>) {
        let (tx, rx) = watch::channel(listed);
        (Shared::new(gate, rx, Instant::now(), waiting_max), tx)
    }

    #[tokio::test]
    async fn every_waiting_caller_is_woken_when_the_balancer_becomes_ready() {
        let gate = Gate::default();
        let (shared, _tx) = shared(gate.clone(), 1, 16);
        let callers: Vec<_> = (0..3).map(|i| tokio::spawn(shared.call(i))).collect();
        tokio::task::yield_now().await;
        assert!(
            callers.iter().all(|c| !c.is_finished()),
            "nothing is ready yet"
        );
        gate.open();
        for (i, caller) in callers.into_iter().enumerate() {
            let answer = tokio::time::timeout(Duration::from_secs(2), caller).await;
            assert_eq!(
                answer.expect("woken").expect("joined").expect("answered"),
                i as u32
            );
        }
    }

    #[tokio::test]
    async fn waiting_requests_are_bounded_and_fail_when_discovery_empties() {
        let (shared, tx) = shared(Gate::default(), 1, 1);
        let first = tokio::spawn(shared.call(1));
        tokio::task::yield_now().await;
        let second = shared.call(2).await;
        assert!(
            matches!(
                second.unwrap_err().downcast_ref(),
                Some(BalanceError::Overloaded(1))
            ),
            "a second waiting request is refused"
        );
        tx.send_replace(0);
        let first = tokio::time::timeout(Duration::from_secs(2), first).await;
        let error = first.expect("woken").expect("joined").unwrap_err();
        assert!(matches!(
            error.downcast_ref(),
            Some(BalanceError::NoInstances)
        ));
        // And a new request fails at once.
        let third = shared.call(3).await.unwrap_err();
        assert!(matches!(
            third.downcast_ref(),
            Some(BalanceError::NoInstances)
        ));
    }
}
