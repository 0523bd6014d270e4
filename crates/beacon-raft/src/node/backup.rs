//! A backup of this member's state (etcd's `Maintenance.Snapshot`): a snapshot file that
//! holds everything applied when it was asked for. It is built by the Raft snapshot
//! machinery itself (O(1) views of the v2 store and of the keyspace's tables, taken
//! between two applies and encoded off every lock), so a backup is a point-in-time image
//! as of one applied index and never stalls writes.

use std::path::PathBuf;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use super::RaftNode;
use crate::disk;
use crate::error::BackupError;

/// How long a backup waits for a snapshot before it asks openraft again (a trigger that
/// came while another snapshot was being built was dropped).
const BACKUP_RETRIGGER: Duration = Duration::from_millis(500);

impl RaftNode {
    /// The newest snapshot file once it holds every entry applied now, asking openraft
    /// for a new snapshot when the newest is older; waits up to `timeout` for it.
    ///
    /// The file may be pruned once two newer ones are written: the caller opens it at
    /// once (an open file outlives its removal) and asks again if it is already gone.
    pub async fn backup_file(&self, timeout: Duration) -> Result<PathBuf, BackupError> {
        let target = self.inner.applied.get();
        let snapshot_index = |m: &openraft::RaftMetrics<crate::types::TypeConfig>| {
            m.snapshot.as_ref().map_or(0, |s| s.index)
        };
        let deadline = tokio::time::Instant::now() + timeout;
        // openraft ignores a trigger while it builds a snapshot, which may be one from
        // before `target`: trigger again each slice until a snapshot covers it.
        while snapshot_index(&self.inner.raft.metrics().borrow_watched()) < target {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(BackupError::Timeout);
            }
            self.inner
                .raft
                .trigger()
                .snapshot()
                .await
                .map_err(|_| BackupError::Stopped)?;
            let waited = self
                .inner
                .raft
                .wait(Some(left.min(BACKUP_RETRIGGER)))
                .metrics(|m| snapshot_index(m) >= target, "a snapshot for a backup")
                .await;
            match waited {
                Ok(_) | Err(openraft::metrics::WaitError::Timeout(..)) => {}
                Err(_) => return Err(BackupError::Stopped),
            }
        }
        let dir = self.inner.snapshots.clone();
        let latest = disk::blocking(&*self.inner.disk, move || dir.latest())
            .await
            .and_then(|found| found)
            .map_err(BackupError::Io)?;
        match latest {
            Some(file) if file.index >= target => Ok(file.path),
            _ => Err(BackupError::Io(std::io::Error::other(
                "the snapshot written for the backup is not in the snapshot directory",
            ))),
        }
    }
}
