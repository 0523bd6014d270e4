//! The node handle: opens the data directory, starts openraft over it, and is what the
//! server proposes through and reads status from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use beacon_store::{Applied, Command, Store};
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, Fatal, RaftError};
use openraft::ServerState;

use crate::config::RaftConfig;
use crate::error::{OpenError, ProposeError, ShutdownError};
use crate::log_store::LogStore;
use crate::peer::forward_proposal;
use crate::peer::NetworkFactory;
use crate::snapshot_file::SnapshotDir;
use crate::state_machine::StateMachine;
use crate::types::{NodeId, Raft, Request, SharedStore};

/// How long a follower waits before forwarding again when the leader moved or is gone.
const LEADER_RETRY: Duration = Duration::from_millis(25);

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

/// The outcome of a committed and applied proposal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Proposed {
    /// What the store returned when it applied the command.
    pub applied: Applied,
    /// The Raft index of the entry.
    pub raft_index: u64,
    /// The Raft term of the entry.
    pub raft_term: u64,
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
    log: LogStore,
    applied_index: Arc<AtomicU64>,
    /// For proposals forwarded to the leader: the peer clients' own pool.
    http: reqwest::Client,
    /// `--election-timeout`: how long a leadership transfer may take at shutdown.
    election_timeout: Duration,
    /// What this member measured of its messages to the others (while leading).
    peer_stats: Arc<crate::peer::PeerStats>,
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
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

/// The file that records a data directory's first successful start.
const INITIALIZED_MARKER: &str = "initialized";

/// Creates the marker durably: the file, then its directory entry.
fn write_marker(path: &std::path::Path) -> Result<(), OpenError> {
    let io_err = |source| OpenError::DataDir {
        path: path.to_owned(),
        source,
    };
    std::fs::File::create(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err)?;
    let dir = path.parent().expect("the marker lives in member/");
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err)
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
        let member = config.data_dir.join("member");
        let raft_dir = member.join("raft");
        let snap_dir = member.join("snap");
        // Written once the first start succeeded: from then on, a directory without Raft
        // state has lost files, and must not be mistaken for a fresh one.
        let marker = member.join(INITIALIZED_MARKER);
        let was_initialized = marker.exists();
        let committed_marker = member.join(crate::committed_marker::COMMITTED_MARKER);
        for dir in [&raft_dir, &snap_dir] {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::DataDir {
                path: dir.clone(),
                source,
            })?;
        }
        let raft_config = Arc::new(config.openraft_config()?);

        // fjall recovery and snapshot loading are blocking disk work.
        let store: SharedStore = Arc::new(RwLock::new(Store::new()));
        let snapshots = SnapshotDir::new(snap_dir);
        let (log, sm, checked) = {
            let store = store.clone();
            let snapshots = snapshots.clone();
            let (committed_marker, id, force) = (
                committed_marker.clone(),
                config.node_id,
                config.force_new_cluster,
            );
            tokio::task::spawn_blocking(move || {
                let log = LogStore::open(&raft_dir)?;
                let sm = StateMachine::open(store, snapshots)?;
                let checked = crate::coverage::check(&log, &sm, &committed_marker, id, force)?;
                Ok::<_, OpenError>((log, sm, checked))
            })
            .await
            .map_err(|e| OpenError::Start(format!("storage open task failed: {e}")))??
        };

        let applied_index = sm.applied_index();
        let removed = Arc::new(tokio::sync::watch::Sender::new(false));
        let network = NetworkFactory::new(config.node_id, config.cluster_id, Arc::clone(&removed));
        let (peer_http, peer_stats) = (network.http(), network.stats());
        let marker_task = tokio::spawn(crate::committed_marker::keep_up(
            committed_marker.clone(),
            Arc::clone(&applied_index),
            0,
        ))
        .abort_handle();
        let raft = Raft::new(config.node_id, raft_config, network, log.clone(), sm)
            .await
            .map_err(|e| OpenError::Start(e.to_string()))?;
        let node = RaftNode {
            inner: Arc::new(Inner {
                id: config.node_id,
                raft,
                store,
                log,
                applied_index,
                http: peer_http,
                election_timeout: Duration::from_millis(config.election_timeout_ms),
                peer_stats,
                cluster_id: config.cluster_id,
                removed: Arc::clone(&removed),
                proposal_bytes_max: config.proposal_bytes_max,
                snapshots,
                receiving_snapshot: tokio::sync::Mutex::new(()),
                marker: committed_marker.clone(),
                marker_task,
            }),
        };
        // A member that joins a running cluster has joined once it has applied the
        // entry that added it; until then a restart joins afresh.
        let joining = config.join_existing && !was_initialized;
        let started = match node.start(&config, was_initialized).await {
            Ok(()) if !was_initialized && !joining => write_marker(&marker),
            other => other,
        };
        let started = match (started, checked.accepted_up_to) {
            // The operator accepted the loss: from now on the marker says what is left,
            // so the next start without the flag does not refuse again.
            (Ok(()), Some(index)) => crate::committed_marker::write(&committed_marker, index)
                .map_err(|source| OpenError::DataDir {
                    path: committed_marker.clone(),
                    source,
                }),
            (other, _) => other,
        };
        if let Err(e) = started {
            // Stop openraft's tasks so they release the data directory.
            node.inner.marker_task.abort();
            let _ = node.inner.raft.shutdown().await;
            return Err(e);
        }
        let on_joined = move || {
            if joining {
                match write_marker(&marker) {
                    Ok(()) => tracing::info!("joined the cluster"),
                    Err(e) => tracing::error!(error = %e, "recording that this member joined"),
                }
            }
        };
        tokio::spawn(crate::membership::watch_membership(
            node.inner.raft.clone(),
            config.node_id,
            !joining,
            on_joined,
            removed,
        ));
        Ok(node)
    }

    /// Resolves once this member has applied its own removal from the cluster: it
    /// must then stop, as etcd's removed members do.
    pub async fn removed(&self) {
        let mut removed = self.inner.removed.subscribe();
        let _ = removed.wait_for(|r| *r).await;
    }

    /// Records that this member was removed (the leader told it so).
    pub(crate) fn mark_removed(&self) {
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

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The cluster id given at open.
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    /// Whether member `id` may send to this one: it is in the membership this member
    /// knows (voter or learner, committed or not). A member that joins a running
    /// cluster has no membership until the leader's first append, and cannot tell its
    /// leader's id beforehand (`--initial-cluster` derives only the bootstrapped
    /// members' ids, not those added later), so until then any sender of its cluster
    /// is taken.
    pub(crate) fn knows_member(&self, id: NodeId) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        membership.nodes().next().is_none() || membership.get_node(&id).is_some()
    }

    /// See `RaftConfig::proposal_bytes_max`.
    pub(crate) fn proposal_bytes_max(&self) -> usize {
        self.inner.proposal_bytes_max
    }

    /// The snapshot directory.
    pub(crate) fn snapshot_dir(&self) -> &SnapshotDir {
        &self.inner.snapshots
    }

    /// The lock a snapshot receipt holds; `None` while another one is under way.
    pub(crate) fn try_receive_snapshot(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.inner.receiving_snapshot.try_lock().ok()
    }

    /// The last log position applied here, as openraft's metrics report it.
    pub(crate) fn last_applied(&self) -> Option<crate::types::LogId> {
        self.inner.raft.metrics().borrow_watched().last_applied
    }

    /// The pooled client for calls to peers.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    async fn start(&self, config: &RaftConfig, was_initialized: bool) -> Result<(), OpenError> {
        let raft = &self.inner.raft;
        let id = config.node_id;
        let start_err = |e: &dyn std::fmt::Display| OpenError::Start(e.to_string());
        if !raft.is_initialized().await.map_err(|e| start_err(&e))? {
            if was_initialized && config.force_new_cluster {
                tracing::warn!("--force-new-cluster: no Raft state left; starting a new cluster");
            } else if was_initialized {
                return Err(OpenError::LogCorrupt {
                    path: config.data_dir.join("member").join("raft"),
                    detail: format!(
                        "this data directory was initialized (member/{INITIALIZED_MARKER} exists) \
                         but holds no Raft state: its log files are missing"
                    ),
                });
            }
            if config.join_existing {
                tracing::info!(node_id = %format!("{id:x}"), "joining a running cluster: waiting for the leader");
                return Ok(());
            }
            // Every member of a new cluster initializes with the same membership, as
            // etcd's members all bootstrap from --initial-cluster; Raft's vote then
            // elects exactly one leader.
            let members = config.initial_members.clone();
            if !members.contains_key(&id) {
                return Err(OpenError::NotAMember {
                    path: config.data_dir.clone(),
                    node_id: id,
                    members: members.keys().copied().collect(),
                });
            }
            let count = members.len();
            raft.initialize(members).await.map_err(|e| start_err(&e))?;
            tracing::info!(node_id = id, peer_url = %config.peer_url, members = count, "initialized cluster");
            if count > 1 {
                // Peers elect a leader once they are all up; requests wait for it.
                return Ok(());
            }
        } else {
            let (voters, members): (BTreeSet<NodeId>, BTreeSet<NodeId>) = {
                let m = raft.metrics();
                let m = m.borrow_watched();
                let membership = m.membership_config.membership();
                (
                    membership.voter_ids().collect(),
                    membership.nodes().map(|(id, _)| *id).collect(),
                )
            };
            if !members.contains(&id) {
                if self.is_removed(id) {
                    return Err(OpenError::Removed { node_id: id });
                }
                if config.join_existing && !was_initialized {
                    // Restarted while still receiving the log that adds it.
                    return Ok(());
                }
                return Err(OpenError::NotAMember {
                    path: config.data_dir.clone(),
                    node_id: id,
                    members: members.into_iter().collect(),
                });
            }
            if voters.len() > 1 || !voters.contains(&id) {
                // A real cluster elects on its own schedule; nothing to wait for here.
                return Ok(());
            }
            // Sole voter: campaign now instead of idling through an election timeout.
            raft.trigger()
                .elect(false)
                .await
                .map_err(|e| start_err(&e))?;
        }

        let waited = config.leader_deadline();
        let deadline = Instant::now() + waited;
        let no_leader = |detail: String| OpenError::NoLeader {
            node_id: id,
            waited,
            detail,
        };
        raft.wait(Some(waited))
            .metrics(
                |m| m.state == ServerState::Leader && m.current_leader == Some(id),
                "become leader",
            )
            .await
            .map_err(|e| no_leader(e.to_string()))?;
        // Leading means the log is committed; wait until the store has applied all of it,
        // so the first read after open sees every write made before the restart.
        raft.wait_for_recovery(Some(deadline.saturating_duration_since(Instant::now())))
            .await
            .map_err(|e| no_leader(e.to_string()))?;
        Ok(())
    }

    /// Proposes `cmd` and resolves once it is committed and applied to this member's
    /// store. On a follower the command is forwarded to the leader, and the answer waits
    /// until this member has applied the entry too, so a read here sees the write.
    pub async fn propose(&self, cmd: Command) -> Result<Proposed, ProposeError> {
        let cmd = Arc::new(cmd);
        // A leader that moved or went away (the proposal surely not sent) is followed
        // until a new one is known; the caller's request timeout bounds the wait.
        let deadline = Instant::now() + crate::peer::FORWARD_TIMEOUT;
        while Instant::now() < deadline {
            let leader = self.status().leader_id;
            let Some(leader) = leader.filter(|l| *l != self.inner.id) else {
                match self.propose_shared(Arc::clone(&cmd)).await {
                    // openraft already knows a leader our metrics do not show yet
                    // (an election just ended): nothing was appended, so forward.
                    Err(ProposeError::NotLeader { leader_id: Some(l) }) if l != self.inner.id => {
                        tokio::time::sleep(LEADER_RETRY).await;
                        continue;
                    }
                    other => return other,
                }
            };
            let Some(peer_url) = self.peer_url_of(leader) else {
                return Err(ProposeError::NotLeader {
                    leader_id: Some(leader),
                });
            };
            let proposed = match forward_proposal(
                &self.inner.http,
                &peer_url,
                &cmd,
                crate::peer::FORWARD_TIMEOUT,
            )
            .await
            {
                Err(ProposeError::NotLeader { .. }) => {
                    tokio::time::sleep(LEADER_RETRY).await;
                    continue;
                }
                other => other?,
            };
            self.wait_applied(proposed.raft_index).await?;
            return Ok(proposed);
        }
        Err(ProposeError::NotLeader { leader_id: None })
    }

    /// Proposes on this member, which must be the leader (the peer API's entry point).
    pub async fn propose_here(&self, cmd: Command) -> Result<Proposed, ProposeError> {
        self.propose_shared(Arc::new(cmd)).await
    }

    async fn propose_shared(&self, cmd: Arc<Command>) -> Result<Proposed, ProposeError> {
        match self.inner.raft.client_write(Request(cmd)).await {
            Ok(resp) => {
                let applied = resp.data.ok_or_else(|| {
                    // Normal entries always get `Some` from the state machine.
                    ProposeError::Fatal(format!(
                        "entry {} applied without a store result",
                        resp.log_id
                    ))
                })?;
                Ok(Proposed {
                    applied,
                    raft_index: resp.log_id.index,
                    raft_term: resp.log_id.leader_id.term,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader {
                    leader_id: f.leader_id,
                })
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
                Err(ProposeError::Discarded {
                    leader_id: f.leader_id,
                })
            }
            Err(RaftError::APIError(e)) => Err(ProposeError::Fatal(e.to_string())),
            Err(RaftError::Fatal(Fatal::Stopped)) => Err(ProposeError::Stopped),
            Err(RaftError::Fatal(f)) => Err(ProposeError::Fatal(f.to_string())),
        }
    }

    /// The peer URL of member `id`, from the current membership.
    pub(crate) fn peer_url_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.peer_url().to_owned())
    }

    /// Waits until this member's store has applied `raft_index`.
    async fn wait_applied(&self, raft_index: u64) -> Result<(), ProposeError> {
        if self.inner.applied_index.load(Ordering::Acquire) >= raft_index {
            return Ok(());
        }
        self.inner
            .raft
            .wait(Some(crate::peer::FORWARD_TIMEOUT))
            .applied_index_at_least(Some(raft_index), "forwarded proposal applied here")
            .await
            .map(|_| ())
            .map_err(|e| ProposeError::Forward(format!("applying entry {raft_index} here: {e}")))
    }

    /// Per follower: append-entries calls and their latency, as this member measured
    /// them while it led (etcd's `/v2/stats/leader`).
    pub fn follower_stats(&self) -> BTreeMap<NodeId, crate::peer::FollowerStats> {
        self.inner.peer_stats.snapshot()
    }

    /// The openraft handle, for the peer API.
    pub(crate) fn raft_handle(&self) -> &Raft {
        &self.inner.raft
    }

    /// The openraft handle, for tests that wait on metrics.
    #[cfg(test)]
    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The store, shared with the state machine: read under the read lock.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// This node's Raft state, from the latest metrics (no round trip to the Raft task).
    /// `applied_index` comes from the state machine itself, so it is never behind a
    /// `raft_index` that `propose` already returned; metrics are published later.
    pub fn status(&self) -> RaftStatus {
        let applied_index = self.inner.applied_index.load(Ordering::Acquire);
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        // etcd's check-quorum: a leader that has not heard from a quorum for an election
        // timeout steps down. openraft keeps the role but refuses proposals once its
        // quorum lease (the election timeout) runs out; report it without a leader, as
        // etcd's stepped-down leader is, so /health, stats and forwarding agree.
        let lease_lost = m.state == ServerState::Leader
            && m.membership_config
                .membership()
                .voter_ids()
                .nth(1)
                .is_some()
            && m.last_quorum_acked
                .as_ref()
                .is_some_and(|t| openraft::Instant::elapsed(&**t) > self.inner.election_timeout);
        RaftStatus {
            id: self.inner.id,
            leader_id: m.current_leader.filter(|_| !lease_lost),
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

    /// On a leader with other voters: hands leadership to the voter that has replicated
    /// the most and waits (up to an election timeout) until it leads, as etcd does on a
    /// graceful stop, so that the cluster does not sit out an election timeout first.
    async fn hand_over_leadership(&self) {
        let id = self.inner.id;
        let target = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow_watched();
            if m.current_leader != Some(id) {
                return;
            }
            let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
            m.replication.as_ref().and_then(|replication| {
                replication
                    .iter()
                    .filter(|(peer, _)| **peer != id && voters.contains(*peer))
                    .max_by_key(|(_, matched)| matched.as_ref().map(|l| l.index))
                    .map(|(peer, _)| *peer)
            })
        };
        let Some(target) = target else { return };
        if self
            .inner
            .raft
            .trigger()
            .transfer_leader(target)
            .await
            .is_err()
        {
            return;
        }
        let moved = self
            .inner
            .raft
            .wait(Some(self.inner.election_timeout))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != id),
                "leadership handed over",
            )
            .await;
        match moved {
            Ok(_) => {
                tracing::info!(to = %format!("{target:x}"), "handed leadership over before stopping")
            }
            Err(e) => tracing::warn!(error = %e, "leadership transfer at shutdown did not finish"),
        }
    }

    /// Stops openraft and syncs the log; proposals after this fail with `Stopped`.
    pub async fn shutdown(&self) -> Result<(), ShutdownError> {
        self.hand_over_leadership().await;
        // A log write waiting for disk space would hold openraft's core, and so its
        // shutdown, forever: from here on it gives up instead.
        self.inner.log.stop_retrying();
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| ShutdownError::Raft(e.to_string()))?;
        // Openraft has stopped: the applied index is final, so the marker can say it.
        self.inner.marker_task.abort();
        let applied = self.inner.applied_index.load(Ordering::Acquire);
        let log = self.inner.log.clone();
        let path = log.path().to_owned();
        let marker = self.inner.marker.clone();
        tokio::task::spawn_blocking(move || {
            log.sync()
                .map_err(|source| ShutdownError::Persist { path, source })?;
            if applied > 0 {
                // Only behind is safe, so a failure (a full disk) is worth a warning,
                // not a failed stop: the next start checks a little less.
                if let Err(e) = crate::committed_marker::write(&marker, applied) {
                    tracing::warn!(path = %marker.display(), error = %e, "final committed marker not written");
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| ShutdownError::Raft(e.to_string()))?
    }
}
