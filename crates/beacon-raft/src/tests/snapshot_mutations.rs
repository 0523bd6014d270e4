//! Seeded random damage to a valid snapshot file: loading it must give an error, never
//! a panic, and so never a store that differs from the one saved.
//!
//! Two generators, each bounded in iterations and printing its seed:
//! - raw: bytes of the file flipped, overwritten, inserted, removed or cut, as a disk or
//!   a bad copy would; the container's checksum and lengths must refuse every change;
//! - sealed: the store bytes inside mutated and the container re-sealed with a valid
//!   checksum, as a bug in a writer would; decoding the store must refuse or succeed,
//!   but never panic.
//!
//! Reproduce with `BEACON_SEED=<seed> cargo test -p beacon-raft snapshot_mutations`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use beacon_store::Store;

use super::put;
use super::snapshot_file::meta;
use crate::snapshot_file::{decode, encode};

/// Raw mutations tried per run: each is a decode of a few KiB, microseconds.
const RAW_ITERATIONS: u64 = 20_000;
/// Sealed mutations tried per run: each is a JSON decode of the store.
const SEALED_ITERATIONS: u64 = 5_000;

/// xorshift64*: enough randomness for mutations, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The seed from `BEACON_SEED`, or the clock; printed either way.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("BEACON_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    eprintln!(
        "{test}: seed {seed}; reproduce: BEACON_SEED={seed} cargo test -p beacon-raft {test}"
    );
    seed
}

/// A store with files, nested directories and history to save.
fn store_bytes() -> Vec<u8> {
    let mut store = Store::new();
    for i in 0..40 {
        store.apply(&put(
            &format!("/dir{}/sub/k{i}", i % 4),
            &format!("value {i}"),
        ));
    }
    store.save()
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(bytes.len());
        match rng.below(5) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = rng.next() as u8,
            2 => bytes.insert(at, rng.next() as u8),
            3 if bytes.len() > 1 => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
        if bytes.is_empty() {
            return;
        }
    }
}

#[test]
fn raw_mutations_of_a_snapshot_file_are_refused() {
    let seed = seed("raw_mutations_of_a_snapshot_file_are_refused");
    let mut rng = Rng(seed);
    let original = encode(&meta(3, 42), &store_bytes());
    for i in 0..RAW_ITERATIONS {
        let mut bytes = original.clone();
        mutate(&mut rng, &mut bytes);
        if bytes == original {
            continue;
        }
        let decoded = catch_unwind(|| decode(bytes.clone()))
            .unwrap_or_else(|_| panic!("seed {seed}, iteration {i}: decode panicked"));
        assert!(
            decoded.is_err(),
            "seed {seed}, iteration {i}: a changed file ({} bytes) was accepted",
            bytes.len()
        );
    }
}

#[test]
fn sealed_mutations_of_the_store_bytes_never_panic() {
    let seed = seed("sealed_mutations_of_the_store_bytes_never_panic");
    let mut rng = Rng(seed);
    let data = store_bytes();
    let (mut refused, mut accepted) = (0, 0);
    for i in 0..SEALED_ITERATIONS {
        let mut mutated = data.clone();
        mutate(&mut rng, &mut mutated);
        let file = encode(&meta(3, 42), &mutated);
        let (_, inner) = decode(file).expect("a re-sealed file decodes");
        assert_eq!(inner, mutated);
        let mut store = Store::new();
        let result = catch_unwind(AssertUnwindSafe(|| store.recover(&inner)))
            .unwrap_or_else(|_| panic!("seed {seed}, iteration {i}: Store::recover panicked"));
        match result {
            Err(_) => refused += 1,
            // Accepted bytes must describe a store that saves back to a loadable form.
            Ok(()) => {
                accepted += 1;
                let mut again = Store::new();
                again
                    .recover(&store.save())
                    .unwrap_or_else(|e| panic!("seed {seed}, iteration {i}: resave: {e}"));
            }
        }
    }
    eprintln!("sealed mutations: {refused} refused, {accepted} accepted as a valid store");
    assert!(refused > 0, "the generator changes something");
}

/// A snapshot with a v3 section of a few keys, as `keyspace::join` writes it.
fn snapshot_with_v3() -> Vec<u8> {
    use beacon_proto::mvccpb::KeyValue;
    use prost::Message;
    let values: Vec<Result<crate::disk::KeyValue, crate::disk::DbError>> = (0..5)
        .map(|i| {
            let rev = beacon_mvcc::Revision {
                main: i + 2,
                sub: 0,
            };
            let kv = KeyValue {
                key: format!("key{i}").into_bytes(),
                create_revision: i + 2,
                mod_revision: i + 2,
                version: 1,
                value: b"value".to_vec(),
                lease: 0,
            };
            Ok((beacon_mvcc::revision_key(rev).to_vec(), kv.encode_to_vec()))
        })
        .collect();
    let section = crate::keyspace::Section {
        state: crate::keyspace::State {
            current: 6,
            compacted: -1,
            applied_index: 9,
            alarms: vec![(3, 1)],
            auth: None,
        },
        leases: Box::new(
            vec![Ok((
                beacon_mvcc::lease_key(7).to_vec(),
                beacon_mvcc::LeaseRecord {
                    id: 7,
                    ttl: 10,
                    expiry_ns: 1,
                }
                .encode()
                .to_vec(),
            ))]
            .into_iter(),
        ),
        values: Box::new(values.into_iter()),
    };
    crate::keyspace::join(store_bytes(), section).expect("joined")
}

#[test]
fn mutations_of_a_snapshot_with_a_v3_section_never_panic() {
    let seed = seed("mutations_of_a_snapshot_with_a_v3_section_never_panic");
    let mut rng = Rng(seed);
    let data = snapshot_with_v3();
    crate::state_machine::check_snapshot(&data).expect("the unchanged snapshot loads");
    let mut refused = 0;
    for i in 0..SEALED_ITERATIONS {
        let mut mutated = data.clone();
        mutate(&mut rng, &mut mutated);
        let result = catch_unwind(|| crate::state_machine::check_snapshot(&mutated).is_ok())
            .unwrap_or_else(|_| panic!("seed {seed}, iteration {i}: check_snapshot panicked"));
        refused += usize::from(!result);
    }
    assert!(refused > 0, "the generator changes something");
}
