//! The newest log entries, kept in memory beside fjall.
//!
//! openraft's state-machine worker reads every committed entry back from the log store
//! to apply it, right after the leader appended it. Served from fjall, that read was a
//! memtable lookup and a JSON decode per entry (about 5% of the CPU of a PUT). Entries
//! here are shared (`Arc` payloads), so a read is a clone of a few pointers.
//!
//! Invariant: the cache holds a contiguous run of the log's newest indexes, whose entries
//! are exactly what the log holds under them once the writer's queue (`log_writer`) is
//! written. An append puts its entries here before it queues them, so an entry is
//! readable from the moment openraft hands it over; every entry not yet written to
//! fjall is here, because only written entries (up to [`EntryCache::written_up_to`]) are
//! ever dropped to keep the cache within its bounds. A truncation updates the cache once
//! fjall has it; a purge drops what it purged at once (no read returns it).

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
    /// Every index up to this is written to fjall (0: none known); only those may be
    /// dropped to stay within the bounds.
    written: u64,
}

impl EntryCache {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.index())
    }

    fn next_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.index() + 1)
    }

    /// Records an entry appended to the log (queued to be written). An entry that does
    /// not follow the cached run starts a new one: the log was purged past its end.
    pub fn push(&mut self, entry: Entry, encoded_len: usize) {
        if self.next_index() != Some(entry.index()) {
            self.clear();
        }
        self.bytes += encoded_len;
        self.entries.push_back((entry, encoded_len));
        self.trim();
        debug_assert!(self.is_contiguous());
    }

    /// Records that every entry up to `index` is written to fjall.
    pub fn written_up_to(&mut self, index: u64) {
        self.written = self.written.max(index);
        self.trim();
    }

    /// Drops the oldest written entries while the cache is over its bounds. Entries not
    /// written yet stay, over the bounds if need be: the writer's bounded queue bounds
    /// them.
    fn trim(&mut self) {
        while self.entries.len() > CACHED_ENTRIES_MAX || self.bytes > CACHED_BYTES_MAX {
            if self.first_index().is_none_or(|i| i > self.written) {
                break;
            }
            self.pop_front();
        }
    }

    /// Forgets entries after `last` (the log was truncated after it, in fjall too).
    pub fn truncate_after(&mut self, last: Option<u64>) {
        self.written = self.written.min(last.unwrap_or(0));
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

    /// What of `range` the cache serves: the index its part starts at, and its entries
    /// from there to the range's end. The indexes of `range` before that index are for
    /// the reader to read from fjall, where they are written (see the module doc);
    /// `u64::MAX` (nothing cached in the range's reach) sends it there for all of them.
    pub fn get<RB: RangeBounds<u64>>(&self, range: &RB) -> (u64, Vec<Entry>) {
        let (Some(first), Some(next)) = (self.first_index(), self.next_index()) else {
            return (u64::MAX, Vec::new());
        };
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => next,
        }
        .min(next);
        if start > next {
            return (u64::MAX, Vec::new());
        }
        let from = start.max(first);
        if from >= end {
            return (from, Vec::new());
        }
        let skip = (from - first) as usize;
        let take = (end - from) as usize;
        let entries = self.entries.iter().skip(skip).take(take);
        (from, entries.map(|(e, _)| e.clone()).collect())
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

    /// Where fjall's part ends and the indexes the cache serves.
    fn indexes((from, entries): (u64, Vec<Entry>)) -> (u64, Vec<u64>) {
        (from, entries.iter().map(|e| e.index()).collect())
    }

    /// A cache of `range`, every entry of it written to fjall.
    fn filled(range: std::ops::Range<u64>) -> EntryCache {
        let mut cache = EntryCache::default();
        for i in range.clone() {
            cache.push(entry(i), 10);
        }
        cache.written_up_to(range.end.saturating_sub(1));
        cache
    }

    #[test]
    fn serves_what_it_holds_of_a_range() {
        let cache = filled(5..10);
        assert_eq!(indexes(cache.get(&(5..8))), (5, vec![5, 6, 7]));
        assert_eq!(indexes(cache.get(&(7..=20))), (7, vec![7, 8, 9]));
        assert_eq!(indexes(cache.get(&(9..))), (9, vec![9]));
        assert_eq!(indexes(cache.get(&(10..12))), (10, vec![]));
        assert_eq!(
            indexes(cache.get(&(4..8))),
            (5, vec![5, 6, 7]),
            "4 from fjall"
        );
        assert_eq!(indexes(cache.get(&(..8))), (5, vec![5, 6, 7]));
        assert_eq!(indexes(cache.get(&(1..3))), (5, vec![]), "all from fjall");
        assert_eq!(
            indexes(cache.get(&(11..12))),
            (u64::MAX, vec![]),
            "after the run"
        );
        let empty = EntryCache::default();
        assert_eq!(indexes(empty.get(&(1..3))), (u64::MAX, vec![]));
    }

    #[test]
    fn truncate_purge_and_gaps_keep_it_exact() {
        let mut cache = filled(1..10);
        cache.truncate_after(Some(6));
        assert_eq!(indexes(cache.get(&(1..))), (1, vec![1, 2, 3, 4, 5, 6]));
        cache.purge(3);
        assert_eq!(indexes(cache.get(&(4..))), (4, vec![4, 5, 6]));
        assert_eq!(indexes(cache.get(&(3..))), (4, vec![4, 5, 6]));
        // A re-append after the truncation continues the run.
        cache.push(entry(7), 10);
        assert_eq!(indexes(cache.get(&(4..))), (4, vec![4, 5, 6, 7]));
        // An entry that does not follow starts a new run.
        cache.push(entry(20), 10);
        assert_eq!(indexes(cache.get(&(20..))), (20, vec![20]));
        assert_eq!(indexes(cache.get(&(7..))), (20, vec![20]));
        cache.truncate_after(None);
        assert_eq!(indexes(cache.get(&(20..))), (u64::MAX, vec![]));
    }

    #[test]
    fn stays_within_its_bounds_once_written() {
        let mut cache = filled(0..(CACHED_ENTRIES_MAX as u64 + 100));
        assert_eq!(cache.entries.len(), CACHED_ENTRIES_MAX);
        assert_eq!(cache.first_index(), Some(100));
        let huge = CACHED_ENTRIES_MAX as u64 + 100;
        cache.push(entry(huge), CACHED_BYTES_MAX);
        assert_eq!(
            cache.entries.len(),
            1,
            "one huge entry evicts the written rest"
        );
        assert_eq!(cache.bytes, CACHED_BYTES_MAX);
    }

    #[test]
    fn keeps_what_is_not_written_yet() {
        let mut cache = filled(1..11);
        let last = 10 + CACHED_ENTRIES_MAX as u64;
        for i in 11..=last {
            cache.push(entry(i), 10);
        }
        assert_eq!(
            cache.first_index(),
            Some(11),
            "only the written ten dropped"
        );
        cache.truncate_after(Some(20));
        cache.written_up_to(20);
        for i in 21..=last + 30 {
            cache.push(entry(i), 10);
        }
        assert_eq!(
            cache.first_index(),
            Some(21),
            "nothing above 20 is written yet"
        );
        assert_eq!(cache.entries.len(), CACHED_ENTRIES_MAX + 20);
        cache.written_up_to(last + 30);
        assert_eq!(cache.first_index(), Some(41));
        assert_eq!(cache.entries.len(), CACHED_ENTRIES_MAX);
    }
}
