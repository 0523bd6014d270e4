//! Reads of the log store across the entry cache and fjall: an entry is readable from
//! the moment it is appended, and a range that starts in fjall and ends in the cache (or
//! before it) comes back whole and exact.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogId, RaftLogReader};

use crate::disk::StdDisk;
use crate::entry_cache::CACHED_ENTRIES_MAX;
use crate::log_store::LogStore;
use crate::types::Entry;

fn log_id(index: u64) -> crate::types::LogId {
    let leader = openraft::impls::leader_id_adv::LeaderId {
        term: 1,
        node_id: 1,
    };
    LogId::new(leader, index)
}

async fn read<RB>(log: &mut LogStore, range: RB) -> Vec<u64>
where
    RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send,
{
    let entries = log.try_get_log_entries(range).await.expect("read");
    entries.iter().map(|e| e.index()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_across_the_cache_and_fjall_are_exact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = LogStore::open(Arc::new(StdDisk::default()), tmp.path()).expect("open log");
    // More than the cache holds, so the oldest are only in fjall once written.
    let last = CACHED_ENTRIES_MAX as u64 + 1000;
    let entries: Vec<Entry> = (1..=last).map(|i| Entry::new_blank(log_id(i))).collect();
    for chunk in entries.chunks(100) {
        log.append(chunk.to_vec(), IOFlushed::noop())
            .await
            .expect("append");
        // Readable as soon as the append returns, written or not.
        let end = chunk.last().expect("chunk").index();
        assert_eq!(read(&mut log, end..=end).await, vec![end]);
    }
    log.sync_written().await.expect("sync");
    let cases: Vec<(Bound<u64>, Bound<u64>)> = vec![
        (Bound::Included(1), Bound::Excluded(10)),
        (Bound::Unbounded, Bound::Included(20)),
        (Bound::Included(1), Bound::Unbounded),
        (Bound::Included(990), Bound::Excluded(1010)),
        (Bound::Included(995), Bound::Included(last)),
        (Bound::Excluded(last - 10), Bound::Unbounded),
        (Bound::Included(last - 3), Bound::Included(last + 5)),
        (Bound::Included(last + 1), Bound::Unbounded),
        (Bound::Included(5), Bound::Excluded(5)),
    ];
    for (start, end) in cases {
        let want: Vec<u64> = (1..=last).filter(|i| (start, end).contains(i)).collect();
        let got = read(&mut log, (start, end)).await;
        assert_eq!(got.len(), want.len(), "{start:?}..{end:?}");
        assert_eq!(got, want, "{start:?}..{end:?}");
    }
}
