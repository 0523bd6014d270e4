//! The Raft log, the vote and the committed/purged markers, persisted in fjall.
//!
//! Two tables (fjall keyspaces in production; see `disk`): `log` maps a big-endian u64
//! index (so key order is log order) to the JSON of the entry; `meta` holds the vote, the last purged log id and the last
//! committed log id. Durability: every append and every vote is followed by
//! `Database::persist(PersistMode::SyncData)` (fdatasync of fjall's journal) before
//! openraft is told it is on disk; appends share those syncs (see `log_sync`). A truncation is a
//! single atomic batch, so the log never has a hole, even across a crash. A purge only
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

use crate::disk::{self, Change, DbError, Disk, Durability, KeyRange, Table};
use crate::entry_cache::EntryCache;
use crate::error::OpenError;
use crate::log_db::{index_key, Handles, LogDb, KEY_PURGED};
use crate::log_purge::{LogPurge, KEY_PURGE_DELETED};
use crate::log_sync::LogSync;
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
    sync: LogSync,
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
        let sync = LogSync::start(Arc::clone(&db)).map_err(dir_err)?;
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
            sync,
            purger: Arc::new(purger),
            first_live: Arc::new(AtomicU64::new(purged.map_or(0, |p| p.index + 1))),
            cache: Arc::default(),
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

    /// Syncs everything written so far to disk (used at shutdown). After a write that
    /// failed and was given up at shutdown there is nothing left to sync: everything
    /// acknowledged was synced before it was, and the failed write never was.
    pub fn sync(&self) -> io::Result<()> {
        if self.db.is_failing() {
            tracing::warn!(
                path = %self.path.display(),
                "the raft log's last write failed and was not retried before stopping; \
                 nothing acknowledged is lost"
            );
            return Ok(());
        }
        self.sync_written()
    }

    /// Syncs everything written so far, failing if the last write failed (unlike
    /// [`Self::sync`] at shutdown): before a marker may say the log holds state.
    pub fn sync_written(&self) -> io::Result<()> {
        if self.db.is_failing() {
            return Err(io_other(format!(
                "the raft log at {}: the last write failed",
                self.path.display()
            )));
        }
        let h = self.db.handles_now()?;
        h.persist(Durability::All).map_err(io_other)?;
        self.db.synced_all();
        Ok(())
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

/// Removes the entries in `range` in one atomic batch (truncating the tail): a crash
/// keeps all of them or none, never a hole.
fn remove_range(h: &Handles, range: KeyRange) -> Result<(), DbError> {
    let keys = h
        .scan(range, false)
        .map(|item| item.map(|(k, _)| k))
        .collect::<Result<Vec<_>, _>>()?;
    let changes: Vec<Change<'_>> = keys.iter().map(|k| Change::Remove(Table::Log, k)).collect();
    h.commit(&changes)
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
        if let Some(entries) = self.cache().get(&range) {
            return Ok(entries);
        }
        let mut entries = Vec::new();
        let h = self.db.handles().await?;
        for item in h.scan(self.live_range(range), false) {
            let (k, v) = item.map_err(io_other)?;
            entries.push(decode_entry(&k, &v)?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.read_meta(KEY_VOTE).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState, io::Error> {
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
        let bytes = encode_meta(vote)?;
        // openraft requires the vote on disk before this returns: written and synced
        // together, so a retry after a failed sync writes it again into the re-opened
        // database rather than trusting what the failed one kept.
        self.db
            .write_retrying("saving the vote", |h| {
                h.commit(&[Change::Insert(Table::Meta, KEY_VOTE, &bytes)])?;
                h.persist(Durability::Data)
            })
            .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not synced: it only bounds how far the log is replayed into the in-memory store
        // at start-up. A stale value loses nothing; the rest is applied once this node is
        // leader again and commits. It rides along with the next synced append or vote.
        let bytes = committed.as_ref().map(encode_meta).transpose()?;
        self.db
            .write_retrying("saving the committed index", |h| match &bytes {
                Some(b) => h.commit(&[Change::Insert(Table::Meta, KEY_COMMITTED, b)]),
                None => h.commit(&[Change::Remove(Table::Meta, KEY_COMMITTED)]),
            })
            .await
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
        let mut written = Vec::new();
        for entry in entries {
            // Encoded once, and borrowed by every try of the batch.
            let bytes = serde_json::to_vec(&entry).map_err(io_other)?;
            let key = index_key(entry.index());
            written.push((entry, key, bytes));
        }
        let last_index = written.last().map(|(e, _, _)| e.index());
        // Written to the journal (and readable) before returning, as openraft requires.
        self.db
            .write_retrying("appending to the raft log", |h| {
                let changes: Vec<Change<'_>> = written
                    .iter()
                    .map(|(_, key, bytes)| Change::Insert(Table::Log, key, bytes))
                    .collect();
                h.commit(&changes).inspect_err(|_| {
                    // Whatever fjall kept of a failed batch, the cache must not claim more.
                    self.cache().clear();
                })
            })
            .await?;
        self.db.wrote_up_to(last_index);
        let mut cache = self.cache();
        for (entry, _, bytes) in written {
            cache.push(entry, bytes.len());
        }
        drop(cache);
        // Group commit: the sync thread reports these entries flushed after its next
        // fdatasync, which it shares with every other append waiting by then.
        self.sync.flushed_after_sync(callback, last_index);
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        // Lowered before the write: a re-open while it is retried must not take the
        // entries it removes for lost (were the removal lost instead, the log would only
        // be longer, which the check allows).
        self.db.truncated_to(last_log_id.map(|l| l.index));
        // Not synced on its own: the next append (which always follows a truncation
        // before anything is acknowledged) is synced, and the journal is ordered.
        let range = to_key_range(&(from..));
        let removed = self
            .db
            .write_retrying("truncating the raft log", |h| remove_range(h, range))
            .await;
        self.cache().truncate_after(last_log_id.map(|l| l.index));
        removed
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let upto = log_id.index;
        // Only the marker is written here, in openraft's log I/O (appends wait behind
        // it); the entries behind it are deleted by the purge worker (see `log_purge`).
        // Not synced: were it lost in a crash, the log would only start earlier, and the
        // snapshot it was purged behind covers that.
        let purged = encode_meta(&log_id)?;
        self.db
            .write_retrying("purging the raft log", |h| {
                h.commit(&[Change::Insert(Table::Meta, KEY_PURGED, &purged)])
            })
            .await?;
        if self.bug == Some(InjectedBug::InlinePurge) {
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
        self.purger.purge_upto(log_id);
        // How far the worker still has to go: a backlog that grows across purges would
        // mean deletion cannot keep up with the write rate.
        let backlog = upto.saturating_sub(self.purger.deleted_upto());
        tracing::info!(upto, backlog, "purged raft log");
        Ok(())
    }
}
