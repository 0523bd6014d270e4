//! `proxy SERVICE --listen ADDR`: serve a local reverse proxy over the service's
//! instances, discovered from the registry given by `--endpoints`.
//!
//! Starting does not need the registry: the proxy answers `503` until discovery has
//! listed an instance, and keeps the last known instances while the registry is away.

use beacon_client::balance::{
    AccrualConfig, BackoffConfig, BalanceConfig, HttpClient, RetryConfig,
};
use beacon_client::discovery::service_prefix;
use beacon_client::{Discovery, DiscoveryConfig};
use std::time::Duration;

use crate::cli::{Global, ProxyArgs};
use crate::context::{within, Ctx};
use crate::fail::{exit, CmdResult, Fail};
use crate::proxy::server::{serve, Limits};
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
    let discovery_config = DiscoveryConfig {
        max_removed_share: a.removal_share,
        removal_grace: a.removal_grace,
        ..DiscoveryConfig::default()
    };
    if !(0.0..=1.0).contains(&a.removal_share) {
        return Err(Fail::error(
            exit::BAD_ARGS,
            "--removal-share must be within 0..=1",
        ));
    }
    let service = a.service.trim_matches('/');
    let prefix = service_prefix(service, a.datacenter.as_deref());
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| Fail::error(exit::BAD_ARGS, format!("listening on {}: {e}", a.listen)))?;
    let ctx = Ctx::unsynced(g)?;
    if !g.no_sync {
        // Best effort: a registry that is down now is still worth following later.
        let _ = within(ctx.total_timeout, ctx.client.sync()).await;
    }
    let discovery = Discovery::start(ctx.client.clone(), &prefix, discovery_config);
    let client = HttpClient::new(discovery.authorities(), config)
        .map_err(|e| Fail::error(exit::BAD_ARGS, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Fail::error(exit::BAD_ARGS, e))?;
    tracing::info!(%addr, %prefix, "proxy listening");
    println!("proxying {prefix} on {addr}");
    let limits = Limits {
        connections_max: a.max_connections.max(1),
        body_bytes_max: a.max_body_bytes,
        header_read_timeout: HEADER_READ_TIMEOUT,
        drain_timeout: DRAIN_TIMEOUT,
    };
    serve(listener, client, service.to_string(), limits, shutdown()).await;
    Ok(())
}

fn balance_config(a: &ProxyArgs) -> BalanceConfig {
    BalanceConfig {
        attempt_timeout: a.attempt_timeout,
        panic_threshold: a.panic_threshold,
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
