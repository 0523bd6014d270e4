//! etcd's corruption checks: `HashKV`, a CRC-32C over the keyspace's history up to a
//! revision, byte for byte as etcd computes it over its database (so a member's hash
//! equals an etcd's that saw the same writes), and `Hash`, a digest of everything
//! stored (etcd's covers its whole database file, which nothing else can reproduce).

use std::collections::HashSet;

use beacon_proto::etcdserverpb::{HashKvResponse, HashResponse};
use beacon_proto::mvccpb::KeyValue;
use crc::{Crc, CRC_32_ISCSI};
use prost::Message;

use crate::index::KeyRange;
use crate::store::{header, Mvcc};
use crate::{MvccError, Revision};

/// CRC-32C, Go's `crc32.Castagnoli`.
const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// How many main revisions are read from the store at once while hashing.
const HASH_READ_REVISIONS: i64 = 4096;

/// A revision as etcd's database keys it: main, `_`, sub, big-endian, and a `t` after
/// a tombstone's.
fn etcd_revision_key(rev: Revision, tombstone: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.extend_from_slice(&rev.main.to_be_bytes());
    key.push(b'_');
    key.extend_from_slice(&rev.sub.to_be_bytes());
    if tombstone {
        key.push(b't');
    }
    key
}

impl Mvcc {
    /// etcd's `HashKV` at `revision` (0: the current one).
    pub fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, MvccError> {
        if revision > 0 && revision <= self.compacted {
            return Err(MvccError::Compacted);
        }
        if revision > self.current {
            return Err(MvccError::FutureRevision);
        }
        let at = if revision == 0 {
            self.current
        } else {
            revision
        };
        // What a compaction at `at` would keep: each key's live revision. Below the
        // compacted revision only those count (etcd's database may still hold others
        // until its background compaction is done).
        let everything = KeyRange::new(&[0], &[0]);
        let keep: HashSet<Revision> = self
            .index
            .range(&everything, at)
            .into_iter()
            .map(|(_, rev)| rev)
            .collect();
        let mut digest = CASTAGNOLI.digest();
        digest.update(b"key");
        let mut from = 0;
        while from <= at {
            let to = at.min(from.saturating_add(HASH_READ_REVISIONS - 1));
            for (rev, kv) in self.stored(from, to)? {
                if rev.main <= self.compacted && !keep.is_empty() && !keep.contains(&rev) {
                    continue;
                }
                let tombstone = kv.version == 0;
                digest.update(&etcd_revision_key(rev, tombstone));
                if tombstone {
                    // etcd stores a tombstone as the key alone.
                    let stored = KeyValue {
                        key: kv.key,
                        ..KeyValue::default()
                    };
                    digest.update(&stored.encode_to_vec());
                } else {
                    digest.update(&kv.encode_to_vec());
                }
            }
            from = to + 1;
        }
        Ok(HashKvResponse {
            header: header(self.current),
            hash: digest.finalize(),
            compact_revision: self.compacted,
        })
    }

    /// A digest of everything the keyspace stores: every value and every lease, with
    /// the current and compacted revisions. Equal on members that applied the same log.
    pub fn hash(&self) -> Result<HashResponse, MvccError> {
        let mut digest = CASTAGNOLI.digest();
        digest.update(&self.current.to_be_bytes());
        digest.update(&self.compacted.to_be_bytes());
        let mut from = 0;
        while from <= self.current {
            let to = self.current.min(from + HASH_READ_REVISIONS - 1);
            for (rev, kv) in self.stored(from, to)? {
                digest.update(&etcd_revision_key(rev, kv.version == 0));
                digest.update(&kv.encode_to_vec());
            }
            from = to + 1;
        }
        for rec in self.leases.records() {
            digest.update(&rec.id.to_be_bytes());
            digest.update(&rec.encode());
        }
        Ok(HashResponse {
            header: header(self.current),
            hash: digest.finalize(),
        })
    }
}
