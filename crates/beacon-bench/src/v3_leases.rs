//! `v3-leases`: many leases expiring together. Grants N leases of one TTL over C
//! connections (the grant rate is part of the result), each worker attaching a key
//! (`bench/l/NNNNNNN`) to each lease it granted in one Txn per 128; then polls how many
//! are left until none is, while a probe Puts and Ranges one other key in a closed loop.
//!
//! Each lease's deadline is taken as its grant's send time plus the TTL (the server
//! stamps it a little later, so lags are over- rather than under-stated). Leases are
//! granted over a while, so their deadlines spread over the grant phase; the result
//! gives that spread, the time from the last deadline until all are gone, and a bound
//! on the largest lag: both servers revoke earliest first, so the r leases gone between
//! two polls are the next r by deadline, and were gone by the later poll's answer.
//! With `--burst` the server is held stopped over the deadlines, so that every lease is
//! due the moment it resumes, which is what a grant rate far above N / TTL would give.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::lease_client::LeaseClient;
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseLeasesRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::histogram::Histogram;
use crate::procfs::{CpuMeter, Rss};
use crate::v3::{channel, prefix_end};

const PREFIX: &[u8] = b"bench/l/";
const PROBE_KEY: &[u8] = b"bench/probe";
/// Leases a worker grants before attaching their keys in one Txn (etcd's max txn ops).
const CHUNK: u64 = 128;

/// Settings of one run.
#[derive(clap::Args, Debug)]
pub struct V3LeasesArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub leases: u64,
    #[arg(long, default_value_t = 30)]
    pub ttl_seconds: i64,
    /// Connections granting at once, each one grant at a time.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Grant the leases without a key each (the poll then counts `LeaseLeases`).
    #[arg(long)]
    pub no_keys: bool,
    /// Granting stops here even if not all leases are granted.
    #[arg(long, default_value_t = 600)]
    pub grant_limit_seconds: u64,
    /// How long after the last deadline to wait for the last revoke.
    #[arg(long, default_value_t = 120)]
    pub wait_limit_seconds: u64,
    #[arg(long, default_value_t = 100)]
    pub poll_ms: u64,
    /// Pause between two probes (a Put, then a linearizable Range).
    #[arg(long, default_value_t = 20)]
    pub probe_pause_ms: u64,
    /// Make every lease due at once, however long the grants took: the server is
    /// stopped (SIGSTOP) from a second before the first deadline until the last one has
    /// passed, and the lags count from its resumption (needs --pid).
    #[arg(long)]
    pub burst: bool,
}

/// Runs the workload and returns its JSON result.
pub async fn run(url: &str, args: &V3LeasesArgs, pid: Option<u32>) -> Result<Value> {
    let base = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = pid.map(Rss::of).transpose()?;
    let next = Arc::new(AtomicU64::new(0));
    let grant_end = base + Duration::from_secs(1 + args.grant_limit_seconds);
    let granting = Instant::now();
    let cpu = CpuMeter::start(pid)?;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let ch = channel(url, true).await?;
        let (next, n, ttl, keys) = (next.clone(), args.leases, args.ttl_seconds, !args.no_keys);
        workers.spawn(grant(ch, next, n, ttl, keys, base, grant_end));
    }
    let (mut sent_ns, mut unattached) = (Vec::new(), 0);
    while let Some(done) = workers.join_next().await {
        let (sent, lost) = done??;
        sent_ns.extend(sent);
        unattached += lost;
    }
    let grant_s = granting.elapsed().as_secs_f64();
    // Probes in the second after the grants are no one's: the server may still be busy
    // with the burst (a flush, a compaction), which is not what the baseline is for.
    let settled = Instant::now() + Duration::from_secs(1);
    let grant_cpu_s = cpu.stop()?;
    let rss_granted = pid.map(Rss::of).transpose()?;
    ensure!(!sent_ns.is_empty(), "no lease granted");
    sent_ns.sort_unstable();
    let ttl = Duration::from_secs(args.ttl_seconds as u64);
    let deadlines: Vec<Instant> = sent_ns
        .iter()
        .map(|&ns| base + Duration::from_nanos(ns) + ttl)
        .collect();
    let (mut first, mut last) = (deadlines[0], deadlines[deadlines.len() - 1]);
    let n = deadlines.len();

    // The probe runs from now until the poll sees none left (with --burst, another one
    // from the resumption, on a connection opened before the hold).
    let pause = Duration::from_millis(args.probe_pause_ms);
    let mut stop = Arc::new(tokio::sync::Notify::new());
    let mut probes = vec![tokio::spawn(probe(
        KvClient::new(channel(url, true).await?),
        pause,
        stop.clone(),
    ))];
    let mut kv = KvClient::new(channel(url, true).await?);
    let mut lease = lease_client(channel(url, true).await?);
    let mut held_from = None;
    let mut due_before_hold = 0;
    let mut deadlines = deadlines;
    if args.burst {
        // Stopped from a second before the first deadline until the last one has
        // passed: when it resumes, every lease is due at once.
        let pid = pid.context("--burst needs --pid")?;
        let after = KvClient::new(channel(url, true).await?);
        tokio::time::sleep_until((first - Duration::from_secs(1)).into()).await;
        stop.notify_one();
        held_from = Some(Instant::now());
        signal(pid, "STOP")?;
        tokio::time::sleep_until((last + Duration::from_millis(200)).into()).await;
        signal(pid, "CONT")?;
        let resumed = Instant::now();
        // Leases due before the hold (the TTL was shorter than the grants) were not due
        // at once; the result says how many.
        due_before_hold = deadlines.partition_point(|&d| held_from.is_some_and(|h| d < h));
        (first, last) = (resumed, resumed);
        deadlines = vec![resumed; n];
        stop = Arc::new(tokio::sync::Notify::new());
        probes.push(tokio::spawn(probe(after, pause, stop.clone())));
    }
    let give_up = last + Duration::from_secs(args.wait_limit_seconds);
    let mut polls: Vec<(Instant, usize)> = Vec::new();
    let mut cpu = None;
    let mut ticks = tokio::time::interval(Duration::from_millis(args.poll_ms));
    loop {
        ticks.tick().await;
        if cpu.is_none() && Instant::now() >= first {
            cpu = Some(CpuMeter::start(pid)?);
        }
        let left = if args.no_keys {
            lease
                .lease_leases(LeaseLeasesRequest {})
                .await?
                .into_inner()
                .leases
                .len()
        } else {
            kv.range(RangeRequest {
                key: PREFIX.to_vec(),
                range_end: prefix_end(PREFIX),
                count_only: true,
                ..RangeRequest::default()
            })
            .await?
            .into_inner()
            .count as usize
        };
        let at = Instant::now();
        polls.push((at, left));
        if left == 0 || at > give_up {
            break;
        }
    }
    let expiry_cpu_s = match cpu {
        Some(cpu) => cpu.stop()?,
        None => None,
    };
    stop.notify_one();
    let (mut samples, mut probe_errors) = (Vec::new(), 0);
    for probe in probes {
        let (s, e) = probe.await??;
        samples.extend(s);
        probe_errors += e;
    }
    let leases_left = lease
        .lease_leases(LeaseLeasesRequest {})
        .await?
        .into_inner()
        .leases
        .len();

    let (end, left) = *polls.last().context("no poll")?;
    let secs = |a: Instant, b: Instant| {
        a.saturating_duration_since(b).as_secs_f64() - b.saturating_duration_since(a).as_secs_f64()
    };
    // An upper bound of the largest lag: the leases gone between two polls were gone by
    // the later one's answer, the earliest of them due at the first deadline among them
    // (see the module's comment).
    let mut max_lag_s = 0.0f64;
    let mut left_before = n;
    for &(at, left) in &polls {
        if left < left_before {
            max_lag_s = max_lag_s.max(secs(at, deadlines[n - left_before]));
            left_before = left;
        }
    }
    let (mut probe_before, mut probe_during) = (Histogram::default(), Histogram::default());
    for &(at, latency) in &samples {
        if at >= first {
            probe_during.record(latency);
        } else if at >= settled && held_from.is_none_or(|held| at < held) {
            probe_before.record(latency);
        }
    }
    let ms = |us: u64| us as f64 / 1e3;
    let kib = |r: Option<Rss>| r.map(|r| r.total_kib);
    Ok(json!({
        "leases_wanted": args.leases,
        "leases": n,
        "keys": !args.no_keys,
        "unattached": unattached,
        "ttl_s": args.ttl_seconds,
        "concurrency": args.concurrency,
        "grant_s": grant_s,
        "grants_per_sec": (n + unattached) as f64 / grant_s,
        "grant_server_cpu_us_per_lease": grant_cpu_s.map(|s| s * 1e6 / n as f64),
        "rss_idle_kib": kib(rss_idle),
        "rss_granted_kib": kib(rss_granted),
        "rss_bytes_per_lease": rss_idle.zip(rss_granted).map(|(a, b)| (b.total_kib.saturating_sub(a.total_kib) * 1024) as f64 / n as f64),
        "burst": args.burst,
        "deadline_spread_s": secs(last, first),
        "held_s": held_from.map(|held| secs(first, held)),
        "due_before_hold": due_before_hold,
        "left_at_end": left,
        "leases_left_at_end": leases_left,
        "all_gone": left == 0,
        "gone_after_first_deadline_s": secs(end, first),
        "gone_after_last_deadline_s": secs(end, last),
        "max_lag_s": max_lag_s,
        "peak_revokes_per_sec": peak_rate(&polls),
        "expiry_server_cpu_s": expiry_cpu_s,
        "probe_before_n": probe_before.count(),
        "probe_before_p50_ms": ms(probe_before.quantile_us(0.5)),
        "probe_before_p99_ms": ms(probe_before.quantile_us(0.99)),
        "probe_before_max_ms": ms(probe_before.max_us()),
        "probe_during_n": probe_during.count(),
        "probe_during_p50_ms": ms(probe_during.quantile_us(0.5)),
        "probe_during_p99_ms": ms(probe_during.quantile_us(0.99)),
        "probe_during_max_ms": ms(probe_during.max_us()),
        "probe_errors": probe_errors,
    }))
}

/// The fastest fall of the count over any second of polls (or from a poll to the last
/// one, when that is less than a second later), per second.
fn peak_rate(polls: &[(Instant, usize)]) -> f64 {
    let mut best = 0.0f64;
    let mut j = 0;
    for (i, &(at, left)) in polls.iter().enumerate() {
        j = j.max(i + 1);
        while j + 1 < polls.len() && polls[j].0.duration_since(at) < Duration::from_secs(1) {
            j += 1;
        }
        let Some(&(later, left_later)) = polls.get(j) else {
            break;
        };
        let fell = left.saturating_sub(left_later) as f64;
        best = best.max(fell / later.duration_since(at).as_secs_f64().max(1e-3));
    }
    best
}

fn lease_client(ch: Channel) -> LeaseClient<Channel> {
    // A million ids are ~10 MB in one LeaseLeases answer.
    LeaseClient::new(ch).max_decoding_message_size(256 << 20)
}

/// One granting worker: takes chunks of lease numbers until all are taken, grants each,
/// then attaches a key to each in one Txn. Returns when each lease it kept was sent
/// (ns since `base`), and how many it could not attach a key to (expired already).
async fn grant(
    ch: Channel,
    next: Arc<AtomicU64>,
    leases: u64,
    ttl: i64,
    keys: bool,
    base: Instant,
    end: Instant,
) -> Result<(Vec<u64>, usize)> {
    let (mut lease, mut kv) = (lease_client(ch.clone()), KvClient::new(ch));
    let (mut kept, mut lost) = (Vec::new(), 0);
    while Instant::now() < end {
        let first = next.fetch_add(CHUNK, Ordering::Relaxed);
        if first >= leases {
            break;
        }
        let mut granted = Vec::new();
        for i in first..(first + CHUNK).min(leases) {
            let sent = base.elapsed().as_nanos() as u64;
            let id = lease
                .lease_grant(LeaseGrantRequest { ttl, id: 0 })
                .await
                .context("LeaseGrant")?
                .into_inner()
                .id;
            granted.push((i, id, sent));
        }
        if !keys {
            kept.extend(granted.iter().map(|g| g.2));
            continue;
        }
        let success = granted
            .iter()
            .map(|&(i, id, _)| RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: [PREFIX, format!("{i:07}").as_bytes()].concat(),
                    value: b"v".to_vec(),
                    lease: id,
                    ..PutRequest::default()
                })),
            })
            .collect();
        match kv
            .txn(TxnRequest {
                success,
                ..TxnRequest::default()
            })
            .await
        {
            Ok(_) => kept.extend(granted.iter().map(|g| g.2)),
            // A lease of the chunk expired before its key was put: the Txn is refused.
            Err(status) if status.code() == tonic::Code::NotFound => lost += granted.len(),
            Err(status) => return Err(status).context("attaching keys"),
        }
    }
    Ok((kept, lost))
}

/// Sends `SIGname` to `pid` (`kill -name pid`).
fn signal(pid: u32, name: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// Closed-loop Put then linearizable Range of one key until `stop`; each pair's start
/// and its whole latency, and how many failed (timed out while the server was held).
async fn probe(
    mut kv: KvClient<Channel>,
    pause: Duration,
    stop: Arc<tokio::sync::Notify>,
) -> Result<(Vec<(Instant, Duration)>, u64)> {
    let (mut out, mut errors) = (Vec::new(), 0);
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let at = Instant::now();
        let pair = async {
            kv.put(PutRequest {
                key: PROBE_KEY.to_vec(),
                value: b"p".to_vec(),
                ..PutRequest::default()
            })
            .await?;
            kv.range(RangeRequest {
                key: PROBE_KEY.to_vec(),
                ..RangeRequest::default()
            })
            .await?;
            anyhow::Ok(())
        };
        tokio::select! {
            () = &mut stopped => return Ok((out, errors)),
            done = pair => match done {
                Ok(()) => out.push((at, at.elapsed())),
                Err(_) => errors += 1,
            },
        }
        tokio::select! {
            () = &mut stopped => return Ok((out, errors)),
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_rate_is_the_fastest_fall_over_a_second_or_to_the_last_poll() {
        let t0 = Instant::now();
        let at = |ms: u64, left: usize| (t0 + Duration::from_millis(ms), left);
        // 1,000 gone in the second from 0 to 1 s, then 3,000 in the 0.5 s to the end.
        let polls = [at(0, 5000), at(500, 4500), at(1000, 4000), at(1500, 1000)];
        assert_eq!(peak_rate(&polls), 6000.0);
        assert_eq!(peak_rate(&[at(0, 10)]), 0.0);
    }
}
