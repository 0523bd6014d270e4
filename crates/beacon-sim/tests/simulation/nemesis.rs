//! The nemesis: between simulation steps, one fault at a time for a random while, then
//! calm; every choice comes from the run's seed. Faults are on the members' links and
//! hosts only; clients always reach every running member, as in the process-level
//! linearizability test.

use std::time::Duration;

use beacon_testkit::SeededRng;
use turmoil::Sim;

use crate::durable::{lock, Observer};
use crate::network::host_name;

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
}

/// How many of each fault were injected, in `Fault`'s order.
pub type FaultCounts = [u32; 5];

/// The nemesis of one run.
pub struct Nemesis {
    rng: SeededRng,
    members: Vec<u64>,
    /// Every host's name, clients included.
    hosts: Vec<String>,
    crashes: bool,
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
    /// A nemesis over `members` among `hosts`; `crashes` allows crashing them; `network`
    /// is the run's largest latency and random failure rate, restored after faults.
    pub fn new(
        rng: SeededRng,
        members: Vec<u64>,
        hosts: Vec<String>,
        crashes: bool,
        network: (Duration, f64),
    ) -> Nemesis {
        Nemesis {
            rng,
            members,
            hosts,
            crashes,
            network,
            active: None,
            // Let the first leader be elected in peace.
            next_at: Duration::from_secs(1),
            stopping: None,
            counts: [0; 5],
        }
    }

    fn between(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(lo_ms + self.rng.below(hi_ms - lo_ms + 1))
    }

    /// Called between steps: starts or ends a fault when its time has come.
    pub fn step(&mut self, sim: &mut Sim<'_>, now: Duration, observer: &Observer) {
        if let Some((member, deadline)) = self.stopping {
            if now >= deadline || lock(observer).member(member).ready_to_stop {
                self.stopping = None;
                self.crash(sim, &host_name(member));
            }
        }
        if now < self.next_at {
            return;
        }
        if self.active.is_some() {
            self.heal(sim, observer);
            self.next_at = now + self.between(300, 1500);
            return;
        }
        let fault = self.choose(observer);
        self.inject(sim, &fault, now, observer);
        // A stop lasts until the member is down for a while.
        let lasts = match fault {
            Fault::Stop(_) => self.between(2300, 3500),
            _ => self.between(300, 2500),
        };
        self.active = Some(fault);
        self.next_at = now + lasts;
    }

    fn choose(&mut self, observer: &Observer) -> Fault {
        let n = self.members.len();
        let leader = {
            let observed = lock(observer);
            let mut leaders = observed.members.values().filter_map(|v| v.leader);
            leaders.next()
        };
        let random_member = |rng: &mut SeededRng, members: &[u64]| {
            members[rng.below(members.len() as u64) as usize]
        };
        let kinds = if self.crashes { 6 } else { 4 };
        match self.rng.below(kinds) {
            // Isolate the leader (or anyone, when none is known).
            0 => Fault::Partition(vec![
                leader.unwrap_or_else(|| random_member(&mut self.rng, &self.members))
            ]),
            // Split off a random minority.
            1 => {
                let mut side = self.members.clone();
                for _ in 0..n.div_ceil(2) {
                    let i = self.rng.below(side.len() as u64) as usize;
                    side.remove(i);
                }
                Fault::Partition(side)
            }
            2 => {
                let a = random_member(&mut self.rng, &self.members);
                let others: Vec<u64> = self.members.iter().copied().filter(|m| *m != a).collect();
                Fault::Hold(a, random_member(&mut self.rng, &others))
            }
            3 => Fault::Slow(self.between(50, 400)),
            // A graceful stop matters most on the leader, which hands over first.
            4 => Fault::Stop(leader.unwrap_or_else(|| random_member(&mut self.rng, &self.members))),
            _ => Fault::Crash(
                if self.rng.below(2) == 0 { leader } else { None }
                    .unwrap_or_else(|| random_member(&mut self.rng, &self.members)),
            ),
        }
    }

    fn inject(&mut self, sim: &mut Sim<'_>, fault: &Fault, now: Duration, observer: &Observer) {
        match fault {
            Fault::Partition(side) => {
                self.counts[0] += 1;
                for a in side {
                    for b in self.members.iter().filter(|m| !side.contains(m)) {
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
                self.crash(sim, &host_name(*m));
            }
            Fault::Slow(max) => {
                self.counts[3] += 1;
                sim.set_max_message_latency(*max);
            }
            Fault::Stop(m) => {
                self.counts[4] += 1;
                lock(observer).member(*m).stop_requested = true;
                // The hand-over waits at most an election timeout; give it one more.
                self.stopping = Some((*m, now + Duration::from_secs(2)));
            }
        }
    }

    /// Ends the active fault, if any.
    pub fn heal(&mut self, sim: &mut Sim<'_>, observer: &Observer) {
        match self.active.take() {
            None => {}
            Some(Fault::Partition(side)) => {
                for a in &side {
                    for b in self.members.iter().filter(|m| !side.contains(m)) {
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
                    // Healed before it stopped: it keeps running, and the request is void.
                    let mut observed = lock(observer);
                    let view = observed.member(m);
                    view.stop_requested = false;
                    view.ready_to_stop = false;
                }
            }
            Some(Fault::Slow(_)) => sim.set_max_message_latency(self.network.0),
        }
    }

    /// Crashes `host` with its links cut for the moment: what its sockets send as they
    /// are dropped (FIN, RST) is lost, as a crashed machine sends nothing. Otherwise
    /// tokio's order of dropping the host's tasks, which follows process-wide task ids,
    /// would order those messages and turmoil's random draws for them, and a seed would
    /// not replay.
    fn crash(&self, sim: &mut Sim<'_>, host: &str) {
        // No random link failure either: it would draw from turmoil's RNG per message.
        sim.set_fail_rate(0.0);
        let others = self.hosts.iter().filter(|h| h.as_str() != host);
        for other in others.clone() {
            sim.partition(host, other.as_str());
        }
        sim.crash(host);
        for other in others {
            sim.repair(host, other.as_str());
        }
        sim.set_fail_rate(self.network.1);
    }
}
