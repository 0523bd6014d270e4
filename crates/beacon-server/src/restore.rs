//! `beaconctl snapshot restore`: a new member's data directory out of a backup, with
//! `etcdctl snapshot restore`'s flags. As etcd's restore, it starts a NEW cluster: the
//! member and cluster ids are derived from `--initial-cluster` and its token as a new
//! cluster's are (so `beacon` started with the same flags agrees), the keyspace and its
//! leases are the backup's, and the v2 store starts empty (etcd 3.4 keeps no v2 data:
//! its restore rebuilds the v2 store with the new members alone).
//!
//! The directory holds the new cluster's first snapshot (`beacon_raft::backup`), which
//! lists every member as a voter, and this member's identity file; `beacon` then starts
//! on it as on a restarted member's, and the members elect a leader among themselves.

use std::path::PathBuf;

use beacon_raft::backup::Backup;

use crate::cluster::{id_hex, Cluster};
use crate::identity::{self, Identity};

/// `etcdctl snapshot restore`'s cluster flags, as given.
#[derive(Debug, Clone)]
pub struct RestoreFlags {
    /// `--name`: this member's name in `initial_cluster`.
    pub name: String,
    /// `--initial-cluster`: `name=peerURL,...`.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls`: must be this member's in `initial_cluster`.
    pub initial_advertise_peer_urls: String,
    /// `--data-dir`: created; must not exist.
    pub data_dir: PathBuf,
}

/// What a restore made.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The new member's id.
    pub member_id: u64,
    /// The new cluster's id.
    pub cluster_id: u64,
    /// The snapshot file written.
    pub snapshot: PathBuf,
}

/// Why a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A flag does not parse or does not fit the others.
    #[error("{0}")]
    Flags(String),
    /// Writing the data directory failed.
    #[error(transparent)]
    Write(#[from] beacon_raft::backup::RestoreError),
    /// Writing the identity file failed.
    #[error("{0}")]
    Identity(String),
}

/// Restores `backup` into `flags.data_dir` as member `flags.name` of a new cluster.
pub fn restore(backup: &Backup, flags: &RestoreFlags) -> Result<Restored, RestoreError> {
    let initial = crate::config::parse_initial_cluster(&flags.initial_cluster)
        .map_err(RestoreError::Flags)?;
    let mut own: Vec<String> = crate::urls::parse_list(
        "initial-advertise-peer-urls",
        &flags.initial_advertise_peer_urls,
    )
    .map_err(RestoreError::Flags)?
    .into_iter()
    .map(|u| u.text)
    .collect();
    let cluster = Cluster::bootstrap(&initial, &flags.initial_cluster_token, &flags.name, &[])
        .map_err(RestoreError::Flags)?;
    // etcd checks the advertised peer URLs against the member's entry, as a start does.
    own.sort();
    let listed = cluster
        .members
        .iter()
        .find(|m| m.id == cluster.local_id)
        .map(|m| m.peer_urls.clone())
        .unwrap_or_default();
    if own != listed {
        return Err(RestoreError::Flags(format!(
            "--initial-cluster has {}={listed:?} but --initial-advertise-peer-urls is {own:?}",
            flags.name
        )));
    }
    let snapshot = backup.restore(&flags.data_dir, identity::initial_members(&cluster))?;
    let ids = Identity {
        member_id: cluster.local_id,
        cluster_id: cluster.id,
    };
    identity::store(&flags.data_dir, &ids).map_err(|e| RestoreError::Identity(format!("{e:#}")))?;
    tracing::info!(
        member_id = %id_hex(ids.member_id),
        cluster_id = %id_hex(ids.cluster_id),
        path = %snapshot.display(),
        "restored a snapshot into a new member's data directory"
    );
    Ok(Restored {
        member_id: ids.member_id,
        cluster_id: ids.cluster_id,
        snapshot,
    })
}
