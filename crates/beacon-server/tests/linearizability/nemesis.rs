//! The nemesis: while the clients run, it cuts and slows the peer links through the
//! fault proxy, one fault at a time for a random 0.5-3 s, healing in between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon_testkit::{FaultProxy, SeededRng};

use crate::support::self_stats;

/// Fault kinds, in the order of the tally.
pub const FAULTS: [&str; 5] = [
    "isolate leader",
    "isolate follower",
    "partition",
    "delay",
    "drop",
];

/// Injects faults until `until`; returns how many of each kind it injected.
pub async fn run(
    proxy: Arc<FaultProxy>,
    bases: Vec<String>,
    mut rng: SeededRng,
    start: Instant,
    until: Instant,
) -> [u64; 5] {
    let http = crate::support::http_with_timeout(Duration::from_millis(500));
    let n = bases.len();
    let mut tally = [0; 5];
    while Instant::now() < until {
        let hold = Duration::from_millis(500 + rng.below(2_500));
        let kind = rng.below(5) as usize;
        let what = match kind {
            0 | 1 => {
                let leader = leader(&http, &bases).await;
                let target = match (kind, leader) {
                    (0, Some(l)) => l,
                    // A follower, or anyone when no leader is agreed on.
                    (_, l) => loop {
                        let i = rng.below(n as u64) as usize;
                        if Some(i) != l || n == 1 {
                            break i;
                        }
                    },
                };
                proxy.isolate(target);
                format!("isolate m{target} (leader {leader:?})")
            }
            2 => {
                let mut side: Vec<usize> = (0..n).collect();
                // A random minority of (n - 1) / 2 members against the rest.
                for i in (1..n).rev() {
                    side.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let (small, large) = side.split_at((n - 1) / 2);
                proxy.partition(small, large);
                format!("partition {small:?} | {large:?}")
            }
            3 => {
                let lo = rng.below(50);
                let hi = lo + 10 + rng.below(90);
                proxy.set_delay_ms(lo, hi);
                format!("delay {lo}-{hi} ms")
            }
            _ => {
                let p = 0.05 + rng.below(20) as f64 / 100.0;
                proxy.set_drop_probability(p);
                format!("drop {:.0}%", p * 100.0)
            }
        };
        tally[kind] += 1;
        eprintln!(
            "nemesis {:>7.2?}: {what} for {hold:?}",
            start.elapsed().as_secs_f64()
        );
        tokio::time::sleep(hold.min(until.saturating_duration_since(Instant::now()))).await;
        proxy.heal();
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1_000))).await;
    }
    proxy.heal();
    tally
}

/// The member most members name as leader, if any names one.
async fn leader(http: &reqwest::Client, bases: &[String]) -> Option<usize> {
    let mut ids = Vec::new();
    let mut votes: Vec<String> = Vec::new();
    for base in bases {
        let stats = self_stats(http, base).await;
        ids.push(stats.as_ref().map(|(id, _)| id.clone()));
        if let Some((_, l)) = stats.filter(|(_, l)| !l.is_empty()) {
            votes.push(l);
        }
    }
    votes.sort();
    let named = votes
        .chunk_by(|a, b| a == b)
        .max_by_key(|c| c.len())?
        .first()?;
    ids.iter().position(|id| id.as_ref() == Some(named))
}
