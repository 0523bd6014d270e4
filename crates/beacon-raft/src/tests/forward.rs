//! The forwarding pipeline (`peer::forward`) against a stand-in leader on the
//! in-memory network: a lone write goes at once, concurrent writes share batches and
//! each answer reaches its own caller, a partial batch waits for the one in flight, a failed batch fails each caller as a single
//! forward would, and a leader without the batch path gets one request per write.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use beacon_api::{Action, Event};
use beacon_store::{Applied, Command};

use super::net::{url, MemoryNet};
use super::put;
use crate::peer::{serve_listener, Forwarder, PeerHttp, FORWARD_BATCH_COMMANDS_MAX};
use crate::types::Proposed;
use crate::ProposeError;

/// The stand-in leader's member id; it listens at `url(LEADER)`.
const LEADER: u64 = 9;

/// What the stand-in leader saw: the number of commands of each request, per path.
#[derive(Clone, Default)]
struct Seen {
    batches: Arc<Mutex<Vec<usize>>>,
    singles: Arc<Mutex<usize>>,
}

/// The answer to a PUT whose value is a number `n`: raft index `n`, etcd index `n + 1`,
/// so that a caller can tell its own answer from another's.
fn answer_for(cmd: &Command) -> Result<Proposed, ProposeError> {
    let Command::Keys(req) = cmd else {
        return Err(ProposeError::Fatal("not a put".into()));
    };
    let n: u64 = std::str::from_utf8(req.value.as_bytes())
        .unwrap()
        .parse()
        .unwrap();
    let event = Event {
        action: Action::Set,
        node: None,
        prev_node: None,
        etcd_index: n + 1,
        refresh: false,
    };
    Ok(Proposed {
        applied: Applied::Keys(Ok(event)),
        raft_index: n,
        raft_term: 1,
    })
}

fn json_of<T: serde::Serialize>(value: &T) -> Response {
    (StatusCode::OK, serde_json::to_vec(value).unwrap()).into_response()
}

async fn batch(State(seen): State<Seen>, body: Bytes) -> Response {
    let cmds: Vec<Command> = serde_json::from_slice(&body).unwrap();
    seen.batches.lock().unwrap().push(cmds.len());
    let answers: Vec<_> = cmds
        .iter()
        .map(|cmd| crate::peer::ForwardAnswer::new(answer_for(cmd)))
        .collect();
    json_of(&answers)
}

async fn single(State(seen): State<Seen>, body: Bytes) -> Response {
    let cmd: Command = serde_json::from_slice(&body).unwrap();
    *seen.singles.lock().unwrap() += 1;
    json_of(&crate::peer::ForwardAnswer::new(answer_for(&cmd)))
}

async fn unavailable(State(seen): State<Seen>) -> Response {
    seen.batches.lock().unwrap().push(0);
    (StatusCode::SERVICE_UNAVAILABLE, "raft stopped").into_response()
}

/// A forwarder and a stand-in leader serving `routes` on the in-memory network.
fn leader(routes: Router<Seen>) -> (Forwarder, Seen) {
    let net = Arc::new(MemoryNet::default());
    let seen = Seen::default();
    let accept = net.listen(&format!("member-{LEADER}.invalid"), LEADER as u16);
    tokio::spawn(serve_listener(accept, routes.with_state(seen.clone())));
    let forwarder = Forwarder::new(PeerHttp::new(net, http::HeaderMap::new()));
    (forwarder, seen)
}

fn both_paths() -> Router<Seen> {
    Router::new()
        .route("/raft/propose-batch", post(batch))
        .route("/raft/propose", post(single))
}

/// Forwards PUTs of the values `0..n` at once: every one is queued before the
/// forwarder task runs (`unconstrained`, so tokio's budget does not yield half-way).
async fn forward_all(forwarder: &Forwarder, n: u64) -> Vec<Result<Proposed, ProposeError>> {
    let to = url(LEADER);
    let cmds: Vec<Command> = (0..n)
        .map(|i| put(&format!("/k{i}"), &i.to_string()))
        .collect();
    let calls = cmds
        .iter()
        .map(|cmd| forwarder.forward(&to, cmd, Duration::from_secs(10)));
    tokio::task::unconstrained(futures_util::future::join_all(calls)).await
}

fn assert_own_answers(answers: Vec<Result<Proposed, ProposeError>>) {
    for (i, answer) in answers.into_iter().enumerate() {
        let proposed = answer.unwrap_or_else(|e| panic!("write {i}: {e}"));
        assert_eq!(
            proposed.raft_index, i as u64,
            "write {i} got another's answer"
        );
        match proposed.applied {
            Applied::Keys(Ok(event)) => assert_eq!(event.etcd_index, i as u64 + 1),
            other => panic!("write {i}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_lone_write_goes_at_once_in_a_batch_of_one() {
    let (forwarder, seen) = leader(both_paths());
    assert_own_answers(forward_all(&forwarder, 1).await);
    assert_eq!(*seen.batches.lock().unwrap(), [1]);
    // And the next lone write too: nothing waits for company.
    let again = forwarder
        .forward(&url(LEADER), &put("/k", "0"), Duration::from_secs(10))
        .await;
    assert_own_answers(vec![again]);
    assert_eq!(*seen.batches.lock().unwrap(), [1, 1]);
}

#[tokio::test]
async fn concurrent_writes_share_batches_and_each_gets_its_own_answer() {
    let (forwarder, seen) = leader(both_paths());
    let n = 3 * FORWARD_BATCH_COMMANDS_MAX as u64 + 5;
    assert_own_answers(forward_all(&forwarder, n).await);
    let batches = seen.batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), n as usize);
    assert!(
        batches.len() <= (n as usize).div_ceil(FORWARD_BATCH_COMMANDS_MAX),
        "{batches:?}"
    );
    assert!(batches.iter().all(|&b| b <= FORWARD_BATCH_COMMANDS_MAX));
    assert_eq!(*seen.singles.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_failed_batch_fails_each_caller_as_a_single_forward_would() {
    // The leader answers with an error: the outcome is unknown, as for one forward.
    let (forwarder, seen) = leader(Router::new().route("/raft/propose-batch", post(unavailable)));
    let answers = forward_all(&forwarder, 100).await;
    assert!(!seen.batches.lock().unwrap().is_empty());
    for answer in answers {
        assert!(
            matches!(&answer, Err(ProposeError::Forward(m)) if m.contains("503")),
            "{answer:?}"
        );
    }
    // No leader listens: nothing was sent, so every caller looks for the leader again.
    let forwarder = Forwarder::new(PeerHttp::new(
        Arc::new(MemoryNet::default()),
        http::HeaderMap::new(),
    ));
    for answer in forward_all(&forwarder, 100).await {
        assert!(
            matches!(answer, Err(ProposeError::NotLeader { leader_id: None })),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn a_leader_without_the_batch_path_gets_one_request_per_write() {
    let (forwarder, seen) = leader(Router::new().route("/raft/propose", post(single)));
    assert_own_answers(forward_all(&forwarder, 100).await);
    assert_eq!(*seen.singles.lock().unwrap(), 100);
    // Once it answered 404, the batch path is not tried again for that leader.
    assert_own_answers(forward_all(&forwarder, 10).await);
    assert_eq!(*seen.singles.lock().unwrap(), 110);
}

/// A stand-in leader that holds its first batch until released.
#[derive(Clone)]
struct Gate {
    seen: Seen,
    first_arrived: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Semaphore>,
}

async fn gated_batch(State(gate): State<Gate>, body: Bytes) -> Response {
    let cmds: Vec<Command> = serde_json::from_slice(&body).unwrap();
    let first = {
        let mut batches = gate.seen.batches.lock().unwrap();
        batches.push(cmds.len());
        batches.len() == 1
    };
    if first {
        gate.first_arrived.notify_one();
        let _held = gate.release.acquire().await.unwrap();
    }
    let answers: Vec<_> = cmds
        .iter()
        .map(|cmd| crate::peer::ForwardAnswer::new(answer_for(cmd)))
        .collect();
    json_of(&answers)
}

#[tokio::test]
async fn a_partial_batch_waits_for_the_one_in_flight_and_a_full_one_does_not() {
    let net = Arc::new(MemoryNet::default());
    let gate = Gate {
        seen: Seen::default(),
        first_arrived: Arc::default(),
        release: Arc::new(tokio::sync::Semaphore::new(0)),
    };
    let accept = net.listen(&format!("member-{LEADER}.invalid"), LEADER as u16);
    let routes = Router::new().route("/raft/propose-batch", post(gated_batch));
    tokio::spawn(serve_listener(accept, routes.with_state(gate.clone())));
    let forwarder = Forwarder::new(PeerHttp::new(net, http::HeaderMap::new()));
    let forward = |values: std::ops::Range<u64>| {
        let forwarder = forwarder.clone();
        tokio::spawn(async move {
            let cmds: Vec<Command> = values
                .clone()
                .map(|i| put(&format!("/k{i}"), &i.to_string()))
                .collect();
            let to = url(LEADER);
            let calls = cmds
                .iter()
                .map(|cmd| forwarder.forward(&to, cmd, Duration::from_secs(10)));
            let answers = tokio::task::unconstrained(futures_util::future::join_all(calls)).await;
            for (i, answer) in values.zip(answers) {
                assert_eq!(
                    answer.unwrap().raft_index,
                    i,
                    "write {i} got another's answer"
                );
            }
        })
    };
    let lone = forward(0..1);
    gate.first_arrived.notified().await;
    // While the lone write's batch is held: a full batch and five more.
    let extra = FORWARD_BATCH_COMMANDS_MAX as u64 + 5;
    let rest = forward(1..1 + extra);
    let full_sent = async {
        while gate.seen.batches.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), full_sent)
        .await
        .expect("the full batch goes beside the one in flight");
    // The five wait for the first batch's answer, however long it takes.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        *gate.seen.batches.lock().unwrap(),
        [1, FORWARD_BATCH_COMMANDS_MAX]
    );
    gate.release.add_permits(1);
    lone.await.unwrap();
    rest.await.unwrap();
    assert_eq!(
        *gate.seen.batches.lock().unwrap(),
        [1, FORWARD_BATCH_COMMANDS_MAX, 5]
    );
}
