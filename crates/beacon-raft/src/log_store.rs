//! The Raft log, the vote and the committed/purged markers, persisted in fjall.
//!
//! Two tables (fjall keyspaces in production; see `disk`): `log` maps a big-endian u64
//! index (so key order is log order) to the JSON of the entry; `meta` holds the vote, the last purged log id and the last
//! committed log id. Every change goes through one writer (`log_writer`), in the order
//! openraft asked for it, off openraft's core task. Durability: every append and every
//! vote is followed by `Database::persist(PersistMode::SyncData)` (fdatasync of fjall's
//! journal) before openraft is told it is on disk; appends share those syncs. Entries
//! are readable from the entry cache (`entry_cache`) as soon as they are queued. A
//! truncation is a single atomic batch, so the log never has a hole, even across a
//! crash. A purge only
//! moves the purge marker; the entries behind it are deleted in the background
//! (`log_purge`), and every read skips whatever is left at or below the marker. A write that fails (a full disk) is
//! not reported to openraft, which would stop Raft for good: it waits and is retried
//! over a re-opened database until it succeeds (see `log_db`).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::disk::{self, Change, Disk, Durability, KeyRange, Table};
use crate::entry_cache::EntryCache;
use crate::error::OpenError;
use crate::log_db::{index_key, Handles, LogDb, KEY_PURGED};
use crate::log_purge::{LogPurge, KEY_PURGE_DELETED};
use crate::log_writer::{remove_range, LogWriter};
use crate::observer::InjectedBug;
use crate::types::{invalid_data, io_other, Entry, LogId, LogState, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";

/// The log store over the disk's log database; cheap to clone (handles are reference-counted), and a
/// clone is also the log reader.
#[derive(Clone)]
pub struct LogStore {
    path: PathBuf,
    db: Arc<LogDb>,
    /// Where every change to the database is queued.
    writer: LogWriter,
    /// Deletes purged entries behind the marker; its last handle stops it.
    purger: Arc<LogPurge>,
    /// The first index not purged (the marker's index + 1; 0 before any purge): entries
    /// below it may still be on disk until the purge worker reaches them, and no read
    /// returns them.
    first_live: Arc<AtomicU64>,
    /// The newest entries, shared by every clone (the reader included).
    cache: Arc<Mutex<EntryCache>>,
    /// A simulation's negative control only (`InjectedBug::InlinePurge`); `None` in
    /// production.
    bug: Option<InjectedBug>,
}

fn key_index(key: &[u8]) -> io::Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| invalid_data(format!("log key of {} bytes, expected 8", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

fn decode_entry(key: &[u8], value: &[u8]) -> io::Result<Entry> {
    let index = key_index(key)?;
    let entry: Entry = serde_json::from_slice(value)
        .map_err(|e| invalid_data(format!("log entry at index {index} does not decode: {e}")))?;
    if entry.index() != index {
        return Err(invalid_data(format!(
            "log entry stored at index {index} claims index {}",
            entry.index()
        )));
    }
    Ok(entry)
}

impl LogStore {
    /// The log database, which also holds the v3 keyspace (`keyspace`).
    pub fn db(&self) -> &Arc<LogDb> {
        &self.db
    }

    /// The queue to the log database's one writer, which the state machine's keyspace
    /// writes go through too.
    pub(crate) fn writer(&self) -> &LogWriter {
        &self.writer
    }

    /// Opens (or creates) the log at `path` and checks that it is readable and consistent:
    /// every entry decodes, sits under its own index, and the indexes are contiguous after
    /// the purge marker. fjall itself drops a torn last journal record on recovery.
    pub fn open(disk: Arc<dyn Disk>, path: &Path) -> Result<LogStore, OpenError> {
        let db = Arc::new(
            LogDb::open(disk, path).map_err(|source| OpenError::LogOpen {
                path: path.to_owned(),
                source,
            })?,
        );
        let dir_err = |source| OpenError::DataDir {
            path: path.to_owned(),
            source,
        };
        let corrupt = |e: io::Error| OpenError::LogCorrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        };
        let cache: Arc<Mutex<EntryCache>> = Arc::default();
        let writer = LogWriter::start(Arc::clone(&db), Arc::clone(&cache)).map_err(dir_err)?;
        // Entries a purge left behind when the process stopped (see `log_purge`): after
        // what the worker recorded deleted, up to the marker.
        let (deleted, purged) = db
            .handles_now()
            .and_then(|h| {
                let purged = get_meta::<LogId>(&h, KEY_PURGED)?;
                let deleted = match get_meta::<u64>(&h, KEY_PURGE_DELETED)? {
                    Some(deleted) => deleted,
                    // No batch ran yet (or the log predates the record): only then is
                    // the table's first key looked up, once.
                    None if purged.is_some() => match h.first().map_err(io_other)? {
                        Some((k, _)) => key_index(&k)?.saturating_sub(1),
                        None => purged.map_or(0, |p| p.index),
                    },
                    None => 0,
                };
                Ok((deleted, purged))
            })
            .map_err(corrupt)?;
        let purger = LogPurge::start(Arc::clone(&db), deleted, purged).map_err(dir_err)?;
        let store = LogStore {
            path: path.to_owned(),
            db,
            writer,
            purger: Arc::new(purger),
            first_live: Arc::new(AtomicU64::new(purged.map_or(0, |p| p.index + 1))),
            cache,
            bug: None,
        };
        store.verify().map_err(corrupt)?;
        // What a re-open after a failed write must still find (see `log_db`).
        let (_, last, _) = store.bounds().map_err(corrupt)?;
        store.db.wrote_up_to(last);
        // What the log holds at open may still sit in the page cache, written by the
        // process before this one and never synced (it stopped on a failed sync): one
        // sync makes it durable before the committed marker may count it.
        store
            .db
            .handles_now()
            .and_then(|h| h.persist(Durability::Data).map_err(io_other))
            .map_err(dir_err)?;
        store.db.synced_up_to(last.unwrap_or(0));
        Ok(store)
    }

    /// Gives the store a simulation's injected bug (see [`InjectedBug::InlinePurge`]);
    /// before it is cloned, so that openraft's handles have it too.
    pub fn with_bug(mut self, bug: Option<InjectedBug>) -> LogStore {
        self.bug = bug;
        self
    }

    /// The fjall directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The disk the log is on.
    pub fn disk(&self) -> &Arc<dyn Disk> {
        self.db.disk()
    }

    /// Writes and syncs everything queued so far (used at shutdown). After a write that
    /// failed and was given up at shutdown there is nothing left to sync: everything
    /// acknowledged was synced before it was, and the failed write never was.
    pub async fn sync(&self) -> io::Result<()> {
        if self.db.is_failing() {
            tracing::warn!(
                path = %self.path.display(),
                "the raft log's last write failed and was not retried before stopping; \
                 nothing acknowledged is lost"
            );
            return Ok(());
        }
        self.sync_written().await
    }

    /// Writes and syncs everything queued so far, failing if the last write failed
    /// (unlike [`Self::sync`] at shutdown): before a marker may say the log holds state.
    pub async fn sync_written(&self) -> io::Result<()> {
        if self.db.is_failing() {
            return Err(io_other(format!(
                "the raft log at {}: the last write failed",
                self.path.display()
            )));
        }
        self.writer.barrier(Some(Durability::All)).await
    }

    /// The last log index known durable (synced), kept up by the sync worker.
    pub fn synced_index(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.db.synced_index()
    }

    /// Makes a write that waits for the disk give up with its error (shutdown: openraft's
    /// core must not wait on it forever).
    pub fn stop_retrying(&self) {
        self.db.stop_retrying();
    }

    fn verify(&self) -> io::Result<()> {
        let h = self.db.handles_now()?;
        get_meta::<Vote>(&h, KEY_VOTE)?;
        get_meta::<LogId>(&h, KEY_COMMITTED)?;
        let purged = get_meta::<LogId>(&h, KEY_PURGED)?;
        let mut expected = purged.as_ref().map(|p| p.index + 1);
        // What a purge left at or below its marker is skipped (see `log_purge`).
        let live = (
            expected.map_or(Bound::Unbounded, |i| Bound::Included(index_key(i))),
            Bound::Unbounded,
        );
        for item in h.scan(live, false) {
            let (k, v) = item.map_err(io_other)?;
            let entry = decode_entry(&k, &v)?;
            if let Some(want) = expected {
                if entry.index() != want {
                    return Err(invalid_data(format!(
                        "log has a hole: expected index {want}, found {}",
                        entry.index()
                    )));
                }
            }
            expected = Some(entry.index() + 1);
        }
        Ok(())
    }

    /// The purge point, the last index and the committed index the log holds (for the
    /// start-up coverage check; see `coverage`).
    pub fn bounds(&self) -> io::Result<(Option<u64>, Option<u64>, Option<u64>)> {
        let h = self.db.handles_now()?;
        let purged = get_meta::<LogId>(&h, KEY_PURGED)?.map(|l| l.index);
        let committed = get_meta::<LogId>(&h, KEY_COMMITTED)?.map(|l| l.index);
        let last = match h.last().map_err(io_other)? {
            None => None,
            Some((k, _)) => Some(key_index(&k)?),
        };
        // A leftover of a purge is never the end of the log: the marker is.
        Ok((purged, last.max(purged), committed))
    }

    /// Forgets the committed index the log recorded (a `--force-new-cluster` start over
    /// a log that lost entries up to it: openraft would try to apply them), durably.
    pub fn forget_committed(&self) -> io::Result<()> {
        let h = self.db.handles_now()?;
        h.commit(&[Change::Remove(Table::Meta, KEY_COMMITTED)])
            .map_err(io_other)?;
        h.persist(Durability::All).map_err(io_other)
    }

    /// The voters of the newest membership entry in the log, if it holds one. Reads
    /// backwards from the end; only a `--force-new-cluster` start asks.
    pub fn last_membership_voters(&self) -> io::Result<Option<Vec<u64>>> {
        let h = self.db.handles_now()?;
        for item in h.scan(self.live_range(..), true) {
            let (k, v) = item.map_err(io_other)?;
            if let openraft::EntryPayload::Membership(m) = decode_entry(&k, &v)?.payload {
                return Ok(Some(m.voter_ids().collect()));
            }
        }
        Ok(None)
    }

    /// `range`'s keys, less what is purged (see [`Self::first_live`]).
    fn live_range<RB: RangeBounds<u64>>(&self, range: RB) -> KeyRange {
        let first_live = self.first_live.load(Ordering::Acquire);
        let (start, end) = to_key_range(&range);
        let start = match start {
            Bound::Included(k) | Bound::Excluded(k) if u64::from_be_bytes(k) >= first_live => start,
            _ if first_live == 0 => start,
            _ => Bound::Included(index_key(first_live)),
        };
        (start, end)
    }

    /// The last index known deleted from the table behind the purge marker.
    #[cfg(test)]
    pub fn purge_deleted_upto(&self) -> u64 {
        self.purger.deleted_upto()
    }

    /// Whether any membership entry the log holds lists member `id` (voter or learner).
    /// Reads every entry; only a start that finds itself left out of the newest
    /// membership asks.
    pub fn lists_member(&self, id: u64) -> io::Result<bool> {
        let h = self.db.handles_now()?;
        for item in h.scan(self.live_range(..), false) {
            let (k, v) = item.map_err(io_other)?;
            if let openraft::EntryPayload::Membership(m) = decode_entry(&k, &v)?.payload {
                if m.get_node(&id).is_some() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn cache(&self) -> MutexGuard<'_, EntryCache> {
        // The cache is only ever left consistent (each method completes its update), so
        // a panic elsewhere while it was held leaves nothing half-done.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A meta value read from the current database.
    async fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        get_meta(&self.db.handles().await?, key)
    }
}

fn get_meta<T: DeserializeOwned>(h: &Handles, key: &[u8]) -> io::Result<Option<T>> {
    let Some(bytes) = h.get(Table::Meta, key).map_err(io_other)? else {
        return Ok(None);
    };
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        invalid_data(format!(
            "meta key {:?} does not decode: {e}",
            String::from_utf8_lossy(key)
        ))
    })?;
    Ok(Some(value))
}

fn encode_meta<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io_other)
}

fn to_key_range<RB: RangeBounds<u64>>(range: &RB) -> KeyRange {
    let map = |b: Bound<&u64>| match b {
        Bound::Included(i) => Bound::Included(index_key(*i)),
        Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
        Bound::Unbounded => Bound::Unbounded,
    };
    (map(range.start_bound()), map(range.end_bound()))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        // What the cache holds of the range, and the indexes before that, which fjall
        // holds (entries leave the cache only once written; see `entry_cache`).
        let (cached_from, cached) = self.cache().get(&range);
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        if start >= cached_from {
            return Ok(cached);
        }
        // The range's end, or the cached part's start if that comes first.
        let end = match range.end_bound() {
            Bound::Included(&i) if i < cached_from => Bound::Included(i),
            Bound::Excluded(&i) if i <= cached_from => Bound::Excluded(i),
            Bound::Unbounded if cached_from == u64::MAX => Bound::Unbounded,
            _ => Bound::Excluded(cached_from),
        };
        let mut entries = Vec::new();
        let h = self.db.handles().await?;
        for item in h.scan(self.live_range((Bound::Included(start), end)), false) {
            let (k, v) = item.map_err(io_other)?;
            entries.push(decode_entry(&k, &v)?);
        }
        entries.extend(cached);
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.read_meta(KEY_VOTE).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState, io::Error> {
        // What is queued first, so that fjall holds the whole log.
        self.writer.barrier(None).await?;
        let h = self.db.handles().await?;
        let last_purged_log_id = get_meta::<LogId>(&h, KEY_PURGED)?;
        let last = match h.last().map_err(io_other)? {
            None => None,
            Some((k, v)) => Some(decode_entry(&k, &v)?.log_id()),
        };
        // A leftover of a purge (see `log_purge`) is never the end of the log.
        let last = last.filter(|l| last_purged_log_id.is_none_or(|p| l.index > p.index));
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        // openraft requires the vote on disk before this returns.
        self.writer
            .set_meta_synced(KEY_VOTE, encode_meta(vote)?)
            .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not synced: it only bounds how far the log is replayed into the in-memory store
        // at start-up. A stale value loses nothing; the rest is applied once this node is
        // leader again and commits. It rides along with the writer's next round.
        let bytes = committed.as_ref().map(encode_meta).transpose()?;
        self.writer.set_meta_later(KEY_COMMITTED, bytes);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.read_meta(KEY_COMMITTED).await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        {
            let mut cache = self.cache();
            for entry in entries {
                let bytes = serde_json::to_vec(&entry).map_err(io_other)?;
                encoded.push((entry.index(), bytes));
                // Readable from here on, as openraft requires when this returns.
                cache.push(entry, encoded.last().map_or(0, |(_, b)| b.len()));
            }
        }
        // Group commit: the writer reports these entries flushed after its next
        // fdatasync, which it shares with everything else queued by then.
        self.writer.append(encoded, callback).await;
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let last = last_log_id.map(|l| l.index);
        // Awaited, and only then the cache follows: until fjall has it, the cache still
        // holds the entries that are queued before it (see `entry_cache`).
        let removed = self.writer.truncate_after(last).await;
        self.cache().truncate_after(last);
        removed
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let upto = log_id.index;
        // Only the marker is queued here; the entries behind it are deleted by the purge
        // worker (see `log_purge`), which is handed the range once the marker is written.
        // Not synced: were it lost in a crash, the log would only start earlier, and the
        // snapshot it was purged behind covers that. Reads skip the range at once.
        let purger = Arc::clone(&self.purger);
        let (marked_tx, marked) = tokio::sync::oneshot::channel();
        self.writer
            .set_meta_then(KEY_PURGED, encode_meta(&log_id)?, move |written| {
                if written.is_ok() {
                    purger.purge_upto(log_id);
                }
                let _ = marked_tx.send(());
            })
            .await;
        if self.bug == Some(InjectedBug::InlinePurge) {
            let _ = marked.await;
            // Test-only, the negative control of the simulation's stall check: the old
            // purge, which deleted the range here, before returning, so appends waited
            // behind it. As blocking disk work, where a simulated disk charges its time.
            let (h, range) = (self.db.handles().await?, to_key_range(&(..=upto)));
            disk::blocking(&**self.db.disk(), move || remove_range(&h, range))
                .await?
                .map_err(io_other)?;
        }
        self.first_live.fetch_max(upto + 1, Ordering::AcqRel);
        self.cache().purge(upto);
        // How far the worker still has to go: a backlog that grows across purges would
        // mean deletion cannot keep up with the write rate.
        let backlog = upto.saturating_sub(self.purger.deleted_upto());
        tracing::info!(upto, backlog, "purged raft log");
        Ok(())
    }
}
