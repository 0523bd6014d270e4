//! What the leader measures of its messages to each follower, for etcd's
//! `/v2/stats/leader`: successful and failed append-entries calls (heartbeats
//! included) and the round-trip latency of the successful ones; and since when each
//! follower has answered every call (etcd's rafthttp `ActiveSince`, which the strict
//! reconfiguration check reads: `reconfig`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::types::NodeId;

/// One follower's figures, in etcd's units (milliseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct FollowerStats {
    /// Successful calls.
    pub success: u64,
    /// Failed calls (timeouts, unreachable, errors).
    pub fail: u64,
    /// The latest successful call's round trip.
    pub current_ms: f64,
    /// Mean round trip.
    pub average_ms: f64,
    /// Standard deviation of the round trips.
    pub standard_deviation_ms: f64,
    /// Shortest round trip; 2^63 before the first success, as etcd starts it.
    pub minimum_ms: f64,
    /// Longest round trip.
    pub maximum_ms: f64,
    sum_ms: f64,
    sum_squares_ms: f64,
    /// When the current unbroken run of successful calls began; `None` after a failure.
    active_since: Option<tokio::time::Instant>,
}

impl Default for FollowerStats {
    fn default() -> Self {
        FollowerStats {
            success: 0,
            fail: 0,
            current_ms: 0.0,
            average_ms: 0.0,
            standard_deviation_ms: 0.0,
            minimum_ms: (1u64 << 63) as f64,
            maximum_ms: 0.0,
            sum_ms: 0.0,
            sum_squares_ms: 0.0,
            active_since: None,
        }
    }
}

impl FollowerStats {
    fn record_success(&mut self, round_trip: Duration) {
        let ms = round_trip.as_secs_f64() * 1000.0;
        self.success += 1;
        self.current_ms = ms;
        self.minimum_ms = self.minimum_ms.min(ms);
        self.maximum_ms = self.maximum_ms.max(ms);
        self.sum_ms += ms;
        self.sum_squares_ms += ms * ms;
        let n = self.success as f64;
        self.average_ms = self.sum_ms / n;
        // Rounding can make the variance a hair below zero for equal samples.
        let variance = (self.sum_squares_ms / n - self.average_ms * self.average_ms).max(0.0);
        self.standard_deviation_ms = variance.sqrt();
    }
}

/// The figures of every follower this member has sent to, shared by its peer clients.
#[derive(Debug, Default)]
pub struct PeerStats {
    followers: Mutex<BTreeMap<NodeId, FollowerStats>>,
}

impl PeerStats {
    pub(crate) fn succeeded(&self, follower: NodeId, round_trip: Duration) {
        let now = tokio::time::Instant::now();
        self.with(follower, |f| {
            f.record_success(round_trip);
            f.active_since.get_or_insert(now);
        });
    }

    pub(crate) fn failed(&self, follower: NodeId) {
        self.with(follower, |f| {
            f.fail += 1;
            f.active_since = None;
        });
    }

    /// Since when `follower` has answered every call; `None` while it does not.
    pub(crate) fn active_since(&self, follower: NodeId) -> Option<tokio::time::Instant> {
        let followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        followers.get(&follower).and_then(|f| f.active_since)
    }

    /// A copy of every follower's figures.
    pub fn snapshot(&self) -> BTreeMap<NodeId, FollowerStats> {
        self.followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn with(&self, follower: NodeId, update: impl FnOnce(&mut FollowerStats)) {
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        update(followers.entry(follower).or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_the_round_trips() {
        let stats = PeerStats::default();
        assert!(stats.snapshot().is_empty());
        stats.failed(7);
        let f = &stats.snapshot()[&7];
        assert_eq!((f.success, f.fail), (0, 1));
        assert_eq!(
            f.minimum_ms, 9_223_372_036_854_775_808.0,
            "etcd's starting minimum"
        );
        for ms in [2, 4, 4, 4, 5, 5, 7, 9] {
            stats.succeeded(7, Duration::from_millis(ms));
        }
        let f = &stats.snapshot()[&7];
        assert_eq!((f.success, f.fail), (8, 1));
        assert_eq!((f.current_ms, f.minimum_ms, f.maximum_ms), (9.0, 2.0, 9.0));
        assert!((f.average_ms - 5.0).abs() < 1e-9);
        assert!((f.standard_deviation_ms - 2.0).abs() < 1e-9);
    }
}
