//! A simulated member: openraft with Beacon's config over the simulated disk and
//! network, serving peers and clients on one port. This is the software turmoil runs
//! (and restarts) on a member's host.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon_raft::Member;
use beacon_store::Store;
use openraft::async_runtime::WatchReceiver;
use openraft::AsyncRuntime;
use turmoil::net::{TcpListener, TcpStream};

use crate::durable::{lock, Observer, SharedDisk};
use crate::log_store::SimLogStore;
use crate::network::{peer_url, SimNetwork, MEMBER_PORT};
use crate::state_machine::SimStateMachine;
use crate::types::{openraft_config, Raft, SimRuntime, Snapshot, Timing};
use crate::wire::{read_frame, write_frame, Answer, Request};

/// A connection that sends nothing for this long is closed: its peer is gone or cut
/// off, and turmoil delivers no FIN across a partition.
const IDLE_CONNECTION: Duration = Duration::from_secs(10);

/// How often a member publishes what it knows (leader, term, log) to the observer.
const VIEW_PERIOD: Duration = Duration::from_millis(10);

/// What a member needs to start; cloned into every incarnation.
#[derive(Clone)]
pub struct MemberSetup {
    /// Its id.
    pub id: u64,
    /// Every member of the initial cluster.
    pub members: Vec<u64>,
    /// Raft timing.
    pub timing: Timing,
    /// Its disk.
    pub disk: SharedDisk,
    /// The run's observer.
    pub observer: Observer,
}

/// A running member's state, shared by its connection tasks.
pub struct MemberCtx {
    /// Its id.
    pub id: u64,
    /// Its Raft.
    pub raft: Raft,
    /// Its store, for local reads.
    pub store: Arc<Mutex<Store>>,
    /// Raft timing (the election timeout bounds the leader lease check).
    pub timing: Timing,
}

/// Runs member `setup.id` until its host is crashed; the caller scopes it with the
/// incarnation's RNG seed.
pub async fn run(setup: MemberSetup) -> turmoil::Result {
    let id = setup.id;
    let sm = SimStateMachine::open(id, Arc::clone(&setup.disk), Arc::clone(&setup.observer));
    let store = sm.store();
    let raft = Raft::new(
        id,
        openraft_config(id, setup.timing),
        SimNetwork { id },
        SimLogStore::new(Arc::clone(&setup.disk)),
        sm,
    )
    .await?;
    {
        let mut observed = lock(&setup.observer);
        let view = observed.member(id);
        view.starts += 1;
        view.stop_requested = false;
        view.ready_to_stop = false;
    }
    if !raft.is_initialized().await? {
        // Every member initializes with the same membership, as production's members
        // all bootstrap from --initial-cluster.
        let members: BTreeMap<u64, Member> = setup
            .members
            .iter()
            .map(|&m| (m, Member::with_peer_urls(vec![peer_url(m)])))
            .collect();
        raft.initialize(members).await?;
    }
    let ctx = Arc::new(MemberCtx {
        id,
        raft,
        store,
        timing: setup.timing,
    });
    SimRuntime::spawn(publish_view(Arc::clone(&ctx), setup.observer));
    let listener = TcpListener::bind(("0.0.0.0", MEMBER_PORT)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        SimRuntime::spawn(serve(Arc::clone(&ctx), stream));
    }
}

/// Copies the member's Raft metrics into the observer, for the nemesis (which member
/// leads) and the convergence check, and stops gracefully when the nemesis asks.
async fn publish_view(ctx: Arc<MemberCtx>, observer: Observer) {
    let metrics = ctx.raft.metrics();
    loop {
        let stop = {
            let mut observed = lock(&observer);
            let view = observed.member(ctx.id);
            std::mem::take(&mut view.stop_requested)
        };
        if stop {
            let handed_over = crate::stop::hand_over_leadership(&ctx).await;
            let mut observed = lock(&observer);
            let view = observed.member(ctx.id);
            view.ready_to_stop = true;
            view.handovers += u32::from(handed_over);
        }
        let (leader, term, last_log) = {
            let m = metrics.borrow_watched();
            (
                m.current_leader,
                m.current_term,
                m.last_log_index.unwrap_or(0),
            )
        };
        {
            let mut observed = lock(&observer);
            let view = observed.member(ctx.id);
            view.leader = leader;
            view.term = term;
            view.last_log = last_log;
        }
        tokio::time::sleep(VIEW_PERIOD).await;
    }
}

/// Answers one connection's requests in turn until it closes or idles.
async fn serve(ctx: Arc<MemberCtx>, mut stream: TcpStream) {
    loop {
        let read = tokio::time::timeout(IDLE_CONNECTION, read_frame::<_, Request>(&mut stream));
        let Ok(Ok((request, body))) = read.await else {
            return;
        };
        let answer = handle(&ctx, request, body).await;
        if write_frame(&mut stream, &answer, &[]).await.is_err() {
            return;
        }
    }
}

async fn handle(ctx: &MemberCtx, request: Request, body: Vec<u8>) -> Answer {
    let raft = &ctx.raft;
    let text = |e: &dyn std::fmt::Display| e.to_string();
    match request {
        Request::Append(rpc) => {
            Answer::Append(raft.append_entries(rpc).await.map_err(|e| text(&e)))
        }
        Request::Vote(rpc) => Answer::Vote(raft.vote(rpc).await.map_err(|e| text(&e))),
        Request::PreVote(rpc) => Answer::Vote(raft.pre_vote(rpc).await.map_err(|e| text(&e))),
        Request::Snapshot { vote, meta } => {
            let snapshot = Snapshot {
                meta,
                snapshot: body,
            };
            Answer::Snapshot(
                raft.install_full_snapshot(vote, snapshot)
                    .await
                    .map_err(|e| text(&e)),
            )
        }
        Request::TransferLeader(req) => {
            Answer::TransferLeader(raft.handle_transfer_leader(req).await.map_err(|e| text(&e)))
        }
        Request::Forwarded(cmd) => Answer::Proposed(crate::propose::propose_here(ctx, cmd).await),
        Request::Propose(cmd) => Answer::Proposed(crate::propose::propose(ctx, cmd).await),
        Request::LocalGet { path } => Answer::Read(lock(&ctx.store).get(&path, false, false, 0)),
    }
}
