//! Fills a server with keys as fast as it takes them: many connections, each PUTting the
//! next unclaimed index. Used before GET runs and by the memory workload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::client::{open_many, Target};

/// What a preload achieved.
pub struct Loaded {
    /// Keys written (all of them unless the time limit struck first).
    pub keys: u64,
    pub seconds: f64,
}

/// PUTs `path_of(0..count)` with `form` over `concurrency` connections, stopping early at
/// `time_limit` (the caller reports how many keys it got).
pub async fn preload(
    target: &Target,
    path_of: fn(u64) -> String,
    count: u64,
    concurrency: usize,
    form: &str,
    time_limit: Duration,
) -> Result<Loaded> {
    let started = Instant::now();
    let deadline = started + time_limit;
    let next = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let conns = open_many(target, concurrency, 64).await?;
    let mut workers = tokio::task::JoinSet::new();
    for mut conn in conns {
        let (next, written, form) = (next.clone(), written.clone(), form.to_string());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() >= deadline {
                    return Ok(());
                }
                let reply = conn.put(&path_of(i), &form).await?;
                if !(200..300).contains(&reply.status) {
                    bail!("preload PUT {} answered {}", path_of(i), reply.status);
                }
                written.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(Loaded {
        keys: written.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    })
}
