//! `v3-watch`: watch fan-out. W watchers of one prefix, spread evenly over S watch
//! streams on C HTTP/2 connections (stream i on connection i mod C); the server's
//! resident memory before the connections, after them and after the watchers; then a
//! writer Puts one key under the prefix, R times, each once every watcher had the
//! previous one, and every delivery's latency is counted from sending the Put (an
//! event's value names its Put). The server's CPU per delivered event covers the puts.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::watch_client::WatchClient;
use beacon_proto::etcdserverpb::watch_request::RequestUnion;
use beacon_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::histogram::Histogram;
use crate::procfs::{own_cpu_seconds, CpuMeter, Rss};
use crate::v3::{channel, prefix_end};

const PREFIX: &[u8] = b"bench/w/";

/// Settings of one run.
#[derive(clap::Args, Debug)]
pub struct V3WatchArgs {
    #[arg(long, default_value_t = 100_000)]
    pub watchers: usize,
    /// Watch streams the watchers are spread over (each gets watchers / streams).
    #[arg(long, default_value_t = 1000)]
    pub streams: usize,
    /// HTTP/2 connections the streams are spread over.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Puts, each delivered to every watcher before the next.
    #[arg(long, default_value_t = 5)]
    pub puts: usize,
    #[arg(long, default_value_t = 64)]
    pub value_bytes: usize,
    /// How long creating the watchers, or one put's deliveries, may take.
    #[arg(long, default_value_t = 120)]
    pub phase_timeout_seconds: u64,
}

/// What the streams share with the writer.
struct Shared {
    /// Answers that created a watcher, and creates refused.
    created: AtomicUsize,
    refused: AtomicUsize,
    /// Events delivered so far, over all puts.
    delivered: AtomicUsize,
    /// When put p was sent, in ns since `base`.
    sent_ns: Vec<AtomicU64>,
    /// Latest delivery of put p, in ns since `base`.
    last_ns: Vec<AtomicU64>,
    /// Every delivery's latency, in µs (a histogram per answer would cost the client more
    /// than the answer: 100k answers a put).
    latencies: Mutex<Vec<u64>>,
    base: Instant,
}

impl Shared {
    fn since_base(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// Runs the workload and returns its JSON result.
pub async fn run(url: &str, args: &V3WatchArgs, pid: Option<u32>) -> Result<Value> {
    ensure!(args.streams > 0 && args.connections > 0 && args.watchers >= args.streams);
    let mut kv = KvClient::new(channel(url, true).await?);
    // Let the server settle after start-up before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = pid.map(Rss::of).transpose()?;
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(channel(url, false).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = pid.map(Rss::of).transpose()?;

    let shared = Arc::new(Shared {
        created: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
        delivered: AtomicUsize::new(0),
        sent_ns: (0..args.puts).map(|_| AtomicU64::new(0)).collect(),
        last_ns: (0..args.puts).map(|_| AtomicU64::new(0)).collect(),
        latencies: Mutex::new(Vec::new()),
        base: Instant::now(),
    });
    let creating = Instant::now();
    let cpu = CpuMeter::start(pid)?;
    let mut streams = tokio::task::JoinSet::new();
    for s in 0..args.streams {
        // Spread the remainder over the first streams.
        let n = args.watchers / args.streams + usize::from(s < args.watchers % args.streams);
        let ch = channels[s % channels.len()].clone();
        streams.spawn(stream(ch, n, shared.clone()));
    }
    let phase = Duration::from_secs(args.phase_timeout_seconds);
    wait_for(&mut streams, phase, "creating the watchers", || {
        shared.created.load(Ordering::Relaxed) + shared.refused.load(Ordering::Relaxed)
            >= args.watchers
    })
    .await?;
    let create_s = creating.elapsed().as_secs_f64();
    let create_cpu_s = cpu.stop()?;
    let refused = shared.refused.load(Ordering::Relaxed);
    ensure!(refused == 0, "the server refused {refused} watch creates");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_watching = pid.map(Rss::of).transpose()?;

    let cpu = CpuMeter::start(pid)?;
    let client_cpu = own_cpu_seconds()?;
    let mut put_ms = Vec::new();
    for p in 0..args.puts {
        let mut value = format!("{p:08}").into_bytes();
        value.resize(args.value_bytes.max(8), b'v');
        shared.sent_ns[p].store(shared.since_base(), Ordering::Relaxed);
        let sent = Instant::now();
        kv.put(PutRequest {
            key: [PREFIX, b"k"].concat(),
            value,
            ..PutRequest::default()
        })
        .await
        .context("the writer's Put")?;
        put_ms.push(sent.elapsed().as_secs_f64() * 1e3);
        let want = args.watchers * (p + 1);
        wait_for(&mut streams, phase, "delivering a put", || {
            shared.delivered.load(Ordering::Relaxed) >= want
        })
        .await?;
    }
    let server_cpu_s = cpu.stop()?;
    let client_cpu_s = own_cpu_seconds()? - client_cpu;
    let delivered = shared.delivered.load(Ordering::Relaxed);
    ensure!(
        delivered == args.watchers * args.puts,
        "{delivered} events delivered, {} expected (one sent twice?)",
        args.watchers * args.puts
    );
    let total_ms: Vec<f64> = (0..args.puts)
        .map(|p| {
            let (sent, last) = (&shared.sent_ns[p], &shared.last_ns[p]);
            last.load(Ordering::Relaxed)
                .saturating_sub(sent.load(Ordering::Relaxed)) as f64
                / 1e6
        })
        .collect();
    let mut latencies = Histogram::default();
    for &us in shared
        .latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
    {
        latencies.record(Duration::from_micros(us));
    }
    let kib = |r: Option<Rss>| r.map(|r| r.total_kib);
    let per_watcher = rss_watching.zip(rss_connected).map(|(after, before)| {
        (after.total_kib.saturating_sub(before.total_kib) * 1024) as f64 / args.watchers as f64
    });
    let per_connection = rss_connected.zip(rss_idle).map(|(after, before)| {
        (after.total_kib.saturating_sub(before.total_kib) * 1024) as f64 / args.connections as f64
    });
    Ok(json!({
        "watchers": args.watchers,
        "streams": args.streams,
        "connections": args.connections,
        "puts": args.puts,
        "create_s": create_s,
        "create_server_cpu_s": create_cpu_s,
        "rss_idle_kib": kib(rss_idle),
        "rss_connected_kib": kib(rss_connected),
        "rss_watching_kib": kib(rss_watching),
        "rss_bytes_per_connection": per_connection,
        "rss_bytes_per_watcher": per_watcher,
        "delivered": delivered,
        "delivery_p50_ms": latencies.quantile_us(0.50) as f64 / 1e3,
        "delivery_p99_ms": latencies.quantile_us(0.99) as f64 / 1e3,
        "delivery_max_ms": latencies.max_us() as f64 / 1e3,
        "all_delivered_ms": total_ms,
        "all_delivered_median_ms": crate::histogram::median(&sorted(&total_ms)),
        "put_ms": put_ms,
        "server_cpu_s": server_cpu_s,
        "server_cpu_us_per_event": server_cpu_s.map(|s| s * 1e6 / delivered.max(1) as f64),
        "client_cpu_s": client_cpu_s,
    }))
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Waits until `done()` (polled every 5 ms), failing if a stream ended or `limit` passed.
async fn wait_for(
    streams: &mut tokio::task::JoinSet<Result<()>>,
    limit: Duration,
    what: &str,
    done: impl Fn() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if let Some(ended) = streams.try_join_next() {
            ended??;
            bail!("a watch stream ended while {what}");
        }
        if Instant::now() > deadline {
            bail!("{what} took more than {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// One watch stream with `n` watchers of [`PREFIX`]; counts creates and deliveries.
async fn stream(ch: Channel, n: usize, shared: Arc<Shared>) -> Result<()> {
    let creates = (0..n).map(|_| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: PREFIX.to_vec(),
            range_end: prefix_end(PREFIX),
            ..WatchCreateRequest::default()
        })),
    });
    // The request side stays open: a client that closes it may lose its watchers.
    let requests = futures_util::stream::iter(creates.collect::<Vec<_>>())
        .chain(futures_util::stream::pending());
    let mut answers = WatchClient::new(ch)
        .watch(requests)
        .await
        .context("opening a watch stream")?
        .into_inner();
    while let Some(answer) = answers.next().await {
        let answer = answer.context("a watch stream failed")?;
        if answer.created {
            let count = if answer.canceled {
                &shared.refused
            } else {
                &shared.created
            };
            count.fetch_add(1, Ordering::Relaxed);
        }
        if answer.events.is_empty() {
            continue;
        }
        let now = shared.since_base();
        let mut latencies = Vec::with_capacity(answer.events.len());
        for event in &answer.events {
            let put = event
                .kv
                .as_ref()
                .and_then(|kv| {
                    std::str::from_utf8(kv.value.get(..8)?)
                        .ok()?
                        .parse::<usize>()
                        .ok()
                })
                .filter(|&p| p < shared.sent_ns.len())
                .context("an event that is not the writer's")?;
            let sent = shared.sent_ns[put].load(Ordering::Relaxed);
            latencies.push(now.saturating_sub(sent) / 1000);
            shared.last_ns[put].fetch_max(now, Ordering::Relaxed);
        }
        // Merged before counting, so that the writer sees every latency once it counts them.
        if let Ok(mut all) = shared.latencies.lock() {
            all.extend(latencies);
        }
        shared
            .delivered
            .fetch_add(answer.events.len(), Ordering::Relaxed);
    }
    bail!("a watch stream was closed by the server")
}
