//! The compactor on tokio's paused clock over a fake keyspace: when it compacts, to
//! which revision, only while leading, and what it does with a failed compaction.
//! Revision mode's 5-minute interval is too slow for a test against a real etcd; these
//! pin it instead (and `tests/auto_compaction.rs` compares periodic mode with etcd).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// A keyspace whose revision grows by `per_unit` every `unit` from `base`, that
/// records each compaction asked of it (in whole `unit`s since the start, and the
/// revision), and answers the first `failures` of them with a failure.
struct Fake {
    started: Instant,
    unit: Duration,
    base: i64,
    per_unit: i64,
    leads: AtomicBool,
    failures: AtomicUsize,
    already: AtomicBool,
    asked: Mutex<Vec<(u64, i64)>>,
    compacted: AtomicI64,
}

impl Fake {
    fn new(unit: Duration, base: i64, per_unit: i64) -> Arc<Fake> {
        Arc::new(Fake {
            started: Instant::now(),
            unit,
            base,
            per_unit,
            leads: AtomicBool::new(true),
            failures: AtomicUsize::new(0),
            already: AtomicBool::new(false),
            asked: Mutex::new(Vec::new()),
            compacted: AtomicI64::new(0),
        })
    }

    fn units(&self) -> u64 {
        (self.started.elapsed().as_nanos() / self.unit.as_nanos()) as u64
    }

    fn asked(&self) -> Vec<(u64, i64)> {
        self.asked.lock().unwrap().clone()
    }
}

impl Keyspace for Arc<Fake> {
    fn revision(&self) -> i64 {
        self.base + self.per_unit * self.units() as i64
    }

    fn leads(&self) -> bool {
        self.leads.load(Ordering::SeqCst)
    }

    async fn compact(&self, revision: i64) -> Result<(), CompactError> {
        self.asked.lock().unwrap().push((self.units(), revision));
        let failing = self.failures.load(Ordering::SeqCst);
        if failing > 0 {
            self.failures.store(failing - 1, Ordering::SeqCst);
            return Err(CompactError::Failed(
                "etcdserver: request timed out".to_string(),
            ));
        }
        if self.already.load(Ordering::SeqCst) {
            return Err(CompactError::AlreadyCompacted);
        }
        self.compacted.store(revision, Ordering::SeqCst);
        Ok(())
    }
}

/// Runs the compactor over `fake` for `retention` until `for_how_long` has passed.
async fn run_for(fake: &Arc<Fake>, retention: Retention, for_how_long: Duration) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(Arc::clone(fake), retention, stopped));
    tokio::time::sleep(for_how_long).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn periodic_under_an_hour_compacts_every_retention_to_the_revision_a_retention_ago() {
    // One write a second; etcd samples the revision every second (a tenth of 10s).
    let fake = Fake::new(SECOND, 1, 1);
    run_for(&fake, Retention::Periodic(10 * SECOND), 35 * SECOND).await;
    // First a retention after start, to the revision of the start; then every
    // retention, to the oldest of the 11 samples kept: a retention and a sample back.
    assert_eq!(fake.asked(), [(10, 1), (20, 10), (30, 20)]);
}

#[tokio::test(start_paused = true)]
async fn periodic_over_an_hour_compacts_hourly_to_the_revision_a_retention_ago() {
    // One write a minute; samples every 6 minutes (a tenth of an hour), 21 kept.
    let fake = Fake::new(MINUTE, 1, 1);
    run_for(&fake, Retention::Periodic(120 * MINUTE), 250 * MINUTE).await;
    assert_eq!(fake.asked(), [(120, 1), (180, 55), (240, 115)]);
}

#[tokio::test(start_paused = true)]
async fn a_bare_integer_retention_is_hours() {
    let config = crate::config::Config::from_args(
        ["beacon", "--auto-compaction-retention", "1"].map(std::ffi::OsString::from),
    )
    .unwrap();
    let retention = config.auto_compaction.unwrap();
    assert_eq!(retention, Retention::Periodic(60 * MINUTE));
    let fake = Fake::new(MINUTE, 1, 1);
    run_for(&fake, retention, 130 * MINUTE).await;
    assert_eq!(fake.asked(), [(60, 1), (120, 55)]);
}

#[tokio::test(start_paused = true)]
async fn revision_mode_compacts_every_five_minutes_to_the_revision_less_the_retention() {
    // One write a second.
    let fake = Fake::new(SECOND, 1, 1);
    run_for(&fake, Retention::Revisions(100), 16 * MINUTE).await;
    assert_eq!(fake.asked(), [(300, 201), (600, 501), (900, 801)]);
    assert_eq!(fake.compacted.load(Ordering::SeqCst), 801);
}

#[tokio::test(start_paused = true)]
async fn revision_mode_skips_a_target_not_positive_or_unchanged() {
    // No writes: revision 50. A retention of 100 leaves nothing to compact.
    let fake = Fake::new(SECOND, 50, 0);
    run_for(&fake, Retention::Revisions(100), 16 * MINUTE).await;
    assert_eq!(fake.asked(), []);
    // A retention of 10: revision 40, once; the next checks find it unchanged.
    let fake = Fake::new(SECOND, 50, 0);
    run_for(&fake, Retention::Revisions(10), 16 * MINUTE).await;
    assert_eq!(fake.asked(), [(300, 40)]);
    // A negative count (etcd takes "-1m" as minus 6e10 revisions) aims past the
    // current revision, which is never positive once wrapped, or fails.
    let fake = Fake::new(SECOND, 50, 0);
    run_for(&fake, Retention::Revisions(i64::MIN + 1), 6 * MINUTE).await;
    assert_eq!(fake.asked(), []);
}

#[tokio::test(start_paused = true)]
async fn only_the_leader_compacts_and_a_new_leader_knows_the_revisions_before() {
    let fake = Fake::new(SECOND, 1, 1);
    fake.leads.store(false, Ordering::SeqCst);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(
        Arc::clone(&fake),
        Retention::Periodic(10 * SECOND),
        stopped,
    ));
    tokio::time::sleep(Duration::from_millis(25_500)).await;
    assert_eq!(fake.asked(), [], "a follower compacts nothing");
    fake.leads.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(15_000)).await;
    fake.leads.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20_000)).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    // Leading from 25.5s: at the next check its last compaction (none: the start) is
    // over a retention ago, so it compacts at once, to what it sampled as a follower.
    assert_eq!(fake.asked(), [(26, 16), (36, 26)]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_compaction_is_retried_at_the_next_sample_and_already_compacted_is_success() {
    let fake = Fake::new(SECOND, 1, 1);
    fake.failures.store(3, Ordering::SeqCst);
    run_for(&fake, Retention::Periodic(10 * SECOND), 25 * SECOND).await;
    // The window slides on while it fails; a success waits a retention again.
    assert_eq!(fake.asked(), [(10, 1), (11, 1), (12, 2), (13, 3), (23, 13)]);

    // etcd counts ErrCompacted as a success: the next waits a whole retention.
    let fake = Fake::new(SECOND, 1, 1);
    fake.already.store(true, Ordering::SeqCst);
    run_for(&fake, Retention::Periodic(10 * SECOND), 25 * SECOND).await;
    assert_eq!(fake.asked(), [(10, 1), (20, 10)]);

    // Revision mode retries a failure 5 minutes later, at the same target if the
    // revision has not moved.
    let fake = Fake::new(SECOND, 50, 0);
    fake.failures.store(1, Ordering::SeqCst);
    run_for(&fake, Retention::Revisions(10), 16 * MINUTE).await;
    assert_eq!(fake.asked(), [(300, 40), (600, 40)]);
}

#[tokio::test(start_paused = true)]
async fn a_negative_periodic_retention_keeps_only_the_newest_revision() {
    // etcd spins, compacting to the newest revision on every turn; Beacon checks every
    // 100ms, and proposes a revision once.
    let fake = Fake::new(SECOND, 1, 1);
    run_for(
        &fake,
        Retention::PeriodicNegative(SECOND),
        Duration::from_millis(3_050),
    )
    .await;
    assert_eq!(fake.asked(), [(0, 1), (1, 2), (2, 3), (3, 4)]);
}

#[test]
fn the_retention_prints_as_etcd_prints_it() {
    assert_eq!(Retention::Periodic(2 * SECOND).to_string(), "2s");
    assert_eq!(Retention::Periodic(120 * MINUTE).to_string(), "2h0m0s");
    assert_eq!(Retention::PeriodicNegative(SECOND).to_string(), "-1s");
    assert_eq!(Retention::Revisions(1000).to_string(), "1000 revisions");
}

#[test]
fn a_short_retention_is_sampled_no_faster_than_the_limit() {
    let policy = Policy::new(Retention::Periodic(Duration::from_millis(500)));
    assert_eq!(policy.check_interval(), Duration::from_millis(100));
    let policy = Policy::new(Retention::Periodic(2 * SECOND));
    assert_eq!(policy.check_interval(), Duration::from_millis(200));
    let policy = Policy::new(Retention::Periodic(5 * 60 * MINUTE));
    assert_eq!(policy.check_interval(), 6 * MINUTE);
}
