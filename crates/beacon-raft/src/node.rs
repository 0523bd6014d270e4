//! The node handle: opens the data directory, starts openraft over it, and is what the
//! server proposes through and reads status from. The top layer: here the seams are
//! chosen (the fjall log store, the snapshot directory, the HTTP peer transport), and
//! the node's parts below it (`start`, `membership`, `route`, `expiry`) get what they
//! need from it as arguments. This file holds the handle's lifecycle (open, status,
//! shutdown); its request path (proposals and membership changes, routed to the
//! leader) is in `node/requests.rs`, and the node as the peer server's
//! [`LocalMember`](crate::peer::LocalMember) in `node/local_member.rs`.

mod backup;
mod local_member;
mod requests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use beacon_store::Store;
use openraft::async_runtime::WatchReceiver;

use crate::clock::Clock;
use crate::config::RaftConfig;
use crate::disk::{self, Disk};
use crate::error::{OpenError, ShutdownError};
use crate::log_store::LogStore;
use crate::membership;
use crate::observer::InjectedBug;
use crate::peer::NetworkFactory;
use crate::route;
use crate::seams::Seams;
use crate::snapshot_file::SnapshotDir;
use crate::start::{start, write_marker, Recorded, Started, INITIALIZED_MARKER};
use crate::state_machine::{Raft, StateMachine};
use crate::types::{MemberInfo, NodeId, SharedStore};

/// How often a member left out of the newest membership in its log asks the others
/// whether it was removed (`RaftNode::confirm_removal`): each check is one small request
/// per member, and a removed member should be gone within seconds, as etcd's is.
const REMOVAL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A snapshot of the node's Raft state, read from openraft's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    /// This member's id.
    pub id: u64,
    /// The leader this node knows of.
    pub leader_id: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The last Raft index applied to the store (0 before any).
    pub applied_index: u64,
    /// The last Raft index known committed (0 before any).
    pub commit_index: u64,
}

/// A handle on a running node; clones share it.
#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    store: SharedStore,
    /// The v3 keyspace the state machine applies to (`keyspace`).
    mvcc: crate::keyspace::SharedMvcc,
    /// Its current revision, as the state machine publishes it.
    v3_revisions: tokio::sync::watch::Receiver<i64>,
    log: LogStore,
    /// The disk the data directory is on (see `Seams::disk`).
    disk: Arc<dyn Disk>,
    /// The applied index, set by the state machine before a proposal's response is
    /// sent, and the highest write this member acknowledged: reads wait here until this
    /// member applied what it acknowledged.
    applied: Arc<crate::applied::Applied>,
    /// For proposals forwarded to the leader: the peer clients' own pool.
    http: crate::peer::PeerHttp,
    /// Proposals forwarded to the leader, batched, on that same pool.
    forwarder: crate::peer::Forwarder,
    /// `--election-timeout`: how long a leadership transfer may take at shutdown.
    election_timeout: Duration,
    /// What this member measured of its messages to the others (while leading).
    peer_stats: Arc<crate::peer::PeerStats>,
    /// `--strict-reconfig-check`: member changes pass etcd's checks (`reconfig`) first.
    strict_reconfig_check: bool,
    /// The cluster id, for the peer API's member list.
    cluster_id: u64,
    /// Flips to `true` once this member knows it was removed: it applied its removal,
    /// the leader told it, or a peer refused it with 410.
    removed: Arc<tokio::sync::watch::Sender<bool>>,
    /// See `RaftConfig::proposal_bytes_max`.
    proposal_bytes_max: usize,
    /// The snapshot directory, where a snapshot from the leader is received.
    snapshots: SnapshotDir,
    /// Held while a snapshot is received: one at a time, into one temporary file.
    receiving_snapshot: tokio::sync::Mutex<()>,
    /// `member/committed`, and the task that keeps it up to the applied index.
    marker: PathBuf,
    marker_task: tokio::task::AbortHandle,
    /// The wall clock (`Seams::clock`).
    clock: Arc<dyn Clock>,
    /// A simulation's injected bug (`Seams::bug`); `None` in production.
    bug: Option<InjectedBug>,
    /// The leader's expiry ticker (`expiry`).
    expiry_task: tokio::task::AbortHandle,
    /// When this member last heard from its leader (`election`), set by the peer server.
    contact: Arc<crate::election::Contact>,
    /// The election timer (`election`).
    election_task: tokio::task::AbortHandle,
    /// The peers' prober (`peer::probe`).
    probe_task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

impl RaftNode {
    /// Opens the data directory (fjall log, newest snapshot that loads), refuses it when
    /// the snapshot and the log miss entries it knew committed (unless
    /// `force_new_cluster`), and starts openraft. On a fresh directory it initializes the
    /// cluster with `initial_members` (every member of a new cluster does the same), or,
    /// joining a running cluster, waits to be sent the log. A sole voter returns once it
    /// leads and has re-applied its log (or fails after a deadline); a member of a larger
    /// cluster returns at once, and requests wait for the election.
    pub async fn open(config: RaftConfig) -> Result<RaftNode, OpenError> {
        RaftNode::open_with(config, Seams::production()).await
    }

    /// [`RaftNode::open`] on the given seams (a simulation's disk, network and clock).
    pub async fn open_with(config: RaftConfig, seams: Seams) -> Result<RaftNode, OpenError> {
        // openraft spawns its tasks and draws its first election timeout here, in
        // `Raft::new`: the seed scoped around the opening reaches every one of them.
        match seams.rng_seed {
            Some(seed) => crate::runtime::with_seed(seed, Self::open_seamed(config, seams)).await,
            None => Self::open_seamed(config, seams).await,
        }
    }

    /// [`RaftNode::open_with`], inside the seed's scope if it has one.
    async fn open_seamed(config: RaftConfig, seams: Seams) -> Result<RaftNode, OpenError> {
        let disk = Arc::clone(&seams.disk);
        let member = config.data_dir.join("member");
        let raft_dir = config.log_dir();
        let snap_dir = member.join("snap");
        // Written once the first start succeeded: from then on, a directory without Raft
        // state has lost files, and must not be mistaken for a fresh one.
        let marker = member.join(INITIALIZED_MARKER);
        let was_initialized = disk.exists(&marker);
        let committed_marker = member.join(crate::committed_marker::COMMITTED_MARKER);
        for dir in [&raft_dir, &snap_dir] {
            disk.create_dir_all(dir)
                .map_err(|source| OpenError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
        }
        let raft_config = Arc::new(config.openraft_config()?);

        // Log recovery and snapshot loading are blocking disk work.
        let store: SharedStore = Arc::new(RwLock::new(Store::new()));
        let snapshots = SnapshotDir::new(Arc::clone(&disk), snap_dir);
        let (log, sm, checked) = {
            let store = store.clone();
            let snapshots = snapshots.clone();
            let (committed_marker, id, force) = (
                committed_marker.clone(),
                config.node_id,
                config.force_new_cluster,
            );
            let (on, bug) = (Arc::clone(&disk), seams.bug);
            let apply_warning = config.warning_apply_duration;
            disk::blocking(&*disk, move || {
                // Timed, because a restart's time is mostly here (issue 15's restart target).
                let started = tokio::time::Instant::now();
                let log = LogStore::open(on, &raft_dir)?.with_bug(bug);
                let log_opened = started.elapsed();
                let sm =
                    StateMachine::open(store, &log, snapshots)?.with_apply_warning(apply_warning);
                let loaded = started.elapsed();
                let checked = crate::coverage::check(&log, &sm, &committed_marker, id, force)?;
                tracing::info!(
                    log_ms = log_opened.as_millis() as u64,
                    snapshot_ms = (loaded - log_opened).as_millis() as u64,
                    check_ms = (started.elapsed() - loaded).as_millis() as u64,
                    "opened the data directory"
                );
                Ok::<_, OpenError>((log, sm, checked))
            })
            .await
            .map_err(|e| OpenError::Start(format!("storage open task failed: {e}")))??
        };

        let applied = sm.applied();
        let mvcc = sm.mvcc();
        let v3_revisions = sm.v3_revisions();
        let removed = Arc::new(tokio::sync::watch::Sender::new(false));
        let network = NetworkFactory::new(
            config.node_id,
            config.cluster_id,
            seams.net,
            Arc::clone(&removed),
        );
        let (peer_http, peer_stats) = (network.http(), network.stats());
        let marker_task = tokio::spawn(crate::committed_marker::keep_up(
            Arc::clone(&disk),
            committed_marker.clone(),
            applied.index(),
            log.synced_index(),
            0,
        ))
        .abort_handle();
        let snapshot_lists = sm.snapshot_lists(config.node_id);
        let sm = sm.with_observer(seams.observer.clone());
        let raft = Raft::new(config.node_id, raft_config, network, log.clone(), sm)
            .await
            .map_err(|e| OpenError::Start(e.to_string()))?;
        let election_timeout = Duration::from_millis(config.election_timeout_ms);
        // Does nothing until this member leads and some key has a TTL.
        let expiry_task = tokio::spawn(
            crate::expiry::Ticker {
                raft: raft.clone(),
                store: Arc::clone(&store),
                mvcc: Arc::clone(&mvcc),
                id: config.node_id,
                election_timeout,
                clock: Arc::clone(&seams.clock),
            }
            .run(),
        )
        .abort_handle();
        let (contact, election_task) = crate::election::start(
            raft.clone(),
            config.node_id,
            election_timeout,
            Duration::from_millis(config.heartbeat_interval_ms),
            config.initial_election_tick_advance,
            config.pre_vote,
        );
        let probe_task = tokio::spawn(crate::peer::probe::run(
            raft.clone(),
            config.node_id,
            peer_http.clone(),
        ))
        .abort_handle();
        let node = RaftNode {
            inner: Arc::new(Inner {
                id: config.node_id,
                raft,
                store,
                mvcc,
                v3_revisions,
                log,
                disk: Arc::clone(&disk),
                applied,
                forwarder: crate::peer::Forwarder::new(peer_http.clone()),
                http: peer_http,
                election_timeout,
                peer_stats,
                strict_reconfig_check: config.strict_reconfig_check,
                cluster_id: config.cluster_id,
                removed: Arc::clone(&removed),
                proposal_bytes_max: config.proposal_bytes_max,
                snapshots,
                receiving_snapshot: tokio::sync::Mutex::new(()),
                marker: committed_marker.clone(),
                marker_task,
                clock: Arc::clone(&seams.clock),
                expiry_task,
                contact,
                election_task,
                probe_task,
                bug: seams.bug,
            }),
        };
        let started = start(
            &node.inner.raft,
            &node.inner.store,
            &config,
            Recorded {
                was_initialized,
                snapshot_lists,
                log: &node.inner.log,
            },
        )
        .await;
        // A member that had joined and waits for the leader was left out of the newest
        // membership it recorded: ask the others whether it was removed.
        let left_out = was_initialized && matches!(started, Ok(Started::AwaitsLeader));
        // A member that waits for the leader's log (it joins a running cluster, or its
        // first start did not finish) has joined once it has applied the entry that
        // makes it a member; until then a restart starts afresh.
        let joining = !was_initialized && matches!(started, Ok(Started::AwaitsLeader));
        let started = match started {
            // The marker says "this directory holds Raft state": only once the state
            // the start wrote (the initial membership entry) is on disk, or a crash in
            // between leaves a marker over an empty log, which refuses to start.
            Ok(_) if !was_initialized && !joining => node
                .inner
                .log
                .sync_written()
                .await
                .map_err(|source| OpenError::DataDir {
                    path: marker.clone(),
                    source,
                })
                .and_then(|()| write_marker(&*disk, &marker)),
            other => other.map(|_| ()),
        };
        let started = match (started, checked.accepted_up_to) {
            // The operator accepted the loss: from now on the marker says what is left,
            // so the next start without the flag does not refuse again.
            (Ok(()), Some(index)) => {
                crate::committed_marker::write(&*disk, &committed_marker, index).map_err(|source| {
                    OpenError::DataDir {
                        path: committed_marker.clone(),
                        source,
                    }
                })
            }
            (other, _) => other,
        };
        if let Err(e) = started {
            // Stop openraft's tasks so they release the data directory.
            node.inner.marker_task.abort();
            node.inner.expiry_task.abort();
            node.inner.probe_task.abort();
            node.inner.election_task.abort();
            let _ = node.inner.raft.shutdown().await;
            return Err(e);
        }
        let joined_log = node.inner.log.clone();
        let on_joined = move || {
            if joining {
                // As above: the entries that added this member must be on disk before
                // the marker says it joined (a follower may apply entries it has not
                // synced yet).
                let (log, disk, marker) = (joined_log.clone(), Arc::clone(&disk), marker.clone());
                tokio::spawn(async move {
                    let written = match log.sync_written().await {
                        Ok(()) => write_marker(&*disk, &marker),
                        Err(source) => Err(OpenError::DataDir {
                            path: marker.clone(),
                            source,
                        }),
                    };
                    match written {
                        Ok(()) => tracing::info!("joined the cluster"),
                        Err(e) => tracing::error!(error = %e, "recording that this member joined"),
                    }
                });
            }
        };
        tokio::spawn(crate::membership::watch_membership(
            node.inner.raft.clone(),
            config.node_id,
            !joining,
            on_joined,
            removed,
        ));
        if left_out {
            tokio::spawn(node.clone().confirm_removal());
        }
        Ok(node)
    }

    /// Resolves once this member has applied its own removal from the cluster: it
    /// must then stop, as etcd's removed members do.
    pub async fn removed(&self) {
        let mut removed = self.inner.removed.subscribe();
        let _ = removed.wait_for(|r| *r).await;
    }

    /// Resolves, with the error, once openraft has stopped for good on its own: a
    /// storage error it cannot get past (a sync that lost the entry waiting on it). The
    /// member then serves nothing it could stand behind, and must exit so that it is
    /// restarted over its data directory, as etcd exits on a WAL error.
    pub async fn failed(&self) -> String {
        // Woken by the server metrics (role, leader, membership), which change rarely,
        // not the full metrics, which change with every write: this waits in the
        // server's main task for as long as it runs, and waking it twice a write cost
        // a thread switch each on the write path. openraft's core drops that channel's
        // sender when it stops, fatal error or not, after it published why.
        let mut server = self.inner.raft.server_metrics();
        loop {
            if let Err(fatal) = &self.inner.raft.metrics().borrow_watched().running_state {
                return fatal.to_string();
            }
            if server.changed().await.is_err() {
                if let Err(fatal) = &self.inner.raft.metrics().borrow_watched().running_state {
                    return fatal.to_string();
                }
                return "raft stopped".to_string();
            }
        }
    }

    /// For a member that restarted left out of the newest membership in its log (its
    /// removal not applied, maybe not committed): every [`REMOVAL_CHECK_INTERVAL`],
    /// asks each member of that membership for its member list, and marks this member
    /// removed once one of them leaves it out too (etcd's removed member learns it from
    /// its peers' refusals in the same way). Ends once the membership lists this member
    /// again (the leader replaced the entry) or Raft stops.
    async fn confirm_removal(self) {
        let id = self.inner.id;
        let mut metrics = self.inner.raft.metrics();
        loop {
            let others: Vec<(NodeId, String)> = {
                let m = metrics.borrow_watched();
                let membership = m.membership_config.membership();
                if membership.get_node(&id).is_some() {
                    return;
                }
                membership
                    .nodes()
                    .map(|(peer, member)| (*peer, member.peer_url().to_owned()))
                    .collect()
            };
            for (peer, url) in others {
                let (http, cluster_id) = (&self.inner.http, self.inner.cluster_id);
                // Asked every second while it waits: a peer that still lists this
                // member or does not answer is the expected case, not worth a warning.
                match crate::membership::removal_confirmed(http, &url, cluster_id, id).await {
                    Ok(true) => {
                        self.mark_removed();
                        return;
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::debug!(peer = %format!("{peer:x}"), %error, "asking whether this member was removed")
                    }
                }
            }
            // Until the next check, only watch whether the membership lists it again.
            let next = tokio::time::Instant::now() + REMOVAL_CHECK_INTERVAL;
            loop {
                match tokio::time::timeout_at(next, metrics.changed()).await {
                    Err(_) => break,
                    Ok(Err(_)) => return, // openraft stopped
                    Ok(Ok(())) => {
                        let m = metrics.borrow_watched();
                        if m.membership_config.membership().get_node(&id).is_some() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Records that this member was removed (a peer confirmed it).
    fn mark_removed(&self) {
        if !self.inner.removed.send_replace(true) {
            tracing::warn!("this member was removed from the cluster");
        }
    }

    /// Whether member `id` was removed from the cluster (as of this member's store).
    pub fn is_removed(&self, id: NodeId) -> bool {
        self.inner
            .store
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_member_removed(id)
    }

    /// The wall time of this node's clock (`Seams::clock`), in Unix nanoseconds: what
    /// the server stamps a TTL's expiration with, as the leader's expiry ticker
    /// proposes it.
    pub fn now_ns(&self) -> i64 {
        self.inner.clock.now_ns()
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The cluster id given at open.
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    /// The index of the last entry in this member's log (0 before any).
    pub fn last_log_index(&self) -> u64 {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.last_log_index.unwrap_or(0)
    }

    /// On the leader: hands leadership to the voting member `target` and waits up to
    /// `timeout` until it leads (etcd's MoveLeader).
    pub async fn move_leader(
        &self,
        target: NodeId,
        timeout: Duration,
    ) -> Result<(), crate::MoveLeaderError> {
        membership::move_leader(&self.inner.raft, self.inner.id, target, timeout).await
    }

    /// Every member, voters and learners, sorted by id, as this member's latest
    /// membership config has them.
    pub fn members(&self) -> Vec<MemberInfo> {
        membership::members(&self.inner.raft)
    }

    /// Whether this member was added as a learner and not promoted yet: etcd refuses
    /// such a member most client calls. Read from the latest metrics, without a copy of
    /// the member list.
    pub fn is_learner(&self) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&self.inner.id)
            .is_some_and(|member| member.learner)
    }

    /// Per follower: append-entries calls and their latency, as this member measured
    /// them while it led (etcd's `/v2/stats/leader`).
    pub fn follower_stats(&self) -> BTreeMap<NodeId, crate::peer::FollowerStats> {
        self.inner.peer_stats.snapshot()
    }

    /// The openraft handle, for tests that wait on metrics.
    #[cfg(test)]
    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The log store, for tests that look at the purge worker.
    #[cfg(test)]
    pub(crate) fn inner_log(&self) -> &LogStore {
        &self.inner.log
    }

    /// The store, shared with the state machine: read under the read lock.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// The v3 keyspace, for serializable reads (writes go through the log).
    pub fn mvcc(&self) -> &crate::keyspace::SharedMvcc {
        &self.inner.mvcc
    }

    /// The v3 keyspace's current revision, which changes after each applied batch that
    /// changed it (what watchers wait on).
    pub fn v3_revisions(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.v3_revisions.clone()
    }

    /// This node's Raft state, from the latest metrics (no round trip to the Raft task).
    /// `applied_index` comes from the state machine itself, so it is never behind a
    /// `raft_index` that `propose` already returned; metrics are published later.
    pub fn status(&self) -> RaftStatus {
        let applied_index = self.inner.applied.get();
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        RaftStatus {
            id: self.inner.id,
            leader_id: route::known_leader(&m, self.inner.election_timeout),
            term: m.current_term,
            applied_index,
            // Anything applied was committed, even if the metrics do not say so yet.
            commit_index: m
                .local_committed
                .as_ref()
                .map_or(0, |l| l.index)
                .max(applied_index),
        }
    }

    /// Stops openraft and syncs the log; proposals after this fail with `Stopped`.
    pub async fn shutdown(&self) -> Result<(), ShutdownError> {
        // Time stops first: a member handing over leadership proposes nothing more, and
        // one shutting down campaigns no more.
        self.inner.expiry_task.abort();
        self.inner.election_task.abort();
        self.inner.probe_task.abort();
        membership::hand_over_leadership(
            &self.inner.raft,
            self.inner.id,
            self.inner.election_timeout,
        )
        .await;
        // A log or snapshot write waiting for disk space would hold openraft's core, and
        // so its shutdown, forever: from here on it gives up instead.
        self.inner.log.stop_retrying();
        self.inner.snapshots.stop_retrying();
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| ShutdownError::Raft(e.to_string()))?;
        // Openraft has stopped: the applied index is final, so the marker can say it.
        self.inner.marker_task.abort();
        let applied = self.inner.applied.get();
        let log = self.inner.log.clone();
        // Applied entries the log never synced (a write given up at shutdown) are not
        // this member's to vouch for: the marker stops at the synced index.
        let synced = log.synced_index();
        let path = log.path().to_owned();
        log.sync()
            .await
            .map_err(|source| ShutdownError::Persist { path, source })?;
        let marker = self.inner.marker.clone();
        let disk = Arc::clone(&self.inner.disk);
        disk::blocking(&*self.inner.disk, move || {
            let applied = applied.min(synced.load(Ordering::Acquire));
            if applied > 0 {
                // Only behind is safe, so a failure (a full disk) is worth a warning,
                // not a failed stop: the next start checks a little less.
                if let Err(e) = crate::committed_marker::write(&*disk, &marker, applied) {
                    tracing::warn!(path = %marker.display(), error = %e, "final committed marker not written");
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| ShutdownError::Raft(e.to_string()))?
    }
}
