//! The balancer's shared view of its instances: who is trusted, and are we panicking?
//!
//! One board per balancer. Each instance's [`Health`] lives here rather than inside its
//! service so that panic mode (more than `panic_threshold` of the instances untrusted) can be
//! decided over all of them under one lock, and so that callers can read a snapshot.
//! Changes that may make a waiting instance ready (panic mode flips, a probe ends) wake every
//! waiting instance through one `Notify`; they re-check and most go back to sleep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::classify::Outcome;
use super::config::AccrualConfig;
use super::health::{Admit, Health, State, Ticket};

/// Identifies one instance's entry on the board (discovery keys may come back).
pub(crate) type InstanceId = u64;

#[derive(Debug)]
struct Entry {
    key: String,
    health: Health,
}

#[derive(Debug, Default)]
struct Entries {
    next_id: InstanceId,
    by_id: HashMap<InstanceId, Entry>,
    untrusted: usize,
    panic: bool,
    /// The health of instances discovery removed lately, by key, with when they left: a
    /// key removed and listed again (its registration expired in a registry outage and
    /// came back) keeps its record instead of starting trusted with the shortest backoff.
    /// A key listed again with a new address is taken for the same instance, moved.
    departed: HashMap<String, (Instant, Health)>,
}

/// Departed records kept at most; past it an arbitrary one is forgotten (the bound
/// matters, not which record goes).
const DEPARTED_MAX: usize = 1024;

/// Shared state of one balancer's instances.
#[derive(Debug)]
pub struct Board {
    entries: Mutex<Entries>,
    accrual: AccrualConfig,
    panic_threshold: f64,
    /// Woken when an instance that waits might have become ready.
    changed: Arc<Notify>,
    /// Instances discovery currently lists; read by requests to fail fast on zero.
    discovered: watch::Sender<usize>,
}

/// One instance as the board sees it, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceState {
    /// The discovery key of the instance.
    pub key: String,
    /// Trusted, ejected or on probation.
    pub health: HealthState,
    /// Successful requests in the accrual window.
    pub window_successes: u32,
    /// Failed requests in the accrual window.
    pub window_failures: u32,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Times the instance was ejected since discovery added it.
    pub ejections: u64,
}

/// An instance's standing in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Takes requests.
    Trusted,
    /// Sits out for the remaining time (unless the balancer panics).
    Ejected {
        /// Time left until probation.
        remaining: Duration,
    },
    /// Waits for (or runs) its one probe request.
    Probation,
}

impl Board {
    /// An empty board.
    pub(crate) fn new(accrual: AccrualConfig, panic_threshold: f64) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            accrual,
            panic_threshold,
            changed: Arc::new(Notify::new()),
            discovered: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Entries only hold counters; a panic elsewhere cannot leave them half-updated in a
        // way that matters more than losing the balancer would.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a trusted instance.
    pub(crate) fn register(&self, key: String, now: Instant) -> InstanceId {
        let mut entries = self.lock();
        let id = entries.next_id;
        entries.next_id += 1;
        let window = self.accrual.window;
        entries
            .departed
            .retain(|_, (left, _)| now.saturating_duration_since(*left) < window);
        // The balancer may drop a removed instance's service only after its replacement
        // registered (a service waiting out a backoff is dropped when next polled), so a
        // live entry of the same key counts as a record too.
        let live = entries
            .by_id
            .values()
            .find(|e| e.key == key)
            .map(|e| e.health.clone());
        let departed = entries.departed.remove(&key).map(|(_, health)| health);
        let health = live
            .or(departed)
            .unwrap_or_else(|| Health::new(self.accrual.clone(), now));
        if !health.is_trusted() {
            entries.untrusted += 1;
        }
        entries.by_id.insert(id, Entry { key, health });
        self.update_panic(&mut entries);
        id
    }

    /// Removes an instance discovery dropped (or replaced).
    pub(crate) fn deregister(&self, id: InstanceId) {
        self.deregister_at(id, Instant::now());
    }

    /// [`Board::deregister`] at `now`.
    pub(crate) fn deregister_at(&self, id: InstanceId, now: Instant) {
        let mut entries = self.lock();
        if let Some(entry) = entries.by_id.remove(&id) {
            if !entry.health.is_trusted() {
                entries.untrusted -= 1;
            }
            if entries.departed.len() >= DEPARTED_MAX {
                let any = entries.departed.keys().next().cloned();
                if let Some(key) = any {
                    entries.departed.remove(&key);
                }
            }
            entries.departed.insert(entry.key, (now, entry.health));
            self.update_panic(&mut entries);
        }
    }

    /// Whether a request may go to the instance now (see [`Health::admit`]).
    pub(crate) fn admit(&self, id: InstanceId, now: Instant) -> Admit {
        let mut entries = self.lock();
        let panic = entries.panic;
        match entries.by_id.get_mut(&id) {
            Some(entry) => entry.health.admit(now, panic),
            // Not on the board any more: discovery removed it and the balancer will drop it.
            None => Admit::Ready,
        }
    }

    /// Starts a request on the instance.
    pub(crate) fn start(&self, id: InstanceId) -> Option<Ticket> {
        self.lock().by_id.get_mut(&id).map(|e| e.health.start())
    }

    /// Records a request's outcome and wakes waiting instances if anything changed.
    pub(crate) fn record(&self, id: InstanceId, ticket: Ticket, outcome: Outcome, now: Instant) {
        let mut entries = self.lock();
        let Some(entry) = entries.by_id.get_mut(&id) else {
            return;
        };
        let was_trusted = entry.health.is_trusted();
        if !entry.health.record(ticket, outcome, now) {
            return;
        }
        match (was_trusted, entry.health.is_trusted()) {
            (true, false) => entries.untrusted += 1,
            (false, true) => entries.untrusted -= 1,
            _ => {}
        }
        self.update_panic(&mut entries);
        drop(entries);
        // A probe's end lets the next request in, whichever way it went.
        self.changed.notify_waiters();
    }

    fn update_panic(&self, entries: &mut Entries) {
        let total = entries.by_id.len();
        debug_assert!(
            entries.untrusted <= total,
            "more untrusted instances than instances"
        );
        let panic = total > 0 && entries.untrusted as f64 > self.panic_threshold * total as f64;
        if panic != entries.panic {
            entries.panic = panic;
            self.changed.notify_waiters();
        }
    }

    /// Whether more than the threshold of instances are untrusted, so all are used.
    pub fn is_panicking(&self) -> bool {
        self.lock().panic
    }

    /// Where waiting instances learn that something changed.
    pub(crate) fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Records how many instances discovery lists now.
    pub(crate) fn set_discovered(&self, count: usize) {
        self.discovered.send_replace(count);
    }

    /// Follows the number of instances discovery lists.
    pub(crate) fn discovered(&self) -> watch::Receiver<usize> {
        self.discovered.subscribe()
    }

    /// Every instance's state, ordered by key.
    pub fn snapshot(&self) -> Vec<InstanceState> {
        let now = Instant::now();
        let entries = self.lock();
        let mut states: Vec<InstanceState> = entries
            .by_id
            .values()
            .map(|entry| {
                let tally = entry.health.tally(now);
                InstanceState {
                    key: entry.key.clone(),
                    health: match entry.health.state() {
                        State::Trusted => HealthState::Trusted,
                        State::Ejected { until } if until > now => HealthState::Ejected {
                            remaining: until - now,
                        },
                        State::Ejected { .. } | State::Probation { .. } => HealthState::Probation,
                    },
                    window_successes: tally.successes,
                    window_failures: tally.failures,
                    consecutive_failures: entry.health.consecutive_failures(),
                    ejections: entry.health.ejections(),
                }
            })
            .collect();
        states.sort_by(|a, b| a.key.cmp(&b.key));
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eject(board: &Board, id: InstanceId, now: Instant) {
        for _ in 0..5 {
            let ticket = board.start(id).expect("registered");
            board.record(id, ticket, Outcome::Failure, now);
        }
    }

    #[test]
    fn panic_mode_when_two_of_three_are_ejected_not_one() {
        let board = Board::new(AccrualConfig::default(), 0.5);
        let now = Instant::now();
        let ids: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|k| board.register(k.to_string(), now))
            .collect();
        eject(&board, ids[0], now);
        assert!(!board.is_panicking(), "1 of 3 ejected is not panic");
        assert!(matches!(board.admit(ids[0], now), Admit::NotUntil(_)));
        eject(&board, ids[1], now);
        assert!(board.is_panicking(), "2 of 3 ejected is panic");
        assert_eq!(
            board.admit(ids[0], now),
            Admit::Ready,
            "panic mode uses every instance"
        );
        assert_eq!(board.admit(ids[1], now), Admit::Ready);
        // Removing an ejected instance leaves 1 of 2: back to normal.
        board.deregister(ids[1]);
        assert!(!board.is_panicking());
        assert!(matches!(board.admit(ids[0], now), Admit::NotUntil(_)));
        let states = board.snapshot();
        assert_eq!(states.len(), 2);
        assert!(matches!(states[0].health, HealthState::Ejected { .. }));
        assert_eq!(states[0].ejections, 1);
        assert_eq!(states[1].health, HealthState::Trusted);
    }

    #[test]
    fn a_key_that_leaves_and_returns_keeps_its_record_for_a_window() {
        let board = Board::new(AccrualConfig::default(), 0.5);
        let now = Instant::now();
        let keep = board.register("keep".to_string(), now);
        let flaky = board.register("flaky".to_string(), now);
        eject(&board, flaky, now);
        board.deregister_at(flaky, now);
        let back = board.register("flaky".to_string(), now);
        assert!(
            matches!(board.admit(back, now), Admit::NotUntil(_)),
            "still ejected after coming back"
        );
        assert_eq!(board.snapshot().iter().map(|s| s.ejections).sum::<u64>(), 1);
        // Listed again before the balancer dropped the old service: the same record.
        let twin = board.register("flaky".to_string(), now);
        let ejected = board
            .snapshot()
            .iter()
            .filter(|s| matches!(s.health, HealthState::Ejected { .. }))
            .count();
        assert_eq!(ejected, 2, "the twin inherits the ejection");
        board.deregister_at(twin, now);
        // Gone for longer than the window: a fresh start.
        board.deregister_at(back, now);
        let later = now + AccrualConfig::default().window;
        let fresh = board.register("flaky".to_string(), later);
        assert_eq!(board.admit(fresh, later), Admit::Ready);
        assert_eq!(board.admit(keep, later), Admit::Ready);
    }

    #[test]
    fn a_single_ejected_instance_is_panic() {
        let board = Board::new(AccrualConfig::default(), 0.5);
        let now = Instant::now();
        let id = board.register("only".to_string(), now);
        eject(&board, id, now);
        assert!(board.is_panicking());
        assert_eq!(board.admit(id, now), Admit::Ready);
    }
}
