//! The watch fan-out workload: N idle long-poll watchers on one prefix (their memory on
//! the server is measured), then one write, and the time from sending it until the last
//! watcher has the event; repeated for a few rounds.

mod watcher;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::client::{open_many, Conn, Target};
use crate::histogram::median;
use crate::keys::value_form;
use crate::procfs::{listen_overflows, own_cpu_seconds, rss_kib, CpuMeter};
use watcher::Note;

const DIR: &str = "/v2/keys/fan";

/// How long the whole registration of the watchers, or one round, may take.
const PHASE_TIMEOUT: Duration = Duration::from_secs(180);

/// Settings of one run.
#[derive(clap::Args, Debug)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

/// Runs the workload and returns its JSON result.
pub async fn run(target: &Target, args: &FanoutArgs, pid: Option<u32>) -> Result<Value> {
    let mut writer = Conn::open(target).await?;
    let form = value_form(64, 3);
    let seed = writer.put(&format!("{DIR}/seed"), &form).await?;
    anyhow::ensure!(seed.status < 300, "seed PUT answered {}", seed.status);
    // Let the server settle after start-up and the first write before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = pid.map(rss_kib).transpose()?;

    let registering = Instant::now();
    let overflows = listen_overflows()?;
    let (notes_tx, notes) = unbounded_channel();
    let mut watchers = tokio::task::JoinSet::new();
    for conn in open_many(target, args.watchers, 256).await? {
        watchers.spawn(watcher::run(
            conn,
            DIR.to_string(),
            args.rounds,
            notes_tx.clone(),
        ));
    }
    drop(notes_tx);
    let mut tally = Tally {
        notes,
        armed: 0,
        arrivals: Vec::new(),
    };
    tally.armed_at_least(args.watchers).await?;
    let register_seconds = registering.elapsed().as_secs_f64();
    let overflows = listen_overflows()?.saturating_sub(overflows);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_watching = pid.map(rss_kib).transpose()?;

    let server_cpu = CpuMeter::start(pid)?;
    let client_cpu = own_cpu_seconds()?;
    let mut last_ms = Vec::new();
    let mut median_ms = Vec::new();
    let mut write_ms = Vec::new();
    for round in 0..args.rounds {
        tally.armed_at_least(args.watchers * (round + 1)).await?;
        // Every watcher is armed and none has an event yet, unless a server sent one twice.
        if !tally.arrivals.is_empty() {
            bail!(
                "{} watchers got an event before the write",
                tally.arrivals.len()
            );
        }
        let sent = Instant::now();
        let reply = writer.put(&format!("{DIR}/x"), &form).await?;
        write_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(reply.status < 300, "fan-out PUT answered {}", reply.status);
        let mut arrivals = tally.take_arrivals(args.watchers).await?;
        arrivals.sort();
        let since = |at: &Instant| at.duration_since(sent).as_secs_f64() * 1000.0;
        last_ms.push(since(arrivals.last().context("no arrivals")?));
        median_ms.push(since(&arrivals[arrivals.len() / 2]));
    }
    let server_cpu = server_cpu.stop()?.map(|s| s / args.rounds as f64);
    let client_cpu = (own_cpu_seconds()? - client_cpu) / args.rounds as f64;
    while let Some(done) = watchers.join_next().await {
        done??;
    }
    let rounds_last = last_ms.clone();
    last_ms.sort_by(f64::total_cmp);
    median_ms.sort_by(f64::total_cmp);
    write_ms.sort_by(f64::total_cmp);
    let delta = rss_idle
        .zip(rss_watching)
        .map(|(idle, w)| w.saturating_sub(idle));
    Ok(json!({
        "watchers": args.watchers,
        "rounds": args.rounds,
        "register_s": register_seconds,
        "register_listen_overflows": overflows,
        "rss_idle_kib": rss_idle,
        "rss_watching_kib": rss_watching,
        "watchers_rss_delta_kib": delta,
        "rss_per_watcher_kib": delta.map(|d| d as f64 / args.watchers as f64),
        "fanout_last_ms_median": median(&last_ms),
        "fanout_last_ms_rounds": rounds_last,
        "fanout_median_watcher_ms": median(&median_ms),
        "write_ack_ms_median": median(&write_ms),
        // Per round, including re-arming the watches for the next one.
        "server_cpu_s_per_round": server_cpu,
        "client_cpu_s_per_round": client_cpu,
    }))
}

/// The coordinator's view of the watchers' notes. A watcher arms its next watch right
/// after its event, so notes of consecutive rounds interleave; cumulative counts keep
/// them apart without any per-round barrier on the watchers' side.
struct Tally {
    notes: UnboundedReceiver<Note>,
    armed: usize,
    arrivals: Vec<Instant>,
}

impl Tally {
    /// Waits until `total` watches have been armed since the start.
    async fn armed_at_least(&mut self, total: usize) -> Result<()> {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        while self.armed < total {
            self.next(deadline).await?;
        }
        Ok(())
    }

    /// Waits until `n` events have arrived and takes them.
    async fn take_arrivals(&mut self, n: usize) -> Result<Vec<Instant>> {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        while self.arrivals.len() < n {
            self.next(deadline).await?;
        }
        Ok(std::mem::take(&mut self.arrivals))
    }

    async fn next(&mut self, deadline: Instant) -> Result<()> {
        match tokio::time::timeout_at(deadline.into(), self.notes.recv()).await {
            Ok(Some(Note::Armed)) => self.armed += 1,
            Ok(Some(Note::Arrived(at))) => self.arrivals.push(at),
            Ok(None) => bail!(
                "watchers ended early ({} armed, {} events); see errors",
                self.armed,
                self.arrivals.len()
            ),
            Err(_) => bail!(
                "stalled for {PHASE_TIMEOUT:?} ({} armed, {} events)",
                self.armed,
                self.arrivals.len()
            ),
        }
        Ok(())
    }
}
