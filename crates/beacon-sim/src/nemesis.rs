//! The nemesis: between simulation steps, one fault at a time for a random while, then
//! calm; every choice comes from the run's seed. Faults are on the members' links,
//! hosts, disks and membership; clients always reach every running member, as in the
//! process-level linearizability test.

use std::time::Duration;

use beacon_testkit::SeededRng;
use turmoil::Sim;

use crate::cluster::Cluster;
use crate::conn::{host_name, peer_url, Connection};
use crate::observe::lock;
use crate::wire::{Answer, Request};

/// One fault.
#[derive(Debug, Clone)]
pub enum Fault {
    /// These members are cut off from the others (both ways, messages dropped).
    Partition(Vec<u64>),
    /// Messages between two members are held, then delivered at once on release.
    Hold(u64, u64),
    /// A member's host crashes (its runtime and in-memory state are gone) and restarts
    /// from its disk on heal.
    Crash(u64),
    /// Every link gets this much latency at most.
    Slow(Duration),
    /// A member stops gracefully, as on SIGTERM (a leader hands leadership over
    /// first), and restarts from its disk on heal.
    Stop(u64),
    /// A member (the leader half the time) is removed through the members API and a
    /// new one, with an empty disk, is added in its place (a learner the leader
    /// promotes once it caught up).
    Replace {
        /// The member removed.
        old: u64,
        /// The member added.
        new: u64,
    },
}

/// How many of each fault were injected, in `Fault`'s order.
pub type FaultCounts = [u32; 6];

/// At most this many members are replaced in one run.
const REPLACEMENTS_MAX: u32 = 2;

/// The nemesis of one run.
pub struct Nemesis {
    rng: SeededRng,
    crashes: bool,
    replacements: bool,
    /// The next new member's id.
    next_id: u64,
    network: (Duration, f64),
    active: Option<Fault>,
    next_at: Duration,
    /// A graceful stop under way: the member, and when to stop it even if it has not
    /// finished handing over.
    stopping: Option<(u64, Duration)>,
    /// How many of each fault were injected.
    pub counts: FaultCounts,
}

impl Nemesis {
    /// A nemesis; `crashes` allows crashing members, `replacements` replacing them;
    /// `network` is the run's largest latency and random failure rate, restored after
    /// faults; new members get ids from `next_id`.
    pub fn new(
        rng: SeededRng,
        crashes: bool,
        replacements: bool,
        network: (Duration, f64),
        next_id: u64,
    ) -> Nemesis {
        Nemesis {
            rng,
            crashes,
            replacements,
            next_id,
            network,
            active: None,
            // Let the first leader be elected in peace.
            next_at: Duration::from_secs(1),
            stopping: None,
            counts: [0; 6],
        }
    }

    fn between(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(lo_ms + self.rng.below(hi_ms - lo_ms + 1))
    }

    /// Called between steps: starts or ends a fault when its time has come.
    pub fn step(&mut self, sim: &mut Sim<'_>, now: Duration, cluster: &mut Cluster) {
        if let Some((member, deadline)) = self.stopping {
            if now >= deadline || lock(&cluster.observer).member(member).stopped {
                self.stopping = None;
                // Stopped (or stuck stopping): its process is gone. Not a power loss:
                // what it wrote stays on its disk.
                sim.crash(host_name(member));
            }
        }
        if now < self.next_at {
            return;
        }
        if self.active.is_some() {
            self.heal(sim, cluster);
            self.next_at = now + self.between(300, 1500);
            return;
        }
        let fault = self.choose(cluster);
        self.inject(sim, &fault, now, cluster);
        // A stop lasts until the member is down for a while; a replacement until the
        // new member had time to catch up.
        let lasts = match fault {
            Fault::Stop(_) => self.between(2300, 3500),
            Fault::Replace { .. } => self.between(3000, 5000),
            _ => self.between(300, 2500),
        };
        self.active = Some(fault);
        self.next_at = now + lasts;
    }

    fn choose(&mut self, cluster: &Cluster) -> Fault {
        let members = cluster.current();
        let n = members.len();
        let leader = {
            let observed = lock(&cluster.observer);
            let mut leaders = members
                .iter()
                .filter_map(|m| observed.members.get(m).and_then(|v| v.leader))
                .filter(|l| members.contains(l));
            leaders.next()
        };
        let random_member = |rng: &mut SeededRng, members: &[u64]| {
            members[rng.below(members.len() as u64) as usize]
        };
        let kinds = if self.crashes { 6 } else { 4 };
        let replace = self.replacements && self.counts[5] < REPLACEMENTS_MAX;
        if replace && self.rng.below(6) == 0 {
            let old = if self.rng.below(2) == 0 { leader } else { None }
                .unwrap_or_else(|| random_member(&mut self.rng, &members));
            let new = self.next_id;
            self.next_id += 1;
            return Fault::Replace { old, new };
        }
        match self.rng.below(kinds) {
            // Isolate the leader (or anyone, when none is known).
            0 => Fault::Partition(vec![
                leader.unwrap_or_else(|| random_member(&mut self.rng, &members))
            ]),
            // Split off a random minority.
            1 => {
                let mut side = members.clone();
                for _ in 0..n.div_ceil(2) {
                    let i = self.rng.below(side.len() as u64) as usize;
                    side.remove(i);
                }
                Fault::Partition(side)
            }
            2 => {
                let a = random_member(&mut self.rng, &members);
                let others: Vec<u64> = members.iter().copied().filter(|m| *m != a).collect();
                Fault::Hold(a, random_member(&mut self.rng, &others))
            }
            3 => Fault::Slow(self.between(50, 400)),
            // A graceful stop matters most on the leader, which hands over first.
            4 => Fault::Stop(leader.unwrap_or_else(|| random_member(&mut self.rng, &members))),
            _ => Fault::Crash(
                if self.rng.below(2) == 0 { leader } else { None }
                    .unwrap_or_else(|| random_member(&mut self.rng, &members)),
            ),
        }
    }

    fn inject(&mut self, sim: &mut Sim<'_>, fault: &Fault, now: Duration, cluster: &mut Cluster) {
        let members = cluster.current();
        match fault {
            Fault::Partition(side) => {
                self.counts[0] += 1;
                for a in side {
                    for b in members.iter().filter(|m| !side.contains(m)) {
                        sim.partition(host_name(*a), host_name(*b));
                    }
                }
            }
            Fault::Hold(a, b) => {
                self.counts[1] += 1;
                sim.hold(host_name(*a), host_name(*b));
            }
            Fault::Crash(m) => {
                self.counts[2] += 1;
                cluster.crash(sim, *m, self.network.1);
            }
            Fault::Slow(max) => {
                self.counts[3] += 1;
                sim.set_max_message_latency(*max);
            }
            Fault::Stop(m) => {
                self.counts[4] += 1;
                lock(&cluster.observer).member(*m).stop_requested = true;
                // The hand-over waits at most an election timeout; give it one more.
                self.stopping = Some((*m, now + Duration::from_secs(2)));
            }
            Fault::Replace { old, new } => {
                self.counts[5] += 1;
                cluster.start(sim, *new, true);
                let admin = format!("admin{new}");
                cluster.hosts.push(admin.clone());
                sim.client(admin, replace(cluster.members.clone(), *old, *new));
            }
        }
    }

    /// Ends the active fault, if any.
    pub fn heal(&mut self, sim: &mut Sim<'_>, cluster: &mut Cluster) {
        let members = cluster.current();
        match self.active.take() {
            None | Some(Fault::Replace { .. }) => {}
            Some(Fault::Partition(side)) => {
                for a in &side {
                    for b in members.iter().filter(|m| !side.contains(m)) {
                        sim.repair(host_name(*a), host_name(*b));
                    }
                }
            }
            Some(Fault::Hold(a, b)) => sim.release(host_name(a), host_name(b)),
            Some(Fault::Crash(m)) => sim.bounce(host_name(m)),
            Some(Fault::Stop(m)) => {
                if self.stopping.take().is_none() {
                    sim.bounce(host_name(m));
                } else {
                    let taken = {
                        let mut observed = lock(&cluster.observer);
                        let view = observed.member(m);
                        !std::mem::take(&mut view.stop_requested)
                    };
                    if taken {
                        // Healed while it was stopping: it stops all the same, so it is
                        // ended and started again now (left alone, it stayed down).
                        sim.crash(host_name(m));
                        sim.bounce(host_name(m));
                    }
                    // Otherwise healed before it saw the request, which is void.
                }
            }
            Some(Fault::Slow(_)) => sim.set_max_message_latency(self.network.0),
        }
    }
}

/// How many times the administrator tries one change before giving up on it.
const CHANGE_ATTEMPTS_MAX: u32 = 40;

/// The administrator's part of a replacement, as an operator runs `etcdctl member
/// remove` then `member add`: removes `old` and adds `new` through whichever member
/// answers, retrying a change whose outcome is unknown; clients stop sending to `old`
/// once it is removed and start sending to `new` once it is added.
async fn replace(
    members: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    old: u64,
    new: u64,
) -> turmoil::Result {
    use beacon_raft::{MemberChange, MembershipError};
    let remove = MemberChange::Remove { id: old };
    let add = MemberChange::Add {
        id: new,
        peer_urls: vec![peer_url(new)],
        learner: false,
    };
    // A retried change whose first try went through is refused with one of these.
    let removed = [MembershipError::IdNotFound, MembershipError::IdRemoved];
    let added = [MembershipError::IdExists, MembershipError::IdExists];
    for (change, done_if) in [(remove, removed), (add, added)] {
        let mut done = false;
        for attempt in 0..CHANGE_ATTEMPTS_MAX {
            let targets = lock(&members).clone();
            let target = targets[attempt as usize % targets.len()];
            let answer = Connection::new(target)
                .call(
                    &Request::Change(change.clone()),
                    &[],
                    Duration::from_secs(5),
                )
                .await;
            match answer {
                Ok((Answer::Changed(Ok(())), _)) => done = true,
                Ok((Answer::Changed(Err(e)), _)) if done_if.contains(&e) => done = true,
                _ => {}
            }
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !done {
            return Err(format!("{change:?} did not go through").into());
        }
        let mut ids = lock(&members);
        match change {
            MemberChange::Remove { id } => ids.retain(|m| *m != id),
            _ => ids.push(new),
        }
    }
    Ok(())
}
