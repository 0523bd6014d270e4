//! The election timer, a part of the node: when a follower campaigns. openraft's own
//! timer is turned off (`enable_elect: false` in `config.rs`) and this one asks openraft
//! to campaign (`Trigger::elect`, pre-vote first), so that the timeout is drawn the way
//! etcd's raft draws it.
//!
//! Why not openraft's: it draws a member's timeout only when that member campaigns. A
//! member that lost an election (its draw was the later one) keeps that late draw through
//! every later term until it campaigns itself, so after a leader dies the survivors race
//! one fresh draw against a stale late one, and failover takes one draw instead of the
//! earlier of two (`beacon-bench failover`: one member of three never campaigned in ten
//! rounds, median 1,355 ms against etcd's 1,277-1,302). etcd's raft draws afresh at
//! every term change and every campaign (`reset`), and counts from the last message of
//! its leader, from the vote it granted, or from its own campaign; so does this.
//!
//! The draw: etcd's is a whole number of ticks from [t, 2t) (a tick is the heartbeat
//! interval h), counted by ticks that fall at any phase of the interval since the last
//! message, so a member campaigns between t - h and 2t - h after it last heard its
//! leader, uniformly. This draws from that same [t - h, 2t - h) on a continuous clock.
//! Voters refuse a candidate for t - 2h after hearing the leader (openraft's lease,
//! `config.rs`): a heartbeat short of the earliest campaign, so that a candidate whose
//! last message came a little before the voter's is still heard.
//!
//! Where this does better than etcd: a leader whose process dies (SIGKILL, a crash, the
//! OOM killer) has its sockets closed by the kernel, and the peer listener tells the
//! timer when a connection that carried the leader's appends closes
//! ([`Contact::connection_lost`]). Until something comes from a leader again, the draw
//! is from [t - h, 1.5t - h): as early as the voters' lease lets a campaign win, over
//! half the window. A wrong guess costs one refused pre-vote; a leader that loses power
//! or is cut off closes nothing, and the usual draw decides.
//!
//! The decisions are a deterministic function of what the node reports ([`Timer::step`]),
//! tested without a network; [`run`] is the loop that feeds it openraft's metrics and the
//! [`Contact`] time the peer server records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::rt::AsyncRuntime;
use openraft::ServerState;
use rand::RngExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::runtime::BeaconRuntime;
use crate::state_machine::Raft;
use crate::types::NodeId;

/// When this member last heard from a leader it accepts, or granted a vote, or
/// campaigned: the time its election timeout counts from; and when a connection its
/// leader's appends came on last closed. Written by the peer server on every accepted
/// append (thousands a second under load), so atomics, not a lock.
#[derive(Debug)]
pub(crate) struct Contact {
    /// The instant offsets below count from.
    origin: Instant,
    /// Nanoseconds after `origin`; only ever moves forward.
    last_ns: AtomicU64,
    /// Nanoseconds after `origin` plus one when a leader's connection last closed; 0 for
    /// never.
    lost_ns: AtomicU64,
    /// Wakes the timer when a leader's connection closes.
    lost: Notify,
}

impl Contact {
    /// A contact time of `at`: before any message, the timer counts from there.
    fn starting_at(at: Instant) -> Contact {
        Contact {
            origin: at,
            last_ns: AtomicU64::new(0),
            lost_ns: AtomicU64::new(0),
            lost: Notify::new(),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Records a contact now.
    pub(crate) fn heard(&self) {
        self.last_ns.fetch_max(self.now_ns(), Ordering::Relaxed);
    }

    /// Records that a connection the leader's appends came on closed now.
    pub(crate) fn connection_lost(&self) {
        self.lost_ns.fetch_max(self.now_ns() + 1, Ordering::Relaxed);
        self.lost.notify_one();
    }

    /// The last contact.
    pub(crate) fn last(&self) -> Instant {
        self.origin + Duration::from_nanos(self.last_ns.load(Ordering::Relaxed))
    }

    /// Whether a leader's connection closed after the last contact: nothing has come
    /// from a leader since.
    pub(crate) fn leader_gone(&self) -> bool {
        let lost = self.lost_ns.load(Ordering::Relaxed);
        lost > self.last_ns.load(Ordering::Relaxed)
    }
}

/// What the timer needs to know of the node at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    /// The node's current term.
    pub(crate) term: u64,
    /// Its part in the cluster.
    pub(crate) role: Role,
    /// Whether its leader's connection closed after the last contact.
    pub(crate) leader_gone: bool,
}

/// A node's part, as far as campaigning goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// It leads: nothing to time.
    Leader,
    /// A learner, or a member left out of the membership: it never campaigns.
    NotVoter,
    /// The only voter: it wins by its own vote, so it campaigns once t has passed since
    /// its last contact or campaign (at a start, the node's `start` already did), unless
    /// a campaign is under way.
    SoleVoter { campaigning: bool },
    /// One voter of several.
    Voter,
}

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing before `until`; then look again.
    Wait { until: Instant },
    /// Campaign now; with pre-vote unless it is the only voter.
    Campaign { pre_vote: bool },
}

/// The timer's state: the term its timeout was drawn in, and the timeout.
#[derive(Debug)]
pub(crate) struct Timer {
    /// `--election-timeout`: draws fall in [t - h, 2t - h).
    base: Duration,
    /// `--heartbeat-interval`: how much earlier than t draws start (etcd's tick), how
    /// long a sole voter's campaign is left to finish, and how often a leader or a
    /// non-voter looks again.
    heartbeat: Duration,
    /// The term of the current draw; `None` before the first step.
    term: Option<u64>,
    /// The current draw.
    timeout: Duration,
    /// The draw for a leader whose connection closed, while it has not spoken since.
    quick: Option<Duration>,
    /// `--pre-vote`: a voter's campaign asks first whether it could win.
    pre_vote: bool,
}

impl Timer {
    fn new(base: Duration, heartbeat: Duration, pre_vote: bool) -> Timer {
        Timer {
            base,
            heartbeat,
            term: None,
            timeout: base,
            quick: None,
            pre_vote,
        }
    }

    /// A timeout from [t - h, 2t - h), from `unit`, a uniform draw from [0, 1).
    fn timeout_for(&self, unit: f64) -> Duration {
        self.base.saturating_sub(self.heartbeat) + self.base.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// A timeout from [t - h, 1.5t - h), from `unit`, for a leader whose connection
    /// closed: as early as the voters' lease lets a campaign succeed, over half the usual
    /// window, wide enough that two survivors seldom campaign at once.
    fn quick_timeout_for(&self, unit: f64) -> Duration {
        self.base.saturating_sub(self.heartbeat) + (self.base / 2).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Decides the next step from `view`, the last contact and the time. `draw` gives a
    /// uniform number from [0, 1); it is called for a new term and after a campaign.
    pub(crate) fn step(
        &mut self,
        view: View,
        last_contact: Instant,
        now: Instant,
        draw: &mut impl FnMut() -> f64,
    ) -> Step {
        if self.term != Some(view.term) {
            self.term = Some(view.term);
            self.timeout = self.timeout_for(draw());
        }
        match view.role {
            // A leader that steps down hears of the new term from the message that made
            // it step down, which is a contact: a heartbeat's wait is soon enough.
            Role::Leader | Role::NotVoter => Step::Wait {
                until: now + self.heartbeat,
            },
            Role::SoleVoter { campaigning: true } => Step::Wait {
                until: now + self.heartbeat,
            },
            // openraft's metrics trail the campaign it was just asked for (a sole
            // voter's takes one vote write), so the next may come only a timeout later:
            // each campaign supersedes the one before, and back to back none would win.
            Role::SoleVoter { campaigning: false } => {
                let deadline = last_contact + self.base;
                if now < deadline {
                    return Step::Wait { until: deadline };
                }
                Step::Campaign { pre_vote: false }
            }
            Role::Voter => {
                let timeout = match view.leader_gone {
                    true => match self.quick {
                        Some(quick) => quick,
                        None => *self.quick.insert(self.quick_timeout_for(draw())),
                    },
                    false => {
                        self.quick = None;
                        self.timeout
                    }
                };
                let deadline = last_contact + timeout.min(self.timeout);
                if now < deadline {
                    return Step::Wait { until: deadline };
                }
                // The next campaign, if this one fails, waits a new draw (etcd's
                // becomePreCandidate resets the count and redraws).
                self.timeout = self.timeout_for(draw());
                self.quick = None;
                Step::Campaign {
                    pre_vote: self.pre_vote,
                }
            }
        }
    }
}

/// What the loop reads of openraft: its metrics, as a [`View`].
fn view(raft: &Raft, id: NodeId, contact: &Contact) -> View {
    let metrics = raft.metrics();
    let m = metrics.borrow_watched();
    let membership = m.membership_config.membership();
    let voter = membership.voter_ids().any(|v| v == id);
    let sole = voter && membership.voter_ids().count() == 1;
    let role = match m.state {
        ServerState::Leader => Role::Leader,
        _ if !voter => Role::NotVoter,
        state if sole => Role::SoleVoter {
            campaigning: state == ServerState::Candidate,
        },
        _ => Role::Voter,
    };
    View {
        term: m.current_term,
        role,
        leader_gone: contact.leader_gone(),
    }
}

/// Starts the timer of member `id` over `raft`, with its `--election-timeout`,
/// `--heartbeat-interval`, `--initial-election-tick-advance` and `--pre-vote`: the contact the peer
/// server records, and the task, which the node aborts at shutdown. Spawned through
/// openraft's runtime so that a simulation's seed reaches its draws.
pub(crate) fn start(
    raft: Raft,
    id: NodeId,
    election_timeout: Duration,
    heartbeat: Duration,
    tick_advance: bool,
    pre_vote: bool,
) -> (Arc<Contact>, tokio::task::AbortHandle) {
    // etcd fast-forwards a booting member's election ticks to all but one
    // (`--initial-election-tick-advance`), so that its first campaign, if no leader
    // speaks first, comes within t of the start rather than t - h to 2t - h: counting
    // from t - h before now does the same. With it off, the first timeout counts from
    // the start, as any later one counts from the last contact.
    let booted = Instant::now();
    let head_start = if tick_advance {
        election_timeout.saturating_sub(heartbeat)
    } else {
        Duration::ZERO
    };
    let contact = Arc::new(Contact::starting_at(
        booted.checked_sub(head_start).unwrap_or(booted),
    ));
    let timer = Timer::new(election_timeout, heartbeat, pre_vote);
    let task = BeaconRuntime::spawn(run(raft, id, Arc::clone(&contact), timer));
    (contact, task.abort_handle())
}

/// Runs the timer until openraft stops (or the task is aborted, as the node's shutdown
/// does). Draws come from openraft's runtime, so a simulation's seed reaches them.
async fn run(raft: Raft, id: NodeId, contact: Arc<Contact>, mut timer: Timer) {
    let mut draw = || BeaconRuntime::thread_rng().random_range(0.0..1.0);
    loop {
        let now = Instant::now();
        let view = view(&raft, id, &contact);
        match timer.step(view, contact.last(), now, &mut draw) {
            // A leader's connection closing may bring the deadline forward.
            Step::Wait { until } => {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    () = contact.lost.notified() => {}
                }
            }
            Step::Campaign { pre_vote } => {
                tracing::info!(
                    since_contact_ms =
                        now.saturating_duration_since(contact.last()).as_millis() as u64,
                    pre_vote,
                    leader_connection_closed = view.leader_gone,
                    "no word from a leader within the election timeout: campaigning"
                );
                contact.heard();
                if raft.trigger().elect(pre_vote).await.is_err() {
                    // openraft has stopped (a shutdown or a fatal storage error).
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(1000);
    const H: Duration = Duration::from_millis(100);

    fn voter(term: u64) -> View {
        View {
            term,
            role: Role::Voter,
            leader_gone: false,
        }
    }

    /// A draw that hands out `values` in order.
    fn draws(values: &[f64]) -> impl FnMut() -> f64 + '_ {
        let mut it = values.iter();
        move || *it.next().expect("no more draws expected")
    }

    #[tokio::test(start_paused = true)]
    async fn without_pre_vote_a_voter_campaigns_at_once() {
        let mut timer = Timer::new(T, H, false);
        let contact = Instant::now();
        let mut draw = draws(&[0.0, 0.0]);
        let deadline = contact + (T - H);
        assert_eq!(
            timer.step(voter(1), contact, contact, &mut draw),
            Step::Wait { until: deadline }
        );
        assert_eq!(
            timer.step(voter(1), contact, deadline, &mut draw),
            Step::Campaign { pre_vote: false }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_voter_campaigns_once_its_draw_has_passed_since_the_last_contact() {
        let mut timer = Timer::new(T, H, true);
        let contact = Instant::now();
        let mut draw = draws(&[0.25, 0.5]);
        let deadline = contact + Duration::from_millis(1150);
        assert_eq!(
            timer.step(voter(1), contact, contact, &mut draw),
            Step::Wait { until: deadline }
        );
        let just_before = deadline - Duration::from_millis(1);
        assert_eq!(
            timer.step(voter(1), contact, just_before, &mut draw),
            Step::Wait { until: deadline }
        );
        assert_eq!(
            timer.step(voter(1), contact, deadline, &mut draw),
            Step::Campaign { pre_vote: true }
        );
        // The campaign counts as a contact, and the next one waits a new draw.
        assert_eq!(
            timer.step(voter(1), deadline, deadline, &mut draw),
            Step::Wait {
                until: deadline + Duration::from_millis(1400)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_new_term_draws_afresh() {
        // The defect this timer exists for: a member that lost an election kept its
        // late draw into the next terms.
        let mut timer = Timer::new(T, H, true);
        let contact = Instant::now();
        let mut draw = draws(&[0.9, 0.1, 0.5]);
        // (term seen, wait in ms after the contact): another member won term 4, so the
        // next timeout is a new draw; another look in the same term keeps it.
        for (term, wait_ms) in [(3, 1800), (4, 1000), (4, 1000), (5, 1400)] {
            assert_eq!(
                timer.step(voter(term), contact, contact, &mut draw),
                Step::Wait {
                    until: contact + Duration::from_millis(wait_ms)
                },
                "term {term}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn draws_fall_a_heartbeat_short_of_t_to_2t() {
        let timer = Timer::new(T, H, true);
        assert_eq!(timer.timeout_for(0.0), T - H);
        assert!(timer.timeout_for(0.999_999) < 2 * T - H);
        assert_eq!(
            timer.timeout_for(7.0),
            2 * T - H,
            "a draw out of range is clamped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leaders_and_non_voters_never_campaign_and_a_sole_voter_waits_out_its_last_campaign() {
        let mut timer = Timer::new(T, H, true);
        let long_ago = Instant::now();
        tokio::time::advance(10 * T).await;
        let now = Instant::now();
        let mut draw = draws(&[0.5]);
        for role in [Role::Leader, Role::NotVoter] {
            assert_eq!(
                timer.step(
                    View {
                        term: 1,
                        role,
                        leader_gone: false,
                    },
                    long_ago,
                    now,
                    &mut draw
                ),
                Step::Wait { until: now + H }
            );
        }
        let sole = |campaigning| View {
            term: 1,
            role: Role::SoleVoter { campaigning },
            leader_gone: false,
        };
        assert_eq!(
            timer.step(sole(false), long_ago, now, &mut draw),
            Step::Campaign { pre_vote: false }
        );
        // The campaign just asked for may not show yet: the next waits a timeout.
        assert_eq!(
            timer.step(sole(false), now, now, &mut draw),
            Step::Wait { until: now + T }
        );
        assert_eq!(
            timer.step(sole(true), now, now, &mut draw),
            Step::Wait { until: now + H }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_leader_connection_brings_the_campaign_to_the_quick_window() {
        let mut timer = Timer::new(T, H, true);
        let contact = Instant::now();
        let mut draw = draws(&[0.8, 0.5, 0.3]);
        let gone = View {
            leader_gone: true,
            ..voter(1)
        };
        // Usual draw 1,700 ms; the leader's connection closed: 900 + 500 x 0.5.
        assert_eq!(
            timer.step(voter(1), contact, contact, &mut draw),
            Step::Wait {
                until: contact + Duration::from_millis(1700)
            }
        );
        let quick = contact + Duration::from_millis(1150);
        assert_eq!(
            timer.step(gone, contact, contact, &mut draw),
            Step::Wait { until: quick }
        );
        // The quick draw holds while the leader stays silent.
        assert_eq!(
            timer.step(gone, contact, contact, &mut draw),
            Step::Wait { until: quick }
        );
        assert_eq!(
            timer.step(gone, contact, quick, &mut draw),
            Step::Campaign { pre_vote: true }
        );
        // After the campaign, the usual timing again (the campaign is a contact).
        assert_eq!(
            timer.step(voter(1), quick, quick, &mut draw),
            Step::Wait {
                until: quick + Duration::from_millis(1200)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_speaks_after_its_connection_closed_is_not_gone() {
        let start = Instant::now();
        let contact = Contact::starting_at(start);
        assert!(!contact.leader_gone());
        tokio::time::advance(Duration::from_millis(10)).await;
        contact.heard();
        tokio::time::advance(Duration::from_millis(10)).await;
        contact.connection_lost();
        assert!(contact.leader_gone());
        tokio::time::advance(Duration::from_millis(10)).await;
        contact.heard();
        assert!(!contact.leader_gone(), "it reconnected and spoke");
    }

    #[tokio::test(start_paused = true)]
    async fn contact_only_moves_forward() {
        let start = Instant::now();
        let contact = Contact::starting_at(start);
        assert_eq!(contact.last(), start);
        tokio::time::advance(Duration::from_millis(30)).await;
        contact.heard();
        assert_eq!(contact.last(), start + Duration::from_millis(30));
    }
}
