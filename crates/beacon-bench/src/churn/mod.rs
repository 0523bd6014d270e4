//! The service-discovery churn workload: many instances keep TTL keys alive with
//! `refresh=true`, watchers follow the prefix, a few instances stop and the time until
//! their `expire` event reaches the watchers is measured, with the server's CPU use.

mod instance;
mod watcher;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::client::{open_many, Conn, Target};
use crate::histogram::{median, Histogram};
use crate::keys::value_form;
use crate::procfs::{own_cpu_seconds, CpuMeter};
use crate::watch::current_index;

/// The directory every instance registers under (the watchers' prefix).
const DIR: &str = "/v2/keys/churn";

/// Settings of one run.
#[derive(clap::Args, Debug)]
pub struct ChurnArgs {
    #[arg(long, default_value_t = 1000)]
    pub instances: usize,
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    #[arg(long, default_value_t = 5)]
    pub ttl_seconds: u64,
    #[arg(long, default_value_t = 1.5)]
    pub refresh_seconds: f64,
    /// Length of the measured window.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// How many instances stop refreshing; they are spread evenly over the refresh
    /// period, so their expiries sample every phase of the servers' expiry tickers.
    #[arg(long, default_value_t = 10)]
    pub stopping: usize,
    /// When, after the window starts, they stop.
    #[arg(long, default_value_t = 6.0)]
    pub stop_after_seconds: f64,
}

/// Runs the workload and returns its JSON result.
pub async fn run(target: &Target, args: &ChurnArgs, pid: Option<u32>) -> Result<Value> {
    let ttl = Duration::from_secs(args.ttl_seconds);
    let refresh = Duration::from_secs_f64(args.refresh_seconds);
    let register_form = format!("{}&ttl={}", value_form(64, 7), args.ttl_seconds);
    let path = |i: usize| format!("{DIR}/i{i:05}");
    let stride = (args.instances / args.stopping.max(1)).max(1);
    let stops = |i: usize| i.is_multiple_of(stride) && i / stride < args.stopping;

    // Register every instance over its own connection, before anything is measured.
    let mut conns = open_many(target, args.instances, 64).await?;
    let mut registering = tokio::task::JoinSet::new();
    for (i, mut conn) in conns.drain(..).enumerate() {
        let (p, form) = (path(i), register_form.clone());
        registering.spawn(async move {
            let reply = conn.put(&p, &form).await?;
            anyhow::ensure!(reply.status < 300, "register {p} answered {}", reply.status);
            Ok::<_, anyhow::Error>((i, conn))
        });
    }
    let mut registered: Vec<(usize, Conn)> = Vec::new();
    while let Some(done) = registering.join_next().await {
        registered.push(done??);
    }
    registered.sort_by_key(|(i, _)| *i);

    // Watchers start from the index after registration, so they see only the churn.
    let mut probe = Conn::open(target).await?;
    let from_index = current_index(&mut probe, DIR).await? + 1;
    let watched: Arc<HashSet<String>> = Arc::new(
        (0..args.instances)
            .filter(|i| stops(*i))
            .map(|i| path(i).trim_start_matches("/v2/keys").to_string())
            .collect(),
    );
    let start = Instant::now() + Duration::from_millis(500);
    let end = start + Duration::from_secs_f64(args.seconds);
    let stop_at = start + Duration::from_secs_f64(args.stop_after_seconds);
    let mut watchers = tokio::task::JoinSet::new();
    for conn in open_many(target, args.watchers, 64).await? {
        let watched = watched.clone();
        watchers.spawn(watcher::run(
            conn,
            DIR.to_string(),
            from_index,
            watched,
            end,
        ));
    }

    let mut instances = tokio::task::JoinSet::new();
    for (i, conn) in registered {
        let offset = refresh.mul_f64(i as f64 / args.instances as f64);
        let plan = instance::Plan {
            path: path(i),
            ttl_seconds: args.ttl_seconds,
            refresh,
            first: start + offset,
            start,
            end,
            stop_at: stops(i).then_some(stop_at),
            register_form: register_form.clone(),
        };
        instances.spawn(async move { (i, instance::run(conn, plan).await) });
    }

    tokio::time::sleep_until(start.into()).await;
    let server_cpu = CpuMeter::start(pid)?;
    let client_cpu = own_cpu_seconds()?;
    let mut latencies = Histogram::default();
    let (mut lost, mut errors) = (0, 0);
    let mut last_refresh: HashMap<String, Instant> = HashMap::new();
    while let Some(done) = instances.join_next().await {
        let (i, report) = done?;
        let report = report.with_context(|| format!("instance {i}"))?;
        latencies.merge(&report.latencies);
        lost += report.lost;
        errors += report.errors;
        if stops(i) {
            let key = path(i).trim_start_matches("/v2/keys").to_string();
            let sent = report
                .last_refresh_sent
                .context("a stopping instance never refreshed")?;
            last_refresh.insert(key, sent);
        }
    }
    let (mut events, mut resyncs) = (0, 0);
    let mut first_seen: HashMap<String, Instant> = HashMap::new();
    let mut sightings = 0;
    while let Some(done) = watchers.join_next().await {
        let report = done??;
        events += report.events;
        resyncs += report.resyncs;
        sightings += report.expiries.len();
        for (key, at) in report.expiries {
            let first = first_seen.entry(key).or_insert(at);
            *first = (*first).min(at);
        }
    }
    let server_cpu = server_cpu.stop()?;
    let client_cpu = own_cpu_seconds()? - client_cpu;

    // Excess of (first watcher's arrival - last refresh sent) over the TTL, per stopped key.
    let mut excess_ms: Vec<f64> = last_refresh
        .iter()
        .filter_map(|(key, sent)| {
            let seen = first_seen.get(key)?;
            Some((seen.duration_since(*sent).as_secs_f64() - ttl.as_secs_f64()) * 1000.0)
        })
        .collect();
    excess_ms.sort_by(f64::total_cmp);
    let refreshes = latencies.count();
    Ok(json!({
        "instances": args.instances,
        "watchers": args.watchers,
        "ttl_s": args.ttl_seconds,
        "refresh_every_s": args.refresh_seconds,
        "seconds": args.seconds,
        "refreshes": refreshes,
        "refresh_per_sec": refreshes as f64 / args.seconds,
        "refresh_p50_ms": latencies.quantile_us(0.50) as f64 / 1000.0,
        "refresh_p99_ms": latencies.quantile_us(0.99) as f64 / 1000.0,
        "lost_keys": lost,
        "errors": errors,
        "watch_events": events,
        "watch_resyncs": resyncs,
        "stopped": args.stopping,
        "expiries_seen": excess_ms.len(),
        "expire_watchers_fraction": sightings as f64 / (args.watchers * args.stopping).max(1) as f64,
        "expire_excess_p50_ms": median(&excess_ms),
        "expire_excess_max_ms": excess_ms.last().copied(),
        "server_cpu_s": server_cpu,
        "server_cpu_percent": server_cpu.map(|s| s * 100.0 / args.seconds),
        "client_cpu_s": client_cpu,
    }))
}
