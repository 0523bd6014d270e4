//! Round trips to each peer, as etcd's rafthttp measures them for
//! `etcd_network_peer_round_trip_time_seconds`: every member probes every other member
//! (`GET /raft/probing`) every [`PROBE_INTERVAL`], whoever leads, keeps a smoothed round
//! trip per peer (an exponentially weighted mean, as TCP's SRTT), and records that
//! smoothed figure in the peer's histogram [`FIRST_RECORD_AFTER`] after it first sees
//! the peer, then every [`RECORD_INTERVAL`] (every [`FIRST_RECORD_AFTER`] while the peer
//! does not answer, the figure then being its last known one).
//!
//! etcd probes twice per peer (its stream and its pipeline round trippers, over the
//! same URLs) and records both; Beacon has one way to a peer, so one figure per record.
//! etcd's prober starts its mean at zero, so its first records are an eighth of the
//! real round trip; Beacon's starts at the first round trip measured.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use tokio::time::Instant;

use super::call::PeerHttp;
use crate::disk_metrics::{DurationHistogram, HistogramReading};
use crate::state_machine::Raft;
use crate::types::NodeId;

/// The peer API's probing path, etcd's.
pub(crate) const PROBING_PATH: &str = "/raft/probing";

/// How often each peer is probed: etcd's `proberInterval` (its connections' read
/// timeout, 5 s, less a second).
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(4);
/// How long a probe may take before it counts as unanswered.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(4);
/// etcd's `statusMonitoringInterval`.
pub(crate) const RECORD_INTERVAL: Duration = Duration::from_secs(30);
/// etcd's `statusErrorInterval`: the first record, and the next after a failed probe.
pub(crate) const FIRST_RECORD_AFTER: Duration = Duration::from_secs(5);
/// The weight of a new round trip in the smoothed figure (TCP's and etcd's prober's α).
const SMOOTHING: f64 = 0.125;

/// etcd's buckets: 0.1 ms doubling 15 times (to 3.2768 s).
pub const ROUND_TRIP_BOUNDS_SECONDS: [f64; 16] = [
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048,
    0.4096, 0.8192, 1.6384, 3.2768,
];

/// Each peer's histogram, process-wide as Prometheus collectors are; a peer appears
/// with its first record, as etcd's series does. Locked once per record, never on a
/// request's path.
static ROUND_TRIPS: Mutex<BTreeMap<NodeId, Arc<DurationHistogram>>> = Mutex::new(BTreeMap::new());

/// Every peer's round-trip histogram so far, by member id.
pub fn round_trips() -> Vec<(NodeId, HistogramReading)> {
    let histograms = ROUND_TRIPS.lock().unwrap_or_else(|p| p.into_inner());
    histograms.iter().map(|(id, h)| (*id, h.read())).collect()
}

fn record(peer: NodeId, smoothed: Duration) {
    let histogram = {
        let mut histograms = ROUND_TRIPS.lock().unwrap_or_else(|p| p.into_inner());
        let new = || Arc::new(DurationHistogram::with_bounds(&ROUND_TRIP_BOUNDS_SECONDS));
        Arc::clone(histograms.entry(peer).or_insert_with(new))
    };
    histogram.observe(smoothed);
}

/// What the prober knows of one peer.
struct Peer {
    url: String,
    smoothed: Option<Duration>,
    answered: bool,
    next_probe: Instant,
    next_record: Instant,
}

/// The smoothed round trip after one more measurement.
fn smooth(smoothed: Option<Duration>, measured: Duration) -> Duration {
    match smoothed {
        None => measured,
        Some(s) => s.mul_f64(1.0 - SMOOTHING) + measured.mul_f64(SMOOTHING),
    }
}

/// Probes the members of `raft`'s membership other than `me`, for as long as it runs
/// (the node aborts it at shutdown).
pub(crate) async fn run(raft: Raft, me: NodeId, http: PeerHttp) {
    let mut peers: BTreeMap<NodeId, Peer> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let members: BTreeMap<NodeId, String> = {
            let metrics = raft.metrics();
            let m = metrics.borrow_watched();
            let membership = m.membership_config.membership();
            membership
                .nodes()
                .filter(|(id, _)| **id != me)
                .filter_map(|(id, member)| Some((*id, member.peer_urls.first()?.clone())))
                .collect()
        };
        peers.retain(|id, _| members.contains_key(id));
        for (id, url) in members {
            let peer = peers.entry(id).or_insert_with(|| Peer {
                url: url.clone(),
                smoothed: None,
                answered: false,
                next_probe: now,
                next_record: now + FIRST_RECORD_AFTER,
            });
            peer.url = url;
        }
        let due: Vec<(NodeId, String)> = peers
            .iter()
            .filter(|(_, p)| p.next_probe <= now)
            .map(|(id, p)| (*id, format!("{}{PROBING_PATH}", p.url)))
            .collect();
        let probes = due.into_iter().map(|(id, url)| {
            let http = http.clone();
            async move {
                let sent = Instant::now();
                let answered = http.get(&url, PROBE_TIMEOUT).await.is_ok();
                (id, answered.then(|| sent.elapsed()))
            }
        });
        for (id, measured) in futures_util::future::join_all(probes).await {
            if let Some(peer) = peers.get_mut(&id) {
                peer.next_probe = now + PROBE_INTERVAL;
                peer.answered = measured.is_some();
                if let Some(measured) = measured {
                    peer.smoothed = Some(smooth(peer.smoothed, measured));
                }
            }
        }
        let now = Instant::now();
        for (id, peer) in &mut peers {
            if peer.next_record > now {
                continue;
            }
            if let Some(smoothed) = peer.smoothed {
                record(*id, smoothed);
            }
            let next = if peer.answered {
                RECORD_INTERVAL
            } else {
                FIRST_RECORD_AFTER
            };
            peer.next_record = now + next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_starts_at_the_first_round_trip_and_moves_by_an_eighth() {
        let ms = Duration::from_millis;
        let first = smooth(None, ms(8));
        assert_eq!(first, ms(8));
        assert_eq!(smooth(Some(first), ms(16)), ms(9));
    }
}
