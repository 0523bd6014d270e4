//! The newest log entries, kept in memory beside fjall.
//!
//! openraft's state-machine worker reads every committed entry back from the log store
//! to apply it, right after the leader appended it. Served from fjall, that read was a
//! memtable lookup and a JSON decode per entry (about 5% of the CPU of a PUT). Entries
//! here are shared (`Arc` payloads), so a read is a clone of a few pointers.
//!
//! Invariant: the cache holds a contiguous run of indexes whose entries are exactly what
//! fjall holds under those indexes. Every append, truncation and purge of the log store
//! updates both, fjall first.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

use openraft::entry::RaftEntry;

use crate::types::Entry;

/// How many entries are kept at most: far more than are appended between an append and
/// its apply, which is the window the cache is for.
pub const CACHED_ENTRIES_MAX: usize = 4096;
/// How many bytes of encoded entries are kept at most, so that large values (up to
/// etcd's 10 MiB form limit each) cannot make the cache hold much memory.
pub const CACHED_BYTES_MAX: usize = 16 << 20;

/// A bounded window of the newest entries.
#[derive(Default)]
pub struct EntryCache {
    /// Entries with their encoded size, at contiguous indexes.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl EntryCache {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.index())
    }

    fn next_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.index() + 1)
    }

    /// Records an entry just written to the log. An entry that does not follow the
    /// cached run starts a new one.
    pub fn push(&mut self, entry: Entry, encoded_len: usize) {
        if self.next_index() != Some(entry.index()) {
            self.clear();
        }
        self.bytes += encoded_len;
        self.entries.push_back((entry, encoded_len));
        while self.entries.len() > CACHED_ENTRIES_MAX || self.bytes > CACHED_BYTES_MAX {
            self.pop_front();
        }
        debug_assert!(self.is_contiguous());
    }

    /// Forgets entries after `last` (the log was truncated after it).
    pub fn truncate_after(&mut self, last: Option<u64>) {
        while let Some((entry, _)) = self.entries.back() {
            if last.is_some_and(|l| entry.index() <= l) {
                break;
            }
            let (_, len) = self.entries.pop_back().expect("non-empty");
            self.bytes -= len;
        }
    }

    /// Forgets entries up to and including `upto` (the log was purged to it).
    pub fn purge(&mut self, upto: u64) {
        while self.first_index().is_some_and(|i| i <= upto) {
            self.pop_front();
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entries in `range` if the cache holds all of them that the log can hold, i.e.
    /// the range starts inside the cached run; `None` sends the reader to fjall.
    pub fn get<RB: RangeBounds<u64>>(&self, range: &RB) -> Option<Vec<Entry>> {
        let first = self.first_index()?;
        let next = self.next_index()?;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => next,
        }
        .min(next);
        if start < first || start > next {
            return None;
        }
        if start >= end {
            return Some(Vec::new());
        }
        let skip = (start - first) as usize;
        let take = (end - start) as usize;
        Some(
            self.entries
                .iter()
                .skip(skip)
                .take(take)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }

    fn pop_front(&mut self) {
        if let Some((_, len)) = self.entries.pop_front() {
            self.bytes -= len;
        }
    }

    fn is_contiguous(&self) -> bool {
        self.entries
            .iter()
            .zip(self.entries.iter().skip(1))
            .all(|((a, _), (b, _))| a.index() + 1 == b.index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Request;
    use beacon_store::Command;
    use openraft::{EntryPayload, LogId};
    use std::sync::Arc;

    fn entry(index: u64) -> Entry {
        let leader = openraft::impls::leader_id_adv::LeaderId {
            term: 1,
            node_id: 1,
        };
        Entry {
            log_id: LogId::new(leader, index),
            payload: EntryPayload::Normal(Request(Arc::new(Command::Sync {
                time_ns: index as i64,
            }))),
        }
    }

    fn indexes(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|v| v.iter().map(|e| e.index()).collect())
    }

    fn filled(range: std::ops::Range<u64>) -> EntryCache {
        let mut cache = EntryCache::default();
        for i in range {
            cache.push(entry(i), 10);
        }
        cache
    }

    #[test]
    fn serves_ranges_that_start_inside_the_run() {
        let cache = filled(5..10);
        assert_eq!(indexes(cache.get(&(5..8))), Some(vec![5, 6, 7]));
        assert_eq!(indexes(cache.get(&(7..=20))), Some(vec![7, 8, 9]));
        assert_eq!(indexes(cache.get(&(9..))), Some(vec![9]));
        assert_eq!(indexes(cache.get(&(10..12))), Some(vec![]));
        assert_eq!(indexes(cache.get(&(4..8))), None, "starts before the run");
        assert_eq!(indexes(cache.get(&(11..12))), None, "starts after the run");
        assert_eq!(indexes(cache.get(&(..8))), None);
    }

    #[test]
    fn truncate_purge_and_gaps_keep_it_exact() {
        let mut cache = filled(1..10);
        cache.truncate_after(Some(6));
        assert_eq!(indexes(cache.get(&(1..))), Some(vec![1, 2, 3, 4, 5, 6]));
        cache.purge(3);
        assert_eq!(indexes(cache.get(&(4..))), Some(vec![4, 5, 6]));
        assert_eq!(cache.get(&(3..)).map(|v| v.len()), None);
        // A re-append after the truncation continues the run.
        cache.push(entry(7), 10);
        assert_eq!(indexes(cache.get(&(4..))), Some(vec![4, 5, 6, 7]));
        // An entry that does not follow starts a new run.
        cache.push(entry(20), 10);
        assert_eq!(indexes(cache.get(&(20..))), Some(vec![20]));
        assert_eq!(cache.get(&(7..)).map(|v| v.len()), None);
        cache.truncate_after(None);
        assert_eq!(cache.get(&(20..)).map(|v| v.len()), None);
    }

    #[test]
    fn stays_within_its_bounds() {
        let mut cache = filled(0..(CACHED_ENTRIES_MAX as u64 + 100));
        assert_eq!(cache.entries.len(), CACHED_ENTRIES_MAX);
        assert_eq!(cache.first_index(), Some(100));
        cache.push(entry(CACHED_ENTRIES_MAX as u64 + 100), CACHED_BYTES_MAX);
        assert_eq!(cache.entries.len(), 1, "one huge entry evicts the rest");
        assert_eq!(cache.bytes, CACHED_BYTES_MAX);
    }
}
