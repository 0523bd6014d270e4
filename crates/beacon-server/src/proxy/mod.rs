//! etcd 3.4's v2 proxy mode (`--proxy on|readonly`): instead of a member, the process
//! serves its client URLs as an HTTP reverse proxy to the cluster's members. It starts
//! from peer URLs (`<data-dir>/proxy/cluster` when a former run wrote it, else
//! `--initial-cluster` or the discovery service's cluster), asks them for the members'
//! client URLs (`refresh`), and forwards each request to the first available one
//! (`director`, `forward`, `transport`). The data directory then holds `proxy/` and no
//! `member/`, so a restart without `--proxy` comes back as a proxy, as etcd's does.

pub mod cluster_file;
pub mod director;
pub mod forward;
pub mod metrics;
pub mod refresh;
pub mod relay;
pub mod transport;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::config::{Config, ProxyMode};
use crate::limits::{PROXY_CONNECTIONS_MAX, SHUTDOWN_GRACE};

/// What a data directory holds, as etcd tells it apart at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirKind {
    /// Neither a member nor a proxy yet (or no directory at all).
    Empty,
    /// `member/`: a member's data.
    Member,
    /// `proxy/`: a proxy's cluster file.
    Proxy,
}

impl DataDirKind {
    /// The word etcd logs for it.
    pub fn word(self) -> &'static str {
        match self {
            DataDirKind::Empty => "empty",
            DataDirKind::Member => "member",
            DataDirKind::Proxy => "proxy",
        }
    }
}

/// What `dir` holds; a directory with both a member and a proxy is refused in etcd's
/// words, and other entries are logged as etcd logs them.
pub fn identify_data_dir(dir: &Path) -> anyhow::Result<DataDirKind> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DataDirKind::Empty),
        Err(e) => {
            return Err(e).with_context(|| format!("error listing data dir: {}", dir.display()))
        }
    };
    let (mut member, mut proxy) = (false, false);
    for entry in entries {
        let entry = entry.with_context(|| format!("error listing data dir: {}", dir.display()))?;
        match entry.file_name().to_str() {
            Some("member") => member = true,
            Some("proxy") => proxy = true,
            _ => tracing::warn!(
                "found invalid file/dir {} under data dir {} (Ignore this if you are upgrading etcd)",
                entry.file_name().to_string_lossy(),
                dir.display()
            ),
        }
    }
    match (member, proxy) {
        (true, true) => anyhow::bail!("invalid datadir. Both member and proxy directories exist."),
        (true, false) => Ok(DataDirKind::Member),
        (false, true) => Ok(DataDirKind::Proxy),
        (false, false) => Ok(DataDirKind::Empty),
    }
}

/// Serves `config`'s client URLs as a v2 proxy until `shutdown` resolves.
pub async fn run(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!("proxy: this proxy supports v2 API only!");
    let dir = config.data_dir.join("proxy");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = cluster_file::path(&dir);
    let peer_urls = start_peer_urls(config, &file).await?;
    let member_tls = crate::tls::prepare(config)?;
    // etcd's proxy dials `https` members with the client TLS, or the peer TLS when the
    // client side has none (its older behaviour), or neither: the system's roots then.
    // Under --auto-tls it checks no member's certificate.
    let mut info = if config.tls.client.is_empty() {
        config.tls.peer.clone()
    } else {
        config.tls.client.clone()
    };
    info.self_signed = config.tls.auto_tls;
    let upstream_tls = info
        .client_config(&[b"http/1.1"])
        .context("the proxy's TLS for the members")?;
    let settings = config.proxy;
    let timeouts = transport::Timeouts {
        dial: settings.dial_timeout,
        read: settings.read_timeout,
        write: settings.write_timeout,
    };
    let mut net: Arc<dyn beacon_raft::peer::PeerNet> = Arc::new(beacon_raft::peer::TcpNet);
    if let Some(dialing) = member_tls.peer_client.clone() {
        net = Arc::new(beacon_raft::peer::TlsNet::new(net, dialing));
    }
    let refresher = Arc::new(refresh::Refresher::new(
        beacon_raft::peer::discovery_client_over(net),
        peer_urls,
        file,
    ));
    let director = Arc::new(director::Director::new(settings.failure_wait));
    // As etcd's, the first refresh is made before the proxy listens.
    refresh::refresh(&director, &refresher).await;
    let listeners = crate::bind_all(&config.listen_client_urls, &member_tls.client)
        .context("binding --listen-client-urls")?;
    let proxy = Arc::new(forward::Proxy {
        director: Arc::clone(&director),
        upstream: transport::client(timeouts, Some(beacon_tls::Connector::new(upstream_tls))),
        readonly: settings.mode == ProxyMode::Readonly,
        access: config.access.clone(),
        metrics: metrics::Metrics::default(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let refresher_task = tokio::spawn(refresh::run(
        director,
        refresher,
        settings.refresh_interval,
        stop_rx.clone(),
    ));
    let mut servers = tokio::task::JoinSet::new();
    for (listener, url) in listeners.into_iter().zip(&config.listen_client_urls) {
        tracing::info!(
            "v2 proxy started listening on client requests on {:?}",
            url.text
        );
        servers.spawn(crate::conn::serve_http_listener_capped(
            listener,
            forward::router(Arc::clone(&proxy)),
            stop_rx.clone(),
            PROXY_CONNECTIONS_MAX,
        ));
    }
    shutdown.await;
    tracing::info!("shutting down the proxy: no new connections");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    servers.abort_all();
    refresher_task.abort();
    if drained.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closed them");
    }
    Ok(())
}

/// The peer URLs a proxy starts from: its cluster file's, else the discovery service's
/// cluster, else `--initial-cluster`'s, sorted as etcd's map of them lists them.
async fn start_peer_urls(config: &Config, file: &Path) -> anyhow::Result<Vec<String>> {
    if let Some(urls) = cluster_file::read(file).map_err(anyhow::Error::msg)? {
        if config.discovery.is_some() {
            tracing::warn!(
                "discovery token ignored since the proxy has already been initialized. Valid \
                 cluster file found at {:?}",
                file.display().to_string()
            );
        }
        tracing::info!(
            "proxy: using peer urls {urls:?} from cluster file {:?}",
            file.display().to_string()
        );
        return Ok(urls);
    }
    let cluster = match &config.discovery {
        Some(url) => {
            let http =
                crate::bootstrap::discovery_client(config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let text = crate::discovery::registered_cluster(&http, url)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::config::parse_initial_cluster(&text).map_err(anyhow::Error::msg)?
        }
        None => config.initial_cluster.clone(),
    };
    let mut urls: Vec<String> = cluster.into_iter().map(|(_, url)| url).collect();
    urls.sort();
    tracing::info!("proxy: using peer urls {urls:?} ");
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    /// Sends a GET on `stream` and reads what comes back within `within`.
    async fn ask(stream: &mut TcpStream, within: std::time::Duration) -> Option<String> {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: p\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(within, stream.read(&mut buf)).await;
        let n = read.ok()?.ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_for_one_to_close() {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let app = axum::Router::new().fallback(|| async { "ok" });
        let (stop_tx, stop_rx) = watch::channel(false);
        let serving = crate::conn::serve_http_listener_capped(tcp.into(), app, stop_rx, 1);
        let server = tokio::spawn(serving);
        let second_long = std::time::Duration::from_secs(5);
        let mut first = TcpStream::connect(addr).await.unwrap();
        let answer = ask(&mut first, second_long).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // The second waits in the listen queue while the first stays open.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let short = std::time::Duration::from_millis(300);
        assert_eq!(ask(&mut second, short).await, None);
        drop(first);
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(second_long, second.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        let _ = stop_tx.send(true);
        drop(second);
        server.await.unwrap();
    }

    #[test]
    fn a_data_dir_is_a_member_a_proxy_or_empty_never_both() {
        let dir = std::env::temp_dir().join(format!("beacon-proxy-kind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(identify_data_dir(&dir).unwrap(), DataDirKind::Empty);
        std::fs::create_dir_all(dir.join("fixtures")).unwrap();
        assert_eq!(identify_data_dir(&dir).unwrap(), DataDirKind::Empty);
        std::fs::create_dir_all(dir.join("proxy")).unwrap();
        assert_eq!(identify_data_dir(&dir).unwrap(), DataDirKind::Proxy);
        std::fs::create_dir_all(dir.join("member")).unwrap();
        let refused = identify_data_dir(&dir).unwrap_err().to_string();
        assert_eq!(
            refused,
            "invalid datadir. Both member and proxy directories exist."
        );
        std::fs::remove_dir_all(dir.join("proxy")).unwrap();
        assert_eq!(identify_data_dir(&dir).unwrap(), DataDirKind::Member);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
