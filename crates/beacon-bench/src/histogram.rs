//! A log-bucketed latency histogram: fixed memory, ~1.6% relative error, mergeable.
//!
//! Values are microseconds. Each power of two is split into 64 linear sub-buckets, so a
//! reported quantile is within 1/64 of the true value; that is far finer than the run-to-run
//! noise of a benchmark on a shared machine, and needs no dependency.

use std::time::Duration;

/// Sub-buckets per power of two (a power of two itself).
const SUB_BUCKETS: u64 = 64;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Powers of two covered: up to 2^40 µs (~12 days), far beyond any timeout we use.
const MAGNITUDES: usize = 40;

/// Counts of latencies by bucket.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; MAGNITUDES * SUB_BUCKETS as usize],
            total: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = bucket_of(us).min(self.counts.len() - 1);
        self.counts[index] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Adds another histogram's counts to this one (per-worker histograms merge at the end).
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1) in microseconds: the upper bound of its bucket,
    /// so a quantile is never under-reported. 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_bound_of(index).min(self.max_us);
            }
        }
        self.max_us
    }

    /// The largest recorded value in microseconds.
    pub fn max_us(&self) -> u64 {
        self.max_us
    }
}

/// The middle value of a sorted slice (the upper one of an even count), `None` when empty;
/// for the handful of repetitions where a histogram would be overkill.
pub fn median(sorted: &[f64]) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[sorted.len() / 2])
}

/// Values below `SUB_BUCKETS` get a bucket each; above, 64 buckets per power of two.
fn bucket_of(us: u64) -> usize {
    if us < SUB_BUCKETS {
        return us as usize;
    }
    let magnitude = 63 - us.leading_zeros(); // >= SUB_BITS
    let shift = magnitude - SUB_BITS;
    let sub = (us >> shift) - SUB_BUCKETS; // 0..SUB_BUCKETS
    ((shift as u64 + 1) * SUB_BUCKETS + sub) as usize
}

/// The largest value that falls in bucket `index`.
fn upper_bound_of(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB_BUCKETS {
        return index;
    }
    let shift = index / SUB_BUCKETS - 1;
    let sub = index % SUB_BUCKETS;
    ((SUB_BUCKETS + sub + 1) << shift) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values() {
        for us in [0, 1, 63, 64, 65, 127, 128, 1000, 12_345, 9_999_999] {
            let b = bucket_of(us);
            assert!(upper_bound_of(b) >= us, "{us}");
            assert!(upper_bound_of(b) as f64 <= us as f64 * 1.016 + 1.0, "{us}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::default();
        for us in 1..=10_000 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile_us(0.5) as f64;
        let p99 = h.quantile_us(0.99) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.02, "{p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.02, "{p99}");
        assert_eq!(h.quantile_us(1.0), 10_000);
    }
}
