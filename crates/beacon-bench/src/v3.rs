//! The v3 workloads: gRPC Put and Range (linearizable or serializable) over N HTTP/2
//! connections, each connection one closed-loop worker, as `load.rs` does for v2. The
//! same keys (`bench/kNNNNNN` in the v3 keyspace) and value sizes, so a v3 row compares
//! with its v2 row as well as with etcd's.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use beacon_proto::etcdserverpb::{PutRequest, PutResponse, RangeRequest, RangeResponse};
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::histogram::Histogram;
use crate::keys::Rng;
use crate::procfs::{own_cpu_seconds, CpuMeter};
use crate::unary::{Method, UnaryConn};

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

/// What every worker repeats: one call of `op` on one server.
#[derive(Clone)]
struct Work {
    put: Method,
    range: Method,
    op: V3Op,
    keys: u64,
    value: Vec<u8>,
}

impl Work {
    fn new(url: &str, args: &V3Args) -> Result<Self> {
        Ok(Self {
            put: Method::new(url, "/etcdserverpb.KV/Put")?,
            range: Method::new(url, "/etcdserverpb.KV/Range")?,
            op: args.op,
            keys: args.keys,
            value: vec![b'v'; args.value_bytes],
        })
    }

    /// One call of a random key; `true` when it succeeded (a Range must find the key).
    async fn call(&self, conn: &mut UnaryConn, rng: &mut Rng) -> bool {
        let key = key(rng.below(self.keys));
        match self.op {
            V3Op::Put => {
                let put = PutRequest {
                    key,
                    value: self.value.clone(),
                    ..PutRequest::default()
                };
                conn.call::<_, PutResponse>(&self.put, &put).await.is_ok()
            }
            V3Op::Range | V3Op::SRange => {
                let range = RangeRequest {
                    key,
                    serializable: self.op == V3Op::SRange,
                    ..RangeRequest::default()
                };
                conn.call::<_, RangeResponse>(&self.range, &range)
                    .await
                    .is_ok_and(|r| r.count == 1)
            }
        }
    }
}

/// Runs the workload against `url` and returns its JSON result.
pub async fn run(url: &str, args: &V3Args, pid: Option<u32>) -> Result<Value> {
    let work = Work::new(url, args)?;
    if args.op != V3Op::Put {
        // Every key read must exist: 16 writers load them first.
        let mut loaders = tokio::task::JoinSet::new();
        for w in 0..16u64 {
            let (mut conn, work) = (UnaryConn::connect(url).await?, work.clone());
            loaders.spawn(async move {
                for i in (w..work.keys).step_by(16) {
                    let put = PutRequest {
                        key: key(i),
                        value: work.value.clone(),
                        ..PutRequest::default()
                    };
                    conn.call::<_, PutResponse>(&work.put, &put).await?;
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(loaded) = loaders.join_next().await {
            loaded??;
        }
    }
    let mut clients = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        clients.push(UnaryConn::connect(url).await?);
    }
    let start = Instant::now() + Duration::from_secs_f64(args.warmup_seconds);
    let end = start + Duration::from_secs_f64(args.seconds);
    let mut workers = tokio::task::JoinSet::new();
    for (id, conn) in clients.into_iter().enumerate() {
        workers.spawn(worker(conn, work.clone(), id as u64, start, end));
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
    mut conn: UnaryConn,
    work: Work,
    id: u64,
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
        let ok = work.call(&mut conn, &mut rng).await;
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
