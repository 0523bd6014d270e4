//! A view of the store (`Store::snapshot_view`), taken in O(1) for a Raft snapshot, saves
//! exactly the state it was taken at, whatever the store applies afterwards, and leaves
//! the live store unaffected; and the saved bytes keep snapshot format version 1 byte
//! for byte (replicas and the simulation compare them).

use beacon_store::{Command, KeysRequest, Method, Store, StoreView};
use beacon_testkit::SeededRng;

const T0: i64 = 1_795_494_600_000_000_000; // 2026-11-24T04:30:00Z
const SEC: i64 = 1_000_000_000;

/// Steps in the script: more than the 1000-event history, so the view's history is one
/// that already dropped events.
const STEPS: usize = 2_000;

/// Where views are taken in the script (after that many steps).
const VIEW_AT_STEPS: &[usize] = &[0, 1, 37, 400, 999, 1_234, 1_777];

/// The seed of the script; fixed, since the saved bytes of the whole script are pinned.
const SCRIPT_SEED: u64 = 0x5eed_0015_57a7_e001;

/// One step of the script: a command through the log, or a membership change's removals.
#[derive(Clone, Debug)]
enum Step {
    Apply(Command),
    RemoveMembers(Vec<u64>),
}

fn apply(store: &mut Store, step: &Step) {
    match step {
        Step::Apply(cmd) => {
            store.apply(cmd);
        }
        Step::RemoveMembers(ids) => store.record_removed_members(ids.iter().copied()),
    }
}

/// A deterministic mix of every kind of change: sets and updates of files (values not
/// all UTF-8), directories, TTLs and their expiry, deletes of files and whole
/// directories, compare-and-swap and -delete, in-order keys, a key 60 levels deep,
/// quorum reads (which count in the stats) and removed members.
fn script(seed: u64) -> Vec<Step> {
    let mut rng = SeededRng::new(seed);
    let mut now = T0;
    let mut steps = Vec::with_capacity(STEPS);
    let deep: String = (0..60).map(|_| "/a").collect();
    // The value of "/cas" as the script left it, so that compare-and-swaps and
    // compare-and-deletes succeed as well as fail.
    let mut cas_value: Option<String> = None;
    for i in 0..STEPS {
        let dir = rng.below(5);
        let file = rng.below(20);
        let key = format!("/mem/d{dir}/k{file}");
        let mut req = KeysRequest::new(Method::Put, key.as_str(), now);
        match rng.below(16) {
            0 => {
                now += rng.below(3) as i64 * SEC;
                steps.push(Step::Apply(Command::Sync { time_ns: now }));
                continue;
            }
            1 => {
                req.expiration_ns = Some(now + (rng.below(4) as i64 + 1) * SEC);
                req.value = format!("ttl{i}").into();
            }
            2 => {
                req.path = format!("/mem/d{dir}").into();
                req.method = Method::Delete;
                req.recursive = true;
            }
            3 => req.method = Method::Delete,
            4 => {
                req.path = format!("/dirs/x{file}").into();
                req.dir = true;
                if rng.below(2) == 0 {
                    req.expiration_ns = Some(now + SEC);
                }
            }
            5 => {
                req.path = "/cas".into();
                req.value = format!("cas{i}").into();
                if let Some(prev) = cas_value.replace(format!("cas{i}")) {
                    req.prev_value = prev.into();
                }
            }
            6 => match cas_value.take() {
                Some(prev) if rng.below(2) == 0 => {
                    req.path = "/cas".into();
                    req.method = Method::Delete;
                    req.prev_value = prev.into();
                }
                kept => {
                    cas_value = kept;
                    req.method = Method::Delete;
                    req.prev_index = rng.below(i as u64 + 1);
                }
            },
            7 => {
                req.method = Method::Post;
                req.path = "/queue".into();
                req.value = vec![0xff, 0xfe, b'q', (i % 256) as u8].into();
            }
            8 => {
                req.path = format!("/deep{deep}").into();
                req.value = format!("deep{i}").into();
            }
            9 => {
                req.method = Method::QuorumGet;
                req.path = "/mem".into();
                req.recursive = true;
            }
            10 => {
                steps.push(Step::RemoveMembers(vec![rng.below(1_000) + 1]));
                continue;
            }
            11 => {
                req.prev_exist = Some(true);
                req.value = format!("upd{i}").into();
            }
            12 => {
                req.path = format!("/mem/d{dir}/_hidden{file}").into();
                req.value = format!("h{i}").into();
            }
            _ => req.value = format!("v{i}").into(),
        }
        steps.push(Step::Apply(Command::Keys(req)));
    }
    steps
}

/// The state after the first `n` steps, on a store that never saw the rest.
fn fresh_after(steps: &[Step], n: usize) -> Store {
    let mut store = Store::new();
    for step in &steps[..n] {
        apply(&mut store, step);
    }
    store
}

/// FNV-1a, 64 bits: a fixed, dependency-free fingerprint of the saved bytes.
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn a_view_saves_the_state_at_which_it_was_taken() {
    let steps = script(SCRIPT_SEED);
    let mut live = Store::new();
    let mut views: Vec<(usize, StoreView)> = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        if VIEW_AT_STEPS.contains(&n) {
            views.push((n, live.snapshot_view()));
        }
        apply(&mut live, step);
    }
    for (n, view) in &views {
        assert_eq!(
            view.save(),
            fresh_after(&steps, *n).save(),
            "the view taken after {n} steps saves another state"
        );
    }
    // The live store went on as if no view had been taken.
    assert_eq!(live.save(), fresh_after(&steps, steps.len()).save());
    assert_eq!(live.save(), live.snapshot_view().save());
}

#[test]
fn a_view_outlives_the_store_and_moves_to_another_thread() {
    let steps = script(SCRIPT_SEED);
    let mut live = Store::new();
    for step in &steps[..700] {
        apply(&mut live, step);
    }
    let expected = live.save();
    let view = live.snapshot_view();
    for step in &steps[700..] {
        apply(&mut live, step);
    }
    drop(live);
    let saved = std::thread::spawn(move || view.save())
        .join()
        .expect("the saving thread does not panic");
    assert_eq!(saved, expected);
}

/// Pins snapshot format version 1: these are the bytes the store saved for this script
/// before views existed (a persistent tree under the same format). A change here is a
/// new format: replicas and snapshot files written by older builds would disagree.
#[test]
fn the_saved_bytes_keep_format_version_1() {
    let store = fresh_after(&script(SCRIPT_SEED), STEPS);
    let bytes = store.save();
    assert_eq!(
        (bytes.len(), fingerprint(&bytes)),
        (194_768, 0xd561_406b_b3d0_18e8),
        "the saved bytes changed"
    );
}
