//! A simulated client: random operations on random members over the simulated network,
//! each recorded with its call and return time in simulated time and its outcome as
//! the register model sees it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon_api::{ErrorCode, EtcdError, Event};
use beacon_raft::{ProposeError, Proposed};
use beacon_store::{Applied, Command, KeysRequest, Method};
use beacon_testkit::SeededRng;

use crate::conn::{CallError, Connection};
use crate::model::{KeyOp, Op, Outcome};
use crate::observe::lock;
use crate::wire::{Answer, Request};

/// A client gives up on a request after this long; its outcome is then unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);

/// A pause after a member said it knows no leader, so a client does not spin.
const NO_LEADER_PAUSE: Duration = Duration::from_millis(20);

/// One finished operation; `returned` is `None` when the outcome is unknown.
#[derive(Debug, Clone)]
pub struct Record {
    /// Which client.
    pub client: u32,
    /// Simulated time of the call.
    pub called: Duration,
    /// Simulated time of the answer, if there was a definite one.
    pub returned: Option<Duration>,
    /// What was done and seen.
    pub op: KeyOp,
    /// For an acknowledged write: its Raft index and term.
    pub log: Option<(u64, u64)>,
}

/// Per kind (set, get, cas, delete, set with a TTL): definite success, definite failure,
/// unknown.
pub type Tally = [[u64; 3]; 5];

/// What every client of a run shares: where to send, what was recorded.
#[derive(Clone)]
pub struct Shared {
    /// The ids of the members clients may send to (changes with membership).
    pub members: Arc<Mutex<Vec<u64>>>,
    /// How many keys.
    pub keys: usize,
    /// How many keys with a TTL the clients set (their own keys, out of the history:
    /// the expiry check looks at them after the run).
    pub ttl_keys: usize,
    /// The last value any client saw per key (compare-and-swaps use it, so that some of
    /// them succeed).
    pub last_seen: Arc<Mutex<BTreeMap<usize, String>>>,
    /// Every record.
    pub records: Arc<Mutex<Vec<Record>>>,
    /// The tally.
    pub tally: Arc<Mutex<Tally>>,
    /// Writes sent and not answered yet, by operation number: if the run ends before
    /// their answer (a host failed), they join the history as unknown, since they may
    /// have taken effect and a read may have seen them.
    pub pending: Arc<Mutex<BTreeMap<u64, Record>>>,
    /// Numbers operations for `pending`.
    pub next_op: Arc<std::sync::atomic::AtomicU64>,
}

/// The simulated time, the same clock on every host.
pub fn now() -> Duration {
    turmoil::sim_elapsed().expect("clients run inside the simulation")
}

/// The wall clock the simulated hosts share, in nanoseconds since the epoch (see
/// `seams::SimClock`).
pub fn now_ns() -> i64 {
    crate::seams::wall_ns(now())
}

/// The store key of TTL key number `key`.
pub fn ttl_path(key: usize) -> String {
    format!("/sim/ttl/k{key}")
}

/// The store key of key number `key`.
pub fn path(key: usize) -> String {
    format!("/sim/k{key}")
}

/// Runs random operations until simulated time `until`, at most `max_ops`.
pub async fn run(
    id: u32,
    shared: Shared,
    mut rng: SeededRng,
    until: Duration,
    max_ops: u64,
) -> turmoil::Result {
    for n in 0..max_ops {
        if now() >= until {
            break;
        }
        let members = lock(&shared.members).clone();
        let member = members[rng.below(members.len() as u64) as usize];
        if shared.ttl_keys > 0 && rng.below(10) == 0 {
            // A key that expires: its expiry goes through the log (the leader's clock).
            let key = rng.below(shared.ttl_keys as u64) as usize;
            let ttl_s = 1 + rng.below(3);
            set_with_ttl(&shared, member, key, ttl_s).await;
            continue;
        }
        let key = rng.below(shared.keys as u64) as usize;
        let value = format!("c{id}-{n}");
        let op = match rng.below(100) {
            0..=29 => Op::Set { value },
            30..=59 => Op::Get { seen: None },
            60..=84 => {
                let prev = lock(&shared.last_seen).get(&key).cloned();
                Op::Cas {
                    prev: prev.unwrap_or_else(|| "none".into()),
                    value,
                    outcome: Outcome::Unknown,
                }
            }
            _ => Op::Delete {
                outcome: Outcome::Unknown,
            },
        };
        if !operate(id, &shared, member, key, op).await {
            tokio::time::sleep(NO_LEADER_PAUSE).await;
        }
    }
    Ok(())
}

/// After the faults: one quorum read per key, retried on other members until one has a
/// definite answer, so that the history ends with every key's final value.
pub async fn final_reads(shared: Shared, attempts_max: u32) -> turmoil::Result {
    let reader = u32::MAX;
    for key in 0..shared.keys {
        let mut done = false;
        for attempt in 0..attempts_max {
            let members = lock(&shared.members).clone();
            let member = members[attempt as usize % members.len()];
            let before = lock(&shared.records).len();
            operate(reader, &shared, member, key, Op::Get { seen: None }).await;
            let answered = lock(&shared.records)[before..]
                .iter()
                .any(|r| r.returned.is_some());
            if answered {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !done {
            return Err(format!("no member answered a quorum read of key {key}").into());
        }
    }
    Ok(())
}

/// What a member answered, as the model sees it.
enum Reply {
    /// The store applied it: the event or the store's error.
    Applied(Box<Result<Event, EtcdError>>, Option<(u64, u64)>),
    /// Surely not done (no leader took it).
    NotDone,
    /// May or may not have happened.
    Unknown,
}

/// Sends one operation to `member` and records it; false when it surely did nothing
/// because no leader took it (it is then left out of the history).
async fn operate(id: u32, shared: &Shared, member: u64, key: usize, op: Op) -> bool {
    let request = Request::Propose(command(key, &op));
    let called = now();
    let number = shared
        .next_op
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if !matches!(op, Op::Get { .. }) {
        let unknown = settle(op.clone(), Reply::Unknown).0;
        if let Some(op) = unknown {
            lock(&shared.pending).insert(
                number,
                Record {
                    client: id,
                    called,
                    returned: None,
                    op: KeyOp { key, op },
                    log: None,
                },
            );
        }
    }
    let answer = Connection::new(member)
        .call(&request, &[], REQUEST_TIMEOUT)
        .await;
    lock(&shared.pending).remove(&number);
    let returned = now();
    let reply = match answer {
        Ok((
            Answer::Proposed(Ok(Proposed {
                applied: Applied::Keys(result),
                raft_index,
                raft_term,
            })),
            _,
        )) => Reply::Applied(Box::new(result), Some((raft_index, raft_term))),
        Ok((Answer::Proposed(Err(ProposeError::NotLeader { .. })), _))
        | Err(CallError::NotSent(_)) => Reply::NotDone,
        _ => Reply::Unknown,
    };
    let kind = match op {
        Op::Set { .. } => 0,
        Op::Get { .. } => 1,
        Op::Cas { .. } => 2,
        Op::Delete { .. } => 3,
    };
    let (op, definite, log) = settle(op, reply);
    let Some(op) = op else {
        return false;
    };
    if let (Op::Set { value } | Op::Cas { value, .. }, Some(_)) = (&op, log) {
        lock(&shared.last_seen).insert(key, value.clone());
    }
    if let Op::Get { seen: Some(v) } = &op {
        lock(&shared.last_seen).insert(key, v.clone());
    }
    let column = match definite {
        Some(true) => 0,
        Some(false) => 1,
        None => 2,
    };
    lock(&shared.tally)[kind][column] += 1;
    // A read without an answer tells nothing: left out.
    if matches!(op, Op::Get { .. }) && definite.is_none() {
        return true;
    }
    lock(&shared.records).push(Record {
        client: id,
        called,
        returned: definite.map(|_| returned),
        op: KeyOp { key, op },
        log,
    });
    true
}

/// The operation as it ended (`None`: surely not done), whether it succeeded (`None`:
/// unknown), and an acknowledged write's log position.
fn settle(op: Op, reply: Reply) -> (Option<Op>, Option<bool>, Option<(u64, u64)>) {
    let (result, log) = match reply {
        Reply::NotDone => return (None, Some(false), None),
        Reply::Unknown => return (Some(op), None, None),
        Reply::Applied(result, log) => (*result, log),
    };
    let code = result.as_ref().err().map(|e| e.code);
    let outcome = match code {
        None => Outcome::Done,
        Some(ErrorCode::KeyNotFound) => Outcome::Missing,
        Some(ErrorCode::TestFailed) => Outcome::Mismatch,
        Some(_) => return (Some(op), None, None),
    };
    let ok = outcome == Outcome::Done;
    let log = log.filter(|_| ok);
    let op = match op {
        Op::Set { value } => Op::Set { value },
        Op::Get { .. } => match result {
            Ok(event) => Op::Get {
                seen: event.node.and_then(|n| n.value).map(|v| v.to_string()),
            },
            Err(_) => Op::Get { seen: None },
        },
        Op::Cas { prev, value, .. } => Op::Cas {
            prev,
            value,
            outcome,
        },
        Op::Delete { .. } => Op::Delete { outcome },
    };
    (Some(op), Some(ok), log)
}

/// The store command for an operation on key number `key`.
fn command(key: usize, op: &Op) -> Command {
    let method = match op {
        Op::Set { .. } | Op::Cas { .. } => Method::Put,
        Op::Get { .. } => Method::QuorumGet,
        Op::Delete { .. } => Method::Delete,
    };
    let mut req = KeysRequest::new(method, path(key), now_ns());
    match op {
        Op::Set { value } => req.value = value.into(),
        Op::Cas { prev, value, .. } => {
            req.value = value.into();
            req.prev_value = prev.into();
        }
        Op::Get { .. } | Op::Delete { .. } => {}
    }
    Command::Keys(req)
}

/// Sets TTL key number `key` with a TTL of `ttl_s` seconds on `member`; the outcome does
/// not matter (the expiry check only needs every such key gone in the end).
async fn set_with_ttl(shared: &Shared, member: u64, key: usize, ttl_s: u64) {
    let now = now_ns();
    let mut req = KeysRequest::new(Method::Put, ttl_path(key), now);
    req.value = "expires".into();
    req.expiration_ns = Some(now + (ttl_s * 1_000_000_000) as i64);
    let request = Request::Propose(Command::Keys(req));
    let answer = Connection::new(member)
        .call(&request, &[], REQUEST_TIMEOUT)
        .await;
    let column = match answer {
        Ok((Answer::Proposed(Ok(_)), _)) => 0,
        Ok((Answer::Proposed(Err(ProposeError::NotLeader { .. })), _))
        | Err(CallError::NotSent(_)) => 1,
        _ => 2,
    };
    lock(&shared.tally)[4][column] += 1;
}
