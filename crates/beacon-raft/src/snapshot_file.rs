//! Snapshot files in `<data-dir>/member/snap`: a checksummed container for the snapshot
//! meta and the store bytes, written atomically, named so the newest is easy to find.
//!
//! Layout (integers big-endian):
//!
//! ```text
//! magic "BCNSNAP\0" | version u32 | meta_len u32 | data_len u64 | meta (JSON) | data | xxh3-64
//! ```
//!
//! The checksum covers every byte before it, so a flipped bit anywhere, a truncated or a
//! padded file is reported instead of being loaded into the store.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xxhash_rust::xxh3::xxh3_64;

use crate::disk::{self, Disk};
use crate::error::SnapshotFileError;
use crate::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"BCNSNAP\0";
const VERSION: u32 = 1;
/// The fixed header's length: magic, version, meta length, data length.
pub(crate) const HEADER_LEN: usize = 8 + 4 + 4 + 8;
/// The trailing checksum's length.
pub(crate) const CHECKSUM_LEN: usize = 8;
const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";
/// How long a snapshot write that failed (a full disk) waits before it is tried again,
/// in milliseconds: the log's writes wait as long (`LOG_WRITE_RETRY_MS`, for the same
/// reasons). A failed write handed to openraft would stop Raft for good.
pub const SNAPSHOT_WRITE_RETRY_MS: u64 = 500;
/// The file a snapshot sent by the leader is received into before it is verified; a
/// temp file, so a crash mid-receipt leaves nothing that start-up would load.
const INCOMING_NAME: &str = "incoming.snap.tmp";

/// Encodes a snapshot file's bytes.
pub fn encode(meta: &SnapshotMeta, data: &[u8]) -> Vec<u8> {
    // Serializing openraft's meta types cannot fail: plain structs of integers and strings.
    let meta_json = serde_json::to_vec(meta).expect("snapshot meta serializes to JSON");
    let meta_len = u32::try_from(meta_json.len()).expect("snapshot meta under 4 GiB");
    let mut buf = Vec::with_capacity(HEADER_LEN + meta_json.len() + data.len() + CHECKSUM_LEN);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&VERSION.to_be_bytes());
    buf.extend_from_slice(&meta_len.to_be_bytes());
    buf.extend_from_slice(&(data.len() as u64).to_be_bytes());
    buf.extend_from_slice(&meta_json);
    buf.extend_from_slice(data);
    let sum = xxh3_64(&buf);
    buf.extend_from_slice(&sum.to_be_bytes());
    buf
}

/// Checks a snapshot file's fixed header (magic and version) and returns the whole
/// file's length that its lengths describe, so that a reader can refuse a file of the
/// wrong size before reading the rest.
pub(crate) fn encoded_len(header: &[u8; HEADER_LEN]) -> Result<u64, SnapshotFileError> {
    if &header[..8] != MAGIC {
        return Err(SnapshotFileError::BadMagic);
    }
    let version = u32::from_be_bytes(array(&header[8..12]));
    if version != VERSION {
        return Err(SnapshotFileError::Version(version));
    }
    let meta_len = u64::from(u32::from_be_bytes(array(&header[12..16])));
    let data_len = u64::from_be_bytes(array(&header[16..24]));
    // Checked arithmetic: the lengths come from outside and may be garbage.
    Ok(meta_len
        .checked_add(data_len)
        .and_then(|n| n.checked_add((HEADER_LEN + CHECKSUM_LEN) as u64))
        .unwrap_or(u64::MAX))
}

/// Whether `stored` (a file's last [`CHECKSUM_LEN`] bytes) is the checksum of the
/// bytes before it, which `hasher` has seen.
pub(crate) fn checksum_matches(
    hasher: &xxhash_rust::xxh3::Xxh3,
    stored: [u8; CHECKSUM_LEN],
) -> bool {
    hasher.digest() == u64::from_be_bytes(stored)
}

/// Decodes and verifies a snapshot file's bytes into its meta and store bytes.
pub fn decode(mut bytes: Vec<u8>) -> Result<(SnapshotMeta, Vec<u8>), SnapshotFileError> {
    let len = bytes.len() as u64;
    let min = (HEADER_LEN + CHECKSUM_LEN) as u64;
    if len < min {
        return Err(SnapshotFileError::TooShort { len, min });
    }
    if &bytes[..8] != MAGIC {
        return Err(SnapshotFileError::BadMagic);
    }
    let version = u32::from_be_bytes(array(&bytes[8..12]));
    if version != VERSION {
        return Err(SnapshotFileError::Version(version));
    }
    let meta_len = u64::from(u32::from_be_bytes(array(&bytes[12..16])));
    let data_len = u64::from_be_bytes(array(&bytes[16..24]));
    // Checked arithmetic: the lengths come from disk and may be garbage.
    let expected = meta_len
        .checked_add(data_len)
        .and_then(|n| n.checked_add(min))
        .unwrap_or(u64::MAX);
    if expected != len {
        return Err(SnapshotFileError::Length {
            expected,
            actual: len,
        });
    }
    let body_end = bytes.len() - CHECKSUM_LEN;
    let stored = u64::from_be_bytes(array(&bytes[body_end..]));
    let computed = xxh3_64(&bytes[..body_end]);
    if stored != computed {
        return Err(SnapshotFileError::Checksum { stored, computed });
    }
    // Lengths were verified against the file size above, so these casts and slices hold.
    let meta_end = HEADER_LEN + meta_len as usize;
    let meta: SnapshotMeta = serde_json::from_slice(&bytes[HEADER_LEN..meta_end])?;
    bytes.truncate(body_end);
    let data = bytes.split_off(meta_end);
    Ok((meta, data))
}

fn array<const N: usize>(s: &[u8]) -> [u8; N] {
    s.try_into().expect("slice length checked by caller")
}

/// A snapshot file found on disk: where it is and the log position its name claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Last log index the snapshot covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The file.
    pub path: PathBuf,
}

/// The snapshot directory: writes, lists, loads and prunes snapshot files.
#[derive(Clone)]
pub struct SnapshotDir {
    disk: Arc<dyn Disk>,
    path: PathBuf,
    /// Set at shutdown (shared by every clone): a failed write gives up instead of
    /// waiting for the disk.
    stopping: Arc<AtomicBool>,
}

impl fmt::Debug for SnapshotDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotDir")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SnapshotDir {
    /// A handle on `path` on `disk`; it must exist.
    pub fn new(disk: Arc<dyn Disk>, path: impl Into<PathBuf>) -> SnapshotDir {
        SnapshotDir {
            disk,
            path: path.into(),
            stopping: Arc::default(),
        }
    }

    /// Makes a failed write give up with its error from now on (shutdown).
    pub fn stop_retrying(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// [`Self::write`] as blocking work, tried again every [`SNAPSHOT_WRITE_RETRY_MS`]
    /// while it fails (a full disk), until it succeeds or the node stops. etcd's
    /// snapshotter panics on a failed save instead; this waits, as the log does.
    pub async fn write_retrying(
        &self,
        meta: &SnapshotMeta,
        data: Arc<Vec<u8>>,
    ) -> io::Result<PathBuf> {
        let mut failing = false;
        loop {
            let (dir, m, d) = (self.clone(), meta.clone(), Arc::clone(&data));
            let result = disk::blocking(&*self.disk, move || dir.write(&m, &d))
                .await
                .and_then(|written| written);
            match result {
                Ok(path) => {
                    if failing {
                        tracing::info!(path = %path.display(), "snapshot written after failed tries");
                    }
                    return Ok(path);
                }
                Err(e) if self.stopping.load(Ordering::Acquire) => return Err(e),
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(
                            dir = %self.path.display(),
                            error = %e,
                            retry_ms = SNAPSHOT_WRITE_RETRY_MS,
                            "writing a snapshot failed (is the disk full?); it is retried until it succeeds"
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(SNAPSHOT_WRITE_RETRY_MS)).await;
                }
            }
        }
    }

    /// The disk the directory is on.
    pub fn disk(&self) -> &Arc<dyn Disk> {
        &self.disk
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a snapshot sent by the leader is received before it is verified.
    pub(crate) fn incoming_path(&self) -> PathBuf {
        self.path.join(INCOMING_NAME)
    }

    /// Writes a snapshot atomically: a temp file, fsync, rename, fsync of the directory,
    /// so after a crash either the complete new file or no file is there.
    pub fn write(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<PathBuf> {
        let (term, index) = meta
            .last_log_id
            .as_ref()
            .map(|l| (l.leader_id.term, l.index))
            .unwrap_or((0, 0));
        // etcd's naming: term then index, both fixed-width hex.
        let name = format!("{term:016x}-{index:016x}");
        let final_path = self.path.join(format!("{name}{SUFFIX}"));
        let tmp_path = self.path.join(format!("{name}{TMP_SUFFIX}"));
        disk::write_atomically(&*self.disk, &final_path, &tmp_path, &encode(meta, data))?;
        Ok(final_path)
    }

    /// The snapshot files, oldest first (by index, then term). Temp files and foreign
    /// names are skipped.
    pub fn list(&self) -> io::Result<Vec<SnapshotFile>> {
        let mut files = Vec::new();
        for name in self.disk.list_dir(&self.path)? {
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(SUFFIX) else {
                continue;
            };
            let Some((term, index)) = stem.split_once('-') else {
                continue;
            };
            let (Ok(term), Ok(index)) = (
                u64::from_str_radix(term, 16),
                u64::from_str_radix(index, 16),
            ) else {
                continue;
            };
            files.push(SnapshotFile {
                index,
                term,
                path: self.path.join(name),
            });
        }
        files.sort_by_key(|f| (f.index, f.term));
        Ok(files)
    }

    /// Reads and verifies one snapshot file.
    pub fn load(&self, path: &Path) -> Result<(SnapshotMeta, Vec<u8>), SnapshotFileError> {
        decode(self.disk.read(path)?)
    }

    /// The newest snapshot file, if any (not yet read).
    pub fn latest(&self) -> io::Result<Option<SnapshotFile>> {
        Ok(self.list()?.pop())
    }

    /// Removes all but the newest `keep` snapshot files.
    pub fn prune(&self, keep: usize) -> io::Result<()> {
        let files = self.list()?;
        let excess = files.len().saturating_sub(keep);
        for f in &files[..excess] {
            self.disk.remove_file(&f.path)?;
        }
        Ok(())
    }

    /// Removes temp files a crash left behind mid-write.
    pub fn remove_temp_files(&self) -> io::Result<()> {
        for name in self.disk.list_dir(&self.path)? {
            if name.to_str().is_some_and(|n| n.ends_with(TMP_SUFFIX)) {
                self.disk.remove_file(&self.path.join(name))?;
            }
        }
        Ok(())
    }
}
