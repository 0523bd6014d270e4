//! Where the proxy's endpoints come from: the members' own list, asked of the known
//! peer URLs (peer `GET /members`, etcd's `GetClusterFromRemotePeers`) at start and
//! every `--proxy-refresh-interval`. Each answer replaces the endpoints with the
//! members' client URLs and the known peer URLs with theirs, which go to the cluster
//! file. A refresh that no peer answers leaves the proxy with no endpoint, as etcd's.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon_raft::peer::{fetch_members, ListedMember, PeerHttp};
use tokio::sync::watch;

use super::cluster_file;
use super::director::{random_seed, Director};
use crate::limits::{
    PROXY_MEMBERS_FETCH_TIMEOUT, PROXY_REFRESH_INTERVAL_SLOW,
    PROXY_REFRESH_INTERVAL_WITHOUT_ENDPOINTS,
};

/// Asks the peers for the cluster and keeps the cluster file.
pub struct Refresher {
    http: PeerHttp,
    peer_urls: Mutex<Vec<String>>,
    file: PathBuf,
}

impl Refresher {
    /// Starts from `peer_urls`, keeping them in the cluster file `file`.
    pub fn new(http: PeerHttp, peer_urls: Vec<String>, file: PathBuf) -> Refresher {
        Refresher {
            http,
            peer_urls: Mutex::new(peer_urls),
            file,
        }
    }

    fn known(&self) -> Vec<String> {
        self.peer_urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The cluster's client URLs, sorted, after recording its peer URLs; none when no
    /// peer told the cluster (logged, as etcd's proxy logs it).
    pub async fn client_urls(&self) -> Vec<String> {
        let known = self.known();
        let members = match members_of(&self.http, &known).await {
            Ok(members) => members,
            Err(why) => {
                tracing::warn!(peer_urls = ?known, "proxy: {why}");
                return Vec::new();
            }
        };
        let (peer_urls, client_urls) = urls_of(&members);
        if let Err(e) = cluster_file::write(&self.file, &peer_urls) {
            tracing::warn!(file = %self.file.display(), "proxy: error on writing urls {e}");
            return client_urls;
        }
        if peer_urls != known {
            tracing::info!(
                "proxy: updated peer urls in cluster file from {known:?} to {peer_urls:?}"
            );
        }
        *self
            .peer_urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = peer_urls;
        client_urls
    }
}

/// The first member list a peer in `peer_urls` gives, in etcd's words when none does.
async fn members_of(http: &PeerHttp, peer_urls: &[String]) -> Result<Vec<ListedMember>, String> {
    for url in peer_urls {
        match fetch_members(http, url, PROXY_MEMBERS_FETCH_TIMEOUT).await {
            Ok((_, members)) if members.is_empty() => {
                return Err("failed to get raft cluster member(s) from the given URLs".into())
            }
            Ok((_, members)) => return Ok(members),
            Err(why) => tracing::warn!("proxy: could not get cluster response from {url}: {why}"),
        }
    }
    Err("could not retrieve cluster information from the given URLs".into())
}

/// Every member's peer URLs and client URLs, each sorted, as etcd's cluster lists them.
fn urls_of(members: &[ListedMember]) -> (Vec<String>, Vec<String>) {
    let mut peer: Vec<String> = members.iter().flat_map(|m| m.peer_urls.clone()).collect();
    let mut client: Vec<String> = members.iter().flat_map(|m| m.client_urls.clone()).collect();
    peer.sort();
    client.sort();
    (peer, client)
}

/// One refresh: the director's endpoints become the cluster's client URLs.
pub async fn refresh(director: &Director, refresher: &Refresher) {
    let urls = refresher.client_urls().await;
    director.set(&urls, random_seed());
}

/// How long to wait before the next refresh: the interval, or etcd's second while no
/// endpoint is available under a long interval.
fn next_wait(interval: Duration, available: usize) -> Duration {
    if interval >= PROXY_REFRESH_INTERVAL_SLOW && available == 0 {
        PROXY_REFRESH_INTERVAL_WITHOUT_ENDPOINTS
    } else {
        interval
    }
}

/// Refreshes every `interval` until `stop` turns true; logs the endpoints found once.
pub async fn run(
    director: Arc<Director>,
    refresher: Arc<Refresher>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut told = false;
    loop {
        let available = director.available(tokio::time::Instant::now());
        if !told && !available.is_empty() {
            told = true;
            tracing::info!("endpoints found {available:?}");
        }
        tokio::select! {
            () = tokio::time::sleep(next_wait(interval, available.len())) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        refresh(&director, &refresher).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(peer: &[&str], client: &[&str]) -> ListedMember {
        ListedMember {
            id: 1,
            peer_urls: peer.iter().map(|s| s.to_string()).collect(),
            name: "m".into(),
            client_urls: client.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn urls_are_every_members_sorted() {
        let members = [
            member(&["http://b:2380"], &["http://b:2379"]),
            member(&["http://a:2380"], &["http://a:2379", "http://a:4001"]),
            member(&["http://c:2380"], &[]),
        ];
        let (peer, client) = urls_of(&members);
        assert_eq!(peer, ["http://a:2380", "http://b:2380", "http://c:2380"]);
        assert_eq!(client, ["http://a:2379", "http://a:4001", "http://b:2379"]);
    }

    #[test]
    fn an_empty_list_is_asked_again_within_a_second_under_long_intervals() {
        let s = Duration::from_secs;
        assert_eq!(next_wait(s(30), 0), s(1));
        assert_eq!(next_wait(s(30), 2), s(30));
        assert_eq!(next_wait(s(5), 0), s(5));
    }
}
