//! `member/committed`: how far this member had applied, kept apart from the Raft log.
//!
//! The log (fjall, `member/raft`) can lose its tail without fjall noticing: a journal
//! truncated or deleted by hand, a restored backup of only some files. Recovery then
//! replays what is left and the member would serve an older state as if nothing were
//! missing, acknowledged writes gone. This file remembers the highest index the state
//! machine had applied (everything applied was committed and on this member's disk), so
//! that start-up can tell a log that ends too early from one that is complete.
//!
//! It is written by a background task every [`COMMITTED_MARKER_INTERVAL_MS`] when the
//! applied index moved, and once more at a clean stop: an fsync a second, never one per
//! entry. After `kill -9` it may lag the log by up to that interval, which only makes
//! the check weaker for that last second, never wrong: the marker never claims an index
//! the member had not applied.
//!
//! Format: one line `committed <index> <xxh3-64 of "committed <index>" in hex>`, so a
//! flipped digit is noticed instead of trusted.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xxhash_rust::xxh3::xxh3_64;

use crate::disk::{self, Disk};

/// The marker's file name, beside `raft/` and `snap/` in `member/`.
pub const COMMITTED_MARKER: &str = "committed";

/// How often the marker is brought up to the applied index, in milliseconds. One
/// fsync a second costs nothing next to the log's own syncs; a second of entries is
/// what a `kill -9` may leave unchecked. (etcd needs no such file: its WAL records
/// the commit index in every HardState, and its WAL reader refuses a log that ends
/// before the snapshot it expects.)
pub const COMMITTED_MARKER_INTERVAL_MS: u64 = 1000;

/// What is wrong with the marker file.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// It could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// It does not hold a line this module wrote.
    #[error("{path} is damaged (expected `committed <index> <checksum>`, found {found:?})")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The first bytes found.
        found: String,
    },
}

fn body(index: u64) -> String {
    format!("committed {index}")
}

fn encode(index: u64) -> String {
    let body = body(index);
    format!("{body} {:016x}\n", xxh3_64(body.as_bytes()))
}

fn decode(text: &str) -> Option<u64> {
    let line = text.strip_suffix('\n')?;
    let (body, sum) = line.rsplit_once(' ')?;
    let index: u64 = body.strip_prefix("committed ")?.parse().ok()?;
    let sum = u64::from_str_radix(sum, 16).ok()?;
    (body == self::body(index) && sum == xxh3_64(body.as_bytes())).then_some(index)
}

/// Reads the marker: `None` if there is none (a fresh directory, or one written before
/// the marker existed), an error if it is there but unreadable or damaged.
pub fn read(disk: &dyn Disk, path: &Path) -> Result<Option<u64>, MarkerError> {
    let bytes = match disk.read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(MarkerError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    decode(&text).map(Some).ok_or_else(|| MarkerError::Damaged {
        path: path.to_owned(),
        found: text.chars().take(80).collect(),
    })
}

/// Writes the marker atomically (temp file, fsync, rename, fsync of the directory), so a
/// crash leaves the old or the new value, never a torn one.
pub fn write(disk: &dyn Disk, path: &Path, index: u64) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    disk::write_atomically(disk, path, &tmp, encode(index).as_bytes())
}

/// Keeps the marker at `path` up to the applied index until aborted, but never past
/// `durable`, the log's synced index: a member may apply committed entries before its
/// own log has synced them, and a failed sync may still lose those (it then restarts
/// and catches up from the leader; a marker past them would refuse the start). A
/// failed write (a full disk) is logged once and retried at the next tick; the marker
/// is only ever behind, which is safe.
pub async fn keep_up(
    disk: Arc<dyn Disk>,
    path: PathBuf,
    applied: Arc<AtomicU64>,
    durable: Arc<AtomicU64>,
    mut written: u64,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(COMMITTED_MARKER_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let now = applied
            .load(Ordering::Acquire)
            .min(durable.load(Ordering::Acquire));
        if now <= written {
            continue;
        }
        let (target, on) = (path.clone(), Arc::clone(&disk));
        let result = disk::blocking(&*disk, move || write(&*on, &target, now)).await;
        match result {
            Ok(Ok(())) => {
                written = now;
                if std::mem::take(&mut failing) {
                    tracing::info!(path = %path.display(), index = now, "committed marker written again");
                }
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(path = %path.display(), error = %e, "cannot update the committed marker; will retry");
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::warn!(error = %e, "committed marker task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        assert_eq!(decode(&encode(0)), Some(0));
        assert_eq!(decode(&encode(352)), Some(352));
        assert_eq!(decode(&encode(u64::MAX)), Some(u64::MAX));
        let good = encode(352);
        // A flipped digit keeps the shape but not the checksum.
        assert_eq!(decode(&good.replace("352", "353")), None);
        assert_eq!(decode(""), None);
        assert_eq!(decode("committed 352\n"), None);
        assert_eq!(decode(&good[..good.len() - 1]), None, "missing newline");
    }

    #[test]
    fn read_tells_missing_from_damaged() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join(COMMITTED_MARKER);
        let disk = crate::disk::StdDisk::default();
        assert!(read(&disk, &path).expect("missing is fine").is_none());
        write(&disk, &path, 42).expect("write");
        assert_eq!(read(&disk, &path).expect("read"), Some(42));
        std::fs::write(&path, b"\xff\x00junk").expect("damage");
        let err = read(&disk, &path).expect_err("damaged");
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
