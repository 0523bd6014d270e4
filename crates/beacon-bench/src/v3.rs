//! The v3 workloads: gRPC Put and Range (linearizable or serializable) over N HTTP/2
//! connections, each connection one closed-loop worker, as `load.rs` does for v2. The
//! same keys (`bench/kNNNNNN` in the v3 keyspace) and value sizes, so a v3 row compares
//! with its v2 row as well as with etcd's.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::{PutRequest, RangeRequest};
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::histogram::Histogram;
use crate::keys::Rng;
use crate::procfs::{own_cpu_seconds, CpuMeter};

/// Which v3 call every worker repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum V3Op {
    /// `KV.Put` of a random key.
    Put,
    /// `KV.Range` of one random key, linearizable.
    Range,
    /// `KV.Range` of one random key, serializable (this member's keyspace).
    SRange,
}

/// Settings of one v3 run.
#[derive(clap::Args, Debug)]
pub struct V3Args {
    #[arg(long, value_enum)]
    pub op: V3Op,
    #[arg(long)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup_seconds: f64,
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    #[arg(long, default_value_t = 64)]
    pub value_bytes: usize,
}

/// Key `i` of the v3 key space (`v3-keys` loads the same names).
pub(crate) fn key(i: u64) -> Vec<u8> {
    format!("bench/k{i:06}").into_bytes()
}

/// One HTTP/2 connection to `url`, for any of etcd's v3 services. Calls time out after
/// [`crate::client::REQUEST_TIMEOUT`]; a watch stream must not, so `watch` connections
/// are opened with `timeout = false`.
pub(crate) async fn channel(url: &str, timeout: bool) -> Result<Channel> {
    let mut endpoint =
        Channel::from_shared(url.to_string())?.connect_timeout(Duration::from_secs(5));
    if timeout {
        endpoint = endpoint.timeout(crate::client::REQUEST_TIMEOUT);
    }
    endpoint
        .connect()
        .await
        .with_context(|| format!("gRPC connect to {url}"))
}

pub(crate) use beacon_proto::prefix_end;

async fn connect(url: &str) -> Result<KvClient<Channel>> {
    Ok(KvClient::new(channel(url, true).await?))
}

/// Runs the workload against `url` and returns its JSON result.
pub async fn run(url: &str, args: &V3Args, pid: Option<u32>) -> Result<Value> {
    let value = vec![b'v'; args.value_bytes];
    if args.op != V3Op::Put {
        // Every key read must exist: 16 writers load them first.
        let mut loaders = tokio::task::JoinSet::new();
        for w in 0..16u64 {
            let (mut kv, value, keys) = (connect(url).await?, value.clone(), args.keys);
            loaders.spawn(async move {
                for i in (w..keys).step_by(16) {
                    kv.put(PutRequest {
                        key: key(i),
                        value: value.clone(),
                        ..PutRequest::default()
                    })
                    .await?;
                }
                Ok::<_, tonic::Status>(())
            });
        }
        while let Some(loaded) = loaders.join_next().await {
            loaded??;
        }
    }
    let mut clients = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        clients.push(connect(url).await?);
    }
    let start = Instant::now() + Duration::from_secs_f64(args.warmup_seconds);
    let end = start + Duration::from_secs_f64(args.seconds);
    let mut workers = tokio::task::JoinSet::new();
    for (id, kv) in clients.into_iter().enumerate() {
        let (op, keys, value) = (args.op, args.keys, value.clone());
        workers.spawn(worker(kv, id as u64, op, keys, value, start, end));
    }
    tokio::time::sleep_until(start.into()).await;
    let server_cpu = CpuMeter::start(pid)?;
    let client_cpu = own_cpu_seconds()?;
    let mut latencies = Histogram::default();
    let mut errors = 0;
    while let Some(stats) = workers.join_next().await {
        let (h, e) = stats??;
        latencies.merge(&h);
        errors += e;
    }
    let server_cpu = server_cpu.stop()?;
    let client_cpu = own_cpu_seconds()? - client_cpu;
    let ops = latencies.count();
    Ok(json!({
        "op": format!("v3-{:?}", args.op).to_lowercase(),
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "ops": ops,
        "ops_per_sec": ops as f64 / args.seconds,
        "p50_ms": latencies.quantile_us(0.50) as f64 / 1000.0,
        "p99_ms": latencies.quantile_us(0.99) as f64 / 1000.0,
        "max_ms": latencies.max_us() as f64 / 1000.0,
        "errors": errors,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_op": server_cpu.map(|s| s * 1e6 / ops.max(1) as f64),
        "client_cpu_s": client_cpu,
    }))
}

/// One closed-loop worker; only calls made after `start` and answered before `end`
/// count.
async fn worker(
    mut kv: KvClient<Channel>,
    id: u64,
    op: V3Op,
    keys: u64,
    value: Vec<u8>,
    start: Instant,
    end: Instant,
) -> Result<(Histogram, u64)> {
    let mut rng = Rng::new(id + 1);
    let (mut latencies, mut errors) = (Histogram::default(), 0u64);
    loop {
        let sent = Instant::now();
        if sent >= end {
            return Ok((latencies, errors));
        }
        let k = key(rng.below(keys));
        let ok = match op {
            V3Op::Put => kv
                .put(PutRequest {
                    key: k,
                    value: value.clone(),
                    ..PutRequest::default()
                })
                .await
                .is_ok(),
            V3Op::Range | V3Op::SRange => kv
                .range(RangeRequest {
                    key: k,
                    serializable: op == V3Op::SRange,
                    ..RangeRequest::default()
                })
                .await
                .is_ok_and(|r| r.get_ref().count == 1),
        };
        let answered = Instant::now();
        let counted = sent >= start && answered <= end;
        if ok {
            if counted {
                latencies.record(answered - sent);
            }
        } else {
            errors += u64::from(counted);
        }
        if errors > 10_000 {
            bail!("worker {id}: more than 10,000 errors");
        }
    }
}
