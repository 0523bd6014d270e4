//! The log's one writer: every change to the log database is queued to a worker, which
//! writes what is queued in order and syncs once for all of it (group commit).
//!
//! fjall holds its journal's writer lock across a sync (`Database::persist`), so a write
//! made on openraft's core task waited behind whatever sync was under way, and with it
//! the core: heartbeats, replication and commits. On a busy 3-member cluster on 2 CPUs
//! a single append waited up to 130 ms there. So openraft's log I/O only queues: an
//! append puts its entries in the entry cache (readable at once, as openraft requires)
//! and queues them here. The worker takes everything queued, commits it in queue order
//! (one atomic batch for each run of appends, marker writes and the v3 keyspace's
//! applied changes, a truncation on its own), syncs the journal once if anything taken
//! needs it, and then reports every append flushed and every other write done. Appends
//! queued during a sync share the next one. The state machine's keyspace writes come
//! here for the same reason: made on its own, one waited for the journal's lock behind
//! a sync, and the next apply with it. The worker runs where the disk says
//! (`Disk::spawn_worker`): in production a thread of its own, which may block on the
//! journal; in a simulation a task.
//!
//! The queue is the log's order: a truncation, a purge marker or a vote lands exactly
//! where openraft asked for it among the appends. It is bounded ([`LOG_QUEUE_WRITES_MAX`]):
//! while the disk does not keep up (or is full, below), openraft's log I/O waits to queue.
//!
//! A failed write or sync (a full or failing disk) is retried over a re-opened database
//! (see `log_db`) instead of being reported to openraft, which would stop Raft for good.
//! After a failed fsync the kernel may have dropped pages it could not write, so the
//! re-opened log must still hold the last entry appended; if it does not, those appends
//! are reported failed rather than claimed durable.

use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use openraft::storage::IOFlushed;
use tokio::sync::{mpsc, oneshot};

use crate::disk::{Change, DbError, Durability, KeyRange, Table};
use crate::entry_cache::EntryCache;
use crate::log_db::{index_key, Handles, LogDb, LOG_WRITE_RETRY_MS};
use crate::types::TypeConfig;

/// How many writes may wait in the queue; one round of the worker takes them all. Far
/// more than a busy leader queues during one sync (an append carries up to
/// `max_payload_entries` entries), so only a stalled disk fills it.
pub const LOG_QUEUE_WRITES_MAX: usize = 1024;

/// A sync slower than this is logged (etcd's `slow fdatasync` threshold).
const SLOW_SYNC: Duration = Duration::from_secs(1);

/// Writes waiting for the writer's next round, whatever wakes it.
#[derive(Default)]
struct Riding {
    /// Meta values, as (key, value to set or `None`).
    meta: Vec<(&'static [u8], Option<Vec<u8>>)>,
    /// The v3 keyspace's applied changes (`Write::Keyspace`), in the order applied.
    keyspace: Vec<Write>,
}

type Later = Arc<Mutex<Riding>>;

/// Rows to write in one atomic batch, as (table, key, value to set or `None` to remove).
pub(crate) type Rows = Vec<(Table, Vec<u8>, Option<Vec<u8>>)>;

/// Called with the outcome of a write once it is done (and synced, if it asked to be).
type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One queued change to the log database.
enum Write {
    /// Entries as (index, encoded entry), reported flushed once synced.
    Append {
        entries: Vec<(u64, Vec<u8>)>,
        flushed: IOFlushed<TypeConfig>,
    },
    /// Removes every entry after `last` (`None`: every entry).
    Truncate { last: Option<u64>, done: Done },
    /// Sets (`Some`) or removes (`None`) a meta key; synced before `done` if `synced`.
    Meta {
        key: &'static [u8],
        value: Option<Vec<u8>>,
        synced: bool,
        done: Option<Done>,
    },
    /// The v3 keyspace's changes from one applied batch (`keyspace`); not synced: the
    /// log entries they come from are.
    Keyspace { rows: Rows, done: Done },
    /// Done once everything queued before it is written, and synced with `durability`.
    Barrier {
        durability: Option<Durability>,
        done: Done,
    },
}

impl Write {
    fn durability(&self) -> Option<Durability> {
        match self {
            Write::Append { .. } => Some(Durability::Data),
            Write::Meta { synced: true, .. } => Some(Durability::Data),
            Write::Barrier { durability, .. } => *durability,
            Write::Truncate { .. } | Write::Meta { .. } | Write::Keyspace { .. } => None,
        }
    }

    fn last_appended(&self) -> Option<u64> {
        match self {
            Write::Append { entries, .. } => entries.last().map(|(i, _)| *i),
            _ => None,
        }
    }

    fn complete(self, outcome: Result<(), String>) {
        match self {
            Write::Append { flushed, .. } => {
                flushed.io_completed(outcome.map_err(io::Error::other))
            }
            Write::Truncate { done, .. }
            | Write::Barrier { done, .. }
            | Write::Keyspace { done, .. } => done(outcome),
            Write::Meta { done, .. } => {
                if let Some(done) = done {
                    done(outcome);
                }
            }
        }
    }
}

/// The queue to the log's writer; cheap to clone. Dropping the last clone stops the
/// worker once it has written what was queued.
#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<Write>,
    /// Meta values that ride along with the writer's next round instead of waking it
    /// (see [`LogWriter::set_meta_later`]); the newest value of each key wins.
    later: Later,
}

impl LogWriter {
    /// Starts the writer for `db`; it marks entries written in `cache` (see
    /// `entry_cache`), so that the cache never drops one fjall does not hold yet.
    pub fn start(db: Arc<LogDb>, cache: Arc<Mutex<EntryCache>>) -> io::Result<LogWriter> {
        let (tx, rx) = mpsc::channel(LOG_QUEUE_WRITES_MAX);
        let later = Arc::default();
        let disk = Arc::clone(db.disk());
        // Weak while it waits: the database closes when the log store is dropped, not
        // when this worker next gets to run (a re-open in the same process, a start that
        // failed and is tried again, would find it still open).
        let work = run(Arc::downgrade(&db), cache, Arc::clone(&later), rx);
        disk.spawn_worker("raft-log-writer", Box::pin(work))?;
        Ok(LogWriter { tx, later })
    }

    async fn queue(&self, write: Write) {
        if let Err(mpsc::error::SendError(write)) = self.tx.send(write).await {
            // Only after the worker died: say so rather than claim anything written.
            write.complete(Err("the raft log writer is gone".to_string()));
        }
    }

    /// Queues `entries` (index, encoded entry); `flushed` is told once they are durable.
    pub async fn append(&self, entries: Vec<(u64, Vec<u8>)>, flushed: IOFlushed<TypeConfig>) {
        self.queue(Write::Append { entries, flushed }).await;
    }

    /// Removes every entry after `last`, and returns once that is written (not synced:
    /// the next append, which always follows before anything is acknowledged, is).
    pub async fn truncate_after(&self, last: Option<u64>) -> io::Result<()> {
        self.awaited(|done| Write::Truncate { last, done }).await
    }

    /// Sets (`Some`) or removes a meta key with the writer's next round, whatever wakes
    /// it (an append, a vote, a barrier), after what is queued by then; not synced. For
    /// a value that only bounds work at start-up (the committed index, every commit):
    /// queued on its own, it woke the writer once more per write.
    pub fn set_meta_later(&self, key: &'static [u8], value: Option<Vec<u8>>) {
        let mut later = self.riding();
        match later.meta.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => later.meta.push((key, value)),
        }
    }

    fn riding(&self) -> std::sync::MutexGuard<'_, Riding> {
        // Only pushed to and taken whole: never left half changed.
        self.later.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues setting a meta key, not synced; `done` runs once it is written.
    pub async fn set_meta_then(
        &self,
        key: &'static [u8],
        value: Vec<u8>,
        done: impl FnOnce(Result<(), String>) + Send + 'static,
    ) {
        let (synced, done) = (false, Some(Box::new(done) as Done));
        self.queue(Write::Meta {
            key,
            value: Some(value),
            synced,
            done,
        })
        .await;
    }

    /// Sets a meta key and returns once it is durable.
    pub async fn set_meta_synced(&self, key: &'static [u8], value: Vec<u8>) -> io::Result<()> {
        self.awaited(|done| Write::Meta {
            key,
            value: Some(value),
            synced: true,
            done: Some(done),
        })
        .await
    }

    /// The v3 keyspace's changes from one applied batch, `rows`, written with the writer's
    /// next round (whatever wakes it: the next append, a [`Self::barrier`]) in one
    /// batch with what else it writes, before it, not synced; `done` runs once they are
    /// written. The applies go on meanwhile: they never wait for the journal's lock,
    /// which the worker holds across its syncs, and the worker is not woken for them
    /// (a busy leader's next append comes within a sync; until then reads see the
    /// changes in memory, and a restart replays their entries).
    pub fn write_keyspace_later(
        &self,
        rows: Rows,
        done: impl FnOnce(Result<(), String>) + Send + 'static,
    ) {
        let done = Box::new(done);
        self.riding().keyspace.push(Write::Keyspace { rows, done });
    }

    /// Returns once everything queued so far is written, and synced with `durability`.
    pub async fn barrier(&self, durability: Option<Durability>) -> io::Result<()> {
        self.awaited(|done| Write::Barrier { durability, done })
            .await
    }

    async fn awaited(&self, write: impl FnOnce(Done) -> Write) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.queue(write(Box::new(move |outcome| {
            let _ = tx.send(outcome);
        })))
        .await;
        rx.await
            .map_err(|_| io::Error::other("the raft log writer is gone"))?
            .map_err(io::Error::other)
    }
}

async fn run(
    db: Weak<LogDb>,
    cache: Arc<Mutex<EntryCache>>,
    later: Later,
    mut rx: mpsc::Receiver<Write>,
) {
    let mut taken = Vec::with_capacity(LOG_QUEUE_WRITES_MAX);
    while rx.recv_many(&mut taken, LOG_QUEUE_WRITES_MAX).await > 0 {
        let riding = std::mem::take(&mut *later.lock().unwrap_or_else(|p| p.into_inner()));
        // The keyspace's changes first: a barrier taken in this round then finds them
        // done before it, as it would had they been queued.
        taken.splice(0..0, riding.keyspace);
        for (key, value) in riding.meta {
            let (synced, done) = (false, None);
            taken.push(Write::Meta {
                key,
                value,
                synced,
                done,
            });
        }
        let outcome = match db.upgrade() {
            Some(db) => round(&db, &cache, &mut taken).await,
            None => Err("the raft log is closed".to_string()),
        };
        if outcome.is_err() {
            // Whatever fjall kept of a failed batch, the cache must not claim more; Raft
            // stops on the error.
            lock(&cache).clear();
        }
        for write in taken.drain(..) {
            write.complete(outcome.clone());
        }
    }
}

fn lock(cache: &Mutex<EntryCache>) -> std::sync::MutexGuard<'_, EntryCache> {
    // The cache is only ever left consistent (each method completes its update).
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes `writes` in order and syncs once if any of them needs it.
// The writes are passed `&mut`: a shared borrow held across an await would need them
// `Sync`, which their completion callbacks are not.
async fn round(
    db: &Arc<LogDb>,
    cache: &Mutex<EntryCache>,
    writes: &mut [Write],
) -> Result<(), String> {
    let durability = writes
        .iter()
        .filter_map(Write::durability)
        .max_by_key(|d| match d {
            Durability::Data => 0,
            Durability::All => 1,
        });
    let last = last_kept(writes);
    let Some(durability) = durability else {
        return write_all(db, cache, writes).await;
    };
    loop {
        write_all(db, cache, writes).await?;
        match sync(db, durability, last).await? {
            Synced::Done => break,
            // A sync failed and the database was re-opened: what it kept of this round
            // is unknown (a vote may be gone where the last entry is not), so the whole
            // round is written again (every write in it can be) and synced.
            Synced::Reopened => continue,
        }
    }
    match (durability, last) {
        (Durability::All, _) => db.synced_all(),
        (Durability::Data, Some(last)) => db.synced_up_to(last),
        (Durability::Data, None) => {}
    }
    Ok(())
}

/// The last entry the log holds after `writes`, of those they append: an append sets
/// it, and a truncation after it cuts it back (both may share a round: openraft awaits
/// a truncation, not the appends queued before it).
fn last_kept(writes: &[Write]) -> Option<u64> {
    writes.iter().fold(None, |last, write| match write {
        Write::Append { .. } => write.last_appended().or(last),
        Write::Truncate { last: kept, .. } => last.min(*kept),
        _ => last,
    })
}

/// Writes `writes` in order: each run of appends, meta and keyspace writes as one
/// batch, each truncation on its own.
async fn write_all(
    db: &Arc<LogDb>,
    cache: &Mutex<EntryCache>,
    writes: &mut [Write],
) -> Result<(), String> {
    let mut run_start = 0;
    for i in 0..writes.len() {
        if let Write::Truncate { last, .. } = writes[i] {
            commit(db, cache, &mut writes[run_start..i]).await?;
            truncate(db, last).await?;
            run_start = i + 1;
        }
    }
    commit(db, cache, &mut writes[run_start..]).await
}

/// Commits a run of appends, meta and keyspace writes as one atomic batch.
async fn commit(
    db: &Arc<LogDb>,
    cache: &Mutex<EntryCache>,
    writes: &mut [Write],
) -> Result<(), String> {
    let keys: Vec<[u8; 8]> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Append { entries, .. } => Some(entries.iter().map(|(i, _)| index_key(*i))),
            _ => None,
        })
        .flatten()
        .collect();
    let mut keys = keys.iter();
    let mut changes: Vec<Change<'_>> = Vec::new();
    for write in writes.iter() {
        match write {
            Write::Append { entries, .. } => {
                for (_, bytes) in entries {
                    let key = keys.next().expect("one key per entry");
                    changes.push(Change::Insert(Table::Log, key, bytes));
                }
            }
            Write::Meta { key, value, .. } => {
                changes.push(Change::set(Table::Meta, key, value.as_deref()));
            }
            Write::Keyspace { rows, .. } => {
                changes.extend(
                    rows.iter()
                        .map(|(t, k, v)| Change::set(*t, k, v.as_deref())),
                );
            }
            Write::Truncate { .. } | Write::Barrier { .. } => {}
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    db.write_retrying("writing the raft log", |h| h.commit(&changes))
        .await
        .map_err(|e| e.to_string())?;
    if let Some(last) = writes.iter().filter_map(Write::last_appended).max() {
        db.wrote_up_to(Some(last));
        lock(cache).written_up_to(last);
    }
    Ok(())
}

/// Removes the entries after `last` in one atomic batch: a crash keeps all of them or
/// none, never a hole.
async fn truncate(db: &Arc<LogDb>, last: Option<u64>) -> Result<(), String> {
    // Lowered before the write: a re-open while it is retried must not take the entries
    // it removes for lost (were the removal lost instead, the log would only be longer,
    // which the check allows).
    db.truncated_to(last);
    let from = last.map_or(0, |l| l + 1);
    let range = (
        std::ops::Bound::Included(index_key(from)),
        std::ops::Bound::Unbounded,
    );
    db.write_retrying("truncating the raft log", |h| remove_range(h, range))
        .await
        .map_err(|e| e.to_string())
}

/// Removes the entries in `range` in one atomic batch.
pub(crate) fn remove_range(h: &Handles, range: KeyRange) -> Result<(), DbError> {
    let keys = h
        .scan(range, false)
        .map(|item| item.map(|(k, _)| k))
        .collect::<Result<Vec<_>, _>>()?;
    let changes: Vec<Change<'_>> = keys.iter().map(|k| Change::Remove(Table::Log, k)).collect();
    h.commit(&changes)
}

/// What a sync did.
enum Synced {
    /// Everything written is durable.
    Done,
    /// The sync failed and the database was re-opened (keeping entry `last`): the round
    /// must be written again.
    Reopened,
}

/// Syncs the journal; after a failure, re-opens the database (see `log_db`) for the
/// round to be written again. An error only if the node stops, or the re-opened log
/// lost entry `last`. The sync itself runs inline: the worker is where blocking on the
/// disk is allowed.
async fn sync(
    db: &Arc<LogDb>,
    durability: Durability,
    last: Option<u64>,
) -> Result<Synced, String> {
    let handles = db.handles().await.map_err(|e| e.to_string())?;
    let generation = LogDb::generation(&handles);
    let started = std::time::Instant::now();
    let result = handles.persist(durability);
    drop(handles);
    // etcd's warning for the same thing, at its threshold: a disk this slow shows
    // as slow writes and missed heartbeats, and the log says why.
    let took = started.elapsed();
    if took > SLOW_SYNC {
        tracing::warn!(
            took_ms = took.as_millis() as u64,
            expected_ms = SLOW_SYNC.as_millis() as u64,
            "slow fdatasync"
        );
    }
    let Err(e) = result else {
        db.note("syncing the raft log", Ok(()));
        return Ok(Synced::Done);
    };
    db.note("syncing the raft log", Err(&e));
    if db.is_stopping() {
        return Err(format!("syncing the raft log: {e}"));
    }
    tokio::time::sleep(Duration::from_millis(LOG_WRITE_RETRY_MS)).await;
    db.reopen(Some(generation));
    if let Some(last) = last {
        let handles = db.handles().await.map_err(|e| e.to_string())?;
        let kept = handles
            .contains(Table::Log, &index_key(last))
            .map_err(|e| e.to_string())?;
        if !kept {
            return Err(format!(
                "syncing the raft log failed and entry {last} did not survive re-opening it"
            ));
        }
    }
    Ok(Synced::Reopened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(from: u64, to: u64) -> Write {
        Write::Append {
            entries: (from..=to).map(|i| (i, Vec::new())).collect(),
            flushed: IOFlushed::noop(),
        }
    }

    fn truncate(last: Option<u64>) -> Write {
        Write::Truncate {
            last,
            done: Box::new(|_| {}),
        }
    }

    #[test]
    fn the_last_entry_kept_follows_truncations() {
        assert_eq!(last_kept(&[append(10, 20)]), Some(20));
        assert_eq!(last_kept(&[append(10, 20), truncate(Some(15))]), Some(15));
        let again = [append(10, 20), truncate(Some(15)), append(16, 17)];
        assert_eq!(last_kept(&again), Some(17));
        assert_eq!(last_kept(&[append(10, 20), truncate(None)]), None);
        assert_eq!(last_kept(&[truncate(Some(5))]), None);
    }
}
