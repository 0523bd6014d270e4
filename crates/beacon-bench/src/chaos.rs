//! Chaos: GET requests through a reverse proxy (beaconctl proxy or nginx) while
//! bench/chaos kills and restarts instances and the registry; which instance answered
//! each request (the demo instances answer with their id as the body), when each one
//! first answered, the success rate and the latencies.
//!
//! Two modes over the same keep-alive connections:
//! - open loop (`--rate R`): request k is due at start + k/R, whatever happened to the
//!   ones before; its latency runs from when it was due, so a stalled proxy shows in the
//!   latencies instead of quietly lowering the rate (no coordinated omission);
//! - closed loop (`--rate 0`): every connection sends its next request as soon as the
//!   last one is answered: the proxy's maximum throughput.
//!
//! Every loop is bounded: no request is due after the end, and each one is abandoned
//! after `--timeout-ms`.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::client::{Conn, Target};
use crate::histogram::Histogram;

/// The resolution of the timeline of successes and failures in the result.
const TIMELINE_SLOT: Duration = Duration::from_millis(100);

/// Settings of one run.
#[derive(clap::Args, Debug)]
pub struct ChaosArgs {
    /// Requests per second, open loop; 0: closed loop (each connection as fast as it can).
    #[arg(long, default_value_t = 400.0)]
    pub rate: f64,
    /// Keep-alive connections to the proxy (the most requests in flight at once).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// How long requests are sent (after the warm-up).
    #[arg(long, default_value_t = 55.0)]
    pub seconds: f64,
    /// Requests due in the first seconds are sent but not counted.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_seconds: f64,
    /// Unix time in ms at which the first request is due (default: now), so that the
    /// script's fault schedule and the load share one clock.
    #[arg(long)]
    pub start_unix_ms: Option<u64>,
    /// A request not answered within this is a failure (and its connection is replaced).
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Path of every GET.
    #[arg(long, default_value = "/")]
    pub path: String,
}

/// Responses that named one instance (its id is the first word of the body).
#[derive(Default, Clone)]
struct PerInstance {
    ok: u64,
    failed: u64,
    first_unix_ms: u64,
    last_unix_ms: u64,
    /// Responses per `TIMELINE_SLOT` since the start, by when they were answered.
    timeline: Vec<u64>,
}

/// What one worker saw among the counted requests.
#[derive(Default)]
struct Stats {
    latencies: Histogram,
    ok: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    instances: BTreeMap<String, PerInstance>,
    /// Per `TIMELINE_SLOT` since the start (by when the request was due): [ok, failed].
    timeline: Vec<[u64; 2]>,
    max_send_lag: Duration,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latencies.merge(&other.latencies);
        self.ok += other.ok;
        self.failed += other.failed;
        for (k, n) in other.failures {
            *self.failures.entry(k).or_default() += n;
        }
        for (id, theirs) in other.instances {
            match self.instances.entry(id) {
                Entry::Vacant(e) => {
                    e.insert(theirs);
                }
                Entry::Occupied(mut e) => {
                    let mine = e.get_mut();
                    mine.ok += theirs.ok;
                    mine.failed += theirs.failed;
                    mine.first_unix_ms = mine.first_unix_ms.min(theirs.first_unix_ms);
                    mine.last_unix_ms = mine.last_unix_ms.max(theirs.last_unix_ms);
                    add_slots(&mut mine.timeline, &theirs.timeline);
                }
            }
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), [0, 0]);
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            mine[0] += theirs[0];
            mine[1] += theirs[1];
        }
        self.max_send_lag = self.max_send_lag.max(other.max_send_lag);
    }

    fn tick(&mut self, slot: usize, ok: bool) {
        if self.timeline.len() <= slot {
            self.timeline.resize(slot + 1, [0, 0]);
        }
        self.timeline[slot][usize::from(!ok)] += 1;
    }
}

/// Adds `theirs` to `mine` slot by slot.
fn add_slots(mine: &mut Vec<u64>, theirs: &[u64]) {
    if mine.len() < theirs.len() {
        mine.resize(theirs.len(), 0);
    }
    for (m, t) in mine.iter_mut().zip(theirs) {
        *m += t;
    }
}

/// The clock every worker shares: the start as an `Instant` and as unix milliseconds.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    start_unix_ms: u64,
    counted_from: Instant,
    end: Instant,
}

impl Clock {
    fn unix_ms(&self, at: Instant) -> u64 {
        self.start_unix_ms + (at.saturating_duration_since(self.start).as_millis() as u64)
    }
}

fn now_unix_ms() -> Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?
        .as_millis() as u64)
}

/// Runs the load and returns its JSON result.
pub async fn run(target: &Target, args: &ChaosArgs) -> Result<Value> {
    if args.connections == 0 || args.connections > 4096 {
        bail!("--connections must be within 1..=4096");
    }
    let seconds_ok = args.seconds > 0.0 && args.seconds <= 3600.0;
    let warmup_ok = (0.0..=3600.0).contains(&args.warmup_seconds);
    if !(0.0..=1e6).contains(&args.rate) || !seconds_ok || !warmup_ok {
        bail!("--rate must be within 0..=1e6, --seconds within (0, 3600], --warmup-seconds within 0..=3600");
    }
    let now_ms = now_unix_ms()?;
    let start_unix_ms = args.start_unix_ms.unwrap_or(now_ms).max(now_ms);
    if start_unix_ms - now_ms > 60_000 {
        bail!("--start-unix-ms is more than a minute ahead");
    }
    let start = Instant::now() + Duration::from_millis(start_unix_ms - now_ms);
    let counted_from = start + Duration::from_secs_f64(args.warmup_seconds);
    let clock = Clock {
        start,
        start_unix_ms,
        counted_from,
        end: counted_from + Duration::from_secs_f64(args.seconds),
    };
    let tickets = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        workers.spawn(worker(
            target.clone(),
            args.path.clone(),
            args.rate,
            Duration::from_millis(args.timeout_ms.max(1)),
            clock,
            tickets.clone(),
        ));
    }
    let mut total = Stats::default();
    while let Some(stats) = workers.join_next().await {
        total.merge(stats??);
    }
    let requests = total.ok + total.failed;
    let named: u64 = total.instances.values().map(|i| i.ok + i.failed).sum();
    let instances: serde_json::Map<String, Value> = total
        .instances
        .iter()
        .map(|(id, i)| {
            let share = (i.ok + i.failed) as f64 / named.max(1) as f64;
            let v = json!({
                "ok": i.ok,
                "failed": i.failed,
                "share": share,
                "first_unix_ms": i.first_unix_ms,
                "last_unix_ms": i.last_unix_ms,
                "timeline": i.timeline,
            });
            (id.clone(), v)
        })
        .collect();
    Ok(json!({
        "mode": if args.rate > 0.0 { "open" } else { "closed" },
        "rate": args.rate,
        "connections": args.connections,
        "seconds": args.seconds,
        "warmup_seconds": args.warmup_seconds,
        "start_unix_ms": clock.unix_ms(counted_from),
        "requests": requests,
        "ok": total.ok,
        "failed": total.failed,
        "success_rate": total.ok as f64 / requests.max(1) as f64,
        "ok_per_sec": total.ok as f64 / args.seconds,
        "p50_ms": total.latencies.quantile_us(0.50) as f64 / 1000.0,
        "p99_ms": total.latencies.quantile_us(0.99) as f64 / 1000.0,
        "max_ms": total.latencies.max_us() as f64 / 1000.0,
        "max_send_lag_ms": total.max_send_lag.as_secs_f64() * 1000.0,
        "failures": total.failures,
        "instances": instances,
        "timeline_slot_ms": TIMELINE_SLOT.as_millis() as u64,
        "timeline": total.timeline,
    }))
}

/// One connection's worker: takes the next due request, sends it, records the answer.
async fn worker(
    target: Target,
    path: String,
    rate: f64,
    timeout: Duration,
    clock: Clock,
    tickets: Arc<AtomicU64>,
) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut conn: Option<Conn> = None;
    loop {
        let due = if rate > 0.0 {
            let k = tickets.fetch_add(1, Ordering::Relaxed);
            let due = clock.start + Duration::from_secs_f64(k as f64 / rate);
            if due >= clock.end {
                return Ok(stats);
            }
            tokio::time::sleep_until(due.into()).await;
            due
        } else {
            let now = Instant::now().max(clock.start);
            if now >= clock.end {
                return Ok(stats);
            }
            tokio::time::sleep_until(now.into()).await;
            now
        };
        let sent = Instant::now();
        let outcome = tokio::time::timeout(timeout, async {
            let mut c = match conn.take() {
                Some(c) => c,
                None => Conn::open(&target).await?,
            };
            let reply = c.get(&path).await?;
            Ok::<_, anyhow::Error>((c, reply))
        })
        .await;
        let answered = Instant::now();
        let counted = due >= clock.counted_from && (rate > 0.0 || answered <= clock.end);
        let failure = match outcome {
            Ok(Ok((c, reply))) => {
                // A connection the proxy is closing is replaced before the next request.
                if !reply.close {
                    conn = Some(c);
                }
                let ok = (200..300).contains(&reply.status);
                if counted {
                    let body = String::from_utf8_lossy(&reply.body);
                    let id = body.split_whitespace().next().unwrap_or("").to_string();
                    if !id.is_empty() && id.len() <= 64 && (ok || reply.status == 500) {
                        let at = clock.unix_ms(answered);
                        let entry = stats.instances.entry(id).or_insert(PerInstance {
                            first_unix_ms: at,
                            ..PerInstance::default()
                        });
                        if ok {
                            entry.ok += 1;
                        } else {
                            entry.failed += 1;
                        }
                        entry.first_unix_ms = entry.first_unix_ms.min(at);
                        entry.last_unix_ms = entry.last_unix_ms.max(at);
                        let slot = (answered
                            .saturating_duration_since(clock.counted_from)
                            .as_millis()
                            / TIMELINE_SLOT.as_millis())
                            as usize;
                        if entry.timeline.len() <= slot {
                            entry.timeline.resize(slot + 1, 0);
                        }
                        entry.timeline[slot] += 1;
                    }
                }
                (!ok).then(|| format!("status {}", reply.status))
            }
            Ok(Err(_)) => Some("connection error".to_string()),
            Err(_) => Some("timeout".to_string()),
        };
        if !counted {
            if failure.is_some() && rate == 0.0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            continue;
        }
        stats.max_send_lag = stats.max_send_lag.max(sent - due);
        let slot = (due - clock.counted_from).as_millis() / TIMELINE_SLOT.as_millis();
        stats.tick(slot as usize, failure.is_none());
        match failure {
            None => {
                stats.ok += 1;
                stats.latencies.record(answered - due);
            }
            Some(kind) => {
                stats.failed += 1;
                *stats.failures.entry(kind).or_default() += 1;
                if rate == 0.0 {
                    // Closed loop: do not spin on a proxy that refuses at once.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}
