//! Who this member is: its member id and its cluster's id, fixed at its first start and
//! kept in the data directory, so that a restart keeps them whatever the flags say (as
//! etcd ignores `--initial-cluster*` once a data directory exists).
//!
//! A member of a new cluster derives both from `--initial-cluster`. A member added at
//! runtime (`--initial-cluster-state existing`) cannot: its id was drawn when it was
//! added, so it asks the running members for their list and finds itself by its peer
//! URLs, as etcd's `GetClusterFromRemotePeers` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::cluster::{id_hex, Cluster, Member};
use crate::config::Config;

/// The file, under the data directory.
const FILE: &str = "member/identity.json";
/// How long to wait for each running member's list.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// A member's ids, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// This member's id.
    #[serde(with = "hex_id")]
    pub member_id: u64,
    /// Its cluster's id.
    #[serde(with = "hex_id")]
    pub cluster_id: u64,
}

mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{id:x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The stored identity, if this data directory has one.
pub fn load(data_dir: &Path) -> anyhow::Result<Option<Identity>> {
    let path = path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not a valid identity file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Stores `identity` durably: a temporary file, synced, renamed into place, and the
/// directory synced, so that a crash leaves the old file or the new one.
pub fn store(data_dir: &Path, identity: &Identity) -> anyhow::Result<()> {
    let path = path(data_dir);
    let dir = path.parent().expect("the identity file lives in member/");
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec(identity).map_err(std::io::Error::other)?;
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// Finds this member in a running cluster: asks each other member of
/// `--initial-cluster` for its member list and picks the entry with this member's
/// advertised peer URLs.
pub async fn discover(
    config: &Config,
    net: Arc<dyn beacon_raft::peer::PeerNet>,
) -> anyhow::Result<Identity> {
    let mut own: Vec<String> = config.initial_advertise_peer_urls.clone();
    own.sort();
    let http = beacon_raft::peer::discovery_client_over(net);
    let mut failures = Vec::new();
    for (_, url) in config
        .initial_cluster
        .iter()
        .filter(|(_, u)| !own.contains(u))
    {
        match beacon_raft::peer::fetch_members(&http, url, FETCH_TIMEOUT).await {
            Ok((cluster_id, members)) => {
                let names: std::collections::BTreeSet<&str> = config
                    .initial_cluster
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect();
                if names.len() != members.len() {
                    anyhow::bail!(
                        "error validating peerURLs of cluster {}: member count is unequal \
                         (--initial-cluster has {}, the cluster {})",
                        id_hex(cluster_id),
                        names.len(),
                        members.len()
                    );
                }
                let found = members.iter().find(|m| {
                    let mut urls = m.peer_urls.clone();
                    urls.sort();
                    urls == own
                });
                let Some(found) = found else {
                    anyhow::bail!(
                        "member with peer URLs {own:?} has not been added to cluster {}: \
                         add it first (POST /v2/members, or `beaconctl member add`)",
                        id_hex(cluster_id)
                    );
                };
                return Ok(Identity {
                    member_id: found.id,
                    cluster_id,
                });
            }
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    anyhow::bail!(
        "could not retrieve cluster information from the given URLs ({})",
        failures.join("; ")
    )
}

/// The identity to run with: the stored one, else one derived from the flags (a new
/// cluster) or discovered from the running members (`existing`), stored for next time.
pub async fn resolve(
    config: &Config,
    bootstrap: &Cluster,
    net: Arc<dyn beacon_raft::peer::PeerNet>,
) -> anyhow::Result<Identity> {
    if let Some(identity) = load(&config.data_dir)? {
        return Ok(identity);
    }
    let identity = match config.initial_cluster_state {
        crate::config::ClusterState::New => Identity {
            member_id: bootstrap.local_id,
            cluster_id: bootstrap.id,
        },
        crate::config::ClusterState::Existing => discover(config, net).await?,
    };
    store(&config.data_dir, &identity)?;
    Ok(identity)
}

/// The members a new cluster starts with, as Raft records them: names and peer URLs,
/// identical on every member, which each publish their client URLs once running. A
/// single member is the only one to initialize, so it records its client URLs at once
/// and clients never see it unpublished.
pub fn initial_members(
    bootstrap: &Cluster,
) -> std::collections::BTreeMap<u64, beacon_raft::Member> {
    let alone = bootstrap.members.len() == 1;
    bootstrap
        .members
        .iter()
        .map(|m: &Member| {
            let mut record = beacon_raft::Member::with_peer_urls(m.peer_urls.clone());
            record.name = m.name.clone();
            if alone {
                record.client_urls = m.client_urls.clone();
            }
            (m.id, record)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_survives_a_round_trip_through_its_file() {
        let dir = std::env::temp_dir().join(format!("beacon-identity-{}", std::process::id()));
        let id = Identity {
            member_id: 0x2e1259d415f2a040,
            cluster_id: 0x48276a8f75b6a87,
        };
        assert_eq!(load(&dir).unwrap(), None);
        store(&dir, &id).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(id));
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(text.contains("2e1259d415f2a040"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
