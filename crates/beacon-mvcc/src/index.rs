//! Which revisions each key has: the in-memory half of the keyspace (etcd's tree index).
//!
//! A key's history is its revisions in order, each a put or a tombstone (a delete). The
//! key is live at revision `r` if its last entry at or before `r` is a put. Values live
//! beside, keyed by revision (`store.rs`), so the index stays small per key.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::Revision;

/// What one stored revision costs beyond its key and value: its 16-byte revision key
/// and the encoded KeyValue's other fields, roughly, as the space quota counts it.
pub const REVISION_OVERHEAD_BYTES: u64 = 64;

/// One change to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub rev: Revision,
    pub tombstone: bool,
    /// The key's and value's length, for the space quota's count (it fits in the
    /// padding after `tombstone`, so it costs the index nothing).
    pub bytes: u32,
}

// The quota's count must not cost the index memory: `bytes` sits in `Entry`'s padding.
const _: () = assert!(std::mem::size_of::<Entry>() == 24);

/// A history this long or shorter is kept at its exact length: most keys have one to
/// three revisions, and a `Vec`'s first push would reserve room for four (96 bytes for
/// one entry). Longer ones (hot keys between compactions) grow as a `Vec` does.
const EXACT_HISTORY_MAX: usize = 4;

/// Every key's history. Keys are boxed slices, not `Vec`s: a million keys are a
/// million map entries, and a `Vec`'s capacity word is 8 bytes each for nothing.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    keys: BTreeMap<Box<[u8]>, Vec<Entry>>,
    /// What the stored revisions take, as [`Entry::bytes`] plus the overhead each.
    stored_bytes: u64,
}

/// A key range: `[start, end)`, `end` `None` for no upper bound.
#[derive(Debug, Clone)]
pub(crate) struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
    /// Only `start` itself.
    pub single: bool,
}

impl KeyRange {
    /// etcd's reading of a request's `key` and `range_end`: no end is the key alone,
    /// `"\0"` is every key from `key` on, anything else the half-open range.
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange {
                start: key.to_vec(),
                end: None,
                single: true,
            },
            [0] => KeyRange {
                start: key.to_vec(),
                end: None,
                single: false,
            },
            end => KeyRange {
                start: key.to_vec(),
                end: Some(end.to_vec()),
                single: false,
            },
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        if self.single {
            return key == self.start;
        }
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

impl KeyIndex {
    /// The revision of `key`'s value at `at` (a main revision), if it is live then.
    pub fn get(&self, key: &[u8], at: i64) -> Option<Revision> {
        live_at(self.keys.get(key)?, at)
    }

    /// The live keys of `range` at `at`, in key order, with their revisions.
    pub fn range(&self, range: &KeyRange, at: i64) -> Vec<(&[u8], Revision)> {
        if range.single {
            return self
                .keys
                .get_key_value(range.start.as_slice())
                .and_then(|(k, h)| Some((&**k, live_at(h, at)?)))
                .into_iter()
                .collect();
        }
        if range
            .end
            .as_deref()
            .is_some_and(|end| end <= range.start.as_slice())
        {
            return Vec::new();
        }
        let upper = match &range.end {
            Some(end) => Bound::Excluded(end.as_slice()),
            None => Bound::Unbounded,
        };
        self.keys
            .range::<[u8], _>((Bound::Included(range.start.as_slice()), upper))
            .filter_map(|(k, h)| Some((&**k, live_at(h, at)?)))
            .collect()
    }

    /// How many keys of `range` are live at `at` (what [`Self::range`] would find).
    pub fn count(&self, range: &KeyRange, at: i64) -> usize {
        if range.single
            || range
                .end
                .as_deref()
                .is_some_and(|end| end <= range.start.as_slice())
        {
            return self.range(range, at).len();
        }
        let upper = match &range.end {
            Some(end) => Bound::Excluded(end.as_slice()),
            None => Bound::Unbounded,
        };
        self.keys
            .range::<[u8], _>((Bound::Included(range.start.as_slice()), upper))
            .filter(|(_, h)| live_at(h, at).is_some())
            .count()
    }

    /// Records a put of a `value_len`-byte value (or a tombstone) at `rev`.
    pub fn record(&mut self, key: &[u8], rev: Revision, tombstone: bool, value_len: usize) {
        let bytes = u32::try_from(key.len() + value_len).unwrap_or(u32::MAX);
        let entry = Entry {
            rev,
            tombstone,
            bytes,
        };
        // A key already indexed costs no allocation for its name.
        match self.keys.get_mut(key) {
            Some(history) => {
                debug_assert!(
                    history.last().is_none_or(|e| e.rev < rev),
                    "revisions only grow"
                );
                if history.len() < EXACT_HISTORY_MAX {
                    history.reserve_exact(1);
                }
                history.push(entry);
            }
            None => {
                // `vec![..]` allocates exactly one entry's room.
                self.keys.insert(Box::from(key), vec![entry]);
            }
        }
        self.stored_bytes += u64::from(bytes) + REVISION_OVERHEAD_BYTES;
    }

    /// What every stored revision takes, by the space quota's count.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    /// Forgets what no read at `at` or later can see: of each key's entries at or before
    /// `at`, all but the last, and that one too if it is a tombstone. Returns the
    /// revisions forgotten, whose values can go.
    pub fn compact(&mut self, at: i64) -> Vec<Revision> {
        let mut gone = Vec::new();
        let mut freed = 0;
        self.keys.retain(|_, history| {
            let older = history.partition_point(|e| e.rev.main <= at);
            if older == 0 {
                return true;
            }
            let keep_from = if history[older - 1].tombstone {
                older
            } else {
                older - 1
            };
            gone.extend(history.drain(..keep_from).map(|e| {
                freed += u64::from(e.bytes) + REVISION_OVERHEAD_BYTES;
                e.rev
            }));
            // What compaction left of a long history should not keep its room.
            if history.capacity() > EXACT_HISTORY_MAX && history.len() * 2 < history.capacity() {
                history.shrink_to_fit();
            }
            !history.is_empty()
        });
        debug_assert!(freed <= self.stored_bytes, "only what was counted is freed");
        self.stored_bytes = self.stored_bytes.saturating_sub(freed);
        gone
    }
}

fn live_at(history: &[Entry], at: i64) -> Option<Revision> {
    let n = history.partition_point(|e| e.rev.main <= at);
    let last = history.get(n.checked_sub(1)?)?;
    (!last.tombstone).then_some(last.rev)
}
