//! The checks after a run: the client history is linearizable, no acknowledged write
//! is missing from the applied log, every watcher saw the same events in the same order
//! without a gap, keys with a TTL expired, and the members converged on the same store.

use std::time::{Duration, Instant};

use porcupine_rs::{CheckResult, Operation};

use crate::client::Record;
use crate::model::{self, KeysModel, Op};
use crate::observe::Observed;

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
        if entry.term != term || !same_value {
            lost.push(format!(
                "acknowledged write {:?} at {term}-{index} but {} {} was applied there",
                r.op, entry.log_id, entry.payload
            ));
        }
    }
    lost
}

/// Whether every member is running and has applied the same log as every other: the
/// same last log index and applied index, with one leader known to all, and every
/// member a voter (a new one promoted, a removed one gone).
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
            let mut voters = v.membership.0.clone();
            voters.sort_unstable();
            let mut want = members.to_vec();
            want.sort_unstable();
            v.running
                && voters == want
                && v.membership.1.is_empty()
                && v.leader == first.leader
                && v.applied == first.applied
                && v.last_log == first.last_log
                && v.applied == v.last_log
        })
}

/// The members' stores, compared: each key's value, and (unless local reads touched
/// the read counters) the whole snapshot bytes.
pub fn converged(observed: &Observed, members: &[u64], keys: usize) -> Vec<String> {
    let mut differences = Vec::new();
    let stores: Vec<_> = members
        .iter()
        .map(|m| {
            let store = observed.members.get(m).and_then(|v| v.store.clone());
            (*m, store.expect("every member started"))
        })
        .collect();
    // Bytes first: a local read would bump the store's read counters, which the bytes
    // include (quorum reads go through the log and bump them on every member alike).
    let states: Vec<(u64, Vec<u8>, Vec<Option<String>>)> = stores
        .iter()
        .map(|(id, store)| {
            let bytes = read(store).save();
            (*id, bytes, values(store, keys))
        })
        .collect();
    let (first_id, first_bytes, first_values) = &states[0];
    for (id, bytes, values) in &states[1..] {
        if values != first_values {
            differences.push(format!(
                "member {id} holds {values:?}, member {first_id} {first_values:?}"
            ));
        } else if bytes != first_bytes {
            differences.push(format!(
                "member {id}'s store differs from member {first_id}'s (same keys, other bytes)"
            ));
        }
    }
    differences
}

/// Each key's value in `store`.
fn values(store: &beacon_raft::SharedStore, keys: usize) -> Vec<Option<String>> {
    (0..keys)
        .map(|k| value(store, &crate::client::path(k)))
        .collect()
}

/// The value at `key` in `store` (`None`: missing, or a directory).
pub fn value(store: &beacon_raft::SharedStore, key: &str) -> Option<String> {
    read(store)
        .get(key, false, false, 0)
        .ok()?
        .node?
        .value
        .map(|v| v.to_string())
}

/// The value a keys command writes, from an applied entry's payload JSON.
fn written_value(payload: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(payload).ok()?;
    json.pointer("/Normal/Keys/value")?
        .as_str()
        .map(str::to_string)
}

fn read(store: &beacon_raft::SharedStore) -> std::sync::RwLockReadGuard<'_, beacon_store::Store> {
    store.read().unwrap_or_else(|p| p.into_inner())
}

/// etcd's watch guarantees, over every registration of every member's watcher on all
/// keys: each delivers events in strictly increasing index order, without a gap from
/// the index it watched from to its last event, and each event is the one every other
/// member delivered at that index (same action, key, value, previous node).
pub fn watches(observed: &Observed) -> Vec<String> {
    let mut problems = Vec::new();
    let mut canonical: std::collections::BTreeMap<u64, (&str, u64)> = Default::default();
    for segment in &observed.watches {
        for (index, json) in &segment.events {
            match canonical.get(index) {
                None => {
                    canonical.insert(*index, (json.as_str(), segment.member));
                }
                Some((first, _)) if *first == json.as_str() => {}
                Some((first, by)) => problems.push(format!(
                    "member {} delivered {json} at index {index}, member {by} delivered {first}",
                    segment.member
                )),
            }
        }
    }
    for segment in &observed.watches {
        let mut expected = canonical.range(segment.since..).map(|(i, _)| *i);
        let mut last = 0;
        for (index, _) in &segment.events {
            if *index <= last {
                problems.push(format!(
                    "member {}'s watcher delivered index {index} after {last}",
                    segment.member
                ));
                break;
            }
            last = *index;
            match expected.next() {
                Some(want) if want == *index => {}
                Some(want) => {
                    problems.push(format!(
                        "member {}'s watcher from index {} skipped index {want} (next delivered {index})",
                        segment.member, segment.since
                    ));
                    break;
                }
                None => unreachable!("every delivered index is canonical"),
            }
        }
    }
    problems
}

/// Every key set with a TTL is gone from every member's store: the leader's clock went
/// through the log and expired them everywhere.
pub fn expired(observed: &Observed, members: &[u64], ttl_keys: usize) -> Vec<String> {
    let mut left = Vec::new();
    for m in members {
        let Some(store) = observed.members.get(m).and_then(|v| v.store.clone()) else {
            continue;
        };
        let store = read(&store);
        for k in 0..ttl_keys {
            if store
                .get(crate::client::ttl_path(k), false, false, 0)
                .is_ok()
            {
                left.push(format!(
                    "member {m} still holds TTL key {k} after it expired"
                ));
            }
        }
    }
    left
}

/// Whether no member's store holds a key with a TTL any more.
pub fn all_expired(observed: &Observed, members: &[u64]) -> bool {
    members.iter().all(|m| {
        observed
            .members
            .get(m)
            .and_then(|v| v.store.clone())
            .is_some_and(|s| !read(&s).has_ttl_keys())
    })
}
