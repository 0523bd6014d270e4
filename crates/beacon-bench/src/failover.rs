//! Failover: SIGKILL of a cluster's leader under a steady stream of writes to the other
//! members, and the time until a write sent after the kill is acknowledged.
//!
//! Writes are open-loop (one every `--interval-ms`, each on its own connection with its
//! own deadline), so that a request stuck on the dead leader never holds back the next
//! one: the figure is the cluster's, not the client's retry policy.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::client::{Conn, Target};

/// Settings of one failover round.
#[derive(clap::Args, Debug)]
pub struct FailoverArgs {
    /// Every member's client URL, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub urls: Vec<String>,
    /// Every member's process id, in the order of `--urls`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub pids: Vec<u32>,
    /// Milliseconds between two writes (spread over the surviving members).
    #[arg(long, default_value_t = 5)]
    pub interval_ms: u64,
    /// How long writes run before the kill.
    #[arg(long, default_value_t = 1.0)]
    pub before_seconds: f64,
    /// How long to wait for a write sent after the kill to be acknowledged.
    #[arg(long, default_value_t = 20.0)]
    pub timeout_seconds: f64,
}

/// The leader of a cluster: the member whose `/v2/stats/self` says `StateLeader`.
pub async fn leader(urls: &[String]) -> Result<(usize, String)> {
    for (i, url) in urls.iter().enumerate() {
        let Ok(target) = Target::parse(url) else {
            continue;
        };
        let Ok(mut conn) = Conn::open(&target).await else {
            continue;
        };
        let Ok(reply) = conn.get("/v2/stats/self").await else {
            continue;
        };
        let stats: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        if stats["state"] == "StateLeader" {
            return Ok((i, url.clone()));
        }
    }
    bail!("no member of {urls:?} says it leads")
}

/// Waits until some member leads, up to `timeout`.
pub async fn wait_leader(urls: &[String], timeout: Duration) -> Result<(usize, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        match leader(urls).await {
            Ok(found) => return Ok(found),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// One write on a fresh connection: when it was sent and, if acknowledged, when.
async fn one_write(target: Target, key: String, deadline: Duration) -> (Instant, Option<Instant>) {
    let sent = Instant::now();
    let acked = tokio::time::timeout(deadline, async {
        let mut conn = Conn::open(&target).await.ok()?;
        let reply = conn.put(&key, "value=failover").await.ok()?;
        (200..300).contains(&reply.status).then(Instant::now)
    })
    .await
    .ok()
    .flatten();
    (sent, acked)
}

/// Runs one round: writes, the kill, writes until one sent after the kill is acked.
pub async fn run(args: &FailoverArgs) -> Result<Value> {
    if args.urls.len() != args.pids.len() || args.urls.len() < 3 {
        bail!("--urls and --pids must name the same members, at least 3");
    }
    let (lead, _) = wait_leader(&args.urls, Duration::from_secs(20)).await?;
    let survivors: Vec<Target> = args
        .urls
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != lead)
        .map(|(_, u)| Target::parse(u))
        .collect::<Result<_>>()?;
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let deadline = Duration::from_secs_f64(args.timeout_seconds);
    let kill_at = Instant::now() + Duration::from_secs_f64(args.before_seconds);
    let give_up = kill_at + deadline;
    let mut writes = tokio::task::JoinSet::new();
    let mut killed: Option<Instant> = None;
    let mut n = 0u64;
    let mut resumed: Option<Duration> = None;
    let mut acked_before = 0u64;
    while resumed.is_none() && Instant::now() < give_up {
        if killed.is_none() && Instant::now() >= kill_at {
            killed = Some(Instant::now());
            let status = std::process::Command::new("kill")
                .args(["-KILL", &args.pids[lead].to_string()])
                .status()
                .context("running kill")?;
            if !status.success() {
                bail!("kill -KILL {} failed", args.pids[lead]);
            }
        }
        let target = survivors[(n as usize) % survivors.len()].clone();
        writes.spawn(one_write(
            target,
            format!("/v2/keys/failover/k{}", n % 1000),
            deadline,
        ));
        n += 1;
        tokio::time::sleep(interval).await;
        while let Some(done) = writes.try_join_next() {
            let (sent, acked) = done?;
            match (killed, acked) {
                (Some(k), Some(a)) if sent >= k => {
                    let gap = a - k;
                    resumed = Some(resumed.map_or(gap, |r| r.min(gap)));
                }
                (None, Some(_)) => acked_before += 1,
                _ => {}
            }
        }
    }
    writes.abort_all();
    let Some(resumed) = resumed else {
        bail!("no write sent after the kill was acknowledged within {deadline:?}");
    };
    let survivors: Vec<usize> = (0..args.urls.len()).filter(|i| *i != lead).collect();
    let survivor_urls: Vec<String> = survivors.iter().map(|i| args.urls[*i].clone()).collect();
    let (k, _) = wait_leader(&survivor_urls, Duration::from_secs(5)).await?;
    let new_leader = survivors[k];
    Ok(json!({
        "killed_member": lead,
        "failover_ms": resumed.as_secs_f64() * 1000.0,
        "writes_sent": n,
        "acked_before_kill": acked_before,
        "new_leader": new_leader,
    }))
}
