//! The simulated log database: four tables of byte keys, batches that are visible at
//! once and durable once synced, poisoned by a failure until re-opened.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, MutexGuard};

use beacon_raft::disk::{
    Change, DbError, Durability, KeyRange, KeyValue, LogTables, Table, TableView,
};

use super::{injected, SimDisk, State};

/// The three tables, in `slot` order.
pub(super) type Tables = [BTreeMap<Vec<u8>, Vec<u8>>; 4];

pub(super) fn slot(table: Table) -> usize {
    match table {
        Table::Log => 0,
        Table::Meta => 1,
        Table::Kv => 2,
        Table::Lease => 3,
    }
}

#[derive(Debug, Clone)]
pub(super) enum OwnedChange {
    Insert(Table, Vec<u8>, Vec<u8>),
    Remove(Table, Vec<u8>),
}

pub(super) fn apply(tables: &mut Tables, batch: &[OwnedChange]) {
    for change in batch {
        match change {
            OwnedChange::Insert(t, k, v) => {
                tables[slot(*t)].insert(k.clone(), v.clone());
            }
            OwnedChange::Remove(t, k) => {
                tables[slot(*t)].remove(k);
            }
        }
    }
}

#[derive(Default)]
pub(super) struct LogDb {
    /// What a crash keeps for sure.
    pub(super) durable: Tables,
    /// What reads see: `durable` plus every unsynced batch.
    pub(super) visible: Tables,
    /// Batches committed since the last sync, in order.
    pub(super) unsynced: Vec<Vec<OwnedChange>>,
    /// A write or sync failed since the last opening.
    pub(super) poisoned: bool,
    /// Which opening is current; handles of an older one (before a crash) fail.
    pub(super) generation: u64,
    /// Alive while a handle of the current opening is: a second opening meanwhile is
    /// refused, as fjall's lock file refuses it.
    pub(super) lease: std::sync::Weak<()>,
}

impl LogDb {
    /// Keeps the synced state plus the first `kept` unsynced batches.
    pub(super) fn keep_unsynced(&mut self, kept: usize) {
        let batches = std::mem::take(&mut self.unsynced);
        for batch in &batches[..kept] {
            apply(&mut self.durable, batch);
        }
        self.visible = self.durable.clone();
    }
}

/// Whether `range` holds no key because it ends before it starts. fjall scans such a
/// range as empty, and the log store asks for one (a read wholly below the purge point
/// is moved up to it); `BTreeMap::range` would panic.
fn ends_before_it_starts(range: &KeyRange) -> bool {
    use std::ops::Bound::{Excluded, Included};
    match *range {
        (Included(start) | Excluded(start), Included(end) | Excluded(end)) if start > end => true,
        (Excluded(start), Excluded(end)) => start == end,
        _ => false,
    }
}

/// The meta key of the log's purge marker (beacon-raft's `log_db::KEY_PURGED`, JSON
/// with an `index`). Were it renamed, the stall check would see no log compaction and
/// fail its runs as proving nothing, rather than pass them.
const KEY_PURGED: &[u8] = b"last_purged";

/// Whether `batch` deletes purged entries (log compaction): entries at or below the
/// purge marker as it stands once the batch is applied. A truncation deletes entries
/// above it, and is not compaction.
fn compacts(visible: &Tables, batch: &[OwnedChange]) -> bool {
    let marker = batch
        .iter()
        .rev()
        .find_map(|c| match c {
            OwnedChange::Insert(Table::Meta, k, v) if k == KEY_PURGED => Some(v),
            _ => None,
        })
        .or_else(|| visible[slot(Table::Meta)].get(KEY_PURGED));
    let purged = marker
        .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .and_then(|v| v.get("index").and_then(serde_json::Value::as_u64));
    let Some(purged) = purged else {
        return false;
    };
    batch.iter().any(|c| match c {
        OwnedChange::Remove(Table::Log, k) => {
            <[u8; 8]>::try_from(k.as_slice()).is_ok_and(|k| u64::from_be_bytes(k) <= purged)
        }
        _ => false,
    })
}

/// A handle on one opening of the log database.
pub(super) struct SimLog {
    pub(super) disk: SimDisk,
    pub(super) generation: u64,
    pub(super) _lease: Arc<()>,
}

impl SimLog {
    fn lock(&self) -> Result<MutexGuard<'_, State>, DbError> {
        let s = self.disk.lock();
        if s.log.generation != self.generation {
            return Err(DbError::Io(io::Error::other(
                "the simulated host crashed: this log handle is gone",
            )));
        }
        Ok(s)
    }

    fn lock_for_write(&self) -> Result<MutexGuard<'_, State>, DbError> {
        let s = self.lock()?;
        if s.log.poisoned {
            return Err(DbError::Poisoned);
        }
        Ok(s)
    }
}

impl LogTables for SimLog {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self.lock()?.log.visible[slot(table)].get(key).cloned())
    }

    fn scan(
        &self,
        range: KeyRange,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<KeyValue, DbError>> + '_> {
        let s = match self.lock() {
            Ok(s) => s,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        if ends_before_it_starts(&range) {
            return Box::new(std::iter::empty());
        }
        let map = |b: std::ops::Bound<[u8; 8]>| b.map(|k| k.to_vec());
        let mut items: Vec<_> = s.log.visible[slot(Table::Log)]
            .range::<Vec<u8>, _>((map(range.0), map(range.1)))
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        if reverse {
            items.reverse();
        }
        Box::new(items.into_iter())
    }

    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue, DbError>> + '_> {
        match self.lock() {
            Ok(s) => Box::new(
                s.log.visible[slot(table)]
                    .range::<[u8], _>((
                        std::ops::Bound::Included(from),
                        std::ops::Bound::Excluded(to),
                    ))
                    .map(|(k, v)| Ok((k.clone(), v.clone())))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn view(&self, table: Table) -> TableView {
        match self.lock() {
            // A copy: the simulation's tables are small.
            Ok(s) => Box::new(
                s.log.visible[slot(table)]
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.clone())))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn commit(&self, changes: &[Change<'_>]) -> Result<(), DbError> {
        let mut s = self.lock_for_write()?;
        let batch: Vec<OwnedChange> = changes
            .iter()
            .map(|c| match *c {
                Change::Insert(t, k, v) => OwnedChange::Insert(t, k.to_vec(), v.to_vec()),
                Change::Remove(t, k) => OwnedChange::Remove(t, k.to_vec()),
            })
            .collect();
        if compacts(&s.log.visible, &batch) {
            s.pace.slow(super::Slow::LogDeletion);
        }
        if s.log_write_fails() {
            s.log.poisoned = true;
            // The record may have reached the journal before the error.
            if s.below(2) == 0 {
                apply(&mut s.log.visible, &batch);
                s.log.unsynced.push(batch);
            }
            return Err(DbError::Io(injected("writing to the log")));
        }
        apply(&mut s.log.visible, &batch);
        s.log.unsynced.push(batch);
        Ok(())
    }

    fn persist(&self, _durability: Durability) -> Result<(), DbError> {
        let mut s = self.lock_for_write()?;
        if s.log_sync_fails() {
            s.log.poisoned = true;
            return Err(DbError::Io(injected("syncing the log")));
        }
        let kept = s.log.unsynced.len();
        s.log.keep_unsynced(kept);
        Ok(())
    }
}
