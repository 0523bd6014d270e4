//! The simulation campaign: `cargo run -p beacon-sim -- --seeds N` runs N seeds (from
//! `--first-seed`) of the real node under every fault and checks each; `--seed S`
//! replays one. Exits non-zero when any seed fails. Each seed of a campaign runs in a
//! process of its own, exactly as `--seed S` runs it alone, so that a failing seed's
//! replay is the run that failed (see docs/SIMULATION.md for the build it needs).
//!
//! `--inject local-quorum-reads` is the negative control: the node answers quorum reads
//! from its own store (`beacon_raft::InjectedBug`), and the campaign succeeds only if
//! some seed's history is then rejected.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use beacon_sim::campaign::summary;
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
    /// only if some seed catches it.
    #[arg(long, value_enum)]
    inject: Option<Bug>,
}

/// The bugs `--inject` knows.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Bug {
    /// Quorum reads answered from the member's own store, without the log.
    LocalQuorumReads,
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
            Some(Bug::LocalQuorumReads) => Options {
                bug: Some(beacon_raft::InjectedBug::LocalQuorumReads),
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
        if let Some(Bug::LocalQuorumReads) = self.inject {
            args.extend(["--inject".to_string(), "local-quorum-reads".to_string()]);
        }
        args
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

/// Runs `seed` in a process of its own; `None` if it died or hung without reporting.
fn run_child(args: &Args, seed: u64) -> Option<Outcome> {
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
    stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| parse_result(&l))
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
                match run_child(&args, seed) {
                    Some(o) => outcomes.lock().unwrap_or_else(|p| p.into_inner()).push(o),
                    None => lost.lock().unwrap_or_else(|p| p.into_inner()).push(seed),
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    outcomes.sort_by_key(|o| o.seed);
    let mut failed: Vec<u64> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.seed)
        .collect();
    failed.extend(lost.into_inner().unwrap_or_else(|p| p.into_inner()));
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
    let replay = |seed: u64| {
        let child = args.child_args(seed).join(" ");
        format!(
            "RUSTFLAGS=\"--cfg tokio_unstable\" CARGO_TARGET_DIR=target/sim-unstable \
             cargo run -p beacon-sim -- {child}"
        )
    };
    if args.inject.is_some() {
        return if let Some(&seed) = caught.first() {
            eprintln!(
                "the injected bug was caught by seeds {caught:?}; replay: {}",
                replay(seed)
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
            eprintln!("FAILED seed {seed}: replay with {}", replay(seed));
        }
        eprintln!("FAILED seeds {failed:?}");
        ExitCode::FAILURE
    }
}
