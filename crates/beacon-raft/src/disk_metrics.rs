//! How long the log database's disk work takes (`disk::std_disk` times it), as etcd
//! measures its own: every sync (`etcd_disk_wal_fsync_duration_seconds`) and every
//! batch committed (`etcd_disk_backend_commit_duration_seconds`: Beacon's log entries
//! and v3 keyspace rows share one database and often one batch, where etcd commits
//! bbolt apart from its WAL). beacon-server's `/metrics` renders them.
//!
//! Process-wide, as Prometheus collectors are: a process runs one member.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of etcd's buckets for both: 1 ms doubling 14 times (to 8.192 s).
pub const BUCKET_BOUNDS_SECONDS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];

/// Syncs of the log (fdatasync of fjall's journal).
pub static LOG_SYNC: DurationHistogram = DurationHistogram::new();
/// Batches committed to the log database (entries, markers, keyspace rows).
pub static BATCH_COMMIT: DurationHistogram = DurationHistogram::new();

/// The most bounds a histogram may have (etcd's longest list: the peer round trip's 16).
const BOUNDS_MAX: usize = 16;

/// Counts of durations by upper bounds (etcd's disk buckets, [`BUCKET_BOUNDS_SECONDS`],
/// unless made [`with_bounds`](Self::with_bounds)), lock-free.
#[derive(Debug)]
pub struct DurationHistogram {
    /// Upper bounds in seconds, increasing.
    bounds: &'static [f64],
    /// Observations at or below each bound, not cumulative (the one after the last
    /// bound: above all).
    buckets: [AtomicU64; BOUNDS_MAX + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A histogram as read at one moment: cumulative counts per bound, as Prometheus shows.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramReading {
    /// (upper bound in seconds, observations at or below it), bounds increasing.
    pub cumulative: Vec<(f64, u64)>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_seconds: f64,
}

impl DurationHistogram {
    /// An empty histogram with etcd's disk buckets.
    pub const fn new() -> Self {
        Self::with_bounds(&BUCKET_BOUNDS_SECONDS)
    }

    /// An empty histogram with these upper bounds (seconds, increasing, at most 16).
    pub const fn with_bounds(bounds: &'static [f64]) -> Self {
        assert!(bounds.len() <= BOUNDS_MAX, "too many bounds");
        DurationHistogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; BOUNDS_MAX + 1],
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one duration.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now (read one by one: a concurrent observation may show in some
    /// figures and not yet in others, as with any scrape).
    pub fn read(&self) -> HistogramReading {
        let mut running = 0;
        let cumulative = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                running += n.load(Ordering::Relaxed);
                (*bound, running)
            })
            .collect();
        HistogramReading {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl Default for DurationHistogram {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_etcds_buckets() {
        let h = DurationHistogram::new();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let r = h.read();
        assert_eq!(r.count, 4);
        assert_eq!(r.cumulative[0], (0.001, 2), "at or below 1 ms");
        assert_eq!(r.cumulative[1], (0.002, 2));
        assert_eq!(r.cumulative[2], (0.004, 3));
        assert_eq!(r.cumulative[13], (8.192, 3), "10 s is only in +Inf");
        assert!((r.sum_seconds - 10.0043).abs() < 1e-9);
    }
}
