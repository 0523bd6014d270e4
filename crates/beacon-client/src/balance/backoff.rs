//! How long an ejected instance sits out: exponential, capped and jittered.
//!
//! Jitter keeps instances ejected together (one bad deploy, one network blip) from being
//! probed together. Its randomness comes from std's `RandomState` (a random SipHash key per
//! process) hashing a counter, which is plenty for spreading timers and needs no RNG crate.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use super::config::BackoffConfig;

/// Uniform draws in `[0, 1)` for spreading timers; not for anything secret.
#[derive(Debug, Clone)]
pub(crate) struct Jitter {
    keys: RandomState,
    draws: u64,
}

impl Jitter {
    /// A source with this process's random key.
    pub(crate) fn new() -> Self {
        Self {
            keys: RandomState::new(),
            draws: 0,
        }
    }

    /// The next draw in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        self.draws = self.draws.wrapping_add(1);
        let bits = self.keys.hash_one(self.draws);
        // The top 53 bits fill an f64's mantissa exactly, so every value is below 1.
        (bits >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The wait before the probe after the `step`-th ejection in a row (0 for the first).
///
/// `unit` is a draw in `[0, 1)`; it moves the wait by up to `jitter` either way, and the
/// result never exceeds `max`.
pub(crate) fn backoff_delay(config: &BackoffConfig, step: u32, unit: f64) -> Duration {
    debug_assert!(
        (0.0..1.0).contains(&unit),
        "jitter draw out of range: {unit}"
    );
    let max = config.max.as_secs_f64();
    // Saturate the exponent: after a few dozen steps the cap has long been reached.
    let base =
        (config.initial.as_secs_f64() * config.multiplier.powi(step.min(64) as i32)).min(max);
    let spread = 1.0 + config.jitter * (2.0 * unit - 1.0);
    Duration::from_secs_f64((base * spread).clamp(0.0, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_jittered_within_bounds() {
        let config = BackoffConfig::default();
        let mut jitter = Jitter::new();
        for (step, base) in [
            (0, 1.0),
            (1, 2.0),
            (2, 4.0),
            (3, 8.0),
            (4, 16.0),
            (5, 30.0),
            (40, 30.0),
        ] {
            for _ in 0..200 {
                let delay = backoff_delay(&config, step, jitter.unit()).as_secs_f64();
                assert!(
                    delay >= base * 0.8 - 1e-9,
                    "step {step}: {delay} < {}",
                    base * 0.8
                );
                assert!(
                    delay <= (base * 1.2).min(30.0) + 1e-9,
                    "step {step}: {delay} too long"
                );
            }
        }
    }

    #[test]
    fn extremes_of_the_draw_give_the_jitter_bounds() {
        let config = BackoffConfig::default();
        assert_eq!(backoff_delay(&config, 0, 0.0), Duration::from_millis(800));
        assert_eq!(backoff_delay(&config, 1, 0.5), Duration::from_secs(2));
        assert_eq!(backoff_delay(&config, 10, 0.0), Duration::from_secs(24));
        assert!(backoff_delay(&config, 2, 0.999_999) <= Duration::from_millis(4800));
    }

    #[test]
    fn draws_are_spread_over_the_unit_interval() {
        let mut jitter = Jitter::new();
        let draws: Vec<f64> = (0..1000).map(|_| jitter.unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let low = draws.iter().filter(|d| **d < 0.5).count();
        // A fair coin 1000 times lands within 400..600 with overwhelming probability.
        assert!((400..600).contains(&low), "{low} of 1000 draws below 0.5");
    }
}
