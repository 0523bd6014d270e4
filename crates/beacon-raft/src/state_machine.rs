//! The openraft state machine: applies committed entries to the shared `beacon_store`
//! (v2) or the v3 keyspace (`keyspace`, a `Command::V3`), and turns both into snapshots
//! and back.
//!
//! The v2 store lives in memory; its durability comes from the log plus snapshot files.
//! The v3 keyspace lives in the log database, written once per applied batch with the
//! index of its last v3 entry. At start-up the newest snapshot is loaded here and
//! openraft replays the log after it; v3 entries the keyspace already holds are skipped,
//! and a keyspace behind the snapshot (its last batch not yet synced at a crash) is
//! replaced with the snapshot's.

use std::io;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use prost::Message;

use beacon_proto::beaconpb::V3Request;
use beacon_store::{Command, Encoded};

use crate::applied::Applied;
use crate::disk;
use crate::error::OpenError;
use crate::keyspace::{self, SharedMvcc};
use crate::log_db::LogDb;
use crate::log_store::LogStore;
use crate::log_writer::LogWriter;
use crate::observer::NodeObserver;
use crate::snapshot_file::SnapshotDir;
use crate::types::{
    io_other, LogId, Request, SharedStore, Snapshot, SnapshotData, SnapshotMeta, StoredMembership,
    TypeConfig,
};

/// How many snapshot files to keep: the newest, plus one in case it is being read
/// while the next is written.
const SNAPSHOTS_TO_KEEP: usize = 2;

/// How many applied batches' keyspace changes may wait to be written before an apply
/// wakes the writer and waits for them: each is a map that every read of a value looks
/// through. They ride along with the writer's next round, which a busy leader's next
/// append starts within a sync; more wait only on a member that takes few writes (or
/// a slow or failing disk).
const V3_WRITES_IN_FLIGHT_MAX: usize = 8;

/// The openraft handle over this state machine (the node and its parts drive it).
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// The state machine: the shared store plus what openraft needs to know about it.
pub struct StateMachine {
    store: SharedStore,
    /// The v3 keyspace, in the log database `db`.
    mvcc: SharedMvcc,
    db: Arc<LogDb>,
    /// The log database's writer, which writes the keyspace's applied changes.
    writer: LogWriter,
    /// The applied index of the last keyspace changes the writer has written, or why
    /// it could not (it only gives up once the node stops).
    v3_written: Arc<tokio::sync::watch::Sender<Result<u64, String>>>,
    /// The index of the last v3 entry the keyspace holds; v3 entries up to it are
    /// skipped when the log is replayed.
    v3_applied: u64,
    /// The keyspace's current revision, published after each applied batch: what the
    /// server's watchers wait on.
    revisions: Arc<tokio::sync::watch::Sender<i64>>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    snapshots: SnapshotDir,
    /// `last_applied`'s index, readable without a round trip to the Raft task; set
    /// before a proposal's response is sent, so a caller never sees it behind its own
    /// write (openraft's metrics are published later and can lag).
    applied: Arc<Applied>,
    /// Snapshot files that did not load at open (set aside as `*.broken`).
    skipped: Vec<SkippedSnapshot>,
    /// A simulation's observer (`Seams::observer`); `None` in production.
    observer: Option<Arc<dyn NodeObserver>>,
    /// An entry whose apply takes longer is logged (`RaftConfig::warning_apply_duration`).
    apply_warning: std::time::Duration,
}

/// A snapshot file `open` could not use, and why.
#[derive(Debug, Clone)]
pub struct SkippedSnapshot {
    /// Where the file was (it is now renamed with a `.broken` suffix).
    pub path: std::path::PathBuf,
    /// Why it did not load.
    pub reason: String,
}

/// Reads, verifies and decodes one snapshot file into a store of its own, so a file that
/// fails half way leaves nothing behind in the shared one. Also returns the file's bytes,
/// whose v3 section has been checked.
fn load_into_fresh_store(
    dir: &SnapshotDir,
    path: &std::path::Path,
) -> Result<(SnapshotMeta, beacon_store::Store, SnapshotData), String> {
    let (meta, data) = dir.load(path).map_err(|e| e.to_string())?;
    let store = check_snapshot(&data)?;
    Ok((meta, store, data))
}

/// Decodes a snapshot's v2 part into a fresh store and checks its v3 section whole.
pub fn check_snapshot(data: &[u8]) -> Result<beacon_store::Store, String> {
    let (v2, v3) = keyspace::split(data)?;
    let mut store = beacon_store::Store::new();
    store
        .recover(v2)
        .map_err(|e| format!("the store rejects its contents: {e}"))?;
    if let Some(v3) = v3 {
        keyspace::decode(v3).map_err(|e| format!("the v3 keyspace rejects it: {e}"))?;
    }
    Ok(store)
}

/// Renames a snapshot that does not load to `<name>.broken` (etcd's habit), so it is kept
/// for inspection but never listed, loaded or sent to a follower again.
fn set_aside(dir: &SnapshotDir, path: &std::path::Path) -> io::Result<std::path::PathBuf> {
    let mut broken = path.as_os_str().to_owned();
    broken.push(".broken");
    let broken = std::path::PathBuf::from(broken);
    dir.disk().rename(path, &broken)?;
    Ok(broken)
}

impl StateMachine {
    /// Tells `observer` (a simulation's) what this state machine applies, builds and
    /// installs from now on.
    pub fn with_observer(mut self, observer: Option<Arc<dyn NodeObserver>>) -> StateMachine {
        self.observer = observer;
        self
    }

    /// Logs every entry whose apply takes longer than `limit` (etcd's "apply request
    /// took too long").
    pub fn with_apply_warning(mut self, limit: std::time::Duration) -> StateMachine {
        self.apply_warning = limit;
        self
    }

    /// Builds the state machine over `store` and the v3 keyspace in `log`'s database,
    /// first loading the newest snapshot in `snapshots` that loads into it; damaged ones
    /// are set aside (see [`Self::skipped`]).
    pub fn open(
        store: SharedStore,
        log: &LogStore,
        snapshots: SnapshotDir,
    ) -> Result<StateMachine, OpenError> {
        let dir_err = |source| OpenError::DataDir {
            path: snapshots.path().to_owned(),
            source,
        };
        snapshots.remove_temp_files().map_err(dir_err)?;
        let db = Arc::clone(log.db());
        let (mvcc, v3_applied) = keyspace::open(&db)
            .map_err(|e| OpenError::Start(format!("the v3 keyspace does not open: {e}")))?;
        let revisions = Arc::new(tokio::sync::watch::Sender::new(mvcc.current_revision()));
        let mut sm = StateMachine {
            store,
            revisions,
            mvcc: Arc::new(std::sync::RwLock::new(mvcc)),
            db,
            writer: log.writer().clone(),
            v3_written: Arc::new(tokio::sync::watch::Sender::new(Ok(v3_applied))),
            v3_applied,
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshots: snapshots.clone(),
            applied: Arc::default(),
            skipped: Vec::new(),
            observer: None,
            apply_warning: std::time::Duration::from_millis(100),
        };
        // Newest first; a file that does not load is set aside and the next older one
        // is tried, as etcd's snapshotter does. Whether the older snapshot plus the log
        // still cover everything committed is checked afterwards (`coverage`).
        let mut files = snapshots.list().map_err(dir_err)?;
        while let Some(file) = files.pop() {
            match load_into_fresh_store(&snapshots, &file.path) {
                Ok((meta, store, data)) => {
                    *sm.write_store()
                        .map_err(|e| OpenError::Start(e.to_string()))? = store;
                    sm.catch_up_v3(&data)
                        .map_err(|e| OpenError::Start(format!("the v3 keyspace: {e}")))?;
                    tracing::info!(path = %file.path.display(), last_log_id = ?meta.last_log_id, "loaded snapshot");
                    sm.set_last_applied(meta.last_log_id);
                    sm.last_membership = meta.last_membership;
                    break;
                }
                Err(reason) => {
                    let broken = set_aside(&snapshots, &file.path).map_err(dir_err)?;
                    tracing::warn!(
                        path = %file.path.display(),
                        renamed_to = %broken.display(),
                        %reason,
                        "skipped a snapshot that does not load; trying an older one"
                    );
                    sm.skipped.push(SkippedSnapshot {
                        path: file.path,
                        reason,
                    });
                }
            }
        }
        Ok(sm)
    }

    /// The v3 keyspace, for the server's reads.
    pub fn mvcc(&self) -> SharedMvcc {
        Arc::clone(&self.mvcc)
    }

    /// The keyspace's current revision as applied, changed after each applied batch.
    pub fn v3_revisions(&self) -> tokio::sync::watch::Receiver<i64> {
        self.revisions.subscribe()
    }

    fn publish_revision(&self) -> io::Result<()> {
        let current = self
            .mvcc
            .read()
            .map_err(|_| io_other("v3 keyspace lock poisoned by a panic during apply"))?
            .current_revision();
        self.revisions
            .send_if_modified(|r| std::mem::replace(r, current) != current);
        Ok(())
    }

    /// Replaces the keyspace with a loaded snapshot's if the keyspace is behind it (its
    /// last batches were not synced before a crash, and the log they came from may be
    /// purged).
    fn catch_up_v3(&mut self, data: &[u8]) -> io::Result<()> {
        let (_, Some(v3)) = keyspace::split(data).map_err(io_other)? else {
            return Ok(());
        };
        let section = keyspace::decode(v3).map_err(io_other)?;
        if section.applied_index() <= self.v3_applied {
            return Ok(());
        }
        tracing::warn!(
            keyspace = self.v3_applied,
            snapshot = section.applied_index(),
            "the v3 keyspace is behind the snapshot; loading the snapshot's"
        );
        let mut mvcc = self.write_mvcc()?;
        keyspace::install(&self.db, &mut mvcc, &section)?;
        drop(mvcc);
        self.v3_applied = section.applied_index();
        self.v3_replaced();
        self.publish_revision()
    }

    /// Hands the keyspace's changes since the last call to the log's writer; waits
    /// only while more than [`V3_WRITES_IN_FLIGHT_MAX`] are unwritten.
    async fn queue_v3_changes(&mut self) -> io::Result<()> {
        let applied = self.v3_applied;
        let written = self.v3_written_index()?;
        let (changes, unwritten) = {
            let mut mvcc = self.write_mvcc()?;
            mvcc.written(written);
            let changes = mvcc.take_changes(applied);
            let unwritten = mvcc.unwritten().len();
            (changes, unwritten)
        };
        let report = Arc::clone(&self.v3_written);
        keyspace::write_later(&self.writer, &changes, move |outcome| {
            report.send_modify(|w| match (outcome, &*w) {
                (Ok(()), Ok(_)) => *w = Ok(applied),
                (Err(e), Ok(_)) => *w = Err(e),
                // The first failure stays: the writer has stopped.
                (_, Err(_)) => {}
            });
        })?;
        if unwritten > V3_WRITES_IN_FLIGHT_MAX {
            self.v3_written_all().await?;
        }
        Ok(())
    }

    /// The applied index of the last keyspace changes written; an error if the writer
    /// failed.
    fn v3_written_index(&self) -> io::Result<u64> {
        match &*self.v3_written.borrow() {
            Ok(index) => Ok(*index),
            Err(e) => Err(io_other(format!("writing the v3 keyspace: {e}"))),
        }
    }

    /// Waits until every keyspace change handed to the writer is written (the barrier
    /// wakes it): the keyspace on disk is then as of `v3_applied`, as a snapshot's view
    /// needs it, and no queued write can land over an installed snapshot's.
    async fn v3_written_all(&self) -> io::Result<()> {
        // The writer reports the keyspace's writes done before a barrier of the same
        // round, and every earlier round's before, so every one handed to it is.
        self.writer.barrier(None).await?;
        let written = self.v3_written_index()?;
        self.write_mvcc()?.written(written);
        Ok(())
    }

    /// The keyspace on disk was replaced as of `v3_applied` (a snapshot installed); a
    /// writer that failed stays failed.
    fn v3_replaced(&self) {
        let applied = self.v3_applied;
        self.v3_written.send_modify(|w| {
            if let Ok(written) = w {
                *written = applied;
            }
        });
    }

    fn write_mvcc(&self) -> io::Result<std::sync::RwLockWriteGuard<'_, beacon_mvcc::Mvcc>> {
        // Poisoned: a panic in the keyspace's apply, which may have left it half changed.
        self.mvcc
            .write()
            .map_err(|_| io_other("v3 keyspace lock poisoned by a panic during apply"))
    }

    /// Applies one v3 entry at `index`; `None` if the keyspace already holds it.
    fn apply_v3(
        &mut self,
        index: u64,
        encoded: &Encoded,
    ) -> io::Result<Option<beacon_store::Applied>> {
        if index <= self.v3_applied {
            return Ok(None);
        }
        // Entries come from the leader's gRPC port, which encoded them; one that does not
        // decode is refused alike on every replica.
        let response = match V3Request::decode(encoded.0.as_slice()) {
            Ok(req) => self.write_mvcc()?.apply(&req).map_err(io_other)?,
            Err(e) => beacon_proto::beaconpb::V3Response {
                response: Some(beacon_proto::beaconpb::v3_response::Response::Refusal(
                    beacon_proto::beaconpb::Refusal {
                        code: beacon_mvcc::grpc_code(beacon_mvcc::Code::InvalidArgument),
                        message: format!("etcdserver: a v3 request that does not decode: {e}"),
                    },
                )),
            },
        };
        self.v3_applied = index;
        Ok(Some(beacon_store::Applied::V3(Encoded(
            response.encode_to_vec(),
        ))))
    }

    /// Revokes the v3 leases due at `time_ns` (a clock entry at `index`), unless the
    /// keyspace already holds the entry.
    fn expire_v3(&mut self, index: u64, time_ns: i64) -> io::Result<()> {
        if index <= self.v3_applied {
            return Ok(());
        }
        if self.write_mvcc()?.expire(time_ns) > 0 {
            self.v3_applied = index;
        }
        Ok(())
    }

    /// The snapshot directory.
    pub fn snapshot_dir(&self) -> &std::path::Path {
        self.snapshots.path()
    }

    /// The snapshot files `open` set aside because they did not load, newest first.
    pub fn skipped(&self) -> &[SkippedSnapshot] {
        &self.skipped
    }

    /// The log position the loaded snapshot covers (`None` without one).
    pub fn snapshot_index(&self) -> Option<u64> {
        self.last_applied.as_ref().map(|l| l.index)
    }

    /// The voters of the newest membership the loaded snapshot records.
    pub fn snapshot_voters(&self) -> Vec<u64> {
        self.last_membership.membership().voter_ids().collect()
    }

    /// Whether the loaded snapshot's membership lists member `id` (voter or learner).
    pub fn snapshot_lists(&self, id: u64) -> bool {
        self.last_membership.membership().get_node(&id).is_some()
    }

    /// The applied index with its waiters (see `applied`).
    pub fn applied(&self) -> Arc<Applied> {
        Arc::clone(&self.applied)
    }

    fn set_last_applied(&mut self, log_id: Option<LogId>) {
        self.applied.set(log_id.as_ref().map_or(0, |l| l.index));
        self.last_applied = log_id;
    }

    fn write_store(&self) -> io::Result<std::sync::RwLockWriteGuard<'_, beacon_store::Store>> {
        // A poisoned lock means a panic inside `Store::apply`; the store may be half
        // updated, so stop Raft (storage error) rather than apply on top of it.
        self.store
            .write()
            .map_err(|_| io_other("store lock poisoned by a panic during apply"))
    }

    fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
        }
    }

    fn builder(&self) -> io::Result<SnapshotBuilder> {
        // The store's state is captured here, on the state machine task between two
        // applies, because openraft runs `build_snapshot` on another task while applies
        // go on: capturing there could take in entries past `last_applied` and replay
        // them twice. Only the view is taken under the lock, in O(1) (it shares the
        // store's persistent tree); encoding it is `build_snapshot`'s work, off the lock.
        let view = self
            .store
            .read()
            .map_err(|_| io_other("store lock poisoned by a panic during apply"))?
            .snapshot_view();
        // Every keyspace write handed over is written (`v3_written_all`, just before): a view
        // of its table now is as of `last_applied`, and stays so while applies go on.
        let mvcc = self
            .mvcc
            .read()
            .map_err(|_| io_other("v3 keyspace lock poisoned by a panic during apply"))?;
        let section = keyspace::Section::take(&self.db, &mvcc, self.v3_applied)?;
        drop(mvcc);
        Ok(SnapshotBuilder {
            meta: self.meta(),
            view: Some((view, std::sync::Mutex::new(section))),
            snapshots: self.snapshots.clone(),
            observer: self.observer.clone(),
        })
    }
}

/// Writes one snapshot file of the store's state as it was when the builder was created.
pub struct SnapshotBuilder {
    meta: SnapshotMeta,
    /// Taken by `build_snapshot`, which openraft calls once per builder.
    /// The section's table view is read by one thread at a time, but openraft wants the
    /// builder `Sync`.
    view: Option<(beacon_store::StoreView, std::sync::Mutex<keyspace::Section>)>,
    snapshots: SnapshotDir,
    observer: Option<Arc<dyn NodeObserver>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let meta = self.meta.clone();
        let (view, section) = self
            .view
            .take()
            .ok_or_else(|| io_other("a snapshot builder was asked to build twice"))?;
        // Encoding is linear in the store (~100 MB of JSON for 1M keys): it runs where
        // blocking work goes (the Disk seam, so a simulation stays deterministic), never
        // on the node's tasks, and never under the store's lock.
        let data = disk::blocking(&**self.snapshots.disk(), move || {
            let section = section.into_inner().unwrap_or_else(|p| p.into_inner());
            keyspace::join(view.save(), section)
        })
        .await??;
        let data = Arc::new(data);
        let path = self
            .snapshots
            .write_retrying(&meta, Arc::clone(&data))
            .await?;
        tracing::info!(path = %path.display(), last_log_id = ?meta.last_log_id, "wrote snapshot");
        prune(&self.snapshots, SNAPSHOTS_TO_KEEP).await;
        if let Some(observer) = &self.observer {
            observer.snapshot_built();
        }
        Ok(Snapshot {
            meta,
            snapshot: Arc::unwrap_or_clone(data),
        })
    }
}

/// Removes all but the newest `keep` snapshot files. A failure (a disk that refuses the
/// removal) only leaves an extra file behind, so it is logged, not handed to openraft,
/// which would stop Raft for good; the next snapshot prunes again.
async fn prune(dir: &SnapshotDir, keep: usize) {
    let on = dir.clone();
    match disk::blocking(&**dir.disk(), move || on.prune(keep)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) | Err(e) => {
            tracing::warn!(dir = %dir.path().display(), error = %e, "older snapshots not removed")
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + openraft::OptionalSend,
    {
        let v3_before = self.v3_applied;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            if let Some(observer) = &self.observer {
                let payload = serde_json::to_string(&entry.payload).map_err(io_other)?;
                let id = entry.log_id;
                observer.applied(id.index, id.leader_id.term, id.to_string(), payload);
            }
            let started = std::time::Instant::now();
            let index = entry.log_id.index;
            let response = match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(Request(cmd)) => match &*cmd {
                    Command::V3(v3) => self.apply_v3(entry.log_id.index, v3)?,
                    // The leader's clock expires v3 leases as it expires v2 TTLs.
                    Command::Sync { time_ns } => {
                        self.expire_v3(entry.log_id.index, *time_ns)?;
                        Some(self.write_store()?.apply(&cmd))
                    }
                    _ => Some(self.write_store()?.apply(&cmd)),
                },
                EntryPayload::Membership(m) => {
                    // Who left the membership is out for good, as etcd records it:
                    // their ids are refused from then on (see `RaftNode::is_removed`).
                    let removed: Vec<u64> = self
                        .last_membership
                        .membership()
                        .nodes()
                        .map(|(id, _)| *id)
                        .filter(|id| m.get_node(id).is_none())
                        .collect();
                    let mut store = self.write_store()?;
                    let writes = crate::membership::cluster_writes(
                        self.last_membership.membership(),
                        &m,
                        store.cluster_version_decided(),
                    );
                    if !removed.is_empty() {
                        store.record_removed_members(removed);
                    }
                    store.record_cluster_writes(&writes);
                    drop(store);
                    self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    None
                }
            };
            // etcd's warning, at its threshold: an apply this slow holds up every
            // write and linearizable read behind it.
            let took = started.elapsed();
            if took > self.apply_warning {
                tracing::warn!(
                    index,
                    took_ms = took.as_secs_f64() * 1000.0,
                    expected_ms = self.apply_warning.as_secs_f64() * 1000.0,
                    "apply request took too long"
                );
            }
            self.set_last_applied(Some(entry.log_id));
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        // One write for the batch's v3 changes, handed to the log's writer (it rides
        // along with the next round) and not awaited: made here, fjall's commit waited
        // for its journal's lock, which the writer holds across a sync, and the next
        // batch's apply with it. Reads see the changes in memory until they are
        // written, also while a failed write (a full disk) is retried.
        if self.v3_applied != v3_before {
            self.publish_revision()?;
            self.queue_v3_changes().await?;
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        // The trait gives no error path here; a poisoned store or a failed keyspace
        // write is reported by the next apply, so skipping this snapshot is enough.
        if let Err(e) = self.v3_written_all().await {
            tracing::error!("cannot snapshot: {e}");
            return None;
        }
        match self.builder() {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!("cannot snapshot: {e}");
                None
            }
        }
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        match self.v3_written_all().await.and_then(|()| self.builder()) {
            Ok(b) => b,
            // Only reachable after a panic inside the store, or once the log's writer has
            // stopped; openraft's deprecated API has no way to report it.
            Err(e) => panic!("cannot snapshot: {e}"),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        // The peer API verified it already; a snapshot that does not decode must still
        // never reach the disk, where it would replace the good ones.
        let snapshot = disk::blocking(&**self.snapshots.disk(), move || {
            check_snapshot(&snapshot).map_err(io_other)?;
            Ok::<_, io::Error>(Arc::new(snapshot))
        })
        .await??;
        // Persist (file and directory synced) before the older ones go: once the store
        // moves on, this file is what a restart recovers from.
        self.snapshots
            .write_retrying(meta, Arc::clone(&snapshot))
            .await?;
        prune(&self.snapshots, 1).await;
        let snapshot = Arc::unwrap_or_clone(snapshot);
        // Recovered in place, not swapped for a new Store: the server holds watchers on it.
        let (v2, v3) = keyspace::split(&snapshot).map_err(io_other)?;
        self.write_store()?.recover(v2).map_err(io_other)?;
        let section = keyspace::decode(v3.unwrap_or_default()).ok();
        self.v3_written_all().await?;
        {
            let mut mvcc = self.write_mvcc()?;
            match &section {
                Some(section) => keyspace::install(&self.db, &mut mvcc, section)?,
                // A snapshot from before v3 (a leader of an older version): no v3 keys.
                None => keyspace::install(&self.db, &mut mvcc, &keyspace::Decoded::empty())?,
            }
        }
        let index = meta.last_log_id.as_ref().map_or(0, |l| l.index);
        self.v3_applied = index;
        self.v3_replaced();
        self.publish_revision()?;
        self.set_last_applied(meta.last_log_id);
        self.last_membership = meta.last_membership.clone();
        if let Some(observer) = &self.observer {
            observer.snapshot_installed();
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let dir = self.snapshots.clone();
        disk::blocking(&**self.snapshots.disk(), move || {
            let Some(file) = dir.latest()? else {
                return Ok(None);
            };
            let (meta, data) = dir
                .load(&file.path)
                .map_err(|e| io_other(format!("snapshot {}: {e}", file.path.display())))?;
            Ok(Some(Snapshot {
                meta,
                snapshot: data,
            }))
        })
        .await?
    }
}
