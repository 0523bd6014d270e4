//! The simulation campaign: `cargo run -p beacon-sim -- --seeds N` runs N seeds (from
//! `--first-seed`) of the real node under every fault and checks each; `--seed S`
//! replays one. Exits non-zero when any seed fails. Each seed of a campaign runs in a
//! process of its own, exactly as `--seed S` runs it alone, so that a failing seed's
//! replay is the run that failed (see docs/SIMULATION.md for the build it needs).
//!
//! `--inject local-quorum-reads` is the negative control: the node answers quorum reads
//! from its own store (`beacon_raft::InjectedBug`), and the campaign succeeds only if
//! some seed's history is then rejected.
//!
//! `--stall-check` runs the stall check instead (`beacon_sim::stall`): steady writes, no
//! faults, slow log compaction and snapshot writes; a seed passes when no write waited
//! behind them. Its negative control, `--stall-check --inject inline-purge`, succeeds only
//! if most seeds then count writes that waited.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use beacon_sim::campaign::summary;
use beacon_sim::stall::{self, StallOptions, StallOutcome};
use beacon_sim::{run, Options};
use clap::{Parser, ValueEnum};
use porcupine_rs::CheckResult;

/// Runs seeded simulations of a Beacon cluster and checks them.
#[derive(Parser, Debug)]
#[command(name = "beacon-sim")]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 24)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Run this one seed only, in this process (a replay).
    #[arg(long)]
    seed: Option<u64>,
    /// Simulated seconds of load and faults per seed.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// No write or sync failures from the simulated disks (crashes still lose what was
    /// not synced).
    #[arg(long)]
    no_disk_faults: bool,
    /// Inject a bug into the node (the negative control): the campaign then succeeds
    /// only if some seed catches it (with `--stall-check`: most seeds).
    #[arg(long, value_enum)]
    inject: Option<Bug>,
    /// Run the stall check instead: steady writes without faults over disks whose log
    /// purges and snapshot writes are slow; a seed fails if any write waited on them.
    #[arg(long)]
    stall_check: bool,
}

/// The bugs `--inject` knows.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Bug {
    /// Quorum reads answered from the member's own store, without the log.
    LocalQuorumReads,
    /// The log purge deletes its entries inside openraft's log I/O (for `--stall-check`).
    InlinePurge,
}

impl Bug {
    fn injected(self) -> beacon_raft::InjectedBug {
        match self {
            Bug::LocalQuorumReads => beacon_raft::InjectedBug::LocalQuorumReads,
            Bug::InlinePurge => beacon_raft::InjectedBug::InlinePurge,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Bug::LocalQuorumReads => "local-quorum-reads",
            Bug::InlinePurge => "inline-purge",
        }
    }

    /// Whether the stall check is the one that catches it.
    fn stalls(self) -> bool {
        matches!(self, Bug::InlinePurge)
    }
}

impl Args {
    fn options(&self) -> Options {
        let standard = Options {
            members: self.members,
            load: Duration::from_secs(self.secs),
            disk_faults: !self.no_disk_faults,
            ..Options::standard()
        };
        match self.inject {
            None => standard,
            // Partitions alone show a stale read; the other faults only slow runs down.
            Some(bug) => Options {
                bug: Some(bug.injected()),
                crashes: false,
                replacements: false,
                disk_faults: false,
                ..standard
            },
        }
    }

    /// The arguments that make a child run `seed` as this campaign would.
    fn child_args(&self, seed: u64) -> Vec<String> {
        let mut args = vec![
            "--seed".to_string(),
            seed.to_string(),
            "--secs".to_string(),
            self.secs.to_string(),
            "--members".to_string(),
            self.members.to_string(),
        ];
        if self.no_disk_faults {
            args.push("--no-disk-faults".to_string());
        }
        if let Some(bug) = self.inject {
            args.extend(["--inject".to_string(), bug.name().to_string()]);
        }
        if self.stall_check {
            args.push("--stall-check".to_string());
        }
        args
    }

    fn stall_options(&self) -> StallOptions {
        StallOptions {
            members: self.members,
            load: Duration::from_secs(self.secs),
            bug: self.inject.map(Bug::injected),
        }
    }
}

/// What one seed's process reported.
struct Outcome {
    seed: u64,
    passed: bool,
    illegal: bool,
    ops: u64,
    faults: u64,
    simulated_ms: u64,
}

/// The line a seed's process prints on stdout for the campaign that started it; it
/// ends with a digest of the whole history and applied log, so that two runs of a seed
/// can be compared (the replay test).
fn result_line(r: &beacon_sim::Report) -> String {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same digest in every process.
    let mut digest = std::hash::DefaultHasher::new();
    for record in &r.records {
        format!("{record:?}").hash(&mut digest);
    }
    r.applied_log.hash(&mut digest);
    format!(
        "RESULT {} {} {} {} {} {} {:016x}",
        r.seed,
        u8::from(r.passed()),
        u8::from(r.verdict == CheckResult::Illegal),
        r.records.len(),
        r.faults.iter().sum::<u32>(),
        r.simulated.as_millis(),
        digest.finish()
    )
}

fn parse_result(line: &str) -> Option<Outcome> {
    let mut f = line
        .strip_prefix("RESULT ")?
        .split(' ')
        .map(str::parse::<u64>);
    let mut next = || f.next()?.ok();
    Some(Outcome {
        seed: next()?,
        passed: next()? == 1,
        illegal: next()? == 1,
        ops: next()?,
        faults: next()?,
        simulated_ms: next()?,
    })
}

/// How long one seed's process may take in real time. A seed takes about a second; one
/// that runs this long is stuck in a loop that never lets simulated time pass (a busy
/// loop in the node, which turmoil cannot preempt), and fails.
const SEED_WALL_MAX: Duration = Duration::from_secs(300);

/// Runs `seed` in a process of its own and parses its result line with `parse`; `None`
/// if it died or hung without reporting.
fn run_child<T>(args: &Args, seed: u64, parse: fn(&str) -> Option<T>) -> Option<T> {
    let exe = std::env::current_exe().ok()?;
    let mut child = Command::new(exe)
        .args(args.child_args(seed))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    let started = Instant::now();
    // Its one line of stdout fits in the pipe: wait first, then read.
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < SEED_WALL_MAX => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("seed {seed}: HUNG for {SEED_WALL_MAX:?} (simulated time stopped: a busy loop?)");
                return None;
            }
        }
    }
    let stdout = BufReader::new(child.stdout.take()?);
    stdout.lines().map_while(Result::ok).find_map(|l| parse(&l))
}

/// Runs `seeds` on every core, each in a process of its own, parsing each one's result
/// line with `parse`; returns the outcomes in seed order and the seeds lost (died, hung).
fn run_children<T: Send>(
    args: &Args,
    seeds: &[u64],
    parse: fn(&str) -> Option<T>,
    seed_of: fn(&T) -> u64,
) -> (Vec<T>, Vec<u64>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = Mutex::new(seeds.iter());
    let outcomes = Mutex::new(Vec::new());
    let lost = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.min(seeds.len()) {
            s.spawn(|| loop {
                let Some(&seed) = next.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                    return;
                };
                match run_child(args, seed, parse) {
                    Some(o) => outcomes.lock().unwrap_or_else(|p| p.into_inner()).push(o),
                    None => lost.lock().unwrap_or_else(|p| p.into_inner()).push(seed),
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    outcomes.sort_by_key(seed_of);
    let mut lost = lost.into_inner().unwrap_or_else(|p| p.into_inner());
    lost.sort_unstable();
    (outcomes, lost)
}

/// The command that replays `seed` as the campaign ran it.
fn replay(args: &Args, seed: u64) -> String {
    let child = args.child_args(seed).join(" ");
    format!(
        "RUSTFLAGS=\"--cfg tokio_unstable\" CARGO_TARGET_DIR=target/sim-unstable \
         cargo run -p beacon-sim -- {child}"
    )
}

/// `--stall-check`: one seed here, or a campaign of them.
fn stall_check(args: &Args) -> ExitCode {
    if let Some(seed) = args.seed {
        let report = stall::run(seed, &args.stall_options());
        eprintln!("{}", report.summary());
        println!("{}", report.result_line());
        // The control's seed reports its count; the campaign judges it.
        return if report.passed() || (args.inject.is_some() && report.valid()) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let started = Instant::now();
    let seeds: Vec<u64> = (args.first_seed..args.first_seed + args.seeds).collect();
    let (outcomes, lost) = run_children(args, &seeds, stall::parse_result, |o| o.seed);
    let stalled: Vec<&StallOutcome> = outcomes.iter().filter(|o| o.stalled > 0).collect();
    let invalid: Vec<u64> = outcomes
        .iter()
        .filter(|o| !o.valid)
        .map(|o| o.seed)
        .collect();
    let writes: u64 = outcomes.iter().map(|o| o.writes).sum();
    eprintln!(
        "stall check: {} seeds ({}..={}), {writes} writes, {} seeds with writes that waited \
         behind a purge or snapshot, {:?} wall",
        seeds.len(),
        args.first_seed,
        args.first_seed + args.seeds - 1,
        stalled.len(),
        started.elapsed(),
    );
    if args.inject.is_some() {
        // Most seeds, not all: a seed's purges may all fall between two writes.
        let caught: Vec<u64> = stalled.iter().map(|o| o.seed).collect();
        return if caught.len() * 2 > seeds.len() {
            eprintln!("the injected stall was counted by seeds {caught:?}");
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "NOT CAUGHT: only seeds {caught:?} of {} counted writes that waited",
                seeds.len()
            );
            ExitCode::FAILURE
        };
    }
    let mut failed: Vec<u64> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.seed)
        .collect();
    failed.extend(invalid);
    failed.extend(lost);
    failed.sort_unstable();
    failed.dedup();
    if failed.is_empty() {
        eprintln!("all passed: no write waited behind a purge or snapshot");
        return ExitCode::SUCCESS;
    }
    for &seed in &failed {
        eprintln!("FAILED seed {seed}: replay with {}", replay(args, seed));
    }
    eprintln!("FAILED seeds {failed:?}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        // The node's own logs, for replaying a seed; without timestamps, which would be
        // the wall clock's, not the simulation's.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .without_time()
            .with_writer(std::io::stderr)
            .init();
    }
    if args
        .inject
        .is_some_and(|bug| bug.stalls() != args.stall_check)
    {
        eprintln!(
            "--inject inline-purge goes with --stall-check, and --stall-check takes no other bug"
        );
        return ExitCode::FAILURE;
    }
    if args.stall_check {
        return stall_check(&args);
    }
    let opts = args.options();
    if let Some(seed) = args.seed {
        let report = run(seed, &opts);
        eprintln!("{}", summary(&report));
        if report.verdict == CheckResult::Illegal {
            eprintln!(
                "seed {seed}: {}",
                beacon_sim::check::visualize(seed, &report.records)
            );
        }
        println!("{}", result_line(&report));
        return if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }

    let started = Instant::now();
    let seeds: Vec<u64> = (args.first_seed..args.first_seed + args.seeds).collect();
    let (outcomes, lost) = run_children(&args, &seeds, parse_result, |o| o.seed);
    let mut failed: Vec<u64> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.seed)
        .collect();
    failed.extend(lost);
    failed.sort_unstable();
    let caught: Vec<u64> = outcomes
        .iter()
        .filter(|o| o.illegal)
        .map(|o| o.seed)
        .collect();
    let ops: u64 = outcomes.iter().map(|o| o.ops).sum();
    let faults: u64 = outcomes.iter().map(|o| o.faults).sum();
    let simulated = Duration::from_millis(outcomes.iter().map(|o| o.simulated_ms).sum());
    eprintln!(
        "{} seeds ({}..={}), {ops} operations, {faults} faults, {simulated:?} simulated, {:?} wall",
        seeds.len(),
        args.first_seed,
        args.first_seed + args.seeds - 1,
        started.elapsed(),
    );
    if args.inject.is_some() {
        return if let Some(&seed) = caught.first() {
            eprintln!(
                "the injected bug was caught by seeds {caught:?}; replay: {}",
                replay(&args, seed)
            );
            ExitCode::SUCCESS
        } else {
            eprintln!("NOT CAUGHT: no seed's history was rejected with the bug injected");
            ExitCode::FAILURE
        };
    }
    if failed.is_empty() {
        eprintln!("all passed");
        ExitCode::SUCCESS
    } else {
        for &seed in &failed {
            eprintln!("FAILED seed {seed}: replay with {}", replay(&args, seed));
        }
        eprintln!("FAILED seeds {failed:?}");
        ExitCode::FAILURE
    }
}
