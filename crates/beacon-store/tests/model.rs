//! The store against a plain map model: random set/create/update/compare-and-swap/
//! delete/compare-and-delete on a few keys, every outcome and value checked. Seeded;
//! a failure prints the seed, and `BEACON_MODEL_SEED=<seed>` replays it.

use std::collections::BTreeMap;

use beacon_api::ErrorCode;
use beacon_store::{Applied, Command, KeysRequest, Method, Store};
use beacon_testkit::SeededRng;

const T0: i64 = 1_795_494_600_000_000_000;
const STEPS: usize = 5_000;

/// The model: each key's value and modified index.
type Model = BTreeMap<String, (String, u64)>;

#[test]
fn store_agrees_with_a_map_model() {
    let seed = std::env::var("BEACON_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15u64);
    println!(
        "seed {seed} (replay: BEACON_MODEL_SEED={seed} cargo test -p beacon-store --test model)"
    );
    let mut rng = SeededRng::new(seed);
    let mut store = Store::new();
    let mut model = Model::new();
    let mut index = 0u64;

    for step in 0..STEPS {
        let key = format!("/m/k{}", rng.below(8));
        let value = format!("v{}", rng.below(4));
        let current = model.get(&key).cloned();
        let mut req = KeysRequest::new(Method::Put, key.clone(), T0);
        req.value = value.clone().into();
        // What the model says must happen: Some(new value) on success, or the error.
        let expect: Result<Option<String>, ErrorCode> = match rng.below(6) {
            0 => Ok(Some(value.clone())),
            1 => {
                req.prev_exist = Some(false);
                if current.is_some() {
                    Err(ErrorCode::NodeExist)
                } else {
                    Ok(Some(value.clone()))
                }
            }
            2 => {
                req.prev_exist = Some(true);
                if current.is_some() {
                    Ok(Some(value.clone()))
                } else {
                    Err(ErrorCode::KeyNotFound)
                }
            }
            3 => {
                req.prev_value = format!("v{}", rng.below(4)).into();
                match &current {
                    None => Err(ErrorCode::KeyNotFound),
                    Some((v, _)) if req.prev_value == v.as_str() => Ok(Some(value.clone())),
                    Some(_) => Err(ErrorCode::TestFailed),
                }
            }
            4 => {
                req.method = Method::Delete;
                if current.is_some() {
                    Ok(None)
                } else {
                    Err(ErrorCode::KeyNotFound)
                }
            }
            _ => {
                req.method = Method::Delete;
                req.prev_index = index.saturating_sub(rng.below(3)).max(1);
                match &current {
                    None => Err(ErrorCode::KeyNotFound),
                    Some((_, i)) if *i == req.prev_index => Ok(None),
                    Some(_) => Err(ErrorCode::TestFailed),
                }
            }
        };
        let Applied::Keys(got) = store.apply(&Command::Keys(req.clone())) else {
            unreachable!()
        };
        match (expect, got) {
            (Ok(new_value), Ok(event)) => {
                index += 1;
                assert_eq!(event.etcd_index, index, "step {step} seed {seed}: {req:?}");
                let prev = event.prev_node.as_ref().and_then(|p| p.value.clone());
                assert_eq!(
                    prev,
                    current.map(|c| c.0.into()),
                    "step {step} seed {seed}: prevNode of {req:?}"
                );
                match new_value {
                    Some(v) => model.insert(key.clone(), (v, index)),
                    None => model.remove(&key),
                };
            }
            (Err(code), Err(e)) => {
                assert_eq!(e.code, code, "step {step} seed {seed}: {req:?}");
                assert_eq!(e.index, index, "step {step} seed {seed}: error index");
            }
            (want, got) => {
                panic!("step {step} seed {seed}: {req:?}: model says {want:?}, store says {got:?}")
            }
        }
        assert_eq!(store.current_index(), index);
    }

    // Finally the whole tree reads back as the model.
    for (key, (value, modified)) in &model {
        let node = store.get(key, false, false, T0).unwrap().node.unwrap();
        assert_eq!(
            (node.value.as_deref(), node.modified_index),
            (Some(value.as_bytes()), *modified)
        );
    }
}
