//! Failure accrual as a pure state machine: is one instance trusted right now?
//!
//! Kept apart from the tower glue so that every rule can be tested with made-up instants
//! and no sleeping. The service side (`accrual.rs`) asks [`Health::admit`] before saying it is
//! ready, takes a [`Ticket`] per request and gives it back with the outcome.
//!
//! Trusted -> (5 failures in a row, success rate under 80% over >= 10 requests in the
//! window, or one unreachable) -> Ejected for a jittered backoff -> Probation: one probe
//! request -> success: Trusted, failure: Ejected with the next, longer backoff. An
//! ejection within a window of the return to trust also takes the next, longer backoff.
//!
//! The success rate is the window's whatever happened in between: a probe's success makes
//! the instance trusted again, not its past failures forgotten. So an instance that still
//! fails as often as when it was ejected is ejected again at its next failure, while one
//! that recovered soon outweighs its old failures with new successes (and they leave the
//! window with time).

use std::time::{Duration, Instant};

use super::backoff::{backoff_delay, Jitter};
use super::classify::Outcome;
use super::config::AccrualConfig;
use super::window::{Tally, Window};

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Takes requests.
    Trusted,
    /// Takes no requests (outside panic mode) until the instant.
    Ejected {
        /// When the instance goes on probation.
        until: Instant,
    },
    /// Backoff over: the next request is a probe that decides.
    Probation {
        /// A probe is in flight, so nobody else may go.
        probing: bool,
    },
}

/// Whether a request may go to the instance now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// It may.
    Ready,
    /// Not before this instant.
    NotUntil(Instant),
    /// Not until the probe in flight has an outcome.
    AwaitProbe,
}

/// Remembers what a request was when it started, to judge its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The trust period the request started in; outcomes from an older one are stale.
    generation: u64,
    /// This request is the probation probe.
    probe: bool,
}

/// One instance's failure accrual.
#[derive(Debug, Clone)]
pub struct Health {
    config: AccrualConfig,
    state: State,
    /// Bumped on every ejection and every return to trust.
    generation: u64,
    consecutive_failures: u32,
    window: Window,
    /// The backoff exponent: ejections in a row, counting one that follows a return to
    /// trust within a window (an instance failing half its requests passes its probe half
    /// the time, and must not start again from the shortest backoff each time).
    backoff_step: u32,
    /// When the instance last came back from an ejection.
    trusted_again_at: Option<Instant>,
    ejections: u64,
    jitter: Jitter,
}

impl Health {
    /// A trusted instance with an empty history.
    pub fn new(config: AccrualConfig, now: Instant) -> Self {
        let window = Window::new(config.window, now);
        Self {
            config,
            state: State::Trusted,
            generation: 0,
            consecutive_failures: 0,
            window,
            backoff_step: 0,
            trusted_again_at: None,
            ejections: 0,
            jitter: Jitter::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the instance is trusted (neither ejected nor on probation).
    pub fn is_trusted(&self) -> bool {
        self.state == State::Trusted
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Times this instance has been ejected in its life.
    pub fn ejections(&self) -> u64 {
        self.ejections
    }

    /// The outcomes in the window ending at `now`.
    pub(crate) fn tally(&self, now: Instant) -> Tally {
        self.window.tally(now)
    }

    /// Whether a request may go now; in `panic` mode every instance may take requests.
    pub fn admit(&mut self, now: Instant, panic: bool) -> Admit {
        if let State::Ejected { until } = self.state {
            if now >= until {
                self.state = State::Probation { probing: false };
            }
        }
        match self.state {
            State::Trusted | State::Probation { probing: false } => Admit::Ready,
            _ if panic => Admit::Ready,
            State::Ejected { until } => Admit::NotUntil(until),
            State::Probation { probing: true } => Admit::AwaitProbe,
        }
    }

    /// Starts a request that `admit` let through (or that must go anyway).
    pub fn start(&mut self) -> Ticket {
        let probe = self.state == (State::Probation { probing: false });
        if probe {
            self.state = State::Probation { probing: true };
        }
        Ticket {
            generation: self.generation,
            probe,
        }
    }

    /// Judges a request's outcome; returns whether the state changed.
    pub fn record(&mut self, ticket: Ticket, outcome: Outcome, now: Instant) -> bool {
        // A slow answer from before the last change says nothing about the instance now.
        if ticket.generation != self.generation {
            return false;
        }
        let success = outcome == Outcome::Success;
        match (self.state, ticket.probe, success) {
            (State::Trusted, _, _) => self.account(outcome, now),
            (_, true, true) => {
                self.trust(now);
                true
            }
            (_, true, false) => {
                self.backoff_step = self.backoff_step.saturating_add(1);
                self.eject(now);
                true
            }
            // A request sent in panic mode succeeded: as good as a probe.
            (_, false, true) => {
                self.trust(now);
                true
            }
            // A panic-mode failure while already out changes nothing, not even the backoff.
            (_, false, false) => false,
        }
    }

    /// Ejects a trusted instance at once with the next, longer backoff: another
    /// balancer's probe brought it back lately and it failed again here (`Board`).
    /// Returns whether it was trusted.
    pub fn relapse(&mut self, now: Instant) -> bool {
        if self.state != State::Trusted {
            return false;
        }
        self.backoff_step = self.backoff_step.saturating_add(1);
        self.eject(now);
        true
    }

    fn account(&mut self, outcome: Outcome, now: Instant) -> bool {
        let success = outcome == Outcome::Success;
        self.window.record(now, success);
        if success {
            self.consecutive_failures = 0;
            return false;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let tally = self.window.tally(now);
        let rate_too_low = tally.total() >= self.config.window_requests_min
            && f64::from(tally.successes) < self.config.success_rate_min * f64::from(tally.total());
        if outcome == Outcome::Unreachable
            || self.consecutive_failures >= self.config.consecutive_failures_max
            || rate_too_low
        {
            let relapse = self
                .trusted_again_at
                .is_some_and(|t| now.saturating_duration_since(t) < self.config.window);
            self.backoff_step = if relapse {
                self.backoff_step.saturating_add(1)
            } else {
                0
            };
            self.eject(now);
            return true;
        }
        false
    }

    fn eject(&mut self, now: Instant) {
        let delay: Duration =
            backoff_delay(&self.config.backoff, self.backoff_step, self.jitter.unit());
        self.state = State::Ejected { until: now + delay };
        self.generation += 1;
        self.ejections += 1;
    }

    fn trust(&mut self, now: Instant) {
        self.state = State::Trusted;
        self.generation += 1;
        self.consecutive_failures = 0;
        self.trusted_again_at = Some(now);
        self.window.record(now, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> (Health, Instant) {
        let now = Instant::now();
        (Health::new(AccrualConfig::default(), now), now)
    }

    /// Sends one request through the machine at `now` and records its outcome.
    fn request(h: &mut Health, now: Instant, success: bool) {
        assert_eq!(h.admit(now, false), Admit::Ready, "request not admitted");
        let ticket = h.start();
        h.record(ticket, outcome(success), now);
    }

    fn outcome(success: bool) -> Outcome {
        if success {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }

    fn ejected_until(h: &Health) -> Instant {
        match h.state() {
            State::Ejected { until } => until,
            other => panic!("expected ejected, got {other:?}"),
        }
    }

    #[test]
    fn five_consecutive_failures_eject() {
        let (mut h, now) = health();
        for _ in 0..4 {
            request(&mut h, now, false);
        }
        assert!(h.is_trusted());
        request(&mut h, now, false);
        let until = ejected_until(&h);
        let wait = until - now;
        assert!(
            wait >= Duration::from_millis(800) && wait <= Duration::from_millis(1200),
            "{wait:?}"
        );
        assert_eq!(h.admit(now, false), Admit::NotUntil(until));
    }

    #[test]
    fn four_failures_then_a_success_do_not_eject() {
        let (mut h, now) = health();
        for _ in 0..4 {
            request(&mut h, now, false);
        }
        request(&mut h, now, true);
        assert!(h.is_trusted());
        assert_eq!(h.consecutive_failures(), 0);
        for _ in 0..4 {
            request(&mut h, now, false);
        }
        assert!(
            h.is_trusted(),
            "the success must have reset the consecutive count"
        );
    }

    #[test]
    fn success_rate_of_half_over_twenty_requests_ejects() {
        let (mut h, now) = health();
        let mut sent = 0;
        while h.is_trusted() && sent < 20 {
            request(
                &mut h,
                now + Duration::from_millis(sent * 100),
                sent % 2 == 0,
            );
            sent += 1;
        }
        assert!(!h.is_trusted(), "50% success over 20 requests must eject");
        assert_eq!(sent, 10, "the rate counts from the 10th request on");
    }

    #[test]
    fn fewer_than_ten_requests_never_eject_by_rate() {
        let (mut h, now) = health();
        // 4 failures out of 9, never 5 in a row: 56% success, but too few to judge.
        for i in 0..9 {
            request(&mut h, now, i % 2 == 0);
        }
        assert!(h.is_trusted());
    }

    #[test]
    fn the_window_forgets_old_failures() {
        let (mut h, now) = health();
        for i in 0..9 {
            request(&mut h, now, i % 2 == 0);
        }
        // 31 s later the 4 failures are out of the window: one more failure is 1 of 1.
        let later = now + Duration::from_secs(31);
        for i in 0..10 {
            request(&mut h, later, i != 0);
        }
        assert!(h.is_trusted(), "1 failure in 10 is 90% success");
    }

    #[test]
    fn probe_success_restores_trust_but_not_the_success_rate() {
        let (mut h, now) = health();
        for _ in 0..5 {
            request(&mut h, now, false);
        }
        let until = ejected_until(&h);
        assert_eq!(
            h.admit(until - Duration::from_millis(1), false),
            Admit::NotUntil(until)
        );
        assert_eq!(h.admit(until, false), Admit::Ready);
        assert_eq!(h.state(), State::Probation { probing: false });
        let probe = h.start();
        assert!(h.record(probe, Outcome::Success, until));
        assert!(h.is_trusted());
        assert_eq!(h.consecutive_failures(), 0);
        let tally = h.tally(until);
        assert_eq!((tally.successes, tally.failures), (1, 5));
        // Trusted for a whole window: the old failures are gone, and the next ejection
        // starts over at about 1 s.
        let later = until + AccrualConfig::default().window;
        assert_eq!(h.tally(later).total(), 0);
        for _ in 0..5 {
            request(&mut h, later, false);
        }
        let wait = ejected_until(&h) - later;
        assert!(wait <= Duration::from_millis(1200), "{wait:?}");
    }

    #[test]
    fn an_instance_failing_half_its_requests_costs_one_failure_per_return() {
        let (mut h, start) = health();
        let mut now = start;
        let mut failures = 0;
        let mut returns = 0;
        let mut sent = 0u64;
        // Half of its requests fail, alternately; 100 requests a second whenever admitted.
        while now < start + Duration::from_secs(20) {
            if h.admit(now, false) == Admit::Ready {
                if h.state() != State::Trusted {
                    returns += 1;
                }
                let success = sent % 2 == 1;
                sent += 1;
                let ticket = h.start();
                h.record(ticket, outcome(success), now);
                failures += u32::from(!success);
            }
            now += Duration::from_millis(10);
        }
        // 6 failures before the first ejection (the rate counts from the 10th request on,
        // and is judged at a failure), then one per return.
        assert!(returns >= 3, "{returns} returns");
        assert!(
            failures <= 6 + returns,
            "{failures} failures, {returns} returns"
        );
    }

    #[test]
    fn a_relapse_soon_after_the_probe_takes_the_next_backoff() {
        let (mut h, mut now) = health();
        let mut waits = vec![];
        // Passes every probe, then fails again at once: half its requests fail.
        for _ in 0..4 {
            while h.is_trusted() {
                request(&mut h, now, false);
            }
            let until = ejected_until(&h);
            waits.push((until - now).as_secs_f64());
            now = until;
            request(&mut h, now, true);
            assert!(h.is_trusted());
        }
        for (step, base) in [1.0, 2.0, 4.0, 8.0].iter().enumerate() {
            assert!(
                waits[step] >= base * 0.8 - 1e-9 && waits[step] <= base * 1.2 + 1e-9,
                "step {step}: {waits:?}"
            );
        }
    }

    #[test]
    fn probe_failure_ejects_again_with_a_longer_backoff() {
        let (mut h, mut now) = health();
        for _ in 0..5 {
            request(&mut h, now, false);
        }
        let mut bounds = vec![];
        for _ in 0..6 {
            let until = ejected_until(&h);
            bounds.push(until - now);
            now = until;
            request(&mut h, now, false);
        }
        let secs: Vec<f64> = bounds.iter().map(Duration::as_secs_f64).collect();
        for (step, base) in [1.0, 2.0, 4.0, 8.0, 16.0, 30.0].iter().enumerate() {
            assert!(secs[step] >= base * 0.8 - 1e-9, "step {step}: {secs:?}");
            assert!(
                secs[step] <= (base * 1.2f64).min(30.0) + 1e-9,
                "step {step}: {secs:?}"
            );
        }
        assert_eq!(h.ejections(), 7);
    }

    #[test]
    fn only_one_probe_at_a_time() {
        let (mut h, now) = health();
        for _ in 0..5 {
            request(&mut h, now, false);
        }
        let until = ejected_until(&h);
        assert_eq!(h.admit(until, false), Admit::Ready);
        let probe = h.start();
        assert_eq!(h.admit(until, false), Admit::AwaitProbe);
        assert_eq!(
            h.admit(until + Duration::from_secs(60), false),
            Admit::AwaitProbe
        );
        // Panic mode lets requests through, but they are not probes.
        assert_eq!(h.admit(until, true), Admit::Ready);
        let other = h.start();
        assert!(
            !h.record(other, Outcome::Failure, until),
            "a panic-mode failure changes nothing"
        );
        assert!(h.record(probe, Outcome::Failure, until));
        assert!(matches!(h.state(), State::Ejected { .. }));
    }

    #[test]
    fn a_panic_mode_success_restores_and_stale_outcomes_are_ignored() {
        let (mut h, now) = health();
        let stale = h.start();
        for _ in 0..5 {
            request(&mut h, now, false);
        }
        assert!(
            !h.record(stale, Outcome::Success, now),
            "a request from before the ejection is stale"
        );
        assert!(!h.is_trusted());
        assert_eq!(h.admit(now, true), Admit::Ready);
        let panic_request = h.start();
        assert!(h.record(panic_request, Outcome::Success, now));
        assert!(h.is_trusted());
    }

    #[test]
    fn an_unreachable_instance_is_ejected_at_once() {
        let (mut h, now) = health();
        request(&mut h, now, true);
        let ticket = h.start();
        assert!(h.record(ticket, Outcome::Unreachable, now));
        assert!(matches!(h.state(), State::Ejected { .. }));
    }
}
