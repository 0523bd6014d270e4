//! The forwarding pipeline: a follower's proposals on their way to the leader.
//!
//! One POST per write made a write through a follower cost a request, a response and
//! a task switch of its own on both members. Instead every proposal is queued to one
//! forwarder task per leader, which sends what is queued as one request
//! (`POST /raft/propose-batch`, a JSON array of commands, answered by an array of
//! answers in the same order) and hands each answer to its caller. A batch goes at
//! once when none is in flight, with whatever is queued, one command or more, so a
//! lone write never waits; while one is in flight the next accumulates, and goes when
//! the first is answered or as soon as it is full (up to
//! [`FORWARD_BATCHES_IN_FLIGHT_MAX`] full batches in flight, over the pool's keep-alive
//! connections). There is no timer.
//!
//! A leader on an older build has no batch path: axum answers it 404 with an empty body
//! (the guard's own 404 has a text), and from then on that leader's forwarder sends
//! each command on its own `POST /raft/propose`, as before.
//!
//! A batch's failure reaches each of its callers as the single forward's would
//! (`forward_error`): never sent means "look for the leader again", anything else
//! an unknown outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tokio::sync::{mpsc, oneshot, watch};

use super::call::{read_answer, CallError, PeerHttp};
use super::{ForwardAnswer, PROPOSE_BATCH_PATH, PROPOSE_PATH};
use crate::error::ProposeError;
use crate::types::Proposed;
use beacon_store::Command;

/// The most commands one batch carries: one append's worth (`APPEND_ENTRIES_MAX`), so
/// that the leader's openraft can put a whole batch into one append to its followers,
/// and the leader's bound on a batch body is the one it has for an append.
pub(crate) const FORWARD_BATCH_COMMANDS_MAX: usize = crate::config::APPEND_ENTRIES_MAX as usize;
/// The most JSON bytes of commands one batch carries, unless its first command alone is
/// larger (a batch always holds at least one): large enough that small writes fill a
/// batch by count, small enough that a batch of large values does not hold the
/// connection for long. etcd forwards each proposal on its own, so it has no such bound.
pub(crate) const FORWARD_BATCH_BYTES_MAX: usize = 1 << 20;
/// How many batches to one leader are in flight at once, all but one of them full
/// (`may_go`). Under a load that fills batches faster than the leader answers them,
/// a few let the leader commit one while the next is on its way; each takes one pooled
/// connection.
pub(crate) const FORWARD_BATCHES_IN_FLIGHT_MAX: usize = 4;
/// How many proposals may wait for a batch; beyond it a proposal waits for room (the
/// client port's connection limit bounds the callers anyway).
pub(crate) const FORWARD_QUEUE_COMMANDS_MAX: usize = 4096;

/// A queued proposal: its command as JSON, and where its answer goes.
struct Job {
    json: Bytes,
    reply: oneshot::Sender<Result<Proposed, ProposeError>>,
}

/// The follower's side of forwarding: one queue and forwarder task for the leader it
/// forwards to now. Clones share it.
#[derive(Clone)]
pub(crate) struct Forwarder {
    http: PeerHttp,
    /// The leader's peer URL and its queue. A new leader replaces it; the old task
    /// sends what it had queued and ends when its queue's last sender is dropped.
    queue: Arc<Mutex<Option<LeaderQueue>>>,
}

/// A leader's peer URL and the queue of its forwarder task.
type LeaderQueue = (String, mpsc::Sender<Job>);

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder sending on `http`'s pool.
    pub(crate) fn new(http: PeerHttp) -> Forwarder {
        Forwarder {
            http,
            queue: Arc::default(),
        }
    }

    /// Sends `cmd` to the leader at `peer_url` to be proposed there, in a batch with
    /// whatever else is queued, and returns the leader's answer, within `timeout`.
    /// `NotLeader { leader_id: None }` means it was surely not sent.
    pub(crate) async fn forward(
        &self,
        peer_url: &str,
        cmd: &Command,
        timeout: Duration,
    ) -> Result<Proposed, ProposeError> {
        let json = serde_json::to_vec(cmd)
            .map_err(|e| ProposeError::Forward(format!("encoding the proposal: {e}")))?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            json: Bytes::from(json),
            reply,
        };
        let queue = self.queue_for(peer_url);
        let exchange = async {
            if queue.send(job).await.is_err() {
                // The task is gone (the runtime is shutting down): nothing was sent.
                return Err(ProposeError::NotLeader { leader_id: None });
            }
            answer.await.unwrap_or_else(|_| {
                Err(ProposeError::Forward(format!(
                    "leader at {peer_url}: the forwarder stopped"
                )))
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(ProposeError::Forward(format!(
                    "leader at {peer_url}: timed out"
                )))
            })
    }

    /// The queue to the leader at `peer_url`, with its task started if it is new.
    fn queue_for(&self, peer_url: &str) -> mpsc::Sender<Job> {
        let mut slot = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((url, queue)) = slot.as_ref() {
            if url == peer_url {
                return queue.clone();
            }
        }
        let (queue, jobs) = mpsc::channel(FORWARD_QUEUE_COMMANDS_MAX);
        let base = peer_url.trim_end_matches('/').to_owned();
        tokio::spawn(run(self.http.clone(), base, jobs));
        *slot = Some((peer_url.to_owned(), queue.clone()));
        queue
    }
}

/// The forwarder task for the leader at `base`: gathers what is queued into a batch
/// and sends it when [`may_go`] says so. Ends once its queue is dropped and empty.
async fn run(http: PeerHttp, base: String, mut jobs: mpsc::Receiver<Job>) {
    // How many batches are in flight; each sending task takes one off when answered.
    let in_flight = Arc::new(watch::Sender::new(0usize));
    let mut answered = in_flight.subscribe();
    // Until the leader shows it has no batch path.
    let batches = Arc::new(AtomicBool::new(true));
    let base: Arc<str> = base.into();
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut batch = Batch::new(first);
        while !batch.full {
            let Ok(job) = jobs.try_recv() else { break };
            held = batch.add(job);
        }
        // While the batch may not go, it keeps filling from the queue.
        let mut queue_open = true;
        while !may_go(*answered.borrow_and_update(), batch.full) {
            tokio::select! {
                changed = answered.changed() => {
                    // The sender lives in this task: it cannot be dropped.
                    debug_assert!(changed.is_ok());
                }
                job = jobs.recv(), if queue_open && !batch.full => match job {
                    Some(job) => held = batch.add(job),
                    None => queue_open = false,
                },
            }
        }
        let mut batch = batch.jobs;
        // A caller that gave up before its command was sent is not sent for.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let flying = InFlight::start(&in_flight);
        let (http, base, batches) = (http.clone(), Arc::clone(&base), Arc::clone(&batches));
        tokio::spawn(async move {
            send(&http, &base, batch, &batches).await;
            drop(flying);
        });
    }
}

/// Whether a batch may be sent now, with `in_flight` batches unanswered. A batch goes
/// at once when nothing is in flight, so a lone write never waits. Otherwise a partial
/// batch waits for the one in flight to be answered, filling meanwhile, and a full one
/// goes while fewer than [`FORWARD_BATCHES_IN_FLIGHT_MAX`] are in flight. So batches
/// stay as large as the load makes them: on two shared CPUs every batch costs a
/// request, an append to each follower and a sync on every member, and with up to four
/// partial batches in flight (the rule before) a write through a follower cost the
/// cluster 201-232 us of CPU at 16 connections against 134-184 with one.
fn may_go(in_flight: usize, full: bool) -> bool {
    in_flight == 0 || (full && in_flight < FORWARD_BATCHES_IN_FLIGHT_MAX)
}

/// One batch counted in flight until it is dropped, however its task ends (a task that
/// panicked would otherwise hold every later partial batch back for good).
struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    fn start(count: &Arc<watch::Sender<usize>>) -> InFlight {
        count.send_modify(|n| *n += 1);
        InFlight(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// A batch being gathered.
struct Batch {
    jobs: Vec<Job>,
    bytes: usize,
    /// No further command fits (by count or by bytes).
    full: bool,
}

impl Batch {
    fn new(first: Job) -> Batch {
        let bytes = first.json.len();
        Batch {
            jobs: vec![first],
            bytes,
            full: FORWARD_BATCH_COMMANDS_MAX == 1,
        }
    }

    /// Adds `job`, or gives it back if its bytes do not fit (then the batch is full and
    /// the job starts the next one).
    fn add(&mut self, job: Job) -> Option<Job> {
        debug_assert!(!self.full, "adding to a full batch");
        if self.bytes + job.json.len() > FORWARD_BATCH_BYTES_MAX {
            self.full = true;
            return Some(job);
        }
        self.bytes += job.json.len();
        self.jobs.push(job);
        self.full = self.jobs.len() >= FORWARD_BATCH_COMMANDS_MAX;
        None
    }
}

/// Sends `batch` to the leader at `base` and answers each of its callers: as one batch
/// while the leader has the batch path, each command on its own otherwise.
async fn send(http: &PeerHttp, base: &str, batch: Vec<Job>, batches: &AtomicBool) {
    if batches.load(Ordering::Relaxed) {
        let url = format!("{base}{PROPOSE_BATCH_PATH}");
        let body = json_array(batch.iter().map(|job| &job.json[..]));
        match http
            .post(&url, "application/json", &[], body, super::FORWARD_TIMEOUT)
            .await
        {
            // axum's own 404 for a path it does not route: a leader on an older build.
            Ok(answer) if answer.status == StatusCode::NOT_FOUND && answer.body.is_empty() => {
                tracing::info!(leader = %base, "the leader has no batch path; forwarding one proposal per request");
                batches.store(false, Ordering::Relaxed);
            }
            Ok(answer) => {
                match read_answer::<Vec<ForwardAnswer>>(answer) {
                    Ok(answers) if answers.len() == batch.len() => {
                        for (job, answer) in batch.into_iter().zip(answers) {
                            let _ = job.reply.send(answer.into_result());
                        }
                    }
                    Ok(answers) => {
                        let e = ProposeError::Forward(format!(
                            "leader at {base}: {} answers to {} proposals",
                            answers.len(),
                            batch.len()
                        ));
                        answer_all(batch, &e);
                    }
                    Err(e) => answer_all(batch, &forward_error(base, e)),
                }
                return;
            }
            Err(e) => return answer_all(batch, &forward_error(base, e)),
        }
    }
    let singles = batch.into_iter().map(|job| async move {
        let answer = send_one(http, base, job.json).await;
        let _ = job.reply.send(answer);
    });
    futures_util::future::join_all(singles).await;
}

/// Sends one command's JSON on the single propose path, as a member on an older build
/// takes it.
pub(crate) async fn send_one(
    http: &PeerHttp,
    base: &str,
    json: Bytes,
) -> Result<Proposed, ProposeError> {
    let url = format!("{base}{PROPOSE_PATH}");
    match http
        .post(
            &url,
            "application/json",
            &[],
            json.to_vec(),
            super::FORWARD_TIMEOUT,
        )
        .await
        .and_then(read_answer::<ForwardAnswer>)
    {
        Ok(answer) => answer.into_result(),
        Err(e) => Err(forward_error(base, e)),
    }
}

/// What a failed call to the leader means for each proposal it carried.
fn forward_error(base: &str, e: CallError) -> ProposeError {
    let unreachable = |m: String| ProposeError::Forward(format!("leader at {base}: {m}"));
    match e {
        // Never sent: the leader is gone; the caller waits for a new one.
        CallError::NotSent { .. } => ProposeError::NotLeader { leader_id: None },
        CallError::Timeout => unreachable("timed out".into()),
        CallError::Unreachable(m) | CallError::Network(m) => unreachable(m),
        CallError::Removed => unreachable("this member was removed".into()),
    }
}

fn answer_all(batch: Vec<Job>, e: &ProposeError) {
    for job in batch {
        let _ = job.reply.send(Err(e.clone()));
    }
}

/// A JSON array of the given JSON values.
fn json_array<'a>(items: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut body = vec![b'['];
    for (i, item) in items.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.push(b']');
    body
}
