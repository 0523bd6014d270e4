//! `proxy SERVICE --listen ADDR`: serve a local reverse proxy over the service's
//! instances, discovered from the registry given by `--endpoints`.
//!
//! One discovery feeds a worker per CPU, each a single-threaded runtime with its own
//! balancer, accepting on the same listening socket, as nginx's workers do: a request
//! then never hops between threads on its way through the stack, which on a multi-threaded
//! runtime cost more than the proxying itself. Each worker keeps its own failure-accrual
//! board and retry budget, so no worker takes a lock another takes on a request's way;
//! the boards agree on ejections through one bulletin (an instance one worker ejects is
//! avoided by the others, and probed by the one that ejected it).
//!
//! Starting does not need the registry: the proxy answers `503` until discovery has
//! listed an instance, and keeps the last known instances while the registry is away.

use std::sync::Arc;
use std::time::Duration;

use beacon_client::balance::{
    AccrualConfig, BackoffConfig, BalanceConfig, Balanced, Board, Bulletin, RetryConfig,
    RetryPolicy, ServerErrors,
};
use beacon_client::discovery::{service_prefix, InstancesWatcher};
use beacon_client::{Discovery, DiscoveryConfig};
use futures_util::StreamExt;
use tokio::sync::watch;
use tower::retry::Retry;

use crate::cli::{Global, ProxyArgs};
use crate::context::{within, Ctx};
use crate::fail::{exit, CmdResult, Fail};
use crate::proxy::server::{serve, Limits};
use crate::proxy::upstream::Upstream;
use crate::signals::shutdown;

/// How long open connections may finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `proxy`.
pub async fn run(g: &Global, a: &ProxyArgs) -> CmdResult {
    let config = balance_config(a);
    config
        .validate()
        .map_err(|e| Fail::error(exit::BAD_ARGS, e))?;
    if !(0.0..=1.0).contains(&a.removal_share) {
        return Err(Fail::error(
            exit::BAD_ARGS,
            "--removal-share must be within 0..=1",
        ));
    }
    let discovery_config = DiscoveryConfig {
        max_removed_share: a.removal_share,
        removal_grace: a.removal_grace,
        ..DiscoveryConfig::default()
    };
    let service = a.service.trim_matches('/').to_string();
    let prefix = service_prefix(&service, a.datacenter.as_deref());
    let workers = a.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let workers = workers.max(1);
    let bad_listen =
        |e: std::io::Error| Fail::error(exit::BAD_ARGS, format!("listening on {}: {e}", a.listen));
    let listeners = listeners(a.listen, workers).map_err(bad_listen)?;
    let addr = listeners[0].local_addr().map_err(bad_listen)?;

    let ctx = Ctx::unsynced(g)?;
    if !g.no_sync && !g.v3() {
        // Best effort: a registry that is down now is still worth following later.
        let _ = within(ctx.total_timeout, ctx.client.sync()).await;
    }
    let discovery = Discovery::start(ctx.registry(g)?, &prefix, discovery_config);
    let watcher = discovery.watcher();
    // Workers read the published set; the change stream itself only needs draining
    // (the discovery task logs every change).
    tokio::spawn(async move {
        let mut discovery = discovery;
        while discovery.next().await.is_some() {}
    });

    let limits = Limits {
        connections_max: a.max_connections.div_ceil(workers).max(1),
        body_bytes_max: a.max_body_bytes,
        header_read_timeout: HEADER_READ_TIMEOUT,
        drain_timeout: DRAIN_TIMEOUT,
    };
    let bulletin = Bulletin::new();
    let (stop, stopped) = watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    for (i, listener) in listeners.into_iter().enumerate() {
        let worker = Worker {
            listener,
            watcher: watcher.clone(),
            config: config.clone(),
            board: Board::posting_to(&config, &bulletin),
            service: service.clone(),
            limits: limits.clone(),
            stopped: stopped.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{i}"))
            .spawn(move || worker.run())
            .map_err(|e| Fail::error(exit::SERVER_ERROR, e))?;
        threads.push(thread);
    }
    tracing::info!(%addr, %prefix, workers, "proxy listening");
    println!("proxying {prefix} on {addr}");
    shutdown().await;
    let _ = stop.send(true);
    let joined = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    match joined.into_iter().find_map(Result::err) {
        Some(e) => Err(Fail::error(exit::SERVER_ERROR, e)),
        None => Ok(()),
    }
}

/// One listening socket per worker on the same address (`SO_REUSEPORT`), so the kernel
/// spreads connections evenly instead of whichever worker wakes first taking them.
fn listeners(
    addr: std::net::SocketAddr,
    workers: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut addr = addr;
    let mut listeners = Vec::with_capacity(workers);
    for _ in 0..workers {
        let socket = match addr {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseport(true)?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        // Port 0 picks a port once; the other workers join it.
        let listener = socket.listen(1024)?.into_std()?;
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// One worker thread's share of the proxy.
struct Worker {
    listener: std::net::TcpListener,
    watcher: InstancesWatcher,
    config: BalanceConfig,
    board: Arc<Board>,
    service: String,
    limits: Limits,
    stopped: watch::Receiver<bool>,
}

impl Worker {
    /// Serves until the proxy stops; an error only if the worker could not start.
    fn run(self) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let listener =
                tokio::net::TcpListener::from_std(self.listener).map_err(|e| e.to_string())?;
            let config = self.config;
            let (idle_max, idle_timeout, connect_timeout) = (
                config.pool_idle_per_instance_max,
                config.pool_idle_timeout,
                config.attempt_timeout,
            );
            let make = move |authority: &http::uri::Authority| {
                Upstream::new(authority.clone(), idle_max, idle_timeout, connect_timeout)
            };
            let balanced = Balanced::with_board(
                self.watcher.authorities(),
                make,
                ServerErrors,
                &config,
                self.board,
            )
            .map_err(|e| e.to_string())?;
            let client = Retry::new(RetryPolicy::new(&config.retry), balanced);
            let mut stopped = self.stopped;
            let stop = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            serve(listener, client, self.service, self.limits, stop).await;
            Ok(())
        })
    }
}

fn balance_config(a: &ProxyArgs) -> BalanceConfig {
    BalanceConfig {
        attempt_timeout: a.attempt_timeout,
        panic_threshold: a.panic_threshold,
        pool_idle_per_instance_max: a.pool_idle_max,
        accrual: AccrualConfig {
            consecutive_failures_max: a.failure_threshold,
            success_rate_min: a.success_rate,
            window: a.success_window,
            window_requests_min: a.success_min_requests,
            backoff: BackoffConfig {
                initial: a.eject_backoff,
                max: a.eject_backoff_max,
                ..BackoffConfig::default()
            },
        },
        retry: RetryConfig {
            attempts_max: a.max_attempts,
            budget_min_per_sec: a.retry_min_per_sec,
            budget_ratio: a.retry_ratio,
            retry_statuses: a.retry_statuses.clone(),
            ..RetryConfig::default()
        },
        ..BalanceConfig::default()
    }
}
