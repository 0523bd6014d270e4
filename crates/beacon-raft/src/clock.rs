//! The wall clock, as a seam. Time enters the store only through the log, in the
//! leader's `Command::Sync { time_ns }`, and the server stamps each TTL's expiration
//! with the same clock: production reads the system's, a simulation one that follows
//! its simulated time, so a run replays from its seed.
//!
//! A bottom-layer module: it imports nothing else of this crate.

use std::time::SystemTime;

/// A wall clock in Unix nanoseconds (the unit of `Command::Sync` and of the store's
/// expirations).
pub trait Clock: Send + Sync + 'static {
    /// Now, in nanoseconds since the Unix epoch.
    fn now_ns(&self) -> i64;
}

/// The system's wall clock: production's.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Saturates far in the future, and says 0 before 1970 (a clock set that far back
    /// expires nothing rather than failing).
    fn now_ns(&self) -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A wall clock that moves with tokio's clock from a given start: under turmoil or
/// `tokio::time::pause` it advances exactly as simulated time does, so every host of
/// a simulation reads the same wall time at the same simulated moment.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_ns: i64,
    started: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start_ns` now (in tokio's time) and advances with it.
    pub fn starting_at(start_ns: i64) -> TokioClock {
        TokioClock {
            start_ns,
            started: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ns(&self) -> i64 {
        let elapsed = i64::try_from(self.started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        self.start_ns.saturating_add(elapsed)
    }
}
