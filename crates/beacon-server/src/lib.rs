//! The Beacon server: etcd 3.4's v2 HTTP API over a Raft-replicated v2 store.
//!
//! [`run`] binds the client listeners, opens the Raft node and serves until the
//! shutdown future resolves. [`serve`] does the serving part over any
//! [`consensus::Consensus`], which is how tests run it without Raft.

pub mod api;
pub mod api_v2;
pub mod bootstrap;
pub mod cluster;
pub mod compactor;
pub mod config;
pub mod conn;
pub mod consensus;
pub mod corrupt;
pub mod discovery;
pub mod discovery_proxy;
pub mod discovery_srv;
pub mod gateway;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod leader_seen;
pub mod limits;
pub mod log_sinks;
pub mod proxy;
pub mod restore;
pub mod router;
pub mod state;
pub mod tls;
pub mod urls;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::consensus::{Consensus, RaftConsensus};
use crate::state::AppState;

/// Runs a member until `shutdown` resolves, then stops serving and shuts Raft down.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    for warning in &config.flag_warnings {
        tracing::warn!("{warning}");
    }
    // As etcd: a data directory that holds a proxy restarts as one, whatever --proxy
    // says; an empty one becomes what --proxy says.
    match proxy::identify_data_dir(&config.data_dir)? {
        kind @ proxy::DataDirKind::Proxy => {
            tracing::info!(
                "the server is already initialized as {0} before, starting as etcd {0}...",
                kind.word()
            );
            return proxy::run(&config, shutdown).await;
        }
        kind @ proxy::DataDirKind::Member => tracing::info!(
            "the server is already initialized as {0} before, starting as etcd {0}...",
            kind.word()
        ),
        proxy::DataDirKind::Empty if config.proxy.mode != config::ProxyMode::Off => {
            return proxy::run(&config, shutdown).await;
        }
        proxy::DataDirKind::Empty => {}
    }
    // A member that restarts on its own data knows its cluster (discovery is for a new
    // one), and etcd checks it against its peers then (the initial corruption check).
    let restarted = identity::load(&config.data_dir)?.is_some();
    let Some(initial) = bootstrap::initial_cluster(&config, restarted).await? else {
        tracing::info!("discovery cluster full, falling back to proxy");
        return proxy::run(&config, shutdown).await;
    };
    let initial_cluster = initial.cluster;
    let bootstrap = Cluster::bootstrap(
        &initial_cluster,
        &config.initial_cluster_token,
        &config.name,
        &config.advertise_client_urls,
    )
    .map_err(anyhow::Error::msg)?;
    let mut member_tls = tls::prepare(&config)?;
    if let Some(name) = initial.peer_server_name {
        member_tls.peer_client = member_tls.peer_client.map(|c| c.with_server_name(name));
    }
    let listeners = bind_all(&config.listen_client_urls, &member_tls.client)
        .context("binding --listen-client-urls")?;
    let metrics_listeners = bind_all(&config.listen_metrics_urls, &member_tls.client)
        .context("binding --listen-metrics-urls")?;
    let peer_listeners = bind_all(&config.listen_peer_urls, &member_tls.peer_server)
        .context("binding --listen-peer-urls")?;
    let mut seams = beacon_raft::Seams::production();
    if config.unsafe_no_fsync {
        seams.disk = Arc::new(beacon_raft::disk::StdDisk::unsafe_no_fsync());
    }
    if let Some(dialing) = member_tls.peer_client.clone() {
        seams.net = Arc::new(beacon_raft::peer::TlsNet::new(seams.net, dialing));
    }
    let peer_url = config
        .initial_advertise_peer_urls
        .first()
        .cloned()
        .unwrap_or_default();
    let peer_net = Arc::clone(&seams.net);
    let identity = identity::resolve(&config, &bootstrap, Arc::clone(&seams.net)).await?;
    let cluster = Cluster {
        id: identity.cluster_id,
        local_id: identity.member_id,
        ..bootstrap.clone()
    };
    let raft_config = beacon_raft::RaftConfig {
        data_dir: config.data_dir.clone(),
        wal_dir: config.wal_dir.clone(),
        node_id: cluster.local_id,
        initial_members: identity::initial_members(&bootstrap),
        join_existing: config.initial_cluster_state == config::ClusterState::Existing,
        cluster_id: cluster.id,
        peer_url,
        snapshot_count: config.snapshot_count,
        heartbeat_interval_ms: config.heartbeat_interval_ms,
        election_timeout_ms: config.election_timeout_ms,
        // A peer may forward only what this member's client port would take: a v2
        // body, or a v3 request under `--max-request-bytes`.
        proposal_bytes_max: limits::REQUEST_BODY_BYTES_MAX.max(config.request_bytes_max.proposal()),
        force_new_cluster: config.force_new_cluster,
        warning_apply_duration: config.warning_apply_duration,
        initial_election_tick_advance: config.initial_election_tick_advance,
        pre_vote: config.pre_vote,
        strict_reconfig_check: config.strict_reconfig_check,
    };
    let node = beacon_raft::RaftNode::open_with(raft_config, seams).await;
    let node = match node {
        Ok(node) => node,
        // etcd's removed member that restarts on its old data stops and exits 0.
        Err(e @ beacon_raft::OpenError::Removed { .. }) => {
            removed_warning(&config.data_dir, &e);
            return Ok(());
        }
        Err(e) => anyhow::bail!(
            "opening the raft node in {}: {e}",
            config.data_dir.display()
        ),
    };
    // The peer listeners were bound before the node opened, so peers that connected
    // meanwhile wait in the backlog. In a cluster `open` returns before any leader
    // exists (electing one needs this API), so the peer API serves from here on.
    let peer_server = tokio::spawn(serve_peers(peer_listeners, node.clone()));
    tracing::info!(
        name = %config.name,
        member_id = %cluster::id_hex(cluster.local_id),
        cluster_id = %cluster::id_hex(cluster.id),
        data_dir = %config.data_dir.display(),
        "beacon started"
    );
    let consensus = Arc::new(
        RaftConsensus::new(
            node.clone(),
            config.data_dir.clone(),
            config.heartbeat_interval_ms,
            config.election_timeout_ms,
        )
        .with_wal_dir(config.wal_dir.clone()),
    );
    let peer_http = beacon_raft::peer::discovery_client_over(peer_net);
    if config.initial_corrupt_check && restarted {
        let timeout = limits::request_timeout(config.election_timeout_ms);
        let checked = corrupt::check_initial(consensus.as_ref(), &cluster, timeout, &peer_http);
        if let Err(why) = checked.await {
            // As etcd: the member stops before it serves, its data untouched.
            let _ = node.shutdown().await;
            peer_server.abort();
            anyhow::bail!(why);
        }
    }
    // etcd's `publish`: the name and client URLs go into the membership once a leader
    // takes them, so that `/v2/members` and `/v2/machines` show them on every member.
    let publisher = tokio::spawn({
        let node = node.clone();
        let (name, client_urls) = (config.name.clone(), config.advertise_client_urls.clone());
        async move { node.publish(name, client_urls).await }
    });
    let (removed_tx, mut removed_rx) = watch::channel(false);
    let (failed_tx, mut failed_rx) = watch::channel(None);
    let stop = {
        let node = node.clone();
        async move {
            tokio::select! {
                _ = shutdown => {}
                _ = node.removed() => { let _ = removed_tx.send(true); }
                why = node.failed() => { let _ = failed_tx.send(Some(why)); }
            }
        }
    };
    if config
        .space_quota
        .is_some_and(|q| q > limits::QUOTA_BACKEND_BYTES_WARN)
    {
        tracing::warn!(
            quota = ?config.space_quota,
            warn_above = limits::QUOTA_BACKEND_BYTES_WARN,
            "--quota-backend-bytes is past the size etcd recommends"
        );
    }
    // As etcd, client requests are served once this member has published itself:
    // until then the bound listeners hold new connections in their backlog, and a
    // member that cannot reach a leader serves nothing (scripts wait for this line).
    let (mut stop, mut publisher) = (Box::pin(stop), publisher);
    let published = tokio::select! {
        published = &mut publisher => published.is_ok(),
        () = &mut stop => false,
    };
    publisher.abort();
    let served = if published {
        tracing::info!("ready to serve client requests");
        for l in &listeners {
            if let Ok(addr) = l.tcp.local_addr() {
                tracing::info!(%addr, tls = l.tls.is_some(), "serving client requests");
            }
        }
        for l in &metrics_listeners {
            if let Ok(addr) = l.tcp.local_addr() {
                tracing::info!(%addr, tls = l.tls.is_some(), "serving /metrics and /health");
            }
        }
        let settings = ClientSettings {
            request_timeout: limits::request_timeout(config.election_timeout_ms),
            space_quota: config.space_quota,
            watch_progress_notify_interval: config.watch_progress_notify_interval,
            metrics_extensive: config.metrics_extensive,
            auth_token_ttl: config.auth_token_ttl,
            bcrypt_cost: config.bcrypt_cost,
            jwt: config.jwt.clone(),
            client_cert_auth: config.tls.client.client_cert_auth,
            apis: router::Apis {
                v2: config.enable_v2,
                gateway: config.enable_grpc_gateway,
            },
            access: config.access.clone(),
            v2v3_prefix: config.v2v3_prefix.clone(),
            auto_compaction: config.auto_compaction,
            corrupt_check: config
                .corrupt_check_interval
                .map(|interval| (interval, peer_http.clone())),
            http2: grpc::Http2Settings {
                max_concurrent_streams: config
                    .max_concurrent_streams
                    .unwrap_or(limits::GRPC_STREAMS_PER_CONNECTION_MAX),
                keepalive_interval: config.grpc_keepalive_interval,
                keepalive_timeout: config.grpc_keepalive_timeout,
                ping_interval_min: Some(config.grpc_keepalive_min_time),
            },
            request_bytes_max: config.request_bytes_max,
            txn_ops_max: config.txn_ops_max,
        };
        let listeners = Listeners {
            client: listeners,
            metrics: metrics_listeners,
        };
        serve(consensus, cluster, listeners, settings, stop).await
    } else {
        Ok(())
    };
    let stopped = node
        .shutdown()
        .await
        .map_err(|e| anyhow::anyhow!("shutting raft down: {e:?}"));
    peer_server.abort();
    if *removed_rx.borrow_and_update() {
        // etcd's removed member logs this and exits 0: stopping was the right outcome.
        removed_warning(&config.data_dir, &"removed while running");
    }
    if let Some(why) = failed_rx.borrow_and_update().clone() {
        // Raft stopped for good (a storage error): exit non-zero, so that a supervisor
        // restarts the member over its data directory, as etcd does after a WAL error.
        return Err(anyhow::anyhow!("raft stopped after a storage error: {why}"));
    }
    served.and(stopped)
}

/// What a removed member says before it exits 0, as etcd's does.
fn removed_warning(data_dir: &std::path::Path, why: &dyn std::fmt::Display) {
    tracing::warn!(
        data_dir = %data_dir.display(),
        %why,
        "the member has been permanently removed from the cluster; \
         the data-dir used by this member must be removed"
    );
}

/// Serves the peer API (Raft messages, forwarded proposals) on every peer listener,
/// each with its own connection cap and timeouts, apart from the client port's.
async fn serve_peers(listeners: Vec<Listener>, node: beacon_raft::RaftNode) {
    let router = beacon_raft::peer::router(node);
    let mut servers = tokio::task::JoinSet::new();
    for Listener { tcp, tls } in listeners {
        match tls {
            None => servers.spawn(beacon_raft::peer::serve_listener(tcp, router.clone())),
            Some(tls) => servers.spawn(beacon_raft::peer::serve_tls_listener(
                tcp,
                router.clone(),
                tls,
            )),
        };
    }
    while servers.join_next().await.is_some() {}
}

/// Binds every URL, failing with the address in the message; an `https` one is served
/// with `tls` (which `tls::prepare` made whenever one is `https`).
pub fn bind_all(
    urls: &[urls::FlagUrl],
    tls: &Option<beacon_tls::Acceptor>,
) -> anyhow::Result<Vec<Listener>> {
    let mut listeners = Vec::with_capacity(urls.len());
    for url in urls {
        let addr = url.bind_addr().map_err(anyhow::Error::msg)?;
        let tcp = listen(addr).with_context(|| format!("listening on {addr}"))?;
        let tls = if url.tls {
            Some(tls.clone().context("an https URL without TLS")?)
        } else {
            None
        };
        listeners.push(Listener { tcp, tls });
    }
    Ok(listeners)
}

/// A bound listener, and the TLS it serves with when its URL is `https`.
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// The handshake each connection makes first.
    pub tls: Option<beacon_tls::Acceptor>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("tcp", &self.tcp)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl From<TcpListener> for Listener {
    fn from(tcp: TcpListener) -> Listener {
        Listener { tcp, tls: None }
    }
}

/// Binds `addr` with address reuse and a deep accept queue: thousands of watchers
/// connecting at once must not overflow it (tokio's default backlog is 128; Go, and so
/// etcd, ask for the kernel's maximum).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(limits::LISTEN_BACKLOG)
}

/// Where the client API is served: the client URLs, and the metrics URLs that serve
/// `/metrics` and `/health` alone.
#[derive(Debug)]
pub struct Listeners {
    /// `--listen-client-urls`.
    pub client: Vec<Listener>,
    /// `--listen-metrics-urls`.
    pub metrics: Vec<Listener>,
}

/// How the client API serves: etcd's flags for it, with their defaults in `limits`.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// How long a request waits for consensus.
    pub request_timeout: std::time::Duration,
    /// The v3 keyspace's space quota (`--quota-backend-bytes`), `None` when off.
    pub space_quota: Option<u64>,
    /// `--experimental-watch-progress-notify-interval`.
    pub watch_progress_notify_interval: std::time::Duration,
    /// How gRPC connections are kept.
    pub http2: grpc::Http2Settings,
    /// `--max-request-bytes`, and the limits that follow from it.
    pub request_bytes_max: limits::RequestBytesMax,
    /// `--max-txn-ops`.
    pub txn_ops_max: usize,
    /// `--metrics extensive`.
    pub metrics_extensive: bool,
    /// `--auth-token-ttl`: how long a `simple` token lives unused.
    pub auth_token_ttl: std::time::Duration,
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
    /// `--auth-token jwt,...`'s provider; `None`: `simple` tokens.
    pub jwt: Option<Arc<beacon_auth::jwt::JwtTokens>>,
    /// `--client-cert-auth` on the client URLs.
    pub client_cert_auth: bool,
    /// `--enable-v2` and `--enable-grpc-gateway`: whether `/v2/` and `/v3/` are served.
    pub apis: router::Apis,
    /// `--cors` and `--host-whitelist`.
    pub access: http::access::AccessControl,
    /// `--experimental-enable-v2v3`: the v3 prefix the v2 keys API is served from.
    pub v2v3_prefix: Option<Vec<u8>>,
    /// `--auto-compaction-*`: what the compactor keeps; `None`: it does not run.
    pub auto_compaction: Option<compactor::Retention>,
    /// `--experimental-corrupt-check-time`, and the client the leader asks its peers'
    /// hashes with; `None`: no periodic corruption check.
    pub corrupt_check: Option<(std::time::Duration, beacon_raft::peer::PeerHttp)>,
}

/// Serves the client API on `listeners` over `consensus` (and runs the automatic
/// compactor and the periodic corruption check, when `settings` ask for them) until
/// `shutdown` resolves; then open watches end, new connections are refused and open
/// ones get [`limits::SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    consensus: Arc<dyn Consensus>,
    cluster: Cluster,
    listeners: Listeners,
    settings: ClientSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut state = AppState::new(
        consensus,
        cluster,
        settings.request_timeout,
        stop_rx.clone(),
    );
    state.space_quota = settings.space_quota;
    state.watch_progress_notify_interval = settings.watch_progress_notify_interval;
    state.http2 = settings.http2;
    state.request_bytes_max = settings.request_bytes_max;
    state.txn_ops_max = settings.txn_ops_max;
    state.metrics_extensive = settings.metrics_extensive;
    state.auth_token_ttl = settings.auth_token_ttl;
    state.bcrypt_cost = settings.bcrypt_cost;
    state.jwt = settings.jwt.clone();
    state.client_cert_auth = settings.client_cert_auth;
    state.access = settings.access.clone();
    state.v2v3 = settings
        .v2v3_prefix
        .as_deref()
        .map(|prefix| Arc::new(api_v2::v2v3::V2v3::new(prefix)));
    let state = Arc::new(state);
    let ticker = tokio::spawn(leader_seen::run(Arc::clone(&state), stop_rx.clone()));
    // On every member; it compacts only while this member leads. etcd starts its
    // compactor with the server, before the member publishes itself; this one starts
    // with the client API, once published, which delays a first periodic compaction
    // by the time a start takes.
    let compactor = settings.auto_compaction.map(|retention| {
        let keyspace = compactor::ServerKeyspace(Arc::clone(&state));
        tokio::spawn(compactor::run(keyspace, retention, stop_rx.clone()))
    });
    let corrupt_checker = settings.corrupt_check.clone().map(|(interval, http)| {
        tokio::spawn(corrupt::run_periodic(
            Arc::clone(&state),
            http,
            interval,
            stop_rx.clone(),
        ))
    });
    let mut servers = tokio::task::JoinSet::new();
    let services = grpc::Services::new(&state);
    let grpc = grpc::routes(Arc::clone(&state), &services).await;
    for listener in listeners.client {
        let app = router::router(Arc::clone(&state), services.clone(), settings.apis);
        servers.spawn(conn::serve_listener(
            listener,
            app,
            grpc.clone(),
            stop_rx.clone(),
        ));
    }
    for listener in listeners.metrics {
        let app = router::metrics_router(Arc::clone(&state));
        servers.spawn(conn::serve_http_listener(listener, app, stop_rx.clone()));
    }
    shutdown.await;
    tracing::info!("shutting down: no new connections, ending watches");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits::SHUTDOWN_GRACE, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    servers.abort_all();
    let _ = ticker.await;
    if let Some(checker) = corrupt_checker {
        checker.abort();
    }
    if let Some(compactor) = compactor {
        // A compaction under way is an entry in the log: each member applies it or not.
        compactor.abort();
    }
    if drained.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closed them");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
