//! The memory workload: resident memory of an idle server, then with many keys loaded
//! (as fast as the server takes them), and the cost per key.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use crate::client::Target;
use crate::keys::{memory_key, value_form};
use crate::preload::preload;
use crate::procfs::rss_kib;

/// Settings of one run.
#[derive(clap::Args, Debug)]
pub struct MemoryArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Connections PUTting at once: enough for either server to batch its fsyncs.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Loading stops here even if not all keys are in (the result says how many are).
    #[arg(long, default_value_t = 600)]
    pub time_limit_seconds: u64,
    #[arg(long, default_value_t = 64)]
    pub value_bytes: usize,
}

/// Runs the workload and returns its JSON result; needs the server's pid.
pub async fn run(target: &Target, args: &MemoryArgs, pid: u32) -> Result<Value> {
    // Let start-up allocations settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_kib(pid)?;
    let form = value_form(args.value_bytes, 5);
    let limit = Duration::from_secs(args.time_limit_seconds);
    let loaded = preload(
        target,
        memory_key,
        args.keys,
        args.concurrency,
        &form,
        limit,
    )
    .await?;
    // A moment for background work after the burst (compaction, a snapshot, GC) to run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_loaded = rss_kib(pid)?;
    let per_key = (rss_loaded.saturating_sub(rss_idle) * 1024) as f64 / loaded.keys.max(1) as f64;
    Ok(json!({
        "keys_wanted": args.keys,
        "keys": loaded.keys,
        "load_s": loaded.seconds,
        "load_per_sec": loaded.keys as f64 / loaded.seconds,
        "rss_idle_kib": rss_idle,
        "rss_loaded_kib": rss_loaded,
        "bytes_per_key": per_key,
        "known_key": memory_key(0),
    }))
}
