//! A backup file: what `Maintenance.Snapshot` streams, `etcdctl snapshot save` writes
//! and `beaconctl snapshot status|restore` read. Where etcd's is its bbolt database,
//! Beacon's is a Raft snapshot file (`snapshot_file`: the v2 store's JSON and the v3
//! keyspace, with an xxh3 checksum), then zeros up to a multiple of [`ALIGN_BYTES`],
//! then the sha256 of everything before it, as etcd appends one to its database.
//!
//! The padding is there because etcdctl refuses a saved stream whose length is not a
//! multiple of 512 plus the 32 bytes of a sha256 (a bbolt file's pages always are); the
//! snapshot file's own header says where it ends, so the padding needs no length.
//!
//! A restore makes the first snapshot of a new cluster out of a backup: the keyspace
//! and its leases as saved, an empty v2 store (etcd 3.4's restore keeps no v2 data
//! either: its v2 store is rebuilt with the new membership alone), and the new members.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use openraft::{LogId, Membership, StoredMembership};
use sha2::{Digest, Sha256};

use crate::error::SnapshotFileError;
use crate::keyspace;
use crate::snapshot_file::{self, SnapshotDir};
use crate::types::{Member, NodeId, SnapshotMeta};

/// A backup's bytes before its hash are a multiple of this: etcdctl's check.
pub const ALIGN_BYTES: u64 = 512;
/// The length of the sha256 at a backup's end.
pub const HASH_BYTES: usize = 32;

/// The length of `len` bytes of snapshot with their padding.
pub fn padded_len(len: u64) -> u64 {
    len.div_ceil(ALIGN_BYTES) * ALIGN_BYTES
}

/// Why a backup file was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupFileError {
    /// Its length is not that of a backup: etcd's words for it.
    #[error("sha256 checksum not found [bytes: {0}]")]
    NoHash(u64),
    /// The sha256 at its end is not that of the bytes before it.
    #[error("sha256 checksum mismatch: the file says {stored}, its bytes hash to {computed}")]
    Hash {
        /// The hash the file ends with, in hex.
        stored: String,
        /// The hash of the bytes before it, in hex.
        computed: String,
    },
    /// The snapshot inside is damaged (its own checksum or lengths).
    #[error("{0}")]
    Snapshot(#[from] SnapshotFileError),
    /// Bytes other than zeros between the snapshot and the hash.
    #[error("bytes after the snapshot are not its padding (the file is damaged)")]
    Padding,
    /// The snapshot's checksum holds but its contents do not decode.
    #[error("the snapshot's contents do not decode: {0}")]
    Contents(String),
}

/// A backup read back and verified.
#[derive(Debug)]
pub struct Backup {
    /// The log position and membership of the member it was taken on.
    pub meta: SnapshotMeta,
    /// The snapshot's bytes: the v2 store's JSON and the v3 section.
    pub data: Vec<u8>,
}

/// What `snapshot status` prints of a backup, as etcdctl prints its database's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// A 32-bit hash of the snapshot's contents (etcd: a crc32 of its buckets).
    pub hash: u32,
    /// The keyspace's revision.
    pub revision: i64,
    /// The keyspace's stored records: every revision of every key, and the leases.
    pub total_keys: u64,
    /// The backup's size in bytes.
    pub total_size: u64,
}

/// Reads a backup: the sha256 at its end is checked unless `skip_hash_check` (etcd's
/// `--skip-hash-check`, for a database copied without one); the snapshot's own checksum
/// always is.
pub fn decode(mut bytes: Vec<u8>, skip_hash_check: bool) -> Result<Backup, BackupFileError> {
    let len = bytes.len() as u64;
    if len % ALIGN_BYTES != HASH_BYTES as u64 {
        return Err(BackupFileError::NoHash(len));
    }
    let body_len = bytes.len() - HASH_BYTES;
    if !skip_hash_check {
        let computed = Sha256::digest(&bytes[..body_len]);
        if computed.as_slice() != &bytes[body_len..] {
            return Err(BackupFileError::Hash {
                stored: hex(&bytes[body_len..]),
                computed: hex(&computed),
            });
        }
    }
    let header: [u8; snapshot_file::HEADER_LEN] = bytes
        .get(..snapshot_file::HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(SnapshotFileError::TooShort {
            len,
            min: snapshot_file::HEADER_LEN as u64,
        })?;
    let snapshot_len = snapshot_file::encoded_len(&header)?;
    let snapshot_end = usize::try_from(snapshot_len)
        .ok()
        .filter(|&end| end <= body_len)
        .ok_or(SnapshotFileError::Length {
            expected: snapshot_len,
            actual: body_len as u64,
        })?;
    if bytes[snapshot_end..body_len].iter().any(|&b| b != 0) {
        return Err(BackupFileError::Padding);
    }
    bytes.truncate(snapshot_end);
    let (meta, data) = snapshot_file::decode(bytes)?;
    crate::state_machine::check_snapshot(&data).map_err(BackupFileError::Contents)?;
    Ok(Backup { meta, data })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Backup {
    /// Its keyspace's revision and counts, for `snapshot status` (`total_size` is the
    /// file's length).
    pub fn summary(&self, total_size: u64) -> Result<Summary, BackupFileError> {
        let (_, v3) = keyspace::split(&self.data).map_err(BackupFileError::Contents)?;
        let (revision, total_keys) = match v3 {
            Some(v3) => {
                let section = keyspace::decode(v3).map_err(BackupFileError::Contents)?;
                (section.revision(), section.records())
            }
            None => (1, 0),
        };
        // The low half of a 64-bit hash of the contents: etcd prints 32 bits.
        let hash = xxhash_rust::xxh3::xxh3_64(&self.data) as u32;
        Ok(Summary {
            hash,
            revision,
            total_keys,
            total_size,
        })
    }

    /// Writes the first snapshot of a new cluster whose members are `members` (every
    /// one a voter) into `data_dir`, which must not exist yet (etcd refuses an existing
    /// one too). Returns the snapshot file's path.
    pub fn restore(
        &self,
        data_dir: &Path,
        members: BTreeMap<NodeId, Member>,
    ) -> Result<PathBuf, RestoreError> {
        if data_dir.exists() {
            return Err(RestoreError::Exists(data_dir.to_owned()));
        }
        let (_, v3) = keyspace::split(&self.data).map_err(RestoreError::Contents)?;
        // The new log starts where etcd's restored one does: one entry per member, at
        // term 1; the snapshot stands for them.
        let index = members.len() as u64;
        let first = *members.keys().next().ok_or(RestoreError::NoMembers)?;
        let log_id = LogId::new(
            openraft::impls::leader_id_adv::LeaderId {
                term: 1,
                node_id: first,
            },
            index,
        );
        let voters: BTreeSet<NodeId> = members.keys().copied().collect();
        let membership = Membership::new(vec![voters], members)
            .map_err(|e| RestoreError::Contents(e.to_string()))?;
        let meta = SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: StoredMembership::new(Some(log_id), membership),
        };
        let v3 = match v3 {
            // The keyspace's applied index is the new log's: a start installs it.
            Some(v3) => keyspace::rebase(v3, index).map_err(RestoreError::Contents)?,
            None => keyspace::rebase_empty(index),
        };
        let v2 = beacon_store::Store::new().save();
        let data = keyspace::join_encoded(&v2, &v3);
        let snap = data_dir.join("member").join("snap");
        let io_err = |source| RestoreError::Io {
            path: snap.clone(),
            source,
        };
        std::fs::create_dir_all(&snap).map_err(io_err)?;
        let dir = SnapshotDir::new(std::sync::Arc::new(crate::disk::StdDisk::default()), &snap);
        dir.write(&meta, &data).map_err(io_err)
    }
}

/// Why a restore wrote nothing (or not all).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The data directory is there already.
    #[error("data-dir {0:?} exists")]
    Exists(PathBuf),
    /// No member to restore for.
    #[error("a restore needs at least one member")]
    NoMembers,
    /// The backup's contents do not decode.
    #[error("the snapshot's contents do not decode: {0}")]
    Contents(String),
    /// Writing failed.
    #[error("writing {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}
