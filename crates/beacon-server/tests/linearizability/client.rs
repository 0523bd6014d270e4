//! One client of the randomized run: random operations on random members over real
//! HTTP (v2) or gRPC (v3), each recorded with its call and return time from one
//! monotonic clock, and its outcome as the model sees it.
//!
//! In v3 the register operations are: `Put`; a linearizable `Range`; a compare-and-swap
//! as a `Txn` comparing the value, whose failure branch reads the key (so a failure
//! says whether the key was missing or held another value, atomically); `DeleteRange`,
//! whose `deleted` count says whether the key was there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::request_op::Request as TxnOp;
use beacon_proto::etcdserverpb::response_op::Response as TxnAnswer;
use beacon_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use beacon_testkit::SeededRng;
use serde_json::Value;
use tonic::transport::Channel;

use crate::model::{KeyOp, Op, Outcome};

/// Operation kinds, in the order of the tallies.
pub const KINDS: [&str; 4] = ["set", "get", "cas", "delete"];

/// One finished operation; `returned` is `None` when the outcome is unknown.
#[derive(Debug, Clone)]
pub struct Record {
    pub client: u32,
    pub called: Duration,
    pub returned: Option<Duration>,
    pub op: KeyOp,
}

/// What each client needs: members, clock, keys and the last value seen per key
/// (compare-and-swaps use it, so that some of them succeed).
#[derive(Clone)]
pub struct Shared {
    pub bases: Vec<String>,
    pub start: Instant,
    pub keys: usize,
    pub last_seen: Arc<Mutex<HashMap<usize, String>>>,
}

/// Per kind: definite success, definite failure, unknown (a read without an answer is
/// counted unknown and left out of the history).
pub type Tally = [[u64; 3]; 4];

/// How a client talks to the members.
#[derive(Clone)]
pub enum Api {
    /// etcd's v2 keys over HTTP.
    V2(reqwest::Client),
    /// etcd's v3 KV over gRPC: one channel per member, in `Shared::bases` order.
    V3(Vec<KvClient<Channel>>),
}

/// Runs operations until `until`, at most `max_ops`; returns the records and the tally.
pub async fn run(
    id: u32,
    shared: Shared,
    api: Api,
    mut rng: SeededRng,
    until: Instant,
    max_ops: u64,
) -> (Vec<Record>, Tally) {
    let http = match &api {
        Api::V2(http) => http.clone(),
        Api::V3(_) => reqwest::Client::new(),
    };
    let mut records = Vec::new();
    let mut tally: Tally = [[0; 3]; 4];
    for n in 0..max_ops {
        if Instant::now() >= until {
            break;
        }
        let member = rng.below(shared.bases.len() as u64) as usize;
        let base = &shared.bases[member];
        let key = rng.below(shared.keys as u64) as usize;
        let url = format!("{base}/v2/keys/lin/k{key}");
        let value = format!("c{id}-{n}");
        let kind = match rng.below(100) {
            0..=29 => 0,
            30..=59 => 1,
            60..=84 => 2,
            _ => 3,
        };
        let prev = shared.last_seen.lock().unwrap().get(&key).cloned();
        let called = shared.start.elapsed();
        let (outcome, op) = if let Api::V3(members) = &api {
            let kv = members[member].clone();
            v3_op(
                kv,
                kind,
                key,
                value.clone(),
                prev.unwrap_or_else(|| format!("c{id}-never")),
            )
            .await
        } else {
            match kind {
                0 => {
                    let answer = send(http.put(&url).form(&[("value", &value)])).await;
                    let outcome = match answer {
                        Some((_, a)) if a["action"] == "set" => Outcome::Done,
                        _ => Outcome::Unknown,
                    };
                    (
                        outcome,
                        Op::Set {
                            value: value.clone(),
                        },
                    )
                }
                1 => {
                    let answer = send(http.get(format!("{url}?quorum=true"))).await;
                    let seen = match &answer {
                        Some((200, a)) => a["node"]["value"].as_str().map(|v| Some(v.to_string())),
                        Some((404, a)) if a["errorCode"] == 100 => Some(None),
                        _ => None,
                    };
                    match seen {
                        Some(seen) => (Outcome::Done, Op::Get { seen }),
                        None => (Outcome::Unknown, Op::Get { seen: None }),
                    }
                }
                2 => {
                    let prev = prev.unwrap_or_else(|| format!("c{id}-never"));
                    let answer = send(
                        http.put(&url)
                            .form(&[("value", &value), ("prevValue", &prev)]),
                    )
                    .await;
                    let outcome = conditional(&answer, "compareAndSwap");
                    let op = Op::Cas {
                        prev,
                        value: value.clone(),
                        outcome,
                    };
                    (outcome, op)
                }
                _ => {
                    let answer = send(http.delete(&url)).await;
                    let outcome = conditional(&answer, "delete");
                    (outcome, Op::Delete { outcome })
                }
            }
        };
        let returned = shared.start.elapsed();
        let column = match outcome {
            Outcome::Done => 0,
            Outcome::Missing | Outcome::Mismatch => 1,
            Outcome::Unknown => 2,
        };
        tally[kind][column] += 1;
        if outcome == Outcome::Unknown && kind == 1 {
            continue;
        }
        match (&op, outcome) {
            (Op::Set { value }, Outcome::Done) | (Op::Cas { value, .. }, Outcome::Done) => {
                shared.last_seen.lock().unwrap().insert(key, value.clone());
            }
            (Op::Get { seen: Some(v) }, _) => {
                shared.last_seen.lock().unwrap().insert(key, v.clone());
            }
            _ => {}
        }
        records.push(Record {
            client: id,
            called,
            returned: (outcome != Outcome::Unknown).then_some(returned),
            op: KeyOp { key, op },
        });
    }
    (records, tally)
}

/// One v3 operation of `kind` on `key`: its outcome and what the model records.
async fn v3_op(
    mut kv: KvClient<Channel>,
    kind: usize,
    key: usize,
    value: String,
    prev: String,
) -> (Outcome, Op) {
    let name = format!("lin/k{key}").into_bytes();
    let done = |ok: bool| if ok { Outcome::Done } else { Outcome::Unknown };
    match kind {
        0 => {
            let put = kv
                .put(PutRequest {
                    key: name,
                    value: value.clone().into_bytes(),
                    ..PutRequest::default()
                })
                .await;
            (done(put.is_ok()), Op::Set { value })
        }
        1 => {
            let read = kv
                .range(RangeRequest {
                    key: name,
                    ..RangeRequest::default()
                })
                .await;
            match read {
                Ok(answer) => {
                    let seen = answer
                        .into_inner()
                        .kvs
                        .first()
                        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                    (Outcome::Done, Op::Get { seen })
                }
                Err(_) => (Outcome::Unknown, Op::Get { seen: None }),
            }
        }
        2 => {
            let txn = TxnRequest {
                compare: vec![Compare {
                    key: name.clone(),
                    target: CompareTarget::Value as i32,
                    result: CompareResult::Equal as i32,
                    target_union: Some(TargetUnion::Value(prev.clone().into_bytes())),
                    range_end: Vec::new(),
                }],
                success: vec![RequestOp {
                    request: Some(TxnOp::RequestPut(PutRequest {
                        key: name.clone(),
                        value: value.clone().into_bytes(),
                        ..PutRequest::default()
                    })),
                }],
                failure: vec![RequestOp {
                    request: Some(TxnOp::RequestRange(RangeRequest {
                        key: name,
                        ..RangeRequest::default()
                    })),
                }],
            };
            let outcome = match kv.txn(txn).await {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    if answer.succeeded {
                        Outcome::Done
                    } else {
                        match answer.responses.first().and_then(|r| r.response.as_ref()) {
                            Some(TxnAnswer::ResponseRange(r)) if r.kvs.is_empty() => {
                                Outcome::Missing
                            }
                            Some(TxnAnswer::ResponseRange(_)) => Outcome::Mismatch,
                            _ => Outcome::Unknown,
                        }
                    }
                }
                Err(_) => Outcome::Unknown,
            };
            (
                outcome,
                Op::Cas {
                    prev,
                    value,
                    outcome,
                },
            )
        }
        _ => {
            let outcome = match kv
                .delete_range(DeleteRangeRequest {
                    key: name,
                    ..DeleteRangeRequest::default()
                })
                .await
            {
                Ok(answer) if answer.get_ref().deleted == 1 => Outcome::Done,
                Ok(answer) if answer.get_ref().deleted == 0 => Outcome::Missing,
                _ => Outcome::Unknown,
            };
            (outcome, Op::Delete { outcome })
        }
    }
}

/// Status and JSON body, or `None` when there was no complete answer.
async fn send(request: reqwest::RequestBuilder) -> Option<(u16, Value)> {
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// A compare-and-swap's or delete's outcome from etcd's answer.
fn conditional(answer: &Option<(u16, Value)>, action: &str) -> Outcome {
    match answer {
        Some((200, a)) if a["action"] == action => Outcome::Done,
        Some((404, a)) if a["errorCode"] == 100 => Outcome::Missing,
        Some((412, a)) if a["errorCode"] == 101 => Outcome::Mismatch,
        _ => Outcome::Unknown,
    }
}
