//! Where each revision's value lives, and the write-back of what a batch of commands
//! changed.
//!
//! The keyspace keeps only its key index in memory; values are read from a [`Values`]
//! store (fjall, through the node's disk, in a server; [`MemValues`] in tests). Changes
//! made while applying commands wait in the keyspace's pending map, where reads see
//! them at once, until the caller commits them ([`crate::Mvcc::commit`]) in one atomic
//! write together with the position of the last command applied, so that a restart
//! finds the keyspace exactly as of some command and goes on from the next. A server
//! takes them instead ([`crate::Mvcc::take_changes`]) for a writer of its own, and
//! applies on: reads see them, newest first, until it confirms each written.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use beacon_proto::mvccpb::KeyValue;

use crate::Revision;

/// A failure of the store under the keyspace (a disk error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the v3 store's disk failed: {0}")]
pub struct StorageError(pub String);

/// What a batch of commands changed, written at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Values written (`Some`) or forgotten by a compaction (`None`), by revision;
    /// shared with the keyspace, which reads them there until they are written.
    pub writes: Arc<BTreeMap<Revision, Option<KeyValue>>>,
    /// Leases granted or renewed (`Some`) or revoked (`None`), by id.
    pub leases: BTreeMap<i64, Option<crate::LeaseRecord>>,
    /// The keyspace's current revision after the batch.
    pub current: i64,
    /// Its compacted revision after the batch (-1 before any compaction).
    pub compacted: i64,
    /// The alarms raised after the batch: (member id, `AlarmType` number).
    pub alarms: Vec<(u64, i32)>,
    /// The auth state after the batch, when the batch changed it.
    pub auth: Option<beacon_auth::AuthState>,
    /// The position of the batch's last command in whatever feeds the keyspace (the
    /// Raft log's index), stored with the changes so a restart skips what they hold.
    pub applied_index: u64,
}

/// The values of a keyspace, by revision. A tombstone's value is the key alone
/// (version 0), which is how an index rebuilt from the values tells deletes apart.
pub trait Values: Send + Sync {
    /// The value written at `rev`; `None` if there is none (compacted away).
    fn get(&self, rev: Revision) -> Result<Option<KeyValue>, StorageError>;
    /// Every value written at a revision in `from..to`, in revision order.
    fn scan(&self, from: Revision, to: Revision)
        -> Result<Vec<(Revision, KeyValue)>, StorageError>;
    /// Applies `changes` atomically: after a crash all of them or none are there.
    fn commit(&self, changes: &Changes) -> Result<(), StorageError>;
}

/// Values in memory: tests, and a keyspace that needs no disk.
#[derive(Debug, Default)]
pub struct MemValues {
    values: Mutex<BTreeMap<Revision, KeyValue>>,
}

impl Values for MemValues {
    fn get(&self, rev: Revision) -> Result<Option<KeyValue>, StorageError> {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        Ok(values.get(&rev).cloned())
    }

    fn scan(
        &self,
        from: Revision,
        to: Revision,
    ) -> Result<Vec<(Revision, KeyValue)>, StorageError> {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        Ok(values
            .range(from..to)
            .map(|(rev, kv)| (*rev, kv.clone()))
            .collect())
    }

    fn commit(&self, changes: &Changes) -> Result<(), StorageError> {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        for (rev, value) in changes.writes.iter() {
            match value {
                Some(kv) => values.insert(*rev, kv.clone()),
                None => values.remove(rev),
            };
        }
        Ok(())
    }
}

/// The on-disk form of a revision: main then sub, big-endian with the sign bit flipped,
/// so that byte order is revision order.
pub fn revision_key(rev: Revision) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&((rev.main as u64) ^ (1 << 63)).to_be_bytes());
    key[8..].copy_from_slice(&((rev.sub as u64) ^ (1 << 63)).to_be_bytes());
    key
}

/// The revision a [`revision_key`] encodes; `None` for anything else.
pub fn parse_revision_key(key: &[u8]) -> Option<Revision> {
    let main: [u8; 8] = key.get(..8)?.try_into().ok()?;
    let sub: [u8; 8] = key.get(8..16)?.try_into().ok()?;
    (key.len() == 16).then(|| Revision {
        main: (u64::from_be_bytes(main) ^ (1 << 63)) as i64,
        sub: (u64::from_be_bytes(sub) ^ (1 << 63)) as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_keys_sort_as_revisions() {
        let revs = [(-1, 0), (0, 0), (1, 0), (1, 1), (2, 0), (i64::MAX, 3)];
        let keys: Vec<[u8; 16]> = revs
            .iter()
            .map(|&(main, sub)| revision_key(Revision { main, sub }))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (&(main, sub), key) in revs.iter().zip(&keys) {
            assert_eq!(parse_revision_key(key), Some(Revision { main, sub }));
        }
        assert_eq!(parse_revision_key(&[0; 15]), None);
    }
}
