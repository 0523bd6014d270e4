//! The start-up check that the data directory still holds everything this member once
//! knew committed: the loaded snapshot plus the log must reach the index that
//! `member/committed` (and the log's own committed marker) recorded, without a hole.
//!
//! Without it, a journal truncated or deleted by hand, or a `member/raft` lost with a
//! snapshot left behind, starts quietly on an older state: acknowledged writes are gone,
//! and new writes reuse their indexes. Such a member refuses to start, naming the missing
//! index range and the path, unless the operator passes `--force-new-cluster`, etcd's
//! flag for starting one member over whatever its data directory holds.

use std::ops::RangeInclusive;
use std::path::Path;

use crate::committed_marker;
use crate::error::OpenError;
use crate::log_store::LogStore;
use crate::state_machine::{SkippedSnapshot, StateMachine};

/// What is missing, if anything, given what was known and what is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The log was purged past the loaded snapshot: the entries in between are in no
    /// file any more (a snapshot was lost or set aside).
    Hole(RangeInclusive<u64>),
    /// The snapshot and the log end before the known committed index.
    Tail(RangeInclusive<u64>),
}

/// Compares what was known committed with what the snapshot (its last index) and the
/// log (its purge point and last index) hold.
pub fn missing(
    known_committed: u64,
    snapshot: Option<u64>,
    purged: Option<u64>,
    log_last: Option<u64>,
) -> Option<Missing> {
    let snap = snapshot.unwrap_or(0);
    if let Some(purged) = purged.filter(|p| *p > snap) {
        // Index 0 holds openraft's first membership entry; with no snapshot at all the
        // hole starts there.
        let first = snapshot.map_or(0, |s| s + 1);
        return Some(Missing::Hole(first..=purged));
    }
    let end = snap.max(log_last.or(purged).unwrap_or(0));
    (known_committed > end).then(|| Missing::Tail(end + 1..=known_committed))
}

/// What the check decided.
#[derive(Debug, Default)]
pub struct Checked {
    /// The index the marker should say from now on when entries were missing and the
    /// operator accepted their loss (`--force-new-cluster`).
    pub accepted_up_to: Option<u64>,
}

/// Checks the opened log and state machine against the marker at `marker`. `force` is
/// `--force-new-cluster`: refused on a member whose cluster has other voters; otherwise
/// a missing tail is logged and accepted.
pub fn check(
    log: &LogStore,
    sm: &StateMachine,
    marker: &Path,
    node_id: u64,
    force: bool,
) -> Result<Checked, OpenError> {
    let raft_dir = log.path().to_owned();
    let corrupt = |detail: String| OpenError::LogCorrupt {
        path: raft_dir.clone(),
        detail,
    };
    let recorded = match committed_marker::read(&**log.disk(), marker) {
        Ok(r) => r,
        Err(e) if force => {
            tracing::warn!(error = %e, "ignoring a damaged committed marker (--force-new-cluster)");
            None
        }
        Err(e) => {
            return Err(OpenError::Marker {
                path: marker.to_owned(),
                detail: e.to_string(),
            })
        }
    };
    let (purged, log_last, log_committed) = log.bounds().map_err(|e| corrupt(e.to_string()))?;
    let known = recorded.unwrap_or(0).max(log_committed.unwrap_or(0));
    let snapshot = sm.snapshot_index();
    let skipped = describe_skipped(sm.skipped());
    if force {
        // etcd's flag makes a one-member cluster of a member of any cluster; Beacon cannot
        // yet rewrite a membership, so it refuses rather than ignore the flag.
        let voters = log
            .last_membership_voters()
            .map_err(|e| corrupt(e.to_string()))?
            .unwrap_or_else(|| sm.snapshot_voters());
        if voters.iter().any(|v| *v != node_id) {
            return Err(OpenError::ForceNewCluster {
                path: raft_dir,
                voters,
            });
        }
    }
    match missing(known, snapshot, purged, log_last) {
        None => {
            if force {
                tracing::info!(
                    "--force-new-cluster: the data directory misses nothing; starting as usual"
                );
            }
            Ok(Checked::default())
        }
        Some(Missing::Hole(range)) => Err(OpenError::MissingEntries {
            path: sm.snapshot_dir().to_owned(),
            first: *range.start(),
            last: *range.end(),
            detail: format!(
                "the log at {} starts after index {}, and no snapshot that loads covers \
                 the entries before it{skipped}; --force-new-cluster cannot bridge a hole: \
                 restore the snapshot files from a backup",
                raft_dir.display(),
                range.end()
            ),
        }),
        Some(Missing::Tail(range)) if !force => Err(OpenError::MissingEntries {
            path: raft_dir.clone(),
            first: *range.start(),
            last: *range.end(),
            detail: format!(
                "entries up to {} were committed (recorded in {}), but the snapshot and the \
                 log end at {}{skipped}; restore the data directory from a backup, or start \
                 with --force-new-cluster to accept the loss",
                range.end(),
                marker.display(),
                range.start() - 1
            ),
        }),
        Some(Missing::Tail(range)) => {
            if log_committed.is_some_and(|c| c >= *range.start()) {
                log.forget_committed().map_err(|e| corrupt(e.to_string()))?;
            }
            tracing::warn!(
                path = %raft_dir.display(),
                first = *range.start(),
                last = *range.end(),
                "--force-new-cluster: starting without entries that were committed; \
                 the writes they held are lost"
            );
            Ok(Checked {
                accepted_up_to: Some(range.start() - 1),
            })
        }
    }
}

fn describe_skipped(skipped: &[SkippedSnapshot]) -> String {
    skipped
        .iter()
        .map(|s| format!(" (skipped snapshot {}: {})", s.path.display(), s.reason))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_directories_miss_nothing() {
        assert_eq!(missing(0, None, None, None), None, "fresh");
        assert_eq!(missing(350, None, None, Some(352)), None, "log only");
        assert_eq!(missing(350, Some(300), Some(200), Some(352)), None);
        assert_eq!(missing(300, Some(300), Some(300), None), None, "all purged");
        assert_eq!(missing(350, Some(350), None, None), None, "snapshot only");
    }

    #[test]
    fn a_short_log_misses_its_tail() {
        assert_eq!(
            missing(352, None, None, Some(297)),
            Some(Missing::Tail(298..=352))
        );
        assert_eq!(
            missing(352, Some(300), None, None),
            Some(Missing::Tail(301..=352)),
            "member/raft deleted, snapshot kept"
        );
        assert_eq!(missing(352, None, None, None), Some(Missing::Tail(1..=352)));
    }

    #[test]
    fn a_log_purged_past_the_snapshot_has_a_hole() {
        assert_eq!(
            missing(352, Some(200), Some(250), Some(352)),
            Some(Missing::Hole(201..=250))
        );
        assert_eq!(
            missing(352, None, Some(250), Some(352)),
            Some(Missing::Hole(0..=250))
        );
    }
}
