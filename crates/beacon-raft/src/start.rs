//! Starting openraft on an opened data directory: a new cluster initializes with
//! `--initial-cluster`, a member joining a running one waits for the leader, and a
//! restarted member checks that it is still in the membership it kept; a sole voter
//! campaigns at once and waits until it leads and has re-applied its log.

use std::collections::BTreeSet;
use tokio::time::Instant;

use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;

use crate::config::RaftConfig;
use crate::disk::{self, Disk};
use crate::error::OpenError;
use crate::log_store::LogStore;
use crate::state_machine::Raft;
use crate::types::{NodeId, SharedStore};

/// The file that records a data directory's first successful start.
pub(crate) const INITIALIZED_MARKER: &str = "initialized";

/// Creates the marker durably: the file, then its directory entry.
pub(crate) fn write_marker(disk: &dyn Disk, path: &std::path::Path) -> Result<(), OpenError> {
    let io_err = |source| OpenError::DataDir {
        path: path.to_owned(),
        source,
    };
    disk.write_synced(path, b"").map_err(io_err)?;
    let dir = path.parent().expect("the marker lives in member/");
    disk.sync_dir(dir).map_err(io_err)
}

/// How a start ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
    /// Raft runs on this member's own state.
    Ready,
    /// The member waits for the leader to send it the log that makes it a member (it
    /// joins a running cluster, or its first start did not finish): it has joined once
    /// it applied that.
    AwaitsLeader,
}

/// What a start knows of the memberships this data directory recorded, for a member
/// the newest one leaves out.
pub(crate) struct Recorded<'a> {
    /// Whether the data directory started successfully before.
    pub was_initialized: bool,
    /// Whether the loaded snapshot's membership lists this member.
    pub snapshot_lists: bool,
    /// The log, whose membership entries may list it.
    pub log: &'a LogStore,
}

/// Starts `raft` (see the module's doc).
pub(crate) async fn start(
    raft: &Raft,
    store: &SharedStore,
    config: &RaftConfig,
    recorded: Recorded<'_>,
) -> Result<Started, OpenError> {
    let was_initialized = recorded.was_initialized;
    let id = config.node_id;
    let start_err = |e: &dyn std::fmt::Display| OpenError::Start(e.to_string());
    if !raft.is_initialized().await.map_err(|e| start_err(&e))? {
        if was_initialized && config.force_new_cluster {
            tracing::warn!("--force-new-cluster: no Raft state left; starting a new cluster");
        } else if was_initialized {
            return Err(OpenError::LogCorrupt {
                path: config.log_dir(),
                detail: format!(
                    "this data directory was initialized (member/{INITIALIZED_MARKER} exists) \
                     but holds no Raft state: its log files are missing"
                ),
            });
        }
        if config.join_existing {
            tracing::info!(node_id = %format!("{id:x}"), "joining a running cluster: waiting for the leader");
            return Ok(Started::AwaitsLeader);
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
            return Ok(Started::Ready);
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
        if members.is_empty() {
            // Raft state (a vote) but no membership entry: the first start lost it before
            // it reached the disk (a sync failed), or the leader had this member truncate
            // its own bootstrap entry (every member writes one) and it stopped before the
            // leader's arrived. The other members hold the membership, and the leader
            // sends it, as to a member joining; a first start's `initialized` marker
            // waits until then. A sole member has no leader to wait for: it refuses, below.
            let others = config.join_existing || config.initial_members.len() > 1;
            if others {
                tracing::warn!(node_id = %format!("{id:x}"), "no membership on disk yet: waiting for the leader to send the log");
                return Ok(Started::AwaitsLeader);
            }
        }
        if !members.contains(&id) {
            let removed = store
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_member_removed(id);
            if removed {
                return Err(OpenError::Removed { node_id: id });
            }
            if config.join_existing && !was_initialized {
                // Restarted while still receiving the log that adds it.
                return Ok(Started::AwaitsLeader);
            }
            if was_initialized && listed_before(&recorded, id).await? {
                // Its own removal is in the log but not applied: it may not be committed
                // (a leader that appended it and lost its leadership, or stopped, before
                // the others took it). The leader either replaces that entry or has
                // removed this member; the node asks the others which (see
                // `RaftNode::confirm_removal`) and exits if they confirm it.
                tracing::warn!(
                    node_id = %format!("{id:x}"),
                    ?members,
                    "the newest membership in the log leaves this member out, but its removal is not applied: waiting for the leader"
                );
                return Ok(Started::AwaitsLeader);
            }
            return Err(OpenError::NotAMember {
                path: config.data_dir.clone(),
                node_id: id,
                members: members.into_iter().collect(),
            });
        }
        if voters.len() > 1 || !voters.contains(&id) {
            // A real cluster elects on its own schedule; nothing to wait for here.
            return Ok(Started::Ready);
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
    Ok(Started::Ready)
}

/// Whether this data directory's snapshot or log ever listed member `id`: a member left
/// out of the newest membership it recorded, rather than another member's directory.
async fn listed_before(recorded: &Recorded<'_>, id: NodeId) -> Result<bool, OpenError> {
    if recorded.snapshot_lists {
        return Ok(true);
    }
    let log = recorded.log.clone();
    let path = log.path().to_owned();
    let on = std::sync::Arc::clone(log.disk());
    disk::blocking(&*on, move || log.lists_member(id))
        .await
        .and_then(|listed| listed)
        .map_err(|e| OpenError::LogCorrupt {
            path,
            detail: e.to_string(),
        })
}
