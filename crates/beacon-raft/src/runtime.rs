//! openraft's async runtime for Beacon: tokio's (`openraft-rt-tokio`'s `TokioRuntime`),
//! except for where its randomness comes from. openraft draws from its runtime's
//! `thread_rng()` for each election timeout and for the tick task's first phase; a
//! simulation must draw the same numbers on every run of a seed, production must keep
//! drawing from the operating system.
//!
//! So a seed can be scoped around a future ([`with_seed`]): inside it every draw comes
//! from a generator seeded from the scope, and every task openraft spawns gets a seed of
//! its own, derived from its parent's, so the whole tree of tasks a node starts draws
//! deterministically as long as each task draws and spawns in the same order. Outside
//! any scope (production) draws come from rand's thread-local OS-seeded generator and
//! spawns are tokio's own, exactly as with `TokioRuntime`. openraft-rt's own
//! `DeterministicRng` panics without a scope, which is why it cannot be production's.
//!
//! A bottom-layer module: it imports nothing else of this crate.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::time::Duration;

use openraft::rt::{AsyncRuntime, OptionalSend, Select2, Select3, Select4};
use openraft_rt_tokio::TokioRuntime;
use rand::rngs::{SmallRng, ThreadRng};
use rand::{Rng, SeedableRng, TryRng};

tokio::task_local! {
    /// The scoped task's seed state: each draw or spawn takes the next value from it.
    static SEED: Cell<u64>;
}

/// Runs `fut` with every random draw openraft makes in it, and in the tasks openraft
/// spawns from it, derived from `seed`. Two runs with the same seed whose tasks draw
/// and spawn in the same order draw the same numbers.
pub fn with_seed<F: Future>(seed: u64, fut: F) -> impl Future<Output = F::Output> {
    SEED.scope(Cell::new(seed), fut)
}

/// SplitMix64's increment (the golden ratio's fractional bits): consecutive states
/// differ by it, and the mixer below turns them into well spread values.
const SPLITMIX_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// One SplitMix64 output for `state` (Steele, Lea and Flood's finalizer): a bijection,
/// so distinct states give distinct seeds.
fn splitmix64(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The next seed of the current scope, advancing it; `None` outside any scope.
fn next_seed() -> Option<u64> {
    SEED.try_with(|state| {
        let next = state.get().wrapping_add(SPLITMIX_GAMMA);
        state.set(next);
        splitmix64(next)
    })
    .ok()
}

/// The generator `thread_rng()` hands openraft: seeded inside a [`with_seed`] scope,
/// the OS-seeded thread-local one outside.
#[derive(Debug)]
pub enum BeaconRng {
    /// Drawn from a scope's seed: reproducible.
    Seeded(SmallRng),
    /// rand's thread-local generator, seeded by the operating system.
    Os(ThreadRng),
}

impl TryRng for BeaconRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(match self {
            BeaconRng::Seeded(r) => r.next_u32(),
            BeaconRng::Os(r) => r.next_u32(),
        })
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(match self {
            BeaconRng::Seeded(r) => r.next_u64(),
            BeaconRng::Os(r) => r.next_u64(),
        })
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        match self {
            BeaconRng::Seeded(r) => r.fill_bytes(dst),
            BeaconRng::Os(r) => r.fill_bytes(dst),
        }
        Ok(())
    }
}

/// Beacon's openraft runtime: `TokioRuntime` with scoped seeds (see the module's doc).
#[derive(Debug)]
pub struct BeaconRuntime {
    inner: TokioRuntime,
}

impl AsyncRuntime for BeaconRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = <TokioRuntime as AsyncRuntime>::Instant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = BeaconRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        match next_seed() {
            Some(seed) => TokioRuntime::spawn(with_seed(seed, future)),
            None => TokioRuntime::spawn(future),
        }
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn select2<A, B>(
        a: A,
        b: B,
    ) -> impl Future<Output = Select2<A::Output, B::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
    {
        TokioRuntime::select2(a, b)
    }

    fn select3<A, B, C>(
        a: A,
        b: B,
        c: C,
    ) -> impl Future<Output = Select3<A::Output, B::Output, C::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
        C: Future + OptionalSend,
    {
        TokioRuntime::select3(a, b, c)
    }

    fn select4<A, B, C, D>(
        a: A,
        b: B,
        c: C,
        d: D,
    ) -> impl Future<Output = Select4<A::Output, B::Output, C::Output, D::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
        C: Future + OptionalSend,
        D: Future + OptionalSend,
    {
        TokioRuntime::select4(a, b, c, d)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> BeaconRng {
        match next_seed() {
            Some(seed) => BeaconRng::Seeded(SmallRng::seed_from_u64(seed)),
            None => BeaconRng::Os(rand::rng()),
        }
    }

    type Mpsc = <TokioRuntime as AsyncRuntime>::Mpsc;
    type Watch = <TokioRuntime as AsyncRuntime>::Watch;
    type Oneshot = <TokioRuntime as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::Mutex<T>;

    fn new(threads: usize) -> Self {
        BeaconRuntime {
            inner: TokioRuntime::new(threads),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.inner.block_on(future)
    }

    fn spawn_blocking<F, T>(f: F) -> impl Future<Output = Result<T, io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        TokioRuntime::spawn_blocking(f)
    }
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    /// What a scope draws: two numbers here, then two in a task spawned from it, then
    /// one more here.
    async fn draws(seed: u64) -> Vec<u64> {
        with_seed(seed, async {
            let mut out = vec![
                BeaconRuntime::thread_rng().random_range(0..u64::MAX),
                BeaconRuntime::thread_rng().random_range(0..u64::MAX),
            ];
            let child = BeaconRuntime::spawn(async {
                (0..2)
                    .map(|_| BeaconRuntime::thread_rng().random_range(0..u64::MAX))
                    .collect::<Vec<_>>()
            });
            out.extend(child.await.expect("child task"));
            out.push(BeaconRuntime::thread_rng().random_range(0..u64::MAX));
            out
        })
        .await
    }

    #[tokio::test]
    async fn the_same_seed_draws_the_same_numbers_in_the_scope_and_its_tasks() {
        let first = draws(42).await;
        assert_eq!(first, draws(42).await);
        assert_ne!(first, draws(43).await);
        // Every draw differs from the others: the child does not replay its parent.
        let mut distinct = first.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), first.len(), "{first:?}");
    }

    #[tokio::test]
    async fn without_a_scope_draws_and_spawns_work_as_tokio_does() {
        let a = BeaconRuntime::thread_rng().random_range(0..u64::MAX);
        let b = BeaconRuntime::thread_rng().random_range(0..u64::MAX);
        // Two 64-bit draws from the OS-seeded generator: equal with probability 2^-64.
        assert_ne!(a, b);
        let task = BeaconRuntime::spawn(async { BeaconRuntime::thread_rng().next_u64() });
        task.await.expect("unscoped task");
    }
}
