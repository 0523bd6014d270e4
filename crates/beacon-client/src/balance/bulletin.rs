//! `Bulletin`: what the boards of several balancers (a proxy's workers) tell each other.
//!
//! Each worker keeps its own failure-accrual records ([`Board`](super::Board)), under a
//! lock no other worker takes. What the workers must agree on is whether an instance is
//! ejected: a worker whose requests eject an instance posts a ban on its slot here, and
//! every other worker reads the slot (one atomic load, no lock) when it asks whether
//! the instance may take a request. A ban lasts until the ejecting worker's backoff
//! ends plus [`PROBE_GRACE`], in which that worker sends its probe: a probe that succeeds
//! lifts the ban at once, one that fails posts a longer one. So one worker probes, and
//! the others wait for its verdict, or for the grace to pass if it has no request to
//! probe with. A failure that another worker sees within an accrual window of a lift is
//! a relapse and ejects the instance there at once, as one shared record would have
//! (its window still held the failures that ejected the instance). Posting and lifting wake every waiting instance of every board (one
//! shared `Notify`), which is how the others learn of a ban or a lift within
//! milliseconds. Slots are found by discovery key when a board lists an instance (under
//! the bulletin's lock, off the request path) and live while a board lists the key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long after the end of an ejecting worker's backoff the others still keep away,
/// for that worker's probe to decide.
pub const PROBE_GRACE: Duration = Duration::from_secs(1);

/// The shared notices of a set of boards; see the module documentation.
#[derive(Debug)]
pub struct Bulletin {
    /// Bans are nanoseconds after this instant (0: none), so that they fit an atomic.
    epoch: Instant,
    slots: Mutex<HashMap<String, Weak<Slot>>>,
    changed: Arc<Notify>,
}

/// One instance's notice: banned until when, if at all, and when a probe last lifted a
/// ban (nanoseconds after the epoch; 0: never).
#[derive(Debug, Default)]
pub(crate) struct Slot {
    banned_until: AtomicU64,
    lifted_at: AtomicU64,
}

impl Bulletin {
    /// An empty bulletin, for boards made with [`Board::posting_to`](super::Board::posting_to).
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            slots: Mutex::new(HashMap::new()),
            changed: Arc::new(Notify::new()),
        })
    }

    /// The slot of the instance listed under `key`.
    pub(crate) fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(key).and_then(Weak::upgrade) {
            return slot;
        }
        // Keys no board lists any more go as new ones come.
        slots.retain(|_, slot| slot.strong_count() > 0);
        let slot = Arc::new(Slot::default());
        slots.insert(key.to_owned(), Arc::downgrade(&slot));
        slot
    }

    /// Bans the instance until `until` plus the probe's grace (a later ban stays).
    pub(crate) fn ban(&self, slot: &Slot, until: Instant) {
        let nanos = self.nanos(until + PROBE_GRACE);
        slot.banned_until.fetch_max(nanos, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Lifts any ban at `now`: a probe found the instance well.
    pub(crate) fn lift(&self, slot: &Slot, now: Instant) {
        if slot.banned_until.swap(0, Ordering::AcqRel) != 0 {
            slot.lifted_at.store(self.nanos(now), Ordering::Release);
            self.changed.notify_waiters();
        }
    }

    /// Whether a probe lifted a ban on the instance less than `window` before `now`.
    pub(crate) fn lifted_within(&self, slot: &Slot, now: Instant, window: Duration) -> bool {
        let nanos = slot.lifted_at.load(Ordering::Acquire);
        nanos != 0
            && now.saturating_duration_since(self.epoch + Duration::from_nanos(nanos)) < window
    }

    /// Until when the instance is banned, if it is at `now`.
    pub(crate) fn banned_until(&self, slot: &Slot, now: Instant) -> Option<Instant> {
        let nanos = slot.banned_until.load(Ordering::Acquire);
        let until = self.epoch + Duration::from_nanos(nanos);
        (nanos != 0 && until > now).then_some(until)
    }

    /// Woken by every ban and lift.
    pub(crate) fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    fn nanos(&self, at: Instant) -> u64 {
        // At least 1: 0 means no ban. u64 nanoseconds last 584 years.
        (at.saturating_duration_since(self.epoch).as_nanos() as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_lasts_past_the_backoff_by_the_grace_and_a_lift_ends_it() {
        let bulletin = Bulletin::new();
        let slot = bulletin.slot("a");
        let now = Instant::now();
        assert_eq!(bulletin.banned_until(&slot, now), None);
        let until = now + Duration::from_secs(2);
        bulletin.ban(&slot, until);
        let banned = bulletin.banned_until(&slot, now).expect("banned");
        assert!(banned >= until + PROBE_GRACE - Duration::from_micros(1));
        assert_eq!(
            bulletin.banned_until(&slot, banned),
            None,
            "over at its end"
        );
        // A shorter ban does not cut a longer one.
        bulletin.ban(&slot, now);
        assert_eq!(bulletin.banned_until(&slot, now), Some(banned));
        let window = Duration::from_secs(30);
        assert!(!bulletin.lifted_within(&slot, now, window));
        bulletin.lift(&slot, now);
        assert_eq!(bulletin.banned_until(&slot, now), None);
        assert!(bulletin.lifted_within(&slot, now, window));
        assert!(!bulletin.lifted_within(&slot, now + window, window));
    }

    #[test]
    fn boards_listing_one_key_share_its_slot_while_any_lists_it() {
        let bulletin = Bulletin::new();
        let first = bulletin.slot("a");
        let second = bulletin.slot("a");
        assert!(Arc::ptr_eq(&first, &second));
        drop((first, second));
        let _other = bulletin.slot("b");
        assert_eq!(bulletin.slots.lock().unwrap().len(), 1, "a's slot went");
    }
}
