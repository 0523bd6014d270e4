//! Membership at runtime: the member list, changes to it (add, remove, update, publish)
//! made on the leader with etcd's checks, the leader's promotion of learners, and the
//! check of a removal notice. A part of the node below `node.rs`: it works on the
//! openraft handle and the transport's client that the node hands it, and the node
//! routes changes to the leader (`route`).
//!
//! A member added at runtime joins as a learner: it receives the log (or a snapshot)
//! without counting toward the quorum, and the leader promotes it to voter once it has
//! caught up, so that adding a member that is not running yet, or is still far behind,
//! never costs the cluster its quorum.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::raft::Precondition;
use openraft::ChangeMembers;
use tokio::time::Instant;

use crate::error::MembershipError;
use crate::state_machine::Raft;
use crate::types::{Member, MemberChange, MemberInfo, NodeId};

/// How long a membership change may take, retries included.
pub(crate) const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait before retrying a change that raced another one.
pub(crate) const CHANGE_RETRY: Duration = Duration::from_millis(20);
/// How far behind the leader's log a learner may be and still be promoted.
const PROMOTE_LAG: u64 = 1000;
/// How often the leader looks for learners to promote when nothing else happens.
const PROMOTE_TICK: Duration = Duration::from_millis(200);

/// The member list of a membership config, sorted by id.
pub(crate) fn list(membership: &openraft::Membership<NodeId, Member>) -> Vec<MemberInfo> {
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, member)| MemberInfo {
            id: *id,
            member: member.clone(),
            is_learner: !voters.contains(id),
        })
        .collect()
}

/// What `change` asks of openraft, given the current membership; `None` when it is
/// already in effect. Checks what etcd checks before proposing.
fn plan(
    change: &MemberChange,
    membership: &openraft::Membership<NodeId, Member>,
) -> Result<Option<ChangeMembers<NodeId, Member>>, MembershipError> {
    let urls_taken = |urls: &[String], except: NodeId| {
        membership
            .nodes()
            .filter(|(id, _)| **id != except)
            .any(|(_, m)| m.peer_urls.iter().any(|u| urls.contains(u)))
    };
    let existing = |id: &NodeId| membership.get_node(id).ok_or(MembershipError::IdNotFound);
    let set =
        |id: NodeId, member: Member| Some(ChangeMembers::SetNodes(BTreeMap::from([(id, member)])));
    match change {
        MemberChange::Add {
            id,
            peer_urls,
            learner,
        } => {
            if membership.get_node(id).is_some() {
                return Err(MembershipError::IdExists);
            }
            if urls_taken(peer_urls, *id) {
                return Err(MembershipError::PeerUrlExists);
            }
            // etcd 3.4 allows one learner at a time (its `maxLearners`).
            if *learner && membership.nodes().any(|(_, m)| m.learner) {
                return Err(MembershipError::TooManyLearners);
            }
            let member = Member {
                learner: *learner,
                ..Member::with_peer_urls(peer_urls.clone())
            };
            Ok(Some(ChangeMembers::AddNodes(BTreeMap::from([(
                *id, member,
            )]))))
        }
        MemberChange::Promote { id } => {
            let current = existing(id)?;
            if !current.learner {
                return Err(MembershipError::NotLearner);
            }
            // It stops being a learner here; the leader's promoter (`watch_membership`)
            // makes it a voter once it is within `PROMOTE_LAG` of the log, which the
            // readiness check before this plan has all but ensured.
            let promoted = Member {
                learner: false,
                updated: current.updated + 1,
                ..current.clone()
            };
            Ok(set(*id, promoted))
        }
        MemberChange::Remove { id } => {
            existing(id)?;
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            if !voters.contains(id) {
                return Ok(Some(ChangeMembers::RemoveNodes(BTreeSet::from([*id]))));
            }
            if voters.len() == 1 {
                return Err(MembershipError::LastVoter);
            }
            Ok(Some(ChangeMembers::RemoveVoters(BTreeSet::from([*id]))))
        }
        MemberChange::Update { id, peer_urls } => {
            let current = existing(id)?;
            if urls_taken(peer_urls, *id) {
                return Err(MembershipError::PeerUrlExists);
            }
            // Written even when nothing changes, as etcd writes the raft attributes.
            let updated = Member {
                peer_urls: Member::with_peer_urls(peer_urls.clone()).peer_urls,
                updated: current.updated + 1,
                ..current.clone()
            };
            Ok(set(*id, updated))
        }
        MemberChange::Publish {
            id,
            name,
            client_urls,
        } => {
            let current = existing(id)?;
            // At every start, changed or not: etcd's member writes its attributes
            // each time, and each write takes an etcd index.
            let updated = Member {
                name: name.clone(),
                client_urls: client_urls.clone(),
                published: current.published + 1,
                ..current.clone()
            };
            Ok(set(*id, updated))
        }
    }
}

/// The writes etcd makes into its v2 store for the change from membership `before` to
/// `after` (`beacon_store::ClusterWrite`): a record created per member added, one per
/// publish and raft-attribute update the records count, two per member removed, and
/// the cluster version once, when every member has published for the first time. A
/// change of the voter sets alone (a learner made a voter by the promoter) is none.
pub(crate) fn cluster_writes(
    before: &openraft::Membership<NodeId, Member>,
    after: &openraft::Membership<NodeId, Member>,
    version_decided: bool,
) -> Vec<beacon_store::ClusterWrite> {
    use beacon_store::ClusterWrite;
    let mut writes = Vec::new();
    for (id, now) in after.nodes() {
        let (published, updated) = match before.get_node(id) {
            None => {
                writes.push(ClusterWrite::MemberAdded(*id));
                (0, 0)
            }
            Some(was) => (was.published, was.updated),
        };
        for _ in updated..now.updated {
            writes.push(ClusterWrite::MemberUpdated(*id));
        }
        for _ in published..now.published {
            writes.push(ClusterWrite::MemberPublished(*id));
        }
    }
    for (id, _) in before.nodes() {
        if after.get_node(id).is_none() {
            writes.push(ClusterWrite::MemberRemoved(*id));
        }
    }
    if !version_decided && after.nodes().all(|(_, m)| !m.name.is_empty()) {
        writes.push(ClusterWrite::ClusterVersion);
    }
    writes
}

/// Whether a change failed only because another one got there first, so that it may
/// be planned again against the new membership.
fn raced(
    e: &RaftError<crate::types::TypeConfig, ClientWriteError<crate::types::TypeConfig>>,
) -> bool {
    matches!(
        e,
        RaftError::APIError(
            ClientWriteError::PreconditionFailed(_)
                | ClientWriteError::ChangeMembershipError(
                    openraft::errors::ChangeMembershipError::InProgress(_)
                )
        )
    )
}

/// The member list as the membership config in `raft`'s latest metrics has it.
pub(crate) fn members(raft: &Raft) -> Vec<MemberInfo> {
    let metrics = raft.metrics();
    let m = openraft::async_runtime::WatchReceiver::borrow_watched(&metrics);
    list(m.membership_config.membership())
}

/// Makes `change` on this member, which must lead (the caller has checked that the
/// member it is about was not removed); a member that does not lead answers
/// [`MembershipError::NotLeader`]. A removed member is told so over `http`.
/// With `strict` (`--strict-reconfig-check`), etcd's checks of `reconfig` come first,
/// on the connections the peer client's figures record.
pub(crate) async fn change_on_leader(
    raft: &Raft,
    http: &crate::peer::PeerHttp,
    strict: Option<&crate::peer::PeerStats>,
    change: &MemberChange,
    deadline: Instant,
) -> Result<(), MembershipError> {
    loop {
        let (log_id, plan, removed_url) = {
            let metrics = raft.metrics();
            let m = openraft::async_runtime::WatchReceiver::borrow_watched(&metrics);
            let stored = &m.membership_config;
            // A leader that appended its own removal leads on, as a learner to openraft,
            // until the removal commits; a change asked of it then trips openraft's
            // assertion that only a leader appends memberships (the simulation's seed 89
            // panicked in a debug build). The caller finds the next leader instead.
            if m.state != openraft::ServerState::Leader
                || !stored.membership().voter_ids().any(|v| v == m.id)
            {
                return Err(MembershipError::NotLeader);
            }
            let removed_url = match change {
                MemberChange::Remove { id } => stored
                    .membership()
                    .get_node(id)
                    .map(|m| m.peer_url().to_owned()),
                _ => None,
            };
            if let MemberChange::Promote { id } = change {
                learner_ready(&m, *id)?;
            }
            if let Some(stats) = strict {
                // A run of answers counts only if this leadership has heard from the
                // peer: one begun while this member led before says nothing of a peer
                // that died while it followed (a follower sends no appends).
                let heard = |id| {
                    let acks = m.heartbeat.as_ref().and_then(|h| h.get(&id));
                    acks.is_some_and(|ack| ack.is_some())
                };
                let since = |id| stats.active_since(id).filter(|_| heard(id));
                let checked = crate::reconfig::check(
                    change,
                    stored.membership(),
                    m.id,
                    since,
                    Instant::now(),
                );
                if let Err(e) = checked {
                    tracing::warn!(?change, error = %e, "rejecting member change");
                    return Err(e);
                }
            }
            (
                *stored.log_id(),
                plan(change, stored.membership())?,
                removed_url,
            )
        };
        let Some(plan) = plan else { return Ok(()) };
        let guard = Precondition::LastMembershipLogId {
            last_membership_log_id: log_id,
        };
        match raft.change_membership_if(plan, false, [guard]).await {
            Ok(response) => {
                tracing::info!(?change, "membership changed");
                // Committed, but `members` reads this member's metrics, which publish
                // the new config a moment later: a list right after the answer (as
                // `member add` prints) must already show the change.
                let changed = response.log_id;
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = raft
                    .wait(Some(left))
                    .metrics(
                        |m| m.membership_config.log_id().as_ref() >= Some(&changed),
                        "the membership change in the metrics",
                    )
                    .await;
                if let (MemberChange::Remove { id }, Some(url)) = (change, removed_url) {
                    // Replication to it has stopped, so it may never apply its own
                    // removal: tell it (etcd's peers answer it "410 removed member").
                    tokio::spawn(crate::peer::notify_removed(http.clone(), url, *id));
                }
                return Ok(());
            }
            Err(e) if raced(&e) && Instant::now() < deadline => {
                tokio::time::sleep(CHANGE_RETRY).await;
            }
            Err(e) if raced(&e) => return Err(MembershipError::Timeout),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                return Err(MembershipError::NotLeader)
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
                return Err(MembershipError::Timeout)
            }
            Err(RaftError::Fatal(openraft::errors::Fatal::Stopped)) => {
                return Err(MembershipError::Stopped)
            }
            Err(e) => return Err(MembershipError::Other(e.to_string())),
        }
    }
}

/// Whether member `from` confirms that this member `id` of cluster `cluster_id` was
/// removed: its member list, read from `peer_url` (its URL as this member's membership
/// records it, never one a notice names), lacks this member. `Err` says why it could not
/// tell (the peer did not answer), for the caller to log as it sees fit: a forged removal
/// notice names a peer that does not confirm it and is ignored, a real removal that
/// cannot be confirmed now is learnt later from the peers' 410, and a member that asks
/// every second while it waits (`RaftNode::confirm_removal`) keeps quiet about it.
pub(crate) async fn removal_confirmed(
    http: &crate::peer::PeerHttp,
    peer_url: &str,
    cluster_id: u64,
    id: NodeId,
) -> Result<bool, String> {
    let listed = crate::peer::fetch_members(http, peer_url, crate::peer::FORWARD_TIMEOUT).await;
    let (listed_cluster, members) = listed.map_err(|e| e.to_string())?;
    Ok(listed_cluster == cluster_id && !members.iter().any(|m| m.id == id))
}

/// While this member leads, promotes each learner that has caught up to a voter, and
/// watches for this member's own removal; ends when openraft stops.
pub(crate) async fn watch_membership(
    raft: Raft,
    id: NodeId,
    mut seen_self: bool,
    on_joined: impl Fn() + Send + 'static,
    removed: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
) {
    let metrics = raft.metrics();
    // Woken by the server metrics (role, leader, membership), not the full metrics,
    // which change with every write and would wake this task once a write on the write
    // path's threads; what else it looks at (learners' progress, whether a membership
    // entry is applied yet) it reads again every tick.
    let mut server = raft.server_metrics();
    loop {
        let (promote, guard, in_membership) = {
            let m = openraft::async_runtime::WatchReceiver::borrow_watched(&metrics);
            let stored = &m.membership_config;
            let applied = m.last_applied.as_ref().map_or(0, |l| l.index);
            let settled = stored.log_id().as_ref().is_some_and(|l| l.index <= applied);
            let in_membership = settled.then(|| stored.membership().get_node(&id).is_some());
            // Only a leader that is still a voter of the membership it appended promotes:
            // one that appended its own removal keeps leading until the removal commits,
            // as a learner to openraft, and a change asked of it then trips openraft's
            // assertion that only a leader appends memberships (the simulation's seed 89
            // panicked in a debug build).
            let leads_as_voter = m.current_leader == Some(id)
                && m.state == openraft::ServerState::Leader
                && stored.membership().voter_ids().any(|v| v == id);
            let promote = if leads_as_voter {
                caught_up_learners(&m, stored.membership())
            } else {
                BTreeSet::new()
            };
            let guard = Precondition::LastMembershipLogId {
                last_membership_log_id: *stored.log_id(),
            };
            (promote, guard, in_membership)
        };
        match in_membership {
            Some(true) if !seen_self => {
                seen_self = true;
                on_joined();
            }
            Some(false) if seen_self => {
                if !removed.send_replace(true) {
                    tracing::warn!("this member was removed from the cluster");
                }
                return;
            }
            _ => {}
        }
        if !promote.is_empty() {
            match raft
                .change_membership_if(ChangeMembers::AddVoterIds(promote.clone()), false, [guard])
                .await
            {
                Ok(_) => tracing::info!(?promote, "promoted caught-up learners to voters"),
                Err(e) => {
                    // Another change is still being committed, or the core no longer
                    // leads while the metrics still say it does. openraft publishes its
                    // metrics as it refuses, so waiting for the next change would ask
                    // again at once, for as long as that lasts: a busy loop (the
                    // simulation's seed 1015 spun so on a change in progress, seed 50 on
                    // "has to forward request to: None"). Look again after a tick.
                    if !raced(&e) {
                        tracing::warn!(error = %e, "promoting learners");
                    }
                    tokio::time::sleep(PROMOTE_TICK).await;
                    continue;
                }
            }
        }
        let changed = tokio::time::timeout(
            PROMOTE_TICK,
            openraft::async_runtime::WatchReceiver::changed(&mut server),
        )
        .await;
        if let Ok(Err(_)) = changed {
            return; // openraft stopped
        }
    }
}

/// On a leader (`id`) with other voters: hands leadership to the voter that has replicated
/// the most and waits (up to an election timeout) until it leads, as etcd does on a
/// graceful stop, so that the cluster does not sit out an election timeout first.
pub(crate) async fn hand_over_leadership(raft: &Raft, id: NodeId, election_timeout: Duration) {
    let target = {
        let metrics = raft.metrics();
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
    if raft.trigger().transfer_leader(target).await.is_err() {
        return;
    }
    let moved = raft
        .wait(Some(election_timeout))
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

/// On the leader (`id`): hands leadership to the voter `target` and waits up to
/// `timeout` until it leads (etcd's MoveLeader). Moving it to the leader itself is done
/// at once, as etcd answers.
pub(crate) async fn move_leader(
    raft: &Raft,
    id: NodeId,
    target: NodeId,
    timeout: Duration,
) -> Result<(), crate::MoveLeaderError> {
    use crate::MoveLeaderError;
    {
        let metrics = raft.metrics();
        let m = metrics.borrow_watched();
        if m.current_leader != Some(id) {
            return Err(MoveLeaderError::NotLeader);
        }
        if !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == target)
        {
            return Err(MoveLeaderError::BadTransferee);
        }
    }
    if target == id {
        return Ok(());
    }
    raft.trigger()
        .transfer_leader(target)
        .await
        .map_err(|_| MoveLeaderError::Stopped)?;
    match raft
        .wait(Some(timeout))
        .metrics(|m| m.current_leader == Some(target), "leadership moved")
        .await
    {
        Ok(_) => Ok(()),
        Err(openraft::metrics::WaitError::ShuttingDown) => Err(MoveLeaderError::Stopped),
        Err(_) => Err(MoveLeaderError::Timeout),
    }
}

/// etcd's check before a promotion: a member the leader replicates to must have 90% of
/// the leader's log (etcd's `readyPercent`); one it does not replicate to (the leader
/// itself, an unknown id) is left to the plan's checks.
fn learner_ready(
    m: &openraft::RaftMetrics<crate::types::TypeConfig>,
    id: NodeId,
) -> Result<(), MembershipError> {
    let Some(matched) = m.replication.as_ref().and_then(|r| r.get(&id)) else {
        return Ok(());
    };
    let learner = matched.as_ref().map_or(0, |l| l.index);
    let leader = m.last_log_index.unwrap_or(0);
    // Integer form of learner < leader * 0.9.
    if learner.saturating_mul(10) < leader.saturating_mul(9) {
        return Err(MembershipError::LearnerNotReady);
    }
    Ok(())
}

/// The learners whose replication is within [`PROMOTE_LAG`] of the leader's log, but
/// for one added as a learner, which waits for its promotion.
fn caught_up_learners(
    m: &openraft::RaftMetrics<crate::types::TypeConfig>,
    membership: &openraft::Membership<NodeId, Member>,
) -> BTreeSet<NodeId> {
    let Some(replication) = m.replication.as_ref() else {
        return BTreeSet::new();
    };
    // Only from a settled, uniform config: a joint one is still being changed.
    if membership.get_joint_config().len() != 1 {
        return BTreeSet::new();
    }
    let last = m.last_log_index.unwrap_or(0);
    membership
        .learner_ids()
        .filter(|id| membership.get_node(id).is_some_and(|n| !n.learner))
        .filter(|id| {
            replication
                .get(id)
                .and_then(|matched| matched.as_ref())
                .is_some_and(|l| l.index + PROMOTE_LAG >= last)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(voters: &[u64], learners: &[u64]) -> openraft::Membership<NodeId, Member> {
        let nodes: BTreeMap<NodeId, Member> = voters
            .iter()
            .chain(learners)
            .map(|id| {
                (
                    *id,
                    Member::with_peer_urls(vec![format!("http://127.0.0.1:{id}")]),
                )
            })
            .collect();
        openraft::Membership::new(vec![voters.iter().copied().collect()], nodes).unwrap()
    }

    #[test]
    fn adding_refuses_a_taken_id_or_peer_url() {
        let m = membership(&[1, 2], &[]);
        let add = |id, url: &str| MemberChange::Add {
            id,
            peer_urls: vec![url.into()],
            learner: false,
        };
        assert_eq!(
            plan(&add(1, "http://x"), &m).unwrap_err(),
            MembershipError::IdExists
        );
        assert_eq!(
            plan(&add(3, "http://127.0.0.1:2"), &m).unwrap_err(),
            MembershipError::PeerUrlExists
        );
        assert!(matches!(
            plan(&add(3, "http://127.0.0.1:3"), &m),
            Ok(Some(ChangeMembers::AddNodes(_)))
        ));
    }

    #[test]
    fn one_learner_at_a_time_and_only_a_learner_is_promoted() {
        let mut m = membership(&[1], &[]);
        let add = |id, learner| MemberChange::Add {
            id,
            peer_urls: vec![format!("http://127.0.0.1:{id}")],
            learner,
        };
        let Ok(Some(ChangeMembers::AddNodes(nodes))) = plan(&add(2, true), &m) else {
            panic!("a learner is added as a node");
        };
        assert!(nodes[&2].learner);
        let mut all: BTreeMap<NodeId, Member> = m.nodes().map(|(id, n)| (*id, n.clone())).collect();
        all.extend(nodes);
        m = openraft::Membership::new(vec![BTreeSet::from([1])], all).unwrap();
        assert_eq!(
            plan(&add(3, true), &m).unwrap_err(),
            MembershipError::TooManyLearners
        );
        assert!(plan(&add(3, false), &m).is_ok(), "a voter may still join");
        let promote = |id| plan(&MemberChange::Promote { id }, &m);
        assert_eq!(promote(1).unwrap_err(), MembershipError::NotLearner);
        assert_eq!(promote(9).unwrap_err(), MembershipError::IdNotFound);
        let Ok(Some(ChangeMembers::SetNodes(nodes))) = promote(2) else {
            panic!("a promotion clears the learner mark");
        };
        assert!(!nodes[&2].learner);
    }

    #[test]
    fn removing_a_voter_a_learner_or_nobody() {
        let m = membership(&[1, 2], &[3]);
        let remove = |id| plan(&MemberChange::Remove { id }, &m);
        assert!(matches!(
            remove(1),
            Ok(Some(ChangeMembers::RemoveVoters(_)))
        ));
        assert!(matches!(remove(3), Ok(Some(ChangeMembers::RemoveNodes(_)))));
        assert_eq!(remove(9).unwrap_err(), MembershipError::IdNotFound);
        let alone = membership(&[1], &[]);
        assert_eq!(
            plan(&MemberChange::Remove { id: 1 }, &alone).unwrap_err(),
            MembershipError::LastVoter
        );
    }

    #[test]
    fn updating_or_publishing_again_is_written_as_etcd_writes_it() {
        let m = membership(&[1, 2], &[]);
        let same = MemberChange::Update {
            id: 1,
            peer_urls: vec!["http://127.0.0.1:1".into()],
        };
        // Unchanged URLs are still a write of the raft attributes, counted.
        let Ok(Some(ChangeMembers::SetNodes(nodes))) = plan(&same, &m) else {
            panic!("an update is always planned");
        };
        assert_eq!(nodes[&1].updated, 1);
        let mut all: BTreeMap<NodeId, Member> = m.nodes().map(|(id, n)| (*id, n.clone())).collect();
        all.extend(nodes);
        let after = openraft::Membership::new(vec![BTreeSet::from([1, 2])], all).unwrap();
        let writes = cluster_writes(&m, &after, true);
        assert_eq!(writes, vec![beacon_store::ClusterWrite::MemberUpdated(1)]);
        let taken = MemberChange::Update {
            id: 1,
            peer_urls: vec!["http://127.0.0.1:2".into()],
        };
        assert_eq!(
            plan(&taken, &m).unwrap_err(),
            MembershipError::PeerUrlExists
        );
        let publish = MemberChange::Publish {
            id: 2,
            name: "b".into(),
            client_urls: vec!["http://127.0.0.1:9".into()],
        };
        assert!(matches!(
            plan(&publish, &m),
            Ok(Some(ChangeMembers::SetNodes(_)))
        ));
    }
}
