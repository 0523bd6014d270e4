//! A test fixture: openraft's state machine applying Beacon's commands to a
//! `beacon_store::Store`, with snapshots made by the store's own `save`/`recover`, as
//! beacon-raft's state machine does; the snapshot "file" is the member's [`Disk`].

use std::io;
use std::mem;
use std::sync::{Arc, Mutex};

use beacon_raft::Request;
use beacon_store::Store;
use futures_util::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder};

use crate::durable::{lock, AppliedEntry, Observer, SharedDisk};
use crate::types::{io_other, LogId, SimConfig, Snapshot, SnapshotMeta, StoredMembership};

/// One member's state machine (one incarnation: the store is lost on a crash).
pub struct SimStateMachine {
    id: u64,
    store: Arc<Mutex<Store>>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    disk: SharedDisk,
    observer: Observer,
}

impl SimStateMachine {
    /// Starts from the newest snapshot on `disk`, as a restarted member does; openraft
    /// then replays the log after it.
    pub fn open(id: u64, disk: SharedDisk, observer: Observer) -> SimStateMachine {
        let mut store = Store::new();
        let (mut last_applied, mut last_membership) = (None, StoredMembership::default());
        if let Some(snapshot) = lock(&disk).snapshot.clone() {
            store
                .recover(&snapshot.snapshot)
                .expect("a snapshot this simulation saved recovers");
            last_applied = snapshot.meta.last_log_id;
            last_membership = snapshot.meta.last_membership;
        }
        let store = Arc::new(Mutex::new(store));
        {
            let mut observed = lock(&observer);
            let view = observed.member(id);
            view.store = Some(Arc::clone(&store));
            view.applied = last_applied.map_or(0, |l| l.index);
        }
        SimStateMachine {
            id,
            store,
            last_applied,
            last_membership,
            disk,
            observer,
        }
    }

    /// The store, for the member's local reads.
    pub fn store(&self) -> Arc<Mutex<Store>> {
        Arc::clone(&self.store)
    }

    fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
        }
    }
}

/// Builds a snapshot from store bytes captured between two applies (see beacon-raft's
/// `StateMachine::builder` for why they are not taken in `build_snapshot`).
pub struct SimSnapshotBuilder {
    id: u64,
    meta: SnapshotMeta,
    data: Vec<u8>,
    disk: SharedDisk,
    observer: Observer,
}

impl RaftSnapshotBuilder<SimConfig> for SimSnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let snapshot = Snapshot {
            meta: self.meta.clone(),
            snapshot: mem::take(&mut self.data),
        };
        let mut disk = lock(&self.disk);
        // The newest snapshot wins, as the newest file does in production: an install
        // may have landed while this one was being built.
        let newer = disk
            .snapshot
            .as_ref()
            .is_none_or(|current| current.meta.last_log_id <= snapshot.meta.last_log_id);
        if newer {
            disk.snapshot = Some(snapshot.clone());
        }
        drop(disk);
        lock(&self.observer).member(self.id).snapshots_built += 1;
        Ok(snapshot)
    }
}

impl RaftStateMachine<SimConfig> for SimStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SimSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<SimConfig>, io::Error>>
            + Unpin
            + openraft::OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let payload = serde_json::to_string(&entry.payload).map_err(io_other)?;
            lock(&self.observer).record_apply(
                self.id,
                AppliedEntry {
                    log_id: entry.log_id,
                    payload,
                },
            );
            let response = match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(Request(cmd)) => Some(lock(&self.store).apply(&cmd)),
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    None
                }
            };
            self.last_applied = Some(entry.log_id);
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SimSnapshotBuilder {
            id: self.id,
            meta: self.meta(),
            data: lock(&self.store).save(),
            disk: Arc::clone(&self.disk),
            observer: Arc::clone(&self.observer),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        // On disk first, as production writes the file before recovering from it.
        lock(&self.disk).snapshot = Some(Snapshot {
            meta: meta.clone(),
            snapshot: snapshot.clone(),
        });
        lock(&self.store).recover(&snapshot).map_err(io_other)?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        let mut observed = lock(&self.observer);
        let view = observed.member(self.id);
        view.applied = meta.last_log_id.map_or(0, |l| l.index);
        view.snapshots_installed += 1;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(lock(&self.disk).snapshot.clone())
    }
}
