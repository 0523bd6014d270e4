//! The real `RaftNode` under turmoil on the simulated disk: a one-member cluster writes,
//! its host crashes (turmoil drops its runtime, the disk loses what was not synced and
//! may fail writes and syncs meanwhile), restarts on the same disk, and finds every
//! write it acknowledged. It shows the storage seam needs no thread, no blocking pool
//! and no real file under simulation; the network and clock seams come with their own
//! changes, so a single member (no peer traffic) is what runs here today.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beacon_raft::{OpenError, RaftConfig, RaftNode, Seams};
use beacon_sim::disk::{Faults, SimDisk};
use beacon_store::{Command, KeysRequest, Method};
use beacon_testkit::SeededRng;

const HOST: &str = "member-1";
/// Seeds per run: each takes a few tens of milliseconds, twice (it is replayed).
const SEEDS: u64 = 20;
/// Crashes per run, and the acknowledged writes each life waits for before its crash.
const CRASHES: usize = 3;
const WRITES_PER_LIFE: usize = 40;
/// Restarts allowed for the last start to meet no fault.
const RESTARTS_MAX: usize = 10;
/// Simulated steps allowed for each wait, so that a stuck run fails instead of hanging.
const STEPS_MAX: usize = 200_000;

fn put(key: &str) -> Command {
    let mut req = KeysRequest::new(Method::Put, key, 1_000);
    req.value = "v".into();
    Command::Keys(req)
}

fn value(node: &RaftNode, key: &str) -> Option<String> {
    beacon_sim::check::value(node.store(), key)
}

/// What the harness sees of the member across its lives.
#[derive(Default)]
struct Progress {
    /// Writes acknowledged: `/k0` up to this one, excluded.
    acked: AtomicUsize,
    /// Starts that found every acknowledged write.
    verified: AtomicUsize,
    /// The member stopped: the disk lost an entry a failed sync was waiting for, and
    /// Raft stops rather than claim it durable, or a fault failed its start. The harness
    /// restarts it, as an operator would.
    stopped: AtomicBool,
}

/// One life of the member: open on `disk`, check every acknowledged write, then write
/// until the host is crashed or the member stops.
async fn live(disk: SimDisk, progress: Arc<Progress>) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = RaftConfig::new("/sim/member-1", 1, "http://member-1:2380");
    config.snapshot_count = 16;
    let mut seams = Seams::production();
    seams.disk = Arc::new(disk);
    let node = match RaftNode::open_with(config, seams).await {
        Ok(node) => node,
        // A fault met while starting (a marker that did not write, or the first entry
        // lost by a failed sync, which stops Raft) fails the start, clearly; the
        // operator's restart is the next try. Anything else (a log that misses what
        // was acknowledged, a corrupt one) is what the test is for.
        Err(e @ (OpenError::DataDir { .. } | OpenError::NoLeader { .. })) => {
            eprintln!("start failed, will restart: {e}");
            progress.stopped.store(true, Ordering::Release);
            std::future::pending::<()>().await;
            unreachable!("pending never resolves")
        }
        Err(e) => return Err(e.into()),
    };
    let before = progress.acked.load(Ordering::Acquire);
    for i in 0..before {
        if value(&node, &format!("/k{i}")).is_none() {
            return Err(format!("acknowledged /k{i} lost").into());
        }
    }
    progress.verified.fetch_add(1, Ordering::AcqRel);
    for i in before.. {
        if node.propose(put(&format!("/k{i}"))).await.is_err() {
            progress.stopped.store(true, Ordering::Release);
            std::future::pending::<()>().await;
        }
        progress.acked.store(i + 1, Ordering::Release);
    }
    Ok(())
}

fn run(seed: u64) -> (usize, std::collections::BTreeMap<Vec<u8>, Vec<u8>>) {
    let faults = Faults {
        log_write_per_mille: 10,
        log_sync_per_mille: 10,
        file_write_per_mille: 10,
        file_sync_per_mille: 10,
    };
    let disk = SimDisk::new(SeededRng::new(seed), faults);
    let progress = Arc::new(Progress::default());
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(3600))
        .build();
    {
        let (disk, progress) = (disk.clone(), Arc::clone(&progress));
        sim.host(HOST, move || live(disk.clone(), Arc::clone(&progress)));
    }
    let step_until = |sim: &mut turmoil::Sim<'_>, what: &str, done: &dyn Fn() -> bool| {
        for _ in 0..STEPS_MAX {
            if done() {
                return;
            }
            if let Err(e) = sim.step() {
                panic!("seed {seed}: {what}: {e}");
            }
        }
        panic!("seed {seed}: {what}: not within {STEPS_MAX} steps");
    };
    let mut stops = 0;
    for _ in 0..CRASHES {
        let target = progress.acked.load(Ordering::Acquire) + WRITES_PER_LIFE;
        step_until(&mut sim, "writes acknowledged", &|| {
            progress.acked.load(Ordering::Acquire) >= target
                || progress.stopped.load(Ordering::Acquire)
        });
        stops += usize::from(progress.stopped.swap(false, Ordering::AcqRel));
        sim.crash(HOST);
        disk.crash();
        sim.bounce(HOST);
    }
    // The last restart must come up and find every acknowledged write; a start that
    // meets a fault is restarted again.
    let target = progress.verified.load(Ordering::Acquire) + 1;
    for restart in 0.. {
        step_until(&mut sim, "the last restart checked", &|| {
            progress.verified.load(Ordering::Acquire) >= target
                || progress.stopped.load(Ordering::Acquire)
        });
        if !progress.stopped.swap(false, Ordering::AcqRel) {
            break;
        }
        assert!(restart < RESTARTS_MAX, "seed {seed}: never started again");
        stops += 1;
        sim.crash(HOST);
        disk.crash();
        sim.bounce(HOST);
    }
    eprintln!(
        "seed {seed}: {} writes acknowledged, {CRASHES} crashes, {stops} stops on a fault",
        progress.acked.load(Ordering::Acquire)
    );
    (progress.acked.load(Ordering::Acquire), disk.log_entries())
}

#[test]
fn the_real_node_keeps_acknowledged_writes_across_crashes_on_the_simulated_disk() {
    for seed in 1..=SEEDS {
        let first = run(seed);
        // One host and turmoil's clock: nothing else draws, so a seed replays exactly.
        assert!(first == run(seed), "seed {seed} does not replay the same");
    }
}
