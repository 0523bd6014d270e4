//! The success rate over the last seconds, in bounded memory.
//!
//! A ring of one-second buckets: recording is O(1), reading sums at most one bucket per
//! second of window, and memory does not grow with traffic.

use std::time::{Duration, Instant};

use super::config::WINDOW_SECONDS_MAX;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Seconds since the window's origin this bucket counts; stale buckets are skipped.
    second: u64,
    successes: u32,
    failures: u32,
}

/// Outcomes of the last `len` whole seconds.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    origin: Instant,
    buckets: Box<[Bucket]>,
}

/// The outcomes a window holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tally {
    /// Successful requests in the window.
    pub(crate) successes: u32,
    /// Failed requests in the window.
    pub(crate) failures: u32,
}

impl Tally {
    /// All requests in the window.
    pub(crate) fn total(&self) -> u32 {
        self.successes.saturating_add(self.failures)
    }
}

impl Window {
    /// An empty window of `span` (whole seconds, at least one) starting at `origin`.
    pub(crate) fn new(span: Duration, origin: Instant) -> Self {
        let len = span.as_secs().clamp(1, WINDOW_SECONDS_MAX) as usize;
        Self {
            origin,
            buckets: vec![Bucket::default(); len].into_boxed_slice(),
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    /// Counts one outcome at `now`.
    pub(crate) fn record(&mut self, now: Instant, success: bool) {
        let second = self.second(now);
        let len = self.buckets.len() as u64;
        let bucket = &mut self.buckets[(second % len) as usize];
        if bucket.second != second {
            *bucket = Bucket {
                second,
                ..Bucket::default()
            };
        }
        if success {
            bucket.successes = bucket.successes.saturating_add(1);
        } else {
            bucket.failures = bucket.failures.saturating_add(1);
        }
    }

    /// The outcomes of the window ending at `now`.
    pub(crate) fn tally(&self, now: Instant) -> Tally {
        let second = self.second(now);
        let len = self.buckets.len() as u64;
        self.buckets
            .iter()
            .filter(|b| b.second <= second && second - b.second < len)
            .fold(Tally::default(), |t, b| Tally {
                successes: t.successes.saturating_add(b.successes),
                failures: t.failures.saturating_add(b.failures),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_window_and_forgets_older_seconds() {
        let start = Instant::now();
        let mut window = Window::new(Duration::from_secs(30), start);
        for s in 0..30 {
            window.record(start + Duration::from_secs(s), s % 3 != 0);
        }
        let at = |s| start + Duration::from_secs(s);
        assert_eq!(window.tally(at(29)).total(), 30);
        assert_eq!(window.tally(at(29)).failures, 10);
        // One second later the first bucket (a failure) has left the window.
        assert_eq!(
            window.tally(at(30)),
            Tally {
                successes: 20,
                failures: 9
            }
        );
        assert_eq!(window.tally(at(100)).total(), 0);
        window.record(at(100), true);
        assert_eq!(
            window.tally(at(100)),
            Tally {
                successes: 1,
                failures: 0
            }
        );
    }
}
