//! How a new member learns its first cluster: `--initial-cluster` as given, from etcd's
//! discovery service (`--discovery`, asked through `--discovery-proxy` if given), or
//! from DNS SRV records (`--discovery-srv`). A member that restarts on its own data
//! knows its cluster already.

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::config::{self, Config};
use crate::{discovery, discovery_proxy, discovery_srv};

/// What a member bootstraps with.
#[derive(Debug)]
pub struct Initial {
    /// Its `--initial-cluster`.
    pub cluster: Vec<(String, String)>,
    /// The name its peers' certificates are checked against instead of the hosts it
    /// dials: with SRV records of https peers and no `--peer-trusted-ca-file`, etcd
    /// checks them against the `--discovery-srv` domain (a certificate for the domain,
    /// from a public CA, serves every member). Only when DNS was asked: a restarted
    /// member checks the hosts, as etcd's does.
    pub peer_server_name: Option<String>,
}

/// What this member bootstraps with; `None` when the discovery cluster is full and
/// `--discovery-fallback=proxy` (etcd's default) says to become its v2 proxy.
pub async fn initial_cluster(config: &Config, restarted: bool) -> anyhow::Result<Option<Initial>> {
    let given = |cluster| Initial {
        cluster,
        peer_server_name: None,
    };
    match (&config.discovery, &config.discovery_srv) {
        (Some(url), _)
            if config.initial_cluster_state == config::ClusterState::New && !restarted =>
        {
            discover(config, url).await.map(|found| found.map(given))
        }
        // etcd asks DNS whenever the member has no data yet, whatever the cluster state.
        (_, Some(srv)) if !restarted => {
            let cluster = discovery_srv::initial_cluster_of(config, srv)
                .await
                .map_err(anyhow::Error::msg)?;
            let https = cluster.iter().any(|(_, url)| url.starts_with("https://"));
            let no_ca = config.tls.peer.trusted_ca_file.is_none();
            Ok(Some(Initial {
                cluster,
                peer_server_name: (https && no_ca).then(|| srv.domain.clone()),
            }))
        }
        _ => Ok(Some(given(config.initial_cluster.clone()))),
    }
}

/// The client that asks the discovery service, through `--discovery-proxy` if given:
/// an https service is checked against the system's roots, as etcd's client does
/// (`SSL_CERT_FILE` and `SSL_CERT_DIR` name others). A member's join and a proxy's
/// read of the cluster both use it.
pub fn discovery_client(
    config: &Config,
) -> Result<beacon_raft::peer::PeerHttp, discovery::DiscoveryError> {
    let tls = beacon_tls::TlsInfo::default()
        .client_config(&[b"http/1.1"])
        .map_err(|e| discovery::DiscoveryError::Service(format!("the client's TLS: {e}")))?;
    let mut net: Arc<dyn beacon_raft::peer::PeerNet> = Arc::new(beacon_raft::peer::TlsNet::new(
        Arc::new(beacon_raft::peer::TcpNet),
        beacon_tls::Connector::new(tls),
    ));
    let proxy = discovery_proxy::parse(&config.discovery_proxy)
        .map_err(discovery::DiscoveryError::Service)?;
    if let Some(proxy) = proxy {
        tracing::info!("using proxy {:?}", proxy.shown);
        net = Arc::new(beacon_raft::peer::ProxyNet::new(net, proxy.proxy));
    }
    Ok(beacon_raft::peer::discovery_client_over(net))
}

/// The cluster `--discovery`'s service gathers: this member registers itself (its
/// name and advertised peer URLs, under the id they give with the URL as token) and
/// waits for the rest. `None`: the cluster is full and the member falls back to a proxy.
async fn discover(config: &Config, url: &str) -> anyhow::Result<Option<Vec<(String, String)>>> {
    let own = Cluster::bootstrap(
        &config.initial_cluster,
        url,
        &config.name,
        &config.advertise_client_urls,
    )
    .map_err(anyhow::Error::msg)?;
    let own_value = config
        .initial_cluster
        .iter()
        .map(|(name, peer_url)| format!("{name}={peer_url}"))
        .collect::<Vec<_>>()
        .join(",");
    let own_id = format!("{:x}", own.local_id);
    let joined = match discovery_client(config) {
        Ok(http) => discovery::join(&http, url, &own_id, &own_value).await,
        Err(e) => Err(e),
    };
    match joined {
        Ok(cluster) => config::parse_initial_cluster(&cluster)
            .map(Some)
            .map_err(anyhow::Error::msg),
        Err(discovery::DiscoveryError::FullCluster) if config.discovery_fallback_proxy => Ok(None),
        Err(e) => {
            tracing::info!("discovery token {url} was used, but failed to bootstrap the cluster.");
            tracing::info!("please generate a new discovery token and try to bootstrap again.");
            anyhow::bail!("failed to join discovery cluster ({e})")
        }
    }
}
