//! Member and cluster ids, derived as etcd derives them, and the members as
//! `/v2/members` and `/v2/machines` show them.
//!
//! etcd names a bootstrapping member by the first 8 bytes (big-endian) of SHA-1 over
//! its sorted peer URLs and the cluster token, and the cluster by SHA-1 over the sorted
//! member ids. Using the same recipe makes Beacon's ids match etcd's for the same flags.

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Member id (also the Raft node id).
    pub id: u64,
    /// `--name`.
    pub name: String,
    /// Peer URLs, sorted.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty until the member publishes them.
    pub client_urls: Vec<String>,
    /// Added as a learner and not promoted yet (v3's `isLearner`; v2 does not show it).
    pub is_learner: bool,
}

/// The cluster as this member knows it at start: the ids, and the initial members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster id (`X-Etcd-Cluster-Id`).
    pub id: u64,
    /// This member's id.
    pub local_id: u64,
    /// This member's `--name`.
    pub local_name: String,
    /// The members of `--initial-cluster`, sorted by id as etcd lists them; the live
    /// list comes from consensus.
    pub members: Vec<Member>,
}

/// etcd's member id for a bootstrapping member.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    hashed_id(peer_urls, token, None)
}

/// etcd's id for a member added at runtime: the peer URLs and the time of the request
/// (`NewMember` with the v2 API's empty cluster name).
pub fn added_member_id(peer_urls: &[String], unix_secs: i64) -> u64 {
    hashed_id(peer_urls, "", Some(unix_secs))
}

fn hashed_id(peer_urls: &[String], token: &str, unix_secs: Option<i64>) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = sha1_smol::Sha1::new();
    for u in &urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    if let Some(secs) = unix_secs {
        h.update(secs.to_string().as_bytes());
    }
    first_u64(&h.digest().bytes())
}

/// etcd's cluster id: SHA-1 over the sorted member ids.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = sha1_smol::Sha1::new();
    for id in ids {
        h.update(&id.to_be_bytes());
    }
    first_u64(&h.digest().bytes())
}

fn first_u64(digest: &[u8; 20]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// How etcd prints an id: lower-case hex without padding (`types.ID.String`).
pub fn id_hex(id: u64) -> String {
    format!("{id:x}")
}

impl Cluster {
    /// Builds the cluster from `--initial-cluster` entries (`name`, peer URL), the
    /// token, and this member's name and advertised client URLs.
    pub fn bootstrap(
        initial: &[(String, String)],
        token: &str,
        local_name: &str,
        local_client_urls: &[String],
    ) -> Result<Cluster, String> {
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in initial {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        let mut members: Vec<Member> = names
            .iter()
            .map(|name| {
                let mut peer_urls: Vec<String> = initial
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, u)| u.clone())
                    .collect();
                peer_urls.sort();
                Member {
                    id: member_id(&peer_urls, token),
                    name: name.to_string(),
                    peer_urls,
                    client_urls: vec![],
                    is_learner: false,
                }
            })
            .collect();
        let local = members
            .iter_mut()
            .find(|m| m.name == local_name)
            .ok_or_else(|| {
                format!(
                    "couldn't find local name {local_name:?} in the initial cluster configuration"
                )
            })?;
        local.client_urls = local_client_urls.to_vec();
        let local_id = local.id;
        members.sort_by_key(|m| m.id);
        for pair in members.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(format!(
                    "members {} and {} have the same peer URLs",
                    pair[0].name, pair[1].name
                ));
            }
        }
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        Ok(Cluster {
            id: cluster_id(&ids),
            local_id,
            local_name: local_name.to_string(),
            members,
        })
    }
}

/// Every client URL of `members`, sorted (etcd's `ClientURLs`).
pub fn client_urls(members: &[Member]) -> Vec<String> {
    let mut urls: Vec<String> = members
        .iter()
        .flat_map(|m| m.client_urls.iter().cloned())
        .collect();
    urls.sort();
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcd_3_4_23() {
        // Observed on etcd 3.4.23: --name default, peer http://127.0.0.1:23800,
        // default token: member 2e1259d415f2a040, cluster 48276a8f75b6a87.
        let c = Cluster::bootstrap(
            &[("default".into(), "http://127.0.0.1:23800".into())],
            "etcd-cluster",
            "default",
            &["http://127.0.0.1:23790".into()],
        )
        .unwrap();
        assert_eq!(id_hex(c.local_id), "2e1259d415f2a040");
        assert_eq!(id_hex(c.id), "48276a8f75b6a87");
    }

    #[test]
    fn local_name_must_be_listed() {
        let e = Cluster::bootstrap(&[("a".into(), "http://127.0.0.1:1".into())], "t", "b", &[])
            .unwrap_err();
        assert!(e.contains("couldn't find local name"));
    }
}
