//! `P2c`: the power of two choices over a plain vector of instances.
//!
//! tower's p2c `Balance` keeps its services in a ready cache: every call moves the
//! chosen service out of the ready set into a set of pending futures, and the next
//! `poll_ready` polls it back, so each request paid for two map moves, a
//! `FuturesUnordered` push and poll, and their wakers (`bench/proxy-cost`). Here the
//! instances stay in one vector, split in two: those that were ready when last polled
//! (the front, `ready_len` of them) and those that were not. `poll_ready` draws two
//! distinct instances from the front, polls both and keeps the one with the lower load;
//! one found not ready moves to the back and another is drawn, so the choice is always
//! between two ready instances, as tower's is (choosing the other of a pair when one is
//! ejected would send an ejected instance's share to whichever it was drawn with).
//! Services polled while not ready are given this balancer's own waker, which marks the
//! back as worth polling again and wakes the caller; the next `poll_ready` then puts
//! every instance back at the front. Polling a service for readiness reserves nothing
//! here (failure accrual hands out its probe at `call`), so polling one that is not then
//! called is harmless.
//!
//! As tower's balancer does, it drops a service whose `poll_ready` fails until discovery
//! lists it again, and it is `Pending` while no instance is ready (discovery's stream
//! and the services' wakeups wake it).

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::future::MapErr;
use futures_util::{Stream, TryFutureExt};
use tower::discover::Change;
use tower::load::Load;
use tower::{BoxError, Service};

use super::board::InstanceId;

/// A p2c balancer over the services `discover` lists; see the module documentation.
pub(crate) struct P2c<D, S> {
    discover: D,
    /// Ready when last polled: `services[..ready_len]`; not ready: the rest.
    services: Vec<(InstanceId, S)>,
    ready_len: usize,
    /// What `poll_ready` chose, for the `call` that follows it.
    chosen: Option<usize>,
    /// The waker the services that were not ready hold.
    woken: Arc<Woken>,
    waker: Waker,
    /// The caller's waker last handed to `woken`, to skip its lock when unchanged.
    caller: Option<Waker>,
    /// xorshift64* state; never 0.
    rng: u64,
}

/// Set by a service that was not ready and may be now; wakes the balancer's caller.
#[derive(Default)]
struct Woken {
    again: AtomicBool,
    caller: Mutex<Option<Waker>>,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.again.store(true, Ordering::Release);
        let caller = self.caller.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(caller) = caller.as_ref() {
            caller.wake_by_ref();
        }
    }
}

impl<D, S> P2c<D, S> {
    /// A balancer over what `discover` lists, seeded at random.
    pub(crate) fn new(discover: D) -> Self {
        Self::with_seed(discover, RandomState::new().hash_one(0x5eed_u64))
    }

    fn with_seed(discover: D, seed: u64) -> Self {
        let woken = Arc::new(Woken::default());
        Self {
            discover,
            services: Vec::new(),
            ready_len: 0,
            chosen: None,
            waker: Waker::from(woken.clone()),
            woken,
            caller: None,
            rng: seed | 1,
        }
    }

    /// A uniform index below `n` (> 0).
    fn index_below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // Lemire's multiply-shift: unbiased enough for picking among instances.
        ((u128::from(x) * n as u128) >> 64) as usize
    }

    /// Moves the service at `i`, in the front, to the back.
    fn set_aside(&mut self, i: usize) {
        debug_assert!(i < self.ready_len);
        self.ready_len -= 1;
        self.services.swap(i, self.ready_len);
    }

    /// Drops the service at `i`, keeping the front and the back apart.
    fn remove(&mut self, mut i: usize) {
        if i < self.ready_len {
            self.set_aside(i);
            i = self.ready_len;
        }
        // The last one comes to `i`: both are in the back (or `i` is the last).
        self.services.swap_remove(i);
    }

    /// Hands the caller's waker to the services' wakeups, when it changed.
    fn remember_caller(&mut self, cx: &Context<'_>) {
        if self
            .caller
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return;
        }
        let waker = cx.waker().clone();
        *self
            .woken
            .caller
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(waker.clone());
        self.caller = Some(waker);
    }
}

impl<D, S> P2c<D, S>
where
    D: Stream<Item = Result<Change<InstanceId, S>, Infallible>> + Unpin,
{
    /// Applies every change discovery has queued; registers `cx` for the next.
    fn update(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(Ok(change))) = Pin::new(&mut self.discover).poll_next(cx) {
            match change {
                Change::Insert(id, service) => {
                    let i = match self.services.iter().position(|(listed, _)| *listed == id) {
                        Some(i) => {
                            self.services[i].1 = service;
                            i
                        }
                        None => {
                            self.services.push((id, service));
                            self.services.len() - 1
                        }
                    };
                    // A new service is worth a poll.
                    if i >= self.ready_len {
                        self.services.swap(i, self.ready_len);
                        self.ready_len += 1;
                    }
                }
                Change::Remove(id) => {
                    if let Some(i) = self.services.iter().position(|(listed, _)| *listed == id) {
                        self.remove(i);
                    }
                }
            }
        }
    }
}

impl<D, S> P2c<D, S> {
    /// Whether the service at `i` (in the front) is ready; if not, it is set aside, or
    /// dropped when its check failed.
    fn check<Req>(&mut self, i: usize) -> bool
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        let mut own = Context::from_waker(&self.waker);
        match self.services[i].1.poll_ready(&mut own) {
            Poll::Ready(Ok(())) => true,
            Poll::Pending => {
                self.set_aside(i);
                false
            }
            Poll::Ready(Err(e)) => {
                let e: BoxError = e.into();
                tracing::debug!(error = %e, "an instance failed its readiness check; dropped until listed again");
                self.remove(i);
                false
            }
        }
    }
}

impl<D, S, Req> Service<Req> for P2c<D, S>
where
    D: Stream<Item = Result<Change<InstanceId, S>, Infallible>> + Unpin,
    S: Service<Req> + Load,
    S::Metric: PartialOrd,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = MapErr<S::Future, fn(S::Error) -> BoxError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.update(cx);
        self.remember_caller(cx);
        if self.woken.again.swap(false, Ordering::AcqRel) {
            self.ready_len = self.services.len();
        }
        self.chosen = None;
        // Each pass chooses, or moves a service to the back, or drops one: this ends.
        loop {
            if self.ready_len == 0 {
                return Poll::Pending;
            }
            let a = self.index_below(self.ready_len);
            if !self.check::<Req>(a) {
                continue;
            }
            if self.ready_len == 1 {
                self.chosen = Some(a);
                return Poll::Ready(Ok(()));
            }
            let b = self.index_below(self.ready_len - 1);
            let b = if b >= a { b + 1 } else { b };
            if !self.check::<Req>(b) {
                continue;
            }
            let lighter = if self.services[b].1.load() < self.services[a].1.load() {
                b
            } else {
                a
            };
            self.chosen = Some(lighter);
            return Poll::Ready(Ok(()));
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let i = self
            .chosen
            .take()
            .expect("P2c::call without a successful poll_ready");
        let to_box: fn(S::Error) -> BoxError = Into::into;
        self.services[i].1.call(request).map_err(to_box)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::atomic::AtomicUsize;

    use futures_util::stream;
    use tokio::sync::mpsc;

    use super::*;

    /// A service with a fixed load, ready while `ready` is set (`open` wakes whoever found
    /// it not ready), counting its calls.
    #[derive(Clone)]
    struct Fake {
        load: u32,
        ready: Arc<AtomicBool>,
        waiting: Arc<Mutex<Option<Waker>>>,
        fails: bool,
        calls: Arc<AtomicUsize>,
    }

    impl Fake {
        fn new(load: u32) -> Self {
            Self {
                load,
                ready: Arc::new(AtomicBool::new(true)),
                waiting: Arc::default(),
                fails: false,
                calls: Arc::default(),
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        fn open(&self) {
            self.ready.store(true, Ordering::SeqCst);
            if let Some(waker) = self.waiting.lock().unwrap().take() {
                waker.wake();
            }
        }
    }

    impl Load for Fake {
        type Metric = u32;

        fn load(&self) -> u32 {
            self.load
        }
    }

    impl Service<()> for Fake {
        type Response = u32;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u32, BoxError>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            if self.fails {
                return Poll::Ready(Err("broken".into()));
            }
            if self.ready.load(Ordering::SeqCst) {
                Poll::Ready(Ok(()))
            } else {
                *self.waiting.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
        }

        fn call(&mut self, (): ()) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(self.load))
        }
    }

    type Changed = Result<Change<InstanceId, Fake>, Infallible>;
    type Changes = mpsc::UnboundedSender<Changed>;
    type Listing = stream::PollFn<Box<dyn FnMut(&mut Context<'_>) -> Poll<Option<Changed>>>>;

    fn balancer() -> (Changes, P2c<Listing, Fake>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let listing: Listing = stream::poll_fn(Box::new(move |cx| rx.poll_recv(cx)));
        (tx, P2c::with_seed(listing, 7))
    }

    fn ready_now<D, S>(p2c: &mut P2c<D, S>) -> Option<Result<(), BoxError>>
    where
        P2c<D, S>: Service<(), Error = BoxError>,
    {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Service::<()>::poll_ready(p2c, &mut cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    async fn send<D>(p2c: &mut P2c<D, Fake>) -> u32
    where
        P2c<D, Fake>: Service<(), Response = u32, Error = BoxError>,
    {
        poll_fn(|cx| p2c.poll_ready(cx)).await.expect("ready");
        p2c.call(()).await.expect("answered")
    }

    #[tokio::test]
    async fn of_two_the_lighter_is_chosen_and_one_instance_takes_everything() {
        let (changes, mut p2c) = balancer();
        assert!(ready_now(&mut p2c).is_none(), "nothing listed: pending");
        let light = Fake::new(1);
        changes.send(Ok(Change::Insert(1, light.clone()))).unwrap();
        for _ in 0..10 {
            assert_eq!(send(&mut p2c).await, 1);
        }
        let heavy = Fake::new(9);
        changes.send(Ok(Change::Insert(2, heavy.clone()))).unwrap();
        for _ in 0..100 {
            assert_eq!(
                send(&mut p2c).await,
                1,
                "with two, both are drawn every time"
            );
        }
        assert_eq!((light.calls(), heavy.calls()), (110, 0));
    }

    #[tokio::test]
    async fn load_spreads_over_equal_instances_and_skips_the_ones_not_ready() {
        let (changes, mut p2c) = balancer();
        let fakes: Vec<Fake> = (0..4).map(|_| Fake::new(1)).collect();
        for (id, fake) in fakes.iter().enumerate() {
            changes
                .send(Ok(Change::Insert(id as InstanceId, fake.clone())))
                .unwrap();
        }
        for _ in 0..4000 {
            send(&mut p2c).await;
        }
        for fake in &fakes {
            assert!(
                (700..1300).contains(&fake.calls()),
                "about a quarter each: {}",
                fake.calls()
            );
        }
        let calls_before_1 = fakes[1].calls();
        // Three not ready: every request finds the fourth, even when neither draw is it.
        for fake in &fakes[..3] {
            fake.ready.store(false, Ordering::SeqCst);
        }
        let before = fakes[3].calls();
        for _ in 0..200 {
            send(&mut p2c).await;
        }
        assert_eq!(fakes[3].calls() - before, 200);
        // None ready: pending, until one says it may be ready again.
        fakes[3].ready.store(false, Ordering::SeqCst);
        assert!(ready_now(&mut p2c).is_none());
        assert!(
            ready_now(&mut p2c).is_none(),
            "still pending, nothing was polled"
        );
        fakes[1].open();
        assert_eq!(send(&mut p2c).await, 1);
        assert_eq!(fakes[1].calls() - calls_before_1, 1);
    }

    #[tokio::test]
    async fn an_instance_drawn_with_one_that_is_not_ready_gets_no_extra_share() {
        // A heavy instance beside a light one and one not ready: the choice is always
        // between two ready ones, so the heavy one never wins.
        let (changes, mut p2c) = balancer();
        let (light, heavy, out) = (Fake::new(1), Fake::new(9), Fake::new(1));
        out.ready.store(false, Ordering::SeqCst);
        changes.send(Ok(Change::Insert(1, light.clone()))).unwrap();
        changes.send(Ok(Change::Insert(2, heavy.clone()))).unwrap();
        changes.send(Ok(Change::Insert(3, out.clone()))).unwrap();
        for _ in 0..300 {
            send(&mut p2c).await;
        }
        assert_eq!((light.calls(), heavy.calls(), out.calls()), (300, 0, 0));
    }

    #[tokio::test]
    async fn removed_and_failing_instances_are_dropped() {
        let (changes, mut p2c) = balancer();
        let (a, b) = (Fake::new(1), Fake::new(1));
        let mut broken = Fake::new(0);
        broken.fails = true;
        changes.send(Ok(Change::Insert(1, a.clone()))).unwrap();
        changes.send(Ok(Change::Insert(2, b.clone()))).unwrap();
        changes.send(Ok(Change::Insert(3, broken.clone()))).unwrap();
        for _ in 0..50 {
            send(&mut p2c).await;
        }
        assert_eq!(p2c.services.len(), 2, "the failing one is gone");
        assert_eq!(broken.calls(), 0);
        changes.send(Ok(Change::Remove(1))).unwrap();
        let before = b.calls();
        for _ in 0..50 {
            send(&mut p2c).await;
        }
        assert_eq!(b.calls() - before, 50);
        // Listed again under the same id: replaced, not added twice.
        changes.send(Ok(Change::Insert(2, Fake::new(5)))).unwrap();
        assert!(ready_now(&mut p2c).is_some());
        assert_eq!(p2c.services.len(), 1);
    }
}
