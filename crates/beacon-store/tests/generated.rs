//! Random commands with random byte keys and values (`.`, `..`, `_hidden`, empty and
//! repeated slashes, bytes that are not UTF-8, keys tens of levels deep) fed to the
//! store: nothing panics, every answer is valid JSON, indexes only grow by the writes,
//! and a snapshot at any point loads into a store that saves the same bytes and lists
//! the same tree. Seeded; the seed is printed, and `BEACON_GEN_SEED=<seed>` replays it.

use std::sync::Arc;

use beacon_api::Event;
use beacon_store::{Applied, Command, KeysRequest, Method, Store, WatchSink};
use beacon_testkit::SeededRng;

const T0: i64 = 1_795_494_600_000_000_000;
const SEC: i64 = 1_000_000_000;
/// Commands per run: enough to fill the 1000-event history and expire keys.
const STEPS: usize = 4_000;
/// How often the snapshot round trip is checked.
const CHECK_EVERY_STEPS: usize = 250;
/// Deepest key generated; serde_json (which checks the JSON here) nests 128 levels.
const DEPTH_MAX: u64 = 40;

/// Key components: plain, hidden, Go path specials, and bytes that are not UTF-8.
const COMPONENTS: &[&[u8]] = &[
    b"a",
    b"b",
    b"_h",
    b".",
    b"..",
    b"",
    b"\xff",
    b"\xfe",
    b"k\xff",
    "é".as_bytes(),
    b"\xf0\x9f\x98",
    b"<&>",
    b"%2F",
];

/// Value bytes: text, JSON specials, and bytes that are not UTF-8.
const VALUE_BYTES: &[u8] = b"ab\"\\<&\x00\n\x7f\x80\xbf\xc0\xe2\xf0\xfe\xff";

/// Accepts every event, so watchers stay registered (stream) or finish (long poll).
struct Accept;

impl WatchSink for Accept {
    fn deliver(&mut self, _event: &Arc<Event>) -> bool {
        true
    }
}

fn key(rng: &mut SeededRng) -> Vec<u8> {
    let depth = match rng.below(10) {
        0 => rng.below(DEPTH_MAX) + 1,
        _ => rng.below(4) + 1,
    };
    let mut key = Vec::new();
    for _ in 0..depth {
        key.push(b'/');
        key.extend_from_slice(COMPONENTS[rng.below(COMPONENTS.len() as u64) as usize]);
    }
    if rng.below(8) == 0 {
        key.push(b'/');
    }
    key
}

fn value(rng: &mut SeededRng) -> Vec<u8> {
    (0..rng.below(6))
        .map(|_| VALUE_BYTES[rng.below(VALUE_BYTES.len() as u64) as usize])
        .collect()
}

fn maybe<T>(rng: &mut SeededRng, make: impl FnOnce(&mut SeededRng) -> T) -> Option<T> {
    (rng.below(3) == 0).then(|| make(rng))
}

fn request(rng: &mut SeededRng, now: i64, index: u64) -> KeysRequest {
    let method = match rng.below(10) {
        0..=4 => Method::Put,
        5 => Method::Post,
        6..=8 => Method::Delete,
        _ => Method::QuorumGet,
    };
    let mut r = KeysRequest::new(method, key(rng), now);
    r.value = value(rng).into();
    r.dir = rng.below(5) == 0;
    r.prev_value = maybe(rng, value).unwrap_or_default().into();
    r.prev_index = maybe(rng, |rng| index.saturating_sub(rng.below(5))).unwrap_or(0);
    r.prev_exist = maybe(rng, |rng| rng.below(2) == 0);
    r.expiration_ns = maybe(rng, |rng| now + (rng.below(5) as i64) * SEC);
    r.refresh = rng.below(10) == 0;
    r.recursive = rng.below(3) == 0;
    r.sorted = rng.below(2) == 0;
    r
}

fn assert_json(line: &str, seed: u64, step: usize) {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(line) {
        panic!("seed {seed} step {step}: not JSON ({e}): {line}");
    }
}

/// Saves `store`, loads the bytes into a fresh store, and checks both agree.
fn round_trip(store: &Store, now: i64, seed: u64, step: usize) {
    let bytes = store.save();
    let mut back = Store::new();
    back.recover(&bytes)
        .unwrap_or_else(|e| panic!("seed {seed} step {step}: snapshot does not load: {e}"));
    // Watchers are not saved, but their count is among the saved stats.
    let without_watchers = |bytes: &[u8]| {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        v["stats"]["watchers"] = 0.into();
        v
    };
    assert!(
        without_watchers(&back.save()) == without_watchers(&bytes),
        "seed {seed} step {step}: the loaded snapshot saves other bytes"
    );
    assert_eq!(back.current_index(), store.current_index());
    assert_eq!(back.has_ttl_keys(), store.has_ttl_keys());
    let listing = |s: &Store| s.get("/", true, true, now).unwrap().to_json_line();
    assert_eq!(
        listing(&back),
        listing(store),
        "seed {seed} step {step}: the loaded tree differs"
    );
}

#[test]
fn random_byte_commands_keep_the_store_consistent() {
    let seed = std::env::var("BEACON_GEN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_b7e5_0000_0013u64);
    println!(
        "seed {seed} (replay: BEACON_GEN_SEED={seed} cargo test -p beacon-store --test generated)"
    );
    let mut rng = SeededRng::new(seed);
    let mut store = Store::new();
    let mut now = T0;
    for step in 0..STEPS {
        let index = store.current_index();
        match rng.below(20) {
            0 => {
                now += (rng.below(3) as i64) * SEC;
                store.apply(&Command::Sync { time_ns: now });
                assert!(store.current_index() >= index);
            }
            1 => {
                let wait_index = rng.below(index + 2);
                let watched = store.watch(
                    key(&mut rng),
                    rng.below(2) == 0,
                    rng.below(2) == 0,
                    wait_index,
                    Box::new(Accept),
                );
                if let Err(e) = watched {
                    assert_json(&e.to_json_line(), seed, step);
                }
            }
            2 => {
                let got = store.get(key(&mut rng), rng.below(2) == 0, true, now);
                match got {
                    Ok(event) => assert_json(&event.to_json_line(), seed, step),
                    Err(e) => assert_json(&e.to_json_line(), seed, step),
                }
            }
            _ => {
                let req = request(&mut rng, now, index);
                let is_write = req.method != Method::QuorumGet;
                let Applied::Keys(result) = store.apply(&Command::Keys(req.clone())) else {
                    panic!("seed {seed} step {step}: a keys request gave no keys result");
                };
                match result {
                    Ok(event) => {
                        assert_json(&event.to_json_line(), seed, step);
                        let grew = store.current_index() - index;
                        assert_eq!(
                            grew,
                            u64::from(is_write),
                            "seed {seed} step {step}: {req:?} moved the index by {grew}"
                        );
                        assert_eq!(event.etcd_index, store.current_index());
                    }
                    Err(e) => {
                        assert_json(&e.to_json_line(), seed, step);
                        assert_eq!(store.current_index(), index, "seed {seed} step {step}");
                    }
                }
            }
        }
        if step % CHECK_EVERY_STEPS == 0 {
            round_trip(&store, now, seed, step);
        }
    }
    round_trip(&store, now, seed, STEPS);
}
