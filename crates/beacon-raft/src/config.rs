//! How a node is set up: the data directory, the ids, the initial membership, and the
//! Raft timing and limits, which become openraft's settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use openraft::SnapshotPolicy;

use crate::types::{Member, NodeId};

/// How many log entries already in a snapshot stay in the log, like etcd's
/// `snapshotCatchUpEntries`, so a slightly lagging follower can catch up from the log.
const CATCH_UP_ENTRIES: u64 = 5000;

/// The most entries openraft puts in one append (`max_payload_entries`). 64 keeps a
/// busy leader's batches large enough for group commit, and bounds an append's body
/// (see `peer::append_bytes_max`).
pub(crate) const APPEND_ENTRIES_MAX: u64 = 64;

/// The default of `RaftConfig::proposal_bytes_max`: the client port's body limit
/// (beacon-server's `REQUEST_BODY_BYTES_MAX`, Go's 10 MiB form limit in etcd), which
/// the server passes in itself.
pub const PROPOSAL_BYTES_MAX_DEFAULT: usize = 10 << 20;

/// How a node is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// The data directory (`--data-dir`); the node uses `<data_dir>/member/{raft,snap}`.
    pub data_dir: PathBuf,
    /// etcd's `--wal-dir`: where the log database lives instead of
    /// `<data_dir>/member/raft` ([`RaftConfig::log_dir`]). The log database is
    /// Beacon's write-ahead log, and it holds the v3 keyspace's tables too.
    pub wal_dir: Option<PathBuf>,
    /// This member's id.
    pub node_id: u64,
    /// This member's peer URL, recorded in the membership.
    pub peer_url: String,
    /// Every member of the initial cluster (`--initial-cluster`) with its name and peer
    /// URLs, this one included. Used only when the data directory is fresh and
    /// `join_existing` is false.
    pub initial_members: BTreeMap<NodeId, Member>,
    /// `--initial-cluster-state existing`: this member was added to a running cluster
    /// and waits for the leader to send it the log, instead of bootstrapping one.
    pub join_existing: bool,
    /// The cluster id, which the peer API reports (`X-Etcd-Cluster-ID`).
    pub cluster_id: u64,
    /// Applied entries between snapshots (`--snapshot-count`).
    pub snapshot_count: u64,
    /// Leader heartbeat period in milliseconds (`--heartbeat-interval`).
    pub heartbeat_interval_ms: u64,
    /// Election timeout in milliseconds (`--election-timeout`).
    pub election_timeout_ms: u64,
    /// The most value bytes (value plus prevValue) a proposal forwarded by a peer may
    /// carry: the same limit the client port puts on a request body, so that a peer
    /// can forward nothing a client could not have sent.
    pub proposal_bytes_max: usize,
    /// `--force-new-cluster`: start over whatever the data directory holds, even when it
    /// misses entries this member knew committed (see `coverage`).
    pub force_new_cluster: bool,
    /// An entry whose apply takes longer is logged ("apply request took too long"):
    /// etcd's `--experimental-warning-apply-duration`, 100 ms by default.
    pub warning_apply_duration: std::time::Duration,
    /// etcd's `--initial-election-tick-advance` (on by default): a booting member's
    /// election timer starts all but a heartbeat into its timeout (`election::start`).
    pub initial_election_tick_advance: bool,
    /// etcd's `--pre-vote`: a voter whose election timeout passed asks whether it could
    /// win before it raises the term (`election`). On unless turned off: etcd 3.5's
    /// default (3.4's is off), so a member cut off and back does not depose a leader.
    pub pre_vote: bool,
    /// etcd's `--strict-reconfig-check`: refuse member changes that would cost the
    /// quorum (`reconfig`). Off in [`RaftConfig::new`], where tests and the simulation
    /// change members the moment a cluster forms; the `beacon` binary's flag, as etcd's,
    /// is on unless turned off.
    pub strict_reconfig_check: bool,
}

impl RaftConfig {
    /// A config with etcd's defaults: snapshot every 100000 entries, 100 ms heartbeat,
    /// 1000 ms election timeout.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        node_id: u64,
        peer_url: impl Into<String>,
    ) -> RaftConfig {
        let peer_url = peer_url.into();
        RaftConfig {
            data_dir: data_dir.into(),
            wal_dir: None,
            node_id,
            initial_members: BTreeMap::from([(
                node_id,
                Member::with_peer_urls(vec![peer_url.clone()]),
            )]),
            join_existing: false,
            cluster_id: 0,
            peer_url,
            snapshot_count: 100_000,
            heartbeat_interval_ms: 100,
            election_timeout_ms: 1000,
            proposal_bytes_max: PROPOSAL_BYTES_MAX_DEFAULT,
            force_new_cluster: false,
            warning_apply_duration: std::time::Duration::from_millis(100),
            initial_election_tick_advance: true,
            pre_vote: true,
            strict_reconfig_check: false,
        }
    }

    /// The log database's directory: `--wal-dir`, or `<data_dir>/member/raft`.
    pub fn log_dir(&self) -> PathBuf {
        self.wal_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("member").join("raft"))
    }

    /// The openraft settings these give (the simulation in beacon-sim runs with them too).
    pub fn openraft_config(&self) -> Result<openraft::Config, openraft::ConfigError> {
        let snapshot_count = self.snapshot_count.max(1);
        openraft::Config {
            cluster_name: "beacon".to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            // When a follower campaigns is the node's own timer's to decide (`election.rs`:
            // etcd's draw, made afresh every term), so openraft's is off.
            enable_elect: false,
            // What remains of these is the vote lease (`election_timeout_max`): how long
            // after hearing its leader a voter refuses a candidate. The timer campaigns
            // t - h after its last message at the earliest, as etcd's ticks do; t - 2h
            // leaves a heartbeat's slack to a candidate that heard the leader a little
            // before the voter did. min only has to lie between h and max.
            election_timeout_min: self.heartbeat_interval_ms + 1,
            election_timeout_max: self
                .election_timeout_ms
                .saturating_sub(2 * self.heartbeat_interval_ms)
                .max(self.heartbeat_interval_ms + 2),
            // Only openraft's own timer reads this, and it is off; `election` asks for
            // a pre-vote round or not itself. Kept in step all the same.
            enable_pre_vote: Some(self.pre_vote),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_count),
            max_in_snapshot_log_to_keep: CATCH_UP_ENTRIES.min(snapshot_count),
            // Bounds an append message (see peer::append_bytes_max): entries hold at most
            // one request each, itself bounded like a client's.
            max_payload_entries: APPEND_ENTRIES_MAX,
            // Purging only ever happens behind a snapshot, so purge as soon as one lands.
            purge_batch_size: 1,
            // The store is in memory: a restarted node must win an election (and so learn
            // the commit index) before it serves as leader again.
            enable_leader_restore: Some(false),
            ..Default::default()
        }
        .validate()
    }

    /// How long `open` waits for this node to lead a single-member cluster.
    pub(crate) fn leader_deadline(&self) -> Duration {
        Duration::from_millis(self.election_timeout_ms.saturating_mul(10).max(5000))
    }
}
