//! `v3-keys`: memory per key. Loads N keys of the v3 key space (`bench/kNNNNNN`, as
//! `v3` uses) in Txns of many Puts over a few connections, as fast as the server takes
//! them, then reads the server's resident memory and its data dir's size, and divides
//! the growth by the keys that are in (a final count-only Range says how many).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use serde_json::{json, Value};

use crate::procfs::{CpuMeter, Rss};
use crate::v3::{channel, key, prefix_end};

/// Settings of one run.
#[derive(clap::Args, Debug)]
pub struct V3KeysArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    #[arg(long, default_value_t = 64)]
    pub value_bytes: usize,
    /// Puts per Txn: etcd's default `--max-txn-ops` is 128.
    #[arg(long, default_value_t = 128)]
    pub puts_per_txn: u64,
    /// Connections loading at once, each one Txn at a time.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Loading stops here even if not all keys are in (the result says how many are).
    #[arg(long, default_value_t = 600)]
    pub time_limit_seconds: u64,
    /// The server's data dir, to report its size on disk.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Runs the workload and returns its JSON result; needs the server's pid.
pub async fn run(url: &str, args: &V3KeysArgs, pid: u32) -> Result<Value> {
    // Let start-up allocations settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = Rss::of(pid)?;
    let disk_idle = args.data_dir.as_deref().map(dir_bytes).transpose()?;

    let value = vec![b'v'; args.value_bytes];
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.time_limit_seconds);
    let cpu = CpuMeter::start(Some(pid))?;
    let mut loaders = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let mut kv = KvClient::new(channel(url, true).await?);
        let (next, value, keys, per_txn) =
            (next.clone(), value.clone(), args.keys, args.puts_per_txn);
        loaders.spawn(async move {
            while Instant::now() < deadline {
                let first = next.fetch_add(per_txn, Ordering::Relaxed);
                if first >= keys {
                    break;
                }
                let success = (first..(first + per_txn).min(keys))
                    .map(|i| RequestOp {
                        request: Some(Op::RequestPut(PutRequest {
                            key: key(i),
                            value: value.clone(),
                            ..PutRequest::default()
                        })),
                    })
                    .collect();
                kv.txn(TxnRequest {
                    success,
                    ..TxnRequest::default()
                })
                .await
                .with_context(|| format!("Txn of keys {first}.."))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(loaded) = loaders.join_next().await {
        loaded??;
    }
    let load_s = started.elapsed().as_secs_f64();
    let load_cpu_s = cpu.stop()?.unwrap_or(0.0);

    let mut kv = KvClient::new(channel(url, true).await?);
    let count = kv
        .range(RangeRequest {
            key: b"bench/k".to_vec(),
            range_end: prefix_end(b"bench/k"),
            count_only: true,
            ..RangeRequest::default()
        })
        .await?
        .into_inner()
        .count as u64;
    ensure!(count > 0, "no key loaded");
    // A moment for background work after the burst (compactions, a snapshot, GC).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let loaded = Rss::of(pid)?;
    let disk_loaded = args.data_dir.as_deref().map(dir_bytes).transpose()?;
    let per_key =
        |after: u64, before: u64| (after.saturating_sub(before) * 1024) as f64 / count as f64;
    Ok(json!({
        "keys_wanted": args.keys,
        "keys": count,
        "value_bytes": args.value_bytes,
        "load_s": load_s,
        "keys_per_sec": count as f64 / load_s,
        "load_cpu_us_per_key": load_cpu_s * 1e6 / count as f64,
        "rss_idle_kib": idle.total_kib,
        "rss_loaded_kib": loaded.total_kib,
        "rss_anon_loaded_kib": loaded.anon_kib,
        "rss_file_loaded_kib": loaded.file_kib,
        "rss_bytes_per_key": per_key(loaded.total_kib, idle.total_kib),
        "anon_bytes_per_key": per_key(loaded.anon_kib, idle.anon_kib),
        "file_bytes_per_key": per_key(loaded.file_kib, idle.file_kib),
        "disk_idle_bytes": disk_idle,
        "disk_loaded_bytes": disk_loaded,
        "disk_bytes_per_key": disk_idle.zip(disk_loaded)
            .map(|(before, after)| after.saturating_sub(before) as f64 / count as f64),
    }))
}

/// Bytes the files under `dir` take on disk (allocated blocks, as `du`; a preallocated
/// WAL counts whole). A file the server deletes while this walks is skipped.
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if gone(&e) => continue,
            read => read.with_context(|| format!("reading {}", dir.display()))?,
        };
        for entry in entries {
            let meta = match entry.and_then(|e| Ok((e.path(), e.metadata()?))) {
                Err(e) if gone(&e) => continue,
                meta => meta?,
            };
            if meta.1.is_dir() {
                todo.push(meta.0);
            } else {
                total += meta.1.blocks() * 512;
            }
        }
    }
    Ok(total)
}
