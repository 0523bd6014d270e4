//! When the automatic compactor compacts, and to which revision: etcd 3.4's
//! `v3compactor` policies as a state machine that the task in `super` drives with the
//! time since it started and the keyspace's revision. No clock, no I/O, no tokio.
//!
//! - **periodic** (`--auto-compaction-retention=2s`, or `5` for five hours): the
//!   revision is sampled every tenth of the retention (of an hour, when the retention
//!   is longer); a retention after start, and then every retention (at most every
//!   hour), the leader compacts to the oldest sample it keeps, taken a retention and
//!   one sample before. A failed compaction is retried at the next sample.
//! - **revision** (`--auto-compaction-retention=1000`): every 5 minutes, the leader
//!   compacts to the current revision less the retention, unless that is not
//!   positive or is where it compacted last time.

use std::collections::VecDeque;
use std::time::Duration;

use crate::limits::{
    AUTO_COMPACTION_CHECK_INTERVAL_MIN, AUTO_COMPACTION_INTERVAL_MAX,
    AUTO_COMPACTION_REVISION_INTERVAL, AUTO_COMPACTION_SAMPLES_PER_INTERVAL,
};

/// What `--auto-compaction-mode` and `--auto-compaction-retention` ask for, when they
/// ask for anything (a retention of 0 asks for nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// `periodic`: keep the revisions of about the last this long.
    Periodic(Duration),
    /// `periodic` with a negative retention (of this magnitude), which etcd takes: its
    /// loop then never waits and compacts to the newest revision on every turn.
    PeriodicNegative(Duration),
    /// `revision`: keep this many revisions before the current one. etcd reads a
    /// duration given in this mode as its count of nanoseconds, and a negative count
    /// aims at a future revision, which fails every time; so does Beacon.
    Revisions(i64),
}

impl std::fmt::Display for Retention {
    /// As etcd prints it in "Starting auto-compaction at revision N (retention: ...)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let go = |d: &Duration| crate::api_v2::stats::go_duration(d.as_nanos() as u64);
        match self {
            Retention::Periodic(d) => write!(f, "{}", go(d)),
            Retention::PeriodicNegative(d) => write!(f, "-{}", go(d)),
            Retention::Revisions(n) => write!(f, "{n} revisions"),
        }
    }
}

/// One compactor's decisions. Times are since the compactor started.
#[derive(Debug)]
pub struct Policy {
    retention: Retention,
    state: State,
}

#[derive(Debug)]
enum State {
    Periodic(Periodic),
    /// The revision last compacted to, so that the same one is not proposed again on
    /// every check (etcd proposes it, and the keyspace refuses it as compacted).
    Newest {
        last: Option<i64>,
    },
    /// How many revisions to keep, and etcd's `prev`: the revision last compacted to,
    /// 0 before the first.
    Revisions {
        keep: i64,
        last: i64,
    },
}

#[derive(Debug)]
struct Periodic {
    /// The revisions sampled at each check, oldest first.
    samples: VecDeque<i64>,
    samples_max: usize,
    check: Duration,
    /// How long after the last compaction the next is due: the retention before the
    /// first one, then [`Periodic::interval`].
    wait: Duration,
    interval: Duration,
    last_compacted_at: Duration,
}

impl Policy {
    /// The policy of a compactor starting now.
    pub fn new(retention: Retention) -> Policy {
        let state = match retention {
            Retention::Periodic(retention) => {
                let interval = retention.min(AUTO_COMPACTION_INTERVAL_MAX);
                let check = (interval / AUTO_COMPACTION_SAMPLES_PER_INTERVAL)
                    .max(AUTO_COMPACTION_CHECK_INTERVAL_MIN);
                // One sample per check over the retention, and one more: the oldest is
                // then a retention older than the newest, as in etcd's window.
                let samples_max = (retention.as_nanos() / check.as_nanos()) as usize + 1;
                State::Periodic(Periodic {
                    samples: VecDeque::with_capacity(samples_max),
                    samples_max,
                    check,
                    wait: retention,
                    interval,
                    last_compacted_at: Duration::ZERO,
                })
            }
            Retention::PeriodicNegative(_) => State::Newest { last: None },
            Retention::Revisions(keep) => State::Revisions { keep, last: 0 },
        };
        Policy { retention, state }
    }

    /// What the compactor keeps.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// How long the compactor waits between two checks, which is also how soon it
    /// retries a compaction that failed.
    pub fn check_interval(&self) -> Duration {
        match &self.state {
            State::Periodic(p) => p.check,
            State::Newest { .. } => AUTO_COMPACTION_CHECK_INTERVAL_MIN,
            State::Revisions { .. } => AUTO_COMPACTION_REVISION_INTERVAL,
        }
    }

    /// Notes the keyspace's revision before a wait. etcd samples on every member,
    /// leader or not, so a member that becomes leader knows the revisions of the
    /// retention before.
    pub fn sample(&mut self, revision: i64) {
        if let State::Periodic(p) = &mut self.state {
            p.samples.push_back(revision);
            if p.samples.len() > p.samples_max {
                p.samples.pop_front();
            }
        }
    }

    /// After a wait, on the leader only: the revision to compact to now, if any;
    /// `revision` is the keyspace's current one.
    pub fn due(&mut self, now: Duration, revision: i64) -> Option<i64> {
        match &mut self.state {
            State::Periodic(p) => {
                if now.saturating_sub(p.last_compacted_at) < p.wait {
                    return None;
                }
                // etcd shortens the wait once the first retention has passed, whether
                // or not this compaction succeeds.
                p.wait = p.interval;
                p.samples.front().copied()
            }
            State::Newest { last } => (*last != Some(revision)).then_some(revision),
            State::Revisions { keep, last } => {
                // Go's int64 arithmetic wraps; a wrapped target is negative and skipped.
                let target = revision.wrapping_sub(*keep);
                (target > 0 && target != *last).then_some(target)
            }
        }
    }

    /// Notes that the keyspace is compacted to `revision` at `now`: the compaction
    /// succeeded, or found the keyspace already compacted there (which etcd counts as
    /// a success).
    pub fn compacted(&mut self, now: Duration, revision: i64) {
        match &mut self.state {
            State::Periodic(p) => p.last_compacted_at = now,
            State::Newest { last } => *last = Some(revision),
            State::Revisions { last, .. } => *last = revision,
        }
    }
}
