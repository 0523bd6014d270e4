//! A simulated member: the real `RaftNode`, opened over the simulated disk, network and
//! clock, serving the real peer API (HTTP) to the other members and the simulated
//! clients' wire (`wire`) in place of the keys and members APIs. This is the software
//! turmoil runs, and restarts, on a member's host.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use beacon_api::Event;
use beacon_raft::{Member, OpenError, RaftConfig, RaftNode};
use beacon_store::WatchSink;
use turmoil::net::{TcpListener, TcpStream};

use crate::conn::{host_name, peer_url, CLIENT_PORT, PEER_PORT};
use crate::disk::SimDisk;
use crate::observe::{lock, Observer, WatchSegment};
use crate::wire::{read_frame, write_frame, Answer, Request};

/// A client connection that sends nothing for this long is closed: its client is gone
/// or cut off, and turmoil delivers no FIN across a partition.
const IDLE_CONNECTION: Duration = Duration::from_secs(10);

/// How often a member publishes what it knows (leader, term, log) to the observer and
/// looks for a stop request.
const VIEW_PERIOD: Duration = Duration::from_millis(10);

/// How many times in a row a member may fail to open before the run fails: opening
/// meets the disk's faults too, but not that many in a row.
const OPEN_FAILURES_MAX: u32 = 10;
/// The pause before a member that failed to open is restarted, as a supervisor takes.
const OPEN_RETRY: Duration = Duration::from_millis(200);

/// The cluster id every simulated member is given.
const CLUSTER_ID: u64 = 0x5eed_0001;

/// Raft timing and snapshot settings of a run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Leader heartbeat period.
    pub heartbeat_ms: u64,
    /// etcd's election timeout (openraft draws from [t/2, t), see `RaftConfig`).
    pub election_ms: u64,
    /// Applied entries between snapshots; small, so that snapshots are built, sent to
    /// lagging members and installed in every run.
    pub snapshot_count: u64,
}

impl Timing {
    /// Production's heartbeat and election timeout (etcd's defaults); a snapshot every
    /// 24 entries instead of 100000, so that runs build, send and install them.
    pub const PRODUCTION: Timing = Timing {
        heartbeat_ms: 100,
        election_ms: 1000,
        snapshot_count: 24,
    };
}

/// What a member needs to start; cloned into every incarnation.
#[derive(Clone)]
pub struct MemberSetup {
    /// Its id.
    pub id: u64,
    /// The members of the initial cluster (`--initial-cluster`).
    pub initial: Vec<u64>,
    /// Added to a running cluster (`--initial-cluster-state existing`).
    pub join_existing: bool,
    /// Raft timing.
    pub timing: Timing,
    /// Its disk, which outlives its crashes.
    pub disk: SimDisk,
    /// The run's observer.
    pub observer: Observer,
    /// The seams' test-only switches (the negative control).
    pub bug: Option<beacon_raft::InjectedBug>,
}

/// The node config a member's command line would give.
fn config(setup: &MemberSetup) -> RaftConfig {
    let id = setup.id;
    let mut config = RaftConfig::new(format!("/sim/{}", host_name(id)), id, peer_url(id));
    config.heartbeat_interval_ms = setup.timing.heartbeat_ms;
    config.election_timeout_ms = setup.timing.election_ms;
    config.snapshot_count = setup.timing.snapshot_count;
    config.cluster_id = CLUSTER_ID;
    config.join_existing = setup.join_existing;
    config.initial_members = setup
        .initial
        .iter()
        .map(|&m| (m, Member::with_peer_urls(vec![peer_url(m)])))
        .collect::<BTreeMap<_, _>>();
    config
}

/// Runs incarnation `seed` of member `setup.id` until it is stopped, removed, or its host
/// crashes.
pub async fn run(setup: MemberSetup, seed: u64) -> turmoil::Result {
    let id = setup.id;
    let seams = crate::seams::simulated(id, &setup.disk, &setup.observer, setup.bug, seed);
    let node = match RaftNode::open_with(config(&setup), seams).await {
        Ok(node) => node,
        Err(OpenError::Removed { .. }) => {
            lock(&setup.observer).member(id).removed = true;
            return Ok(());
        }
        // A disk fault while opening (a marker that did not write, a sync that lost
        // the entry waiting on it) fails the open, and beacon exits non-zero: its
        // supervisor restarts it after a pause (in a new process, as the failed
        // opening's tasks may still hold the log).
        Err(e) => {
            let failures = {
                let mut observed = lock(&setup.observer);
                let view = observed.member(id);
                view.open_failures += 1;
                view.open_failures
            };
            if failures >= OPEN_FAILURES_MAX {
                return Err(format!("member {id} did not open {failures} times: {e}").into());
            }
            verbose(id, &e);
            tokio::time::sleep(OPEN_RETRY).await;
            lock(&setup.observer).member(id).restart_requested = true;
            return Ok(());
        }
    };
    let previous = {
        let mut observed = lock(&setup.observer);
        let view = observed.member(id);
        view.starts += 1;
        view.open_failures = 0;
        view.running = true;
        view.stopped = false;
        view.store.replace(Arc::clone(node.store()))
    };
    // The last handle on the previous incarnation's store: dropping it drops its
    // watcher, whose recorder takes the observer's lock, so not while it is held.
    drop(previous);
    let peers = crate::net::SimListener::bind(PEER_PORT).await?;
    tokio::spawn(beacon_raft::peer::serve_listener(
        peers,
        beacon_raft::peer::router(node.clone()),
    ));
    let clients = TcpListener::bind(("0.0.0.0", CLIENT_PORT)).await?;
    tokio::spawn(serve_clients(node.clone(), clients, setup.bug));
    tokio::spawn(keep_watching(node.clone(), setup.observer.clone()));
    let removed = {
        let node = node.clone();
        async move { node.removed().await }
    };
    tokio::pin!(removed);
    let failed = {
        let node = node.clone();
        async move { node.failed().await }
    };
    tokio::pin!(failed);
    loop {
        tokio::select! {
            biased;
            why = &mut failed => {
                // As beacon exits then: its supervisor restarts it (see `Cluster`).
                let _ = node.shutdown().await;
                let mut observed = lock(&setup.observer);
                let view = observed.member(id);
                view.failures.push(why);
                view.running = false;
                view.restart_requested = true;
                return Ok(());
            }
            () = &mut removed => {
                let _ = node.shutdown().await;
                let mut observed = lock(&setup.observer);
                let view = observed.member(id);
                view.removed = true;
                view.running = false;
                return Ok(());
            }
            () = tokio::time::sleep(VIEW_PERIOD) => {}
        }
        if publish_view(&node, &setup.observer) {
            let led = node.status().leader_id == Some(id);
            // A stop that fails (its final sync meets a disk fault) exits non-zero; the
            // member is down all the same, and restarts at the heal.
            let stopped = node.shutdown().await;
            if let Err(e) = stopped {
                verbose(id, &e);
            }
            let mut observed = lock(&setup.observer);
            let view = observed.member(id);
            view.stops_as_leader += u32::from(led);
            view.stopped = true;
            view.running = false;
            return Ok(());
        }
    }
}

/// An open or a stop that failed (the member is restarted): only worth a line when
/// asked for.
fn verbose(id: u64, e: &dyn std::fmt::Display) {
    if std::env::var_os("BEACON_SIM_VERBOSE").is_some() {
        eprintln!("member {id}: {e}; it is restarted");
    }
}

/// Copies the node's status into the observer; true when the nemesis asked it to stop.
fn publish_view(node: &RaftNode, observer: &Observer) -> bool {
    let status = node.status();
    let members = node.members();
    let (learners, voters): (Vec<_>, Vec<_>) = members.iter().partition(|m| m.is_learner);
    let mut observed = lock(observer);
    let view = observed.member(status.id);
    view.leader = status.leader_id;
    view.term = status.term;
    view.applied = view.applied.max(status.applied_index);
    view.last_log = node.last_log_index();
    view.membership = (
        voters.iter().map(|m| m.id).collect(),
        learners.iter().map(|m| m.id).collect(),
    );
    std::mem::take(&mut view.stop_requested)
}

/// Serves the simulated clients, a task per connection.
async fn serve_clients(
    node: RaftNode,
    listener: TcpListener,
    bug: Option<beacon_raft::InjectedBug>,
) {
    let _ = bug;
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve_client(node.clone(), stream));
    }
}

/// Answers one connection's requests in turn until it closes or idles.
async fn serve_client(node: RaftNode, mut stream: TcpStream) {
    loop {
        let read = tokio::time::timeout(IDLE_CONNECTION, read_frame::<_, Request>(&mut stream));
        let Ok(Ok((request, _))) = read.await else {
            return;
        };
        let answer = match request {
            Request::Propose(cmd) => Answer::Proposed(node.propose(cmd).await),
            Request::LocalGet { path } => Answer::Read(
                node.store()
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(path, false, false, 0),
            ),
            Request::Change(change) => Answer::Changed(node.change_members(change).await),
        };
        if write_frame(&mut stream, &answer, &[]).await.is_err() {
            return;
        }
    }
}

/// Keeps one stream watcher on every key registered with the member's store, as a
/// client with `?wait=true&recursive=true&stream=true` would, recording what it delivers;
/// registers again when the store drops it (a snapshot replaced the store).
async fn keep_watching(node: RaftNode, observer: Observer) {
    loop {
        let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
        let registered = {
            let mut store = node.store().write().unwrap_or_else(|p| p.into_inner());
            let since = store.current_index() + 1;
            let segment = {
                let mut observed = lock(&observer);
                observed.watches.push(WatchSegment {
                    member: node.id(),
                    since,
                    ..WatchSegment::default()
                });
                observed.watches.len() - 1
            };
            let sink = Recorder {
                observer: observer.clone(),
                segment,
                ended: Some(ended_tx),
            };
            store.watch("/", true, true, since, Box::new(sink)).is_ok()
        };
        if !registered {
            return;
        }
        // Dropped with the store: register on the new one.
        let _ = ended_rx.await;
    }
}

/// A watcher's sink: appends each event to its segment of the observer.
struct Recorder {
    observer: Observer,
    segment: usize,
    ended: Option<tokio::sync::oneshot::Sender<()>>,
}

impl WatchSink for Recorder {
    fn deliver(&mut self, event: &Arc<Event>) -> bool {
        let json = serde_json::to_string(&**event).unwrap_or_default();
        lock(&self.observer).watches[self.segment]
            .events
            .push((event.etcd_index, json));
        true
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        lock(&self.observer).watches[self.segment].ended = true;
        if let Some(tx) = self.ended.take() {
            let _ = tx.send(());
        }
    }
}
