//! etcd's `--strict-reconfig-check` (on by default in etcd): the checks its server makes
//! before proposing a member change (`mayAddMember`, `mayRemoveMember`,
//! `mayPromoteMember`), so that a change asked of a cluster with members down is
//! refused rather than costing the quorum.
//!
//! etcd counts a member as *started* once it has published its name, and as
//! *connected* when its transport has talked to it without a failure for the last 5 s
//! (`HealthInterval`, rafthttp's `ActiveSince`). Beacon makes the change on the leader
//! (a follower forwards it), so the leader's view stands for the cluster's: a peer is
//! connected since the first of an unbroken run of appends (heartbeats included) it
//! answered, as the leader's peer client records them (`peer::PeerStats`); a failed
//! append ends the run, and a run counts only once this leadership has heard from the
//! peer (openraft's heartbeat metrics), since a follower sends no appends to notice a
//! peer die. A newly started cluster's leader has no such run yet and refuses for its
//! first 5 s, as a freshly started etcd member does.
//!
//! The checks are a pure function of the membership, this member's id, each peer's
//! connection time and the clock, tested without a network.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::MembershipError;
use crate::types::{Member, MemberChange, NodeId};

/// etcd's `HealthInterval`: how long a member must have been connected to count.
pub(crate) const CONNECTED_FOR: Duration = Duration::from_secs(5);

/// Whether `change` may be made now, by etcd's rules; `me` is the member deciding,
/// `connected_since` when each peer's current unbroken run of answers began.
pub(crate) fn check(
    change: &MemberChange,
    membership: &openraft::Membership<NodeId, Member>,
    me: NodeId,
    connected_since: impl Fn(NodeId) -> Option<Instant>,
    now: Instant,
) -> Result<(), MembershipError> {
    // etcd's voting members: everyone but its learners (a member Beacon added through
    // v2 votes in etcd's eyes while openraft still catches it up).
    let voting: Vec<(NodeId, &Member)> = membership
        .nodes()
        .filter(|(_, m)| !m.learner)
        .map(|(id, m)| (*id, m))
        .collect();
    let started = |m: &Member| !m.name.is_empty();
    let connected = |id: NodeId| {
        id == me || connected_since(id).is_some_and(|since| since + CONNECTED_FOR <= now)
    };
    match change {
        MemberChange::Add { learner, .. } => {
            let members = voting.len() + 1;
            let started = voting.iter().filter(|(_, m)| started(m)).count();
            // etcd lets a one-member cluster grow to two (its restore procedure).
            let restoring = started == 1 && members == 2;
            if !learner && !restoring && started < members / 2 + 1 {
                return Err(MembershipError::NotEnoughStartedMembers);
            }
            // A learner too: etcd checks the connections whatever is added.
            if !voting.iter().all(|(id, _)| connected(*id)) {
                return Err(MembershipError::Unhealthy);
            }
            Ok(())
        }
        MemberChange::Remove { id } => {
            if membership.get_node(id).is_some_and(|m| m.learner) {
                return Ok(());
            }
            let others: Vec<&Member> = voting
                .iter()
                .filter(|(v, _)| v != id)
                .map(|(_, m)| *m)
                .collect();
            let started = others.iter().filter(|m| started(m)).count();
            if started < others.len() / 2 + 1 {
                return Err(MembershipError::NotEnoughStartedMembers);
            }
            // A member that is down now is not part of the active quorum.
            if *id != me && connected_since(*id).is_none() {
                return Ok(());
            }
            let active = voting.iter().filter(|(v, _)| connected(*v)).count();
            if active.saturating_sub(1) < 1 + voting.len().saturating_sub(1) / 2 {
                return Err(MembershipError::Unhealthy);
            }
            Ok(())
        }
        MemberChange::Promote { .. } => {
            // The learner counts, as started, toward the quorum it will join.
            let members = voting.len() + 1;
            let started = voting.iter().filter(|(_, m)| started(m)).count() + 1;
            if started < members / 2 + 1 {
                return Err(MembershipError::NotEnoughStartedMembers);
            }
            Ok(())
        }
        MemberChange::Update { .. } | MemberChange::Publish { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// Members 1..=n, all published voters but those in `unnamed`, and `learners`.
    fn membership(
        n: u64,
        unnamed: &[u64],
        learners: &[u64],
    ) -> openraft::Membership<NodeId, Member> {
        let nodes: BTreeMap<NodeId, Member> = (1..=n)
            .chain(learners.iter().copied())
            .map(|id| {
                let mut m = Member::with_peer_urls(vec![format!("http://127.0.0.1:{id}")]);
                if !unnamed.contains(&id) {
                    m.name = format!("m{id}");
                }
                m.learner = learners.contains(&id);
                (id, m)
            })
            .collect();
        let voters: BTreeSet<NodeId> = (1..=n).collect();
        openraft::Membership::new(vec![voters], nodes).expect("every voter has a record")
    }

    fn add() -> MemberChange {
        MemberChange::Add {
            id: 99,
            peer_urls: vec!["http://127.0.0.1:99".into()],
            learner: false,
        }
    }

    /// Every peer but `down` connected since `for_` before now.
    fn check_with(
        change: &MemberChange,
        m: &openraft::Membership<NodeId, Member>,
        down: &[u64],
        for_: Duration,
    ) -> Result<(), MembershipError> {
        let now = Instant::now() + Duration::from_secs(60);
        let since = |id: NodeId| (!down.contains(&id)).then(|| now - for_);
        check(change, m, 1, since, now)
    }

    #[test]
    fn an_add_needs_every_voter_connected_for_5_s() {
        let m = membership(3, &[], &[]);
        assert!(check_with(&add(), &m, &[], CONNECTED_FOR).is_ok());
        let unhealthy = check_with(&add(), &m, &[3], CONNECTED_FOR);
        assert!(matches!(unhealthy, Err(MembershipError::Unhealthy)));
        let fresh = check_with(&add(), &m, &[], Duration::from_secs(4));
        assert!(matches!(fresh, Err(MembershipError::Unhealthy)));
        let learner = MemberChange::Add {
            id: 99,
            peer_urls: vec![],
            learner: true,
        };
        let refused = check_with(&learner, &m, &[3], CONNECTED_FOR);
        assert!(matches!(refused, Err(MembershipError::Unhealthy)));
        // A learner needs no quorum of started members.
        let m = membership(3, &[2, 3], &[]);
        assert!(check_with(&learner, &m, &[], CONNECTED_FOR).is_ok());
    }

    #[test]
    fn an_add_needs_a_quorum_of_started_members() {
        let m = membership(3, &[2, 3], &[]);
        let refused = check_with(&add(), &m, &[], CONNECTED_FOR);
        assert!(matches!(
            refused,
            Err(MembershipError::NotEnoughStartedMembers)
        ));
        // etcd's restore procedure: one started member may take a second.
        assert!(check_with(&add(), &membership(1, &[], &[]), &[], CONNECTED_FOR).is_ok());
    }

    #[test]
    fn a_remove_that_would_lose_the_active_quorum_is_refused() {
        let m = membership(3, &[], &[]);
        let up = MemberChange::Remove { id: 2 };
        let refused = check_with(&up, &m, &[3], CONNECTED_FOR);
        assert!(matches!(refused, Err(MembershipError::Unhealthy)));
        // The member that is down may go, and anyone may when all are up.
        let down = MemberChange::Remove { id: 3 };
        assert!(check_with(&down, &m, &[3], CONNECTED_FOR).is_ok());
        assert!(check_with(&up, &m, &[], CONNECTED_FOR).is_ok());
        // A learner always may.
        let m = membership(3, &[], &[7]);
        let learner = MemberChange::Remove { id: 7 };
        assert!(check_with(&learner, &m, &[2, 3], Duration::ZERO).is_ok());
    }

    #[test]
    fn a_promotion_counts_the_learner_as_started() {
        let promote = MemberChange::Promote { id: 7 };
        let m = membership(3, &[3], &[7]);
        assert!(check_with(&promote, &m, &[], CONNECTED_FOR).is_ok());
        let m = membership(3, &[2, 3], &[7]);
        let refused = check_with(&promote, &m, &[], CONNECTED_FOR);
        assert!(matches!(
            refused,
            Err(MembershipError::NotEnoughStartedMembers)
        ));
    }
}
