//! etcd v2's keys, one register per key, as a porcupine model: each key is missing or
//! holds a value; `set` always succeeds, `compareAndSwap` only on an equal value,
//! `delete` only on a present key. An operation whose outcome the client never learnt
//! is `Unknown`: it returns at the end of the history, so the checker may place it
//! anywhere after its call, or nowhere that matters.

use std::time::Duration;

use porcupine_rs::{Model, Operation};

/// What a client did to one key and what it saw.
#[derive(Clone, Debug)]
pub enum Op {
    /// `PUT value=<value>`.
    Set { value: String },
    /// `GET ?quorum=true`; `None` is 404 (key not found). Only definite reads are kept.
    Get { seen: Option<String> },
    /// `PUT prevValue=<prev> value=<value>`.
    Cas {
        prev: String,
        value: String,
        outcome: Outcome,
    },
    /// `DELETE`.
    Delete { outcome: Outcome },
}

/// How a conditional write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It happened (200).
    Done,
    /// The key was missing (404, errorCode 100): it surely did nothing.
    Missing,
    /// The value differed (412, errorCode 101): it surely did nothing.
    Mismatch,
    /// No definite answer (timeout, connection error, 5xx, errorCode 300): it may or
    /// may not have happened.
    Unknown,
}

/// One operation on one key.
#[derive(Clone, Debug)]
pub struct KeyOp {
    pub key: usize,
    pub op: Op,
}

/// One operation as a client saw it: which client, when it called (time since the run
/// began), when a definite answer came (`None`: never), and what it did and saw.
pub struct Timed<'a> {
    pub client: u32,
    pub called: Duration,
    pub returned: Option<Duration>,
    pub op: &'a KeyOp,
}

/// The history for the checker, in nanoseconds: an operation without a definite answer
/// returns after every call and every known return (each at its own instant), so it may
/// take effect at any time after its call, or, for what clients saw, never.
pub fn history<'a>(ops: impl Iterator<Item = Timed<'a>> + Clone) -> Vec<Operation<KeysModel>> {
    let nanos = |d: Duration| d.as_nanos() as i64;
    let end = ops
        .clone()
        .flat_map(|t| [Some(t.called), t.returned])
        .flatten()
        .map(nanos)
        .max()
        .unwrap_or(0)
        + 1;
    ops.enumerate()
        .map(|(i, t)| Operation {
            client_id: Some(t.client),
            call_time: nanos(t.called),
            return_time: t.returned.map_or(end + i as i64, nanos),
            op: t.op.clone(),
            metadata: None,
        })
        .collect()
}

/// The per-key register model.
#[derive(Clone, Debug)]
pub struct KeysModel;

impl Model for KeysModel {
    /// The key's value, `None` when missing.
    type State = Option<String>;
    type Op = KeyOp;
    type Metadata = ();

    fn partition_operations(history: &[Operation<Self>]) -> Vec<Vec<Operation<Self>>> {
        let keys = history.iter().map(|o| o.op.key + 1).max().unwrap_or(0);
        let mut parts = vec![Vec::new(); keys];
        for o in history {
            parts[o.op.key].push(o.clone());
        }
        parts.retain(|p: &Vec<_>| !p.is_empty());
        parts
    }

    fn init() -> Option<String> {
        None
    }

    fn step(state: &Option<String>, op: &KeyOp) -> (bool, Option<String>) {
        match &op.op {
            Op::Set { value } => (true, Some(value.clone())),
            Op::Get { seen } => (seen == state, state.clone()),
            Op::Cas {
                prev,
                value,
                outcome,
            } => {
                let equal = state.as_deref() == Some(prev.as_str());
                match outcome {
                    Outcome::Done => (equal, Some(value.clone())),
                    Outcome::Mismatch => (state.is_some() && !equal, state.clone()),
                    Outcome::Missing => (state.is_none(), None),
                    // Had it happened here, it did what it does.
                    Outcome::Unknown if equal => (true, Some(value.clone())),
                    Outcome::Unknown => (true, state.clone()),
                }
            }
            Op::Delete { outcome } => match outcome {
                Outcome::Done => (state.is_some(), None),
                Outcome::Missing => (state.is_none(), None),
                Outcome::Mismatch => (false, state.clone()),
                Outcome::Unknown => (true, None),
            },
        }
    }

    fn describe_operation(op: &KeyOp) -> String {
        let k = op.key;
        match &op.op {
            Op::Set { value } => format!("set(k{k}, {value})"),
            Op::Get { seen } => format!("get(k{k}) -> {}", seen.as_deref().unwrap_or("missing")),
            Op::Cas {
                prev,
                value,
                outcome,
            } => format!("cas(k{k}, {prev} -> {value}) -> {outcome:?}"),
            Op::Delete { outcome } => format!("delete(k{k}) -> {outcome:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porcupine_rs::{check_operations_timeout, CheckResult};
    use std::time::Duration;

    fn at(call: i64, ret: i64, key: usize, op: Op) -> Operation<KeysModel> {
        Operation {
            client_id: Some(call as u32),
            call_time: call,
            return_time: ret,
            op: KeyOp { key, op },
            metadata: None,
        }
    }

    fn set(v: &str) -> Op {
        Op::Set { value: v.into() }
    }

    fn get(v: Option<&str>) -> Op {
        Op::Get {
            seen: v.map(str::to_string),
        }
    }

    fn check(history: &[Operation<KeysModel>]) -> CheckResult {
        check_operations_timeout(history, Duration::from_secs(10))
    }

    #[test]
    fn the_checker_accepts_overlaps_and_unknown_writes() {
        let history = [
            at(0, 10, 0, set("a")),
            // Overlaps the set: may see either state.
            at(5, 15, 0, get(None)),
            at(20, 30, 0, get(Some("a"))),
            // Never answered: it may take effect later, or never.
            at(
                31,
                i64::MAX,
                0,
                Op::Cas {
                    prev: "a".into(),
                    value: "b".into(),
                    outcome: Outcome::Unknown,
                },
            ),
            at(40, 50, 0, get(Some("a"))),
            at(60, 70, 0, get(Some("b"))),
            at(
                80,
                90,
                0,
                Op::Delete {
                    outcome: Outcome::Done,
                },
            ),
            at(
                95,
                99,
                0,
                Op::Delete {
                    outcome: Outcome::Missing,
                },
            ),
            at(0, 5, 1, get(None)),
        ];
        assert_eq!(check(&history), CheckResult::Ok);
    }

    #[test]
    fn the_checker_rejects_a_stale_read() {
        let history = [
            at(0, 10, 0, set("a")),
            at(20, 30, 0, set("b")),
            at(40, 50, 0, get(Some("a"))),
        ];
        assert_eq!(check(&history), CheckResult::Illegal);
    }

    #[test]
    fn the_checker_rejects_a_value_never_written() {
        let history = [at(0, 10, 0, set("a")), at(20, 30, 0, get(Some("z")))];
        assert_eq!(check(&history), CheckResult::Illegal);
    }

    #[test]
    fn the_checker_rejects_a_failed_swap_that_should_have_succeeded() {
        let history = [
            at(0, 10, 0, set("a")),
            at(
                20,
                30,
                0,
                Op::Cas {
                    prev: "a".into(),
                    value: "b".into(),
                    outcome: Outcome::Mismatch,
                },
            ),
        ];
        assert_eq!(check(&history), CheckResult::Illegal);
    }

    #[test]
    fn keys_are_checked_apart() {
        // A read of key 1 does not see key 0's value.
        let history = [at(0, 10, 0, set("a")), at(20, 30, 1, get(Some("a")))];
        assert_eq!(check(&history), CheckResult::Illegal);
        assert_eq!(KeysModel::partition_operations(&history).len(), 2);
    }
}
