//! The checks after a run: the client history is linearizable, no acknowledged write
//! is missing from the applied log, and the members converged on the same store.

use std::time::{Duration, Instant};

use porcupine_rs::{CheckResult, Operation};

use crate::client::Record;
use crate::durable::{lock, Observed};
use crate::model::{self, KeysModel, Op};

/// How long porcupine may search; the histories are small.
const CHECKER_TIMEOUT: Duration = Duration::from_secs(30);

/// The history for the checker, in simulated time (see `model::history`).
pub fn history(records: &[Record]) -> Vec<Operation<KeysModel>> {
    model::history(records.iter().map(|r| model::Timed {
        client: r.client,
        called: r.called,
        returned: r.returned,
        op: &r.op,
    }))
}

/// porcupine's verdict on `records` and how long it took.
pub fn linearizable(records: &[Record]) -> (CheckResult, Duration) {
    let started = Instant::now();
    let verdict = porcupine_rs::check_operations_timeout(&history(records), CHECKER_TIMEOUT);
    (verdict, started.elapsed())
}

/// Writes porcupine's visualization of a rejected history to the temporary directory
/// and says where.
pub fn visualize(seed: u64, records: &[Record]) -> String {
    let (_, info) = porcupine_rs::check_operations_info_timeout(&history(records), CHECKER_TIMEOUT);
    let path = std::env::temp_dir().join(format!("beacon-sim-{seed}.html"));
    match porcupine_rs::visualize_path(&info, &path) {
        Ok(()) => format!("visualization: {}", path.display()),
        Err(e) => format!("writing {}: {e}", path.display()),
    }
}

/// Every acknowledged write is the entry applied at the index it was acknowledged
/// with, on the members that applied that index.
pub fn acknowledged_writes_kept(records: &[Record], observed: &Observed) -> Vec<String> {
    let mut lost = Vec::new();
    for r in records {
        let Some((index, term)) = r.log else { continue };
        let Some(entry) = observed.applied.get(&index) else {
            lost.push(format!(
                "acknowledged write {:?} at index {index} was never applied",
                r.op
            ));
            continue;
        };
        let value = match &r.op.op {
            Op::Set { value } | Op::Cas { value, .. } => Some(value.as_str()),
            _ => None,
        };
        let same_value = value.is_none_or(|v| written_value(&entry.payload) == Some(v.into()));
        if entry.log_id.leader_id.term != term || !same_value {
            lost.push(format!(
                "acknowledged write {:?} at {term}-{index} but {} {} was applied there",
                r.op, entry.log_id, entry.payload
            ));
        }
    }
    lost
}

/// Whether every member is running and has applied the same log as every other: the
/// same last log index and applied index, with one leader known to all.
pub fn settled(observed: &Observed, members: &[u64]) -> bool {
    let views: Vec<_> = members
        .iter()
        .filter_map(|m| observed.members.get(m))
        .collect();
    let Some(first) = views.first() else {
        return false;
    };
    views.len() == members.len()
        && first.leader.is_some()
        && first.applied > 0
        && views.iter().all(|v| {
            v.leader == first.leader
                && v.applied == first.applied
                && v.last_log == first.last_log
                && v.applied == v.last_log
        })
}

/// The members' stores, compared: each key's value, and (unless local reads touched
/// the read counters) the whole snapshot bytes.
pub fn converged(observed: &Observed, members: &[u64], keys: usize, whole: bool) -> Vec<String> {
    let mut differences = Vec::new();
    let stores: Vec<_> = members
        .iter()
        .map(|m| {
            let store = observed.members.get(m).and_then(|v| v.store.clone());
            (*m, store.expect("every member started"))
        })
        .collect();
    // Bytes first: a read bumps the store's read counters, which the bytes include.
    let states: Vec<(u64, Vec<u8>, Vec<Option<String>>)> = stores
        .iter()
        .map(|(id, store)| {
            let bytes = lock(store).save();
            (*id, bytes, values(store, keys))
        })
        .collect();
    let (first_id, first_bytes, first_values) = &states[0];
    for (id, bytes, values) in &states[1..] {
        if values != first_values {
            differences.push(format!(
                "member {id} holds {values:?}, member {first_id} {first_values:?}"
            ));
        } else if whole && bytes != first_bytes {
            differences.push(format!(
                "member {id}'s store differs from member {first_id}'s (same keys, other bytes)"
            ));
        }
    }
    differences
}

/// Each key's value in `store`.
fn values(store: &std::sync::Mutex<beacon_store::Store>, keys: usize) -> Vec<Option<String>> {
    let store = lock(store);
    (0..keys)
        .map(|k| {
            store
                .get(crate::client::path(k), false, false, 0)
                .ok()
                .and_then(|e| e.node)
                .and_then(|n| n.value)
                .map(|v| v.to_string())
        })
        .collect()
}

/// The value a keys command writes, from an applied entry's payload JSON.
fn written_value(payload: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(payload).ok()?;
    json.pointer("/Normal/Keys/value")?
        .as_str()
        .map(str::to_string)
}
