//! The throughput/latency workloads: PUT, GET and quorum GET over N keep-alive
//! connections for a fixed time after a warm-up, each connection one closed-loop worker.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::client::{open_many, Conn, Target};
use crate::histogram::Histogram;
use crate::keys::{load_key, value_form, Rng};
use crate::preload::preload;
use crate::procfs::{own_cpu_seconds, CpuMeter};
use crate::server_log::{parse_log_count, LogCount, LogWindow};

/// Which request every worker repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    /// `PUT /v2/keys/bench/kNNNNNN` with a `value=` form.
    Put,
    /// `GET /v2/keys/bench/kNNNNNN`, served from the local store.
    Get,
    /// `GET ...?quorum=true`, which must go through consensus.
    Qget,
}

/// Settings of one run.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    #[arg(long, value_enum)]
    pub op: Op,
    #[arg(long)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup_seconds: f64,
    /// Distinct key names the workers pick from at random.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    #[arg(long, default_value_t = 64)]
    pub value_bytes: usize,
    /// A server's log file, to count lines in during the measured window (repeatable: a
    /// cluster's members each have one, and the counts are summed).
    #[arg(long)]
    pub server_log: Vec<std::path::PathBuf>,
    /// `NAME=TEXT`: count the lines of the server logs that contain TEXT under NAME in
    /// the result's `log_counts` (repeatable), e.g. `snapshots=wrote snapshot`.
    #[arg(long, value_parser = parse_log_count)]
    pub log_count: Vec<LogCount>,
}

/// What one worker saw inside the measured window.
#[derive(Default)]
struct WorkerStats {
    latencies: Histogram,
    errors: u64,
}

/// Runs the workload and returns its JSON result.
pub async fn run(target: &Target, args: &LoadArgs, pid: Option<u32>) -> Result<Value> {
    if !args.log_count.is_empty() && args.server_log.is_empty() {
        bail!("--log-count needs at least one --server-log to count in");
    }
    let form = value_form(args.value_bytes, 1);
    if args.op != Op::Put {
        // Reads of missing keys are 404s that cost the server nothing; load every key first.
        let loaded = preload(
            target,
            load_key,
            args.keys,
            64,
            &form,
            Duration::from_secs(300),
        )
        .await?;
        if loaded.keys < args.keys {
            bail!("preload got only {} of {} keys", loaded.keys, args.keys);
        }
    }
    let conns = open_many(target, args.concurrency, 64).await?;
    let start = Instant::now() + Duration::from_secs_f64(args.warmup_seconds);
    let end = start + Duration::from_secs_f64(args.seconds);
    let mut workers = tokio::task::JoinSet::new();
    for (id, conn) in conns.into_iter().enumerate() {
        let (target, form, op, keys) = (target.clone(), form.clone(), args.op, args.keys);
        workers.spawn(worker(target, conn, id as u64, op, keys, form, start, end));
    }
    tokio::time::sleep_until(start.into()).await;
    let server_cpu = CpuMeter::start(pid)?;
    let client_cpu = own_cpu_seconds()?;
    let log_window = if args.server_log.is_empty() {
        None
    } else {
        Some(LogWindow::open(&args.server_log)?)
    };
    // The logs are read when the window closes, not once the workers are done: a snapshot
    // taken while the last answers drain did not touch a measured request.
    tokio::time::sleep_until(end.into()).await;
    let log_counts = match &log_window {
        Some(window) => Some(window.close(&args.log_count)?),
        None => None,
    };
    let mut total = WorkerStats::default();
    while let Some(stats) = workers.join_next().await {
        let stats = stats??;
        total.latencies.merge(&stats.latencies);
        total.errors += stats.errors;
    }
    let server_cpu = server_cpu.stop()?;
    let client_cpu = own_cpu_seconds()? - client_cpu;
    let ops = total.latencies.count();
    let mut result = json!({
        "op": format!("{:?}", args.op).to_lowercase(),
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "ops": ops,
        "ops_per_sec": ops as f64 / args.seconds,
        "p50_ms": total.latencies.quantile_us(0.50) as f64 / 1000.0,
        "p99_ms": total.latencies.quantile_us(0.99) as f64 / 1000.0,
        "max_ms": total.latencies.max_us() as f64 / 1000.0,
        "errors": total.errors,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_op": server_cpu.map(|s| s * 1e6 / ops.max(1) as f64),
        "client_cpu_s": client_cpu,
    });
    if let Some(log_counts) = log_counts {
        result["log_counts"] = log_counts;
    }
    Ok(result)
}

/// One closed-loop worker: a request, its answer, the next request, until `end`. Only
/// requests sent after `start` and answered before `end` count.
#[allow(clippy::too_many_arguments)]
async fn worker(
    target: Target,
    mut conn: Conn,
    id: u64,
    op: Op,
    keys: u64,
    form: String,
    start: Instant,
    end: Instant,
) -> Result<WorkerStats> {
    let mut rng = Rng::new(id + 1);
    let mut stats = WorkerStats::default();
    loop {
        let sent = Instant::now();
        if sent >= end {
            return Ok(stats);
        }
        let key = load_key(rng.below(keys));
        let reply = match op {
            Op::Put => conn.put(&key, &form).await,
            Op::Get => conn.get(&key).await,
            Op::Qget => conn.get(&format!("{key}?quorum=true")).await,
        };
        let answered = Instant::now();
        let counted = sent >= start && answered <= end;
        match reply {
            Ok(reply) if (200..300).contains(&reply.status) => {
                if counted {
                    stats.latencies.record(answered - sent);
                }
            }
            Ok(_) => stats.errors += u64::from(counted),
            Err(_) => {
                stats.errors += u64::from(counted);
                // A broken connection is replaced, so one hiccup does not idle a worker.
                tokio::time::sleep(Duration::from_millis(10)).await;
                conn = Conn::open(&target).await?;
            }
        }
        if stats.errors > 10_000 {
            bail!("worker {id}: more than 10,000 errors");
        }
    }
}
