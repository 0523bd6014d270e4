//! etcd's corruption checks, which compare members' hashes of the v3 keyspace (HashKV,
//! read from each peer's `/members/hashkv`):
//! - `--experimental-initial-corrupt-check`: a member that restarts on a data
//!   directory it had asks every peer for its hash at this member's revision before it
//!   serves; a peer at the same compact revision with another hash means this member's
//!   data is not the cluster's, and it stops ("found data inconsistency with peers").
//! - `--experimental-corrupt-check-time`: every so often the leader compares its hash
//!   with the followers' and raises the CORRUPT alarm for a member that disagrees, which
//!   stops every write (`beacon_mvcc::alarm`) until an operator disarms it.
//!
//! What the answers mean is [`initial_mismatches`] and [`periodic_verdict`], without a
//! network; asking is the rest.

use std::sync::Arc;
use std::time::Duration;

use beacon_raft::peer::{fetch_hash_kv, PeerHashKv, PeerHttp};
use tokio::sync::watch;

use crate::cluster::{id_hex, Cluster, Member};
use crate::consensus::Consensus;
use crate::state::AppState;

/// One peer's answer: its hash, or why it gave none (a network failure, or the
/// keyspace's refusal: a compacted or future revision).
pub type Answer = (u64, Result<PeerHashKv, String>);

/// The initial check: how many peers hold, at the same compact revision, another hash
/// than `local` (this member's, at its current revision). Each finding is logged in
/// etcd's words.
pub fn initial_mismatches(local_id: u64, local: PeerHashKv, peers: &[Answer]) -> usize {
    let mut mismatches = 0;
    for (peer, answer) in peers {
        match answer {
            Ok(theirs) if theirs.hash == local.hash => {}
            Ok(theirs) if theirs.compact_revision == local.compact_revision => {
                tracing::error!(
                    "{}'s hash {} != {}'s hash {} (revision {}, peer revision {}, compact \
                     revision {})",
                    id_hex(local_id),
                    local.hash,
                    id_hex(*peer),
                    theirs.hash,
                    local.revision,
                    theirs.revision,
                    local.compact_revision
                );
                mismatches += 1;
            }
            Ok(theirs) => tracing::warn!(
                "{} cannot check hash of peer({}): peer has a different compact revision \
                 {} (revision: {})",
                id_hex(local_id),
                id_hex(*peer),
                theirs.compact_revision,
                local.revision
            ),
            Err(why) => tracing::warn!(
                "{} cannot check the hash of peer({}): {why}",
                id_hex(local_id),
                id_hex(*peer)
            ),
        }
    }
    mismatches
}

/// The periodic check on the leader, etcd's `checkHashKV`: `before` is the leader's
/// hash when it asked, `after` its hash once a ReadIndex confirmed it leads. The
/// member to raise CORRUPT for, if any (etcd raises one alarm a check): the leader
/// itself when its own hash changed at the same revisions; else the first follower
/// that is ahead of it, compacted past it, or holds another hash at the compact
/// revision the leader had when it asked.
pub fn periodic_verdict(
    leader_id: u64,
    before: PeerHashKv,
    after: PeerHashKv,
    peers: &[(u64, PeerHashKv)],
) -> Option<u64> {
    let same_point =
        after.revision == before.revision && after.compact_revision == before.compact_revision;
    if after.hash != before.hash && same_point {
        tracing::warn!(
            "found hash mismatch (leader {}, revision {}, compact revision {})",
            id_hex(leader_id),
            before.revision,
            before.compact_revision
        );
        return Some(leader_id);
    }
    for (peer, theirs) in peers {
        let why = if theirs.revision > after.revision {
            "revision from follower must be less than or equal to leader's"
        } else if theirs.compact_revision > after.compact_revision {
            "compact revision from follower must be less than or equal to leader's"
        } else if theirs.compact_revision == before.compact_revision && theirs.hash != before.hash {
            "same compact revision then hashes must match"
        } else {
            continue;
        };
        tracing::warn!(follower = %id_hex(*peer), "{why}");
        return Some(*peer);
    }
    None
}

/// Asks every member of `members` but `local_id` for its hash at `revision`, trying
/// each of its peer URLs until one answers.
async fn ask_peers(
    http: &PeerHttp,
    members: &[Member],
    local_id: u64,
    cluster_id: u64,
    revision: i64,
    timeout: Duration,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    for member in members.iter().filter(|m| m.id != local_id) {
        let mut answer = Err("no peer URL".to_string());
        for url in &member.peer_urls {
            answer = fetch_hash_kv(http, url, cluster_id, revision, timeout).await;
            if answer.is_ok() {
                break;
            }
        }
        answers.push((member.id, answer));
    }
    answers
}

/// This member's hash at its current revision.
fn local_hash(consensus: &dyn Consensus) -> Result<PeerHashKv, String> {
    let mvcc = consensus
        .mvcc()
        .read()
        .map_err(|_| "the v3 keyspace failed".to_string())?;
    PeerHashKv::of(&mvcc, 0)
}

/// The initial check, on a member that restarted on its own data: `Err` (etcd's
/// words) when a peer disagrees. Peers that cannot answer are logged and skipped.
pub async fn check_initial(
    consensus: &dyn Consensus,
    cluster: &Cluster,
    timeout: Duration,
    http: &PeerHttp,
) -> Result<(), String> {
    let local_id = cluster.local_id;
    tracing::info!(
        member = %id_hex(local_id),
        ?timeout,
        "starting initial corruption check"
    );
    let local = local_hash(consensus)
        .map_err(|e| format!("{} failed to fetch hash ({e})", id_hex(local_id)))?;
    let members = consensus.members();
    let peers = ask_peers(
        http,
        &members,
        local_id,
        cluster.id,
        local.revision,
        timeout,
    )
    .await;
    if initial_mismatches(local_id, local, &peers) > 0 {
        return Err(format!(
            "{} found data inconsistency with peers",
            id_hex(local_id)
        ));
    }
    tracing::info!(
        member = %id_hex(local_id),
        "initial corruption checking passed; no corruption"
    );
    Ok(())
}

/// The periodic check, every `interval` while this member leads, until `shutdown`.
pub async fn run_periodic(
    state: Arc<AppState>,
    http: PeerHttp,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(interval = ?interval, "enabled corruption checking");
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        if !state.status().is_leader() {
            continue;
        }
        if let Err(why) = check_once(&state, &http).await {
            tracing::warn!("failed to check hash KV: {why}");
        }
    }
}

/// One periodic check: hashes, a ReadIndex, the verdict, and the alarm if any.
async fn check_once(state: &AppState, http: &PeerHttp) -> Result<(), String> {
    let leader_id = state.cluster.local_id;
    let before = local_hash(state.consensus.as_ref())?;
    let members = state.consensus.members();
    let answers = ask_peers(
        http,
        &members,
        leader_id,
        state.cluster.id,
        before.revision,
        state.request_timeout,
    )
    .await;
    // Still the leader, with everything committed before the question applied.
    if !state.consensus.read_index(state.request_timeout).await {
        return Err("this member could not confirm it leads".to_string());
    }
    let after = local_hash(state.consensus.as_ref())?;
    let peers: Vec<(u64, PeerHashKv)> = answers
        .into_iter()
        .filter_map(|(id, answer)| answer.ok().map(|a| (id, a)))
        .collect();
    if let Some(member) = periodic_verdict(leader_id, before, after, &peers) {
        crate::grpc::maintenance::raise_corrupt(state, member)
            .await
            .map_err(|s| s.message().to_string())?;
    }
    tracing::info!(
        "finished peer corruption check (number-of-peers-checked: {})",
        peers.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(revision: i64, compact_revision: i64, hash: u32) -> PeerHashKv {
        PeerHashKv {
            revision,
            compact_revision,
            hash,
        }
    }

    #[test]
    fn a_peer_with_another_hash_at_the_same_compaction_is_a_mismatch() {
        let local = hash(6, 0, 7);
        let peers = [
            (2, Ok(hash(6, 0, 7))),
            (3, Ok(hash(9, 0, 8))),
            (4, Ok(hash(6, 5, 8))),
            (
                5,
                Err("mvcc: required revision is a future revision".to_string()),
            ),
        ];
        // Only member 3: 4 compacted elsewhere, 5 is behind.
        assert_eq!(initial_mismatches(1, local, &peers), 1);
        assert_eq!(initial_mismatches(1, local, &peers[..1]), 0);
        assert_eq!(initial_mismatches(1, local, &[]), 0);
    }

    #[test]
    fn the_periodic_check_names_the_member_that_disagrees() {
        let leader = hash(10, 2, 7);
        // Everyone agrees, or lags behind at an older compaction.
        let fine = [(2, hash(10, 2, 7)), (3, hash(9, 1, 99))];
        assert_eq!(periodic_verdict(1, leader, leader, &fine), None);
        // A follower ahead of its leader, or compacted past it, or with another hash.
        assert_eq!(
            periodic_verdict(1, leader, leader, &[(2, hash(11, 2, 7))]),
            Some(2)
        );
        assert_eq!(
            periodic_verdict(1, leader, leader, &[(3, hash(10, 3, 7))]),
            Some(3)
        );
        let two_bad = [(2, hash(10, 2, 8)), (3, hash(10, 2, 9))];
        assert_eq!(periodic_verdict(1, leader, leader, &two_bad), Some(2));
        // The leader's own hash moved while nothing else did.
        assert_eq!(periodic_verdict(1, leader, hash(10, 2, 8), &fine), Some(1));
        // A write in between moves the hash legitimately.
        assert_eq!(periodic_verdict(1, leader, hash(11, 2, 8), &fine), None);
    }
}
