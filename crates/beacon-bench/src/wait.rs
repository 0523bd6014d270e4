//! Waiting for a server: until it is ready for a benchmark, or (timed, for the restart
//! workload) until it answers a GET of a known key.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::client::{Conn, Target};

/// Between attempts: short, since the restart time is measured by this loop.
const POLL: Duration = Duration::from_millis(5);

/// Ready means `/health` says true and, for etcd, the cluster version is decided (etcd
/// writes it into the v2 store just after start; waiting keeps indexes comparable).
pub async fn ready(target: &Target, timeout: Duration) -> Result<Value> {
    let started = Instant::now();
    loop {
        if is_ready(target).await {
            return Ok(json!({ "seconds": started.elapsed().as_secs_f64() }));
        }
        if started.elapsed() > timeout {
            bail!("{} not ready within {timeout:?}", target.addr);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn is_ready(target: &Target) -> bool {
    let Ok(mut conn) = Conn::open(target).await else {
        return false;
    };
    let health = conn.get("/health").await;
    if !health.is_ok_and(|r| r.status == 200 && String::from_utf8_lossy(&r.body).contains("true")) {
        return false;
    }
    conn.get("/version")
        .await
        .is_ok_and(|r| r.status == 200 && !String::from_utf8_lossy(&r.body).contains("not_decided"))
}

/// Polls `GET path` until it answers 200; reports the seconds since `since_epoch_ns`
/// (taken by the caller just before it started the server, so process start counts).
pub async fn key(
    target: &Target,
    path: &str,
    since_epoch_ns: u128,
    timeout: Duration,
) -> Result<Value> {
    let started = Instant::now();
    loop {
        if let Ok(mut conn) = Conn::open(target).await {
            if conn.get(path).await.is_ok_and(|r| r.status == 200) {
                let now_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
                let seconds = now_ns.saturating_sub(since_epoch_ns) as f64 / 1e9;
                return Ok(json!({ "seconds": seconds }));
            }
        }
        if started.elapsed() > timeout {
            bail!("GET {path} did not succeed within {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}
