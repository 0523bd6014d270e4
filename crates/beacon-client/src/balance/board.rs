//! The instances' record: who is trusted, and are we panicking?
//!
//! One board per balancer, or one for several balancers over the same instances (an
//! instance is then judged on all the traffic it gets and is probed once). A proxy's
//! workers each keep their own board instead, so that no worker takes a lock another
//! takes on its way through a request, and the boards agree on ejections through a
//! [`Bulletin`]: an instance one board ejects is banned on the others until that board's
//! probe decides, and counts as untrusted in their panic mode. Each instance's [`Health`]
//! lives here rather than inside its service so that panic mode (more than
//! `panic_threshold` of the instances untrusted) can be decided over all of them under
//! one lock, and so that callers can read a snapshot. Records follow discovery (see
//! `feed.rs`), not the balancer's services, which it may drop late; every balancer
//! listing the same key shares one record. Changes that may make a waiting instance
//! ready (panic mode flips, a probe ends, a ban is posted or lifted) wake every waiting
//! instance through one `Notify`; they re-check and most go back to sleep.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::bulletin::{Bulletin, Slot};
use super::classify::Outcome;
use super::config::{AccrualConfig, BalanceConfig};
use super::health::{Admit, Health, State, Ticket};

/// Identifies one discovery key's record on the board while any balancer lists the key.
pub(crate) type InstanceId = u64;

/// Hashes the board's own sequential ids, looked up several times per request: they
/// need spreading, not SipHash's protection from chosen keys.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: spreads consecutive ids over the whole range.
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Debug)]
struct Record {
    key: String,
    health: Health,
    /// Balancers whose discovery lists this key.
    users: usize,
    /// The instance's notice on the bulletin, if the board posts to one.
    slot: Option<Arc<Slot>>,
}

impl Record {
    /// Until when another board's ban keeps this instance away, if it does at `now`.
    fn banned_until(&self, bulletin: &Bulletin, now: Instant) -> Option<Instant> {
        self.slot
            .as_ref()
            .and_then(|slot| bulletin.banned_until(slot, now))
    }
}

#[derive(Debug, Default)]
struct Entries {
    next_id: InstanceId,
    by_id: HashMap<InstanceId, Record, BuildHasherDefault<IdHasher>>,
    by_key: HashMap<String, InstanceId>,
    untrusted: usize,
    panic: bool,
    /// The health of instances discovery removed lately, by key, with when they left: a
    /// key removed and listed again (its registration expired in a registry outage and
    /// came back) keeps its record instead of starting trusted with the shortest backoff.
    /// A key listed again with a new address is taken for the same instance, moved.
    departed: HashMap<String, (Instant, Health)>,
}

/// An instance discovery lists, on the board until dropped (when discovery removes it).
#[derive(Debug)]
pub(crate) struct Listed {
    board: Arc<Board>,
    id: InstanceId,
}

impl Listed {
    /// The instance's record on the board.
    pub(crate) fn id(&self) -> InstanceId {
        self.id
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.board.deregister(self.id);
    }
}

/// Departed records kept at most; past it an arbitrary one is forgotten (the bound
/// matters, not which record goes).
const DEPARTED_MAX: usize = 1024;

/// Failure accrual's record of a set of instances, shared by the balancers over them.
#[derive(Debug)]
pub struct Board {
    entries: Mutex<Entries>,
    accrual: AccrualConfig,
    panic_threshold: f64,
    /// Woken when an instance that waits might have become ready (the bulletin's, when
    /// there is one, so that other boards' bans and lifts wake this board's instances).
    changed: Arc<Notify>,
    bulletin: Option<Arc<Bulletin>>,
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
    /// An empty board for balancers built with `config` (its accrual and panic settings).
    pub fn shared(config: &BalanceConfig) -> Arc<Self> {
        Arc::new(Self::new(config.accrual.clone(), config.panic_threshold))
    }

    /// An empty board of its own for one worker, agreeing with the other workers'
    /// boards on ejections through `bulletin`.
    pub fn posting_to(config: &BalanceConfig, bulletin: &Arc<Bulletin>) -> Arc<Self> {
        let mut board = Self::new(config.accrual.clone(), config.panic_threshold);
        board.changed = bulletin.changed();
        board.bulletin = Some(bulletin.clone());
        Arc::new(board)
    }

    /// An empty board.
    pub(crate) fn new(accrual: AccrualConfig, panic_threshold: f64) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            accrual,
            panic_threshold,
            changed: Arc::new(Notify::new()),
            bulletin: None,
        }
    }

    /// Whether `config` judges instances as this board does.
    pub(crate) fn judges_as(&self, config: &BalanceConfig) -> bool {
        self.accrual == config.accrual && self.panic_threshold == config.panic_threshold
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Entries only hold counters; a panic elsewhere cannot leave them half-updated in a
        // way that matters more than losing the balancer would.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts the instance discovery lists under `key` on the board until the result drops.
    pub(crate) fn list(self: &Arc<Self>, key: String) -> Listed {
        Listed {
            board: self.clone(),
            id: self.register(key, Instant::now()),
        }
    }

    /// Adds a listing of the instance under `key`: its live record if another balancer
    /// has one, else its record from before it left, else a trusted one.
    pub(crate) fn register(&self, key: String, now: Instant) -> InstanceId {
        let mut entries = self.lock();
        if let Some(&id) = entries.by_key.get(&key) {
            let record = entries.by_id.get_mut(&id).expect("by_key names a record");
            record.users += 1;
            return id;
        }
        let id = entries.next_id;
        entries.next_id += 1;
        let window = self.accrual.window;
        entries
            .departed
            .retain(|_, (left, _)| now.saturating_duration_since(*left) < window);
        let health = entries
            .departed
            .remove(&key)
            .map(|(_, health)| health)
            .unwrap_or_else(|| Health::new(self.accrual.clone(), now));
        if !health.is_trusted() {
            entries.untrusted += 1;
        }
        entries.by_key.insert(key.clone(), id);
        let slot = self.bulletin.as_ref().map(|b| b.slot(&key));
        if let (Some(bulletin), Some(slot), State::Ejected { until }) =
            (&self.bulletin, &slot, health.state())
        {
            // Back with the ejection it left with: the other workers keep away too.
            bulletin.ban(slot, until);
        }
        entries.by_id.insert(
            id,
            Record {
                key,
                health,
                slot,
                users: 1,
            },
        );
        self.update_panic(&mut entries);
        id
    }

    /// Removes a listing; the record goes with the last one.
    pub(crate) fn deregister(&self, id: InstanceId) {
        self.deregister_at(id, Instant::now());
    }

    /// [`Board::deregister`] at `now`.
    pub(crate) fn deregister_at(&self, id: InstanceId, now: Instant) {
        let mut entries = self.lock();
        let Some(record) = entries.by_id.get_mut(&id) else {
            debug_assert!(false, "deregistering an unknown instance");
            return;
        };
        assert!(record.users > 0, "a record without users was kept");
        record.users -= 1;
        if record.users > 0 {
            return;
        }
        let record = entries.by_id.remove(&id).expect("just found");
        entries.by_key.remove(&record.key);
        if !record.health.is_trusted() {
            entries.untrusted -= 1;
        }
        if entries.departed.len() >= DEPARTED_MAX {
            let any = entries.departed.keys().next().cloned();
            if let Some(key) = any {
                entries.departed.remove(&key);
            }
        }
        entries.departed.insert(record.key, (now, record.health));
        self.update_panic(&mut entries);
    }

    /// Whether a request may go to the instance now (see [`Health::admit`]): by this
    /// board's own record, then by the bans of the other boards on the bulletin.
    pub(crate) fn admit(&self, id: InstanceId, now: Instant) -> Admit {
        let mut entries = self.lock();
        let Some(bulletin) = &self.bulletin else {
            let panic = entries.panic;
            return match entries.by_id.get_mut(&id) {
                Some(record) => record.health.admit(now, panic),
                // Not on the board any more: discovery removed it and the balancer will
                // drop it.
                None => Admit::Ready,
            };
        };
        let Some(record) = entries.by_id.get_mut(&id) else {
            return Admit::Ready;
        };
        let mut admit = record.health.admit(now, false);
        // An instance this board trusts is held back by another board's ban; one it
        // ejected itself is its own to probe.
        if admit == Admit::Ready && record.health.is_trusted() {
            if let Some(until) = record.banned_until(bulletin, now) {
                admit = Admit::NotUntil(until);
            }
        }
        // Panic mode counts the other boards' bans: worked out only for an instance
        // that would be refused, which is rare.
        if admit != Admit::Ready && self.panics(&entries, bulletin, now) {
            return Admit::Ready;
        }
        admit
    }

    /// Whether more than the threshold of the instances are untrusted here or banned by
    /// another board.
    fn panics(&self, entries: &Entries, bulletin: &Bulletin, now: Instant) -> bool {
        let total = entries.by_id.len();
        let out = entries
            .by_id
            .values()
            .filter(|r| !r.health.is_trusted() || r.banned_until(bulletin, now).is_some())
            .count();
        total > 0 && out as f64 > self.panic_threshold * total as f64
    }

    /// Starts a request on the instance.
    pub(crate) fn start(&self, id: InstanceId) -> Option<Ticket> {
        self.lock().by_id.get_mut(&id).map(|e| e.health.start())
    }

    /// Records a request's outcome and wakes waiting instances if anything changed.
    pub(crate) fn record(&self, id: InstanceId, ticket: Ticket, outcome: Outcome, now: Instant) {
        let mut entries = self.lock();
        let Some(record) = entries.by_id.get_mut(&id) else {
            return;
        };
        let was_trusted = record.health.is_trusted();
        let changed = record.health.record(ticket, outcome, now);
        // A failure soon after another board's probe lifted its ban: that board's record
        // still holds the failures that ejected the instance, and would eject it now.
        let relapsed = !changed
            && outcome != Outcome::Success
            && match (&self.bulletin, &record.slot) {
                (Some(bulletin), Some(slot)) => {
                    bulletin.lifted_within(slot, now, self.accrual.window)
                        && record.health.relapse(now)
                }
                _ => false,
            };
        if !changed && !relapsed {
            return;
        }
        if let (Some(bulletin), Some(slot)) = (&self.bulletin, &record.slot) {
            match record.health.state() {
                State::Ejected { until } => bulletin.ban(slot, until),
                State::Trusted => bulletin.lift(slot, now),
                State::Probation { .. } => {}
            }
        }
        match (was_trusted, record.health.is_trusted()) {
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
        let entries = self.lock();
        match &self.bulletin {
            Some(bulletin) => self.panics(&entries, bulletin, Instant::now()),
            None => entries.panic,
        }
    }

    /// Where waiting instances learn that something changed.
    pub(crate) fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Every instance's state, ordered by key.
    pub fn snapshot(&self) -> Vec<InstanceState> {
        let now = Instant::now();
        let entries = self.lock();
        let mut states: Vec<InstanceState> = entries
            .by_id
            .values()
            .map(|record| {
                let tally = record.health.tally(now);
                let banned = self
                    .bulletin
                    .as_ref()
                    .and_then(|bulletin| record.banned_until(bulletin, now));
                InstanceState {
                    key: record.key.clone(),
                    health: match record.health.state() {
                        State::Trusted => match banned {
                            // Another board's ejection, as this board's balancer sees it.
                            Some(until) => HealthState::Ejected {
                                remaining: until - now,
                            },
                            None => HealthState::Trusted,
                        },
                        State::Ejected { until } if until > now => HealthState::Ejected {
                            remaining: until - now,
                        },
                        State::Ejected { .. } | State::Probation { .. } => HealthState::Probation,
                    },
                    window_successes: tally.successes,
                    window_failures: tally.failures,
                    consecutive_failures: record.health.consecutive_failures(),
                    ejections: record.health.ejections(),
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
        assert_eq!(twin, back, "one record per key");
        assert!(matches!(board.admit(twin, now), Admit::NotUntil(_)));
        board.deregister_at(twin, now);
        assert!(
            matches!(board.admit(back, now), Admit::NotUntil(_)),
            "the record stays while a service still uses it"
        );
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

    #[test]
    fn balancers_sharing_a_board_judge_an_instance_together() {
        let board = Board::new(AccrualConfig::default(), 0.5);
        let now = Instant::now();
        board.register("other".to_string(), now);
        let worker0 = board.register("a".to_string(), now);
        let worker1 = board.register("a".to_string(), now);
        assert_eq!(worker0, worker1);
        // Failures through either balancer count toward one ejection.
        for id in [worker0, worker1, worker0, worker1, worker0] {
            let ticket = board.start(id).expect("registered");
            board.record(id, ticket, Outcome::Failure, now);
        }
        let State::Ejected { until } = board.lock().by_id[&worker0].health.state() else {
            panic!("five failures through two balancers eject");
        };
        // One probe for all of them.
        assert_eq!(board.admit(worker0, until), Admit::Ready);
        let probe = board.start(worker0).expect("registered");
        assert_eq!(board.admit(worker1, until), Admit::AwaitProbe);
        board.record(worker0, probe, Outcome::Success, until);
        assert_eq!(board.admit(worker1, until), Admit::Ready);
        // The record outlives one balancer's service, not the last one's.
        board.deregister_at(worker0, until);
        assert_eq!(board.snapshot().len(), 2);
        board.deregister_at(worker1, until);
        assert_eq!(board.snapshot().len(), 1);
    }

    #[test]
    fn boards_on_one_bulletin_keep_away_from_what_another_ejected_until_its_probe_decides() {
        let config = BalanceConfig::default();
        let bulletin = Bulletin::new();
        let (mine, theirs) = (
            Board::posting_to(&config, &bulletin),
            Board::posting_to(&config, &bulletin),
        );
        let now = Instant::now();
        let ids: Vec<_> = [&mine, &theirs]
            .iter()
            .map(|b| {
                b.register("other".to_string(), now);
                b.register("x".to_string(), now);
                b.register("y".to_string(), now)
            })
            .collect();
        let (x_mine, x_theirs) = (ids[0] - 1, ids[1] - 1);
        eject(&mine, x_mine, now);
        let State::Ejected { until } = mine.lock().by_id[&x_mine].health.state() else {
            panic!("five failures eject");
        };
        // The other board trusts x itself, but keeps away until the probe's grace ends.
        assert_eq!(
            theirs.admit(x_theirs, now),
            Admit::NotUntil(
                bulletin
                    .banned_until(&bulletin.slot("x"), now)
                    .expect("banned")
            )
        );
        assert!(matches!(
            theirs.snapshot()[1].health,
            HealthState::Ejected { .. }
        ));
        assert!(!theirs.is_panicking(), "1 of 3 out");
        // At the end of the backoff only the ejecting board probes.
        assert_eq!(mine.admit(x_mine, until), Admit::Ready);
        assert!(matches!(theirs.admit(x_theirs, until), Admit::NotUntil(_)));
        let probe = mine.start(x_mine).expect("registered");
        mine.record(x_mine, probe, Outcome::Success, until);
        assert_eq!(
            theirs.admit(x_theirs, until),
            Admit::Ready,
            "the probe lifted it"
        );
        // Two of three out across the boards is panic on the board that ejected neither.
        // Its next failure on the other board is a relapse there: ejected at once.
        let ticket = theirs.start(x_theirs).expect("registered");
        theirs.record(x_theirs, ticket, Outcome::Failure, until);
        assert!(matches!(theirs.admit(x_theirs, until), Admit::NotUntil(_)));
        assert_eq!(theirs.snapshot()[1].ejections, 1);
        // Two of three out across the boards is panic on a board that ejected neither.
        let third = Board::posting_to(&config, &bulletin);
        let x_third = third.register("x".to_string(), until);
        third.register("y".to_string(), until);
        third.register("other".to_string(), until);
        eject(&mine, ids[0], until);
        assert!(third.is_panicking());
        assert_eq!(third.admit(x_third, until), Admit::Ready);
    }

    #[test]
    fn an_instance_leaves_the_board_when_its_listing_drops() {
        let board = Arc::new(Board::new(AccrualConfig::default(), 0.5));
        let a = board.list("a".to_string());
        assert_eq!(board.snapshot().len(), 1);
        drop(a);
        assert!(board.snapshot().is_empty());
    }
}
