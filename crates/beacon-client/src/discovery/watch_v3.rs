//! The discovery task through the v3 API: a prefix Range, then a Watch from the
//! revision after it; a broken stream is opened again (on the next member if its own
//! failed) from the revision after the last one seen, and a watch cancelled because that
//! revision was compacted away lists again. All decisions about changes are
//! [`DiscoveryState`]'s, as for v2.

use std::time::Instant;

use beacon_proto::etcdserverpb::WatchResponse;
use beacon_proto::mvccpb::event::EventType;
use tokio::sync::{mpsc, watch as signal};

use super::state::{Change, DiscoveryState, KeyChange};
use super::watch::{publish, sleep_until, Backoff};
use super::{DiscoveryConfig, Instance};
use crate::v3::{moves_on, V3Client};

/// What ends one watch.
enum Ended {
    /// History from the next revision is gone: list again.
    Compacted,
    /// The stream broke or was cancelled: watch again from the next revision.
    Broken,
    /// The consumer is gone.
    Consumer,
}

/// Runs until the consumer drops its end of the channel.
pub(super) async fn run(
    client: V3Client,
    prefix: String,
    config: DiscoveryConfig,
    tx: mpsc::Sender<Change>,
    set: signal::Sender<Option<Vec<Instance>>>,
) {
    let mut state = DiscoveryState::new(config.max_removed_share, config.removal_grace);
    let mut backoff = Backoff::new(config.max_backoff);
    // `/services/web` holds `/services/web/...`, not `/services/webshop/...`.
    let keys = format!("{prefix}/").into_bytes();
    loop {
        let listing = match client.range_prefix(&keys).await {
            Ok(listing) => listing,
            Err(err) => {
                tracing::warn!(%prefix, error = %err, "listing the registry failed; keeping the last instances");
                backoff.wait().await;
                continue;
            }
        };
        backoff.reset();
        let revision = listing.header.as_ref().map_or(0, |h| h.revision);
        let pairs = listing
            .kvs
            .iter()
            .map(|kv| (kv.key.as_slice(), kv.value.as_slice()));
        let changes = state.relist_pairs(pairs, Instant::now());
        if !publish(&tx, &set, &state, changes).await {
            return;
        }
        let mut next = revision + 1;
        loop {
            match watch(&client, &prefix, &keys, &mut next, &mut state, &tx, &set).await {
                Ended::Consumer => return,
                Ended::Compacted => {
                    tracing::info!(%prefix, next, "watch history compacted; listing again");
                    break;
                }
                Ended::Broken => backoff.wait().await,
            }
        }
    }
}

/// One watch stream from `*next`, applied and published until it ends; `*next` follows
/// the revisions seen.
async fn watch(
    client: &V3Client,
    prefix: &str,
    keys: &[u8],
    next: &mut i64,
    state: &mut DiscoveryState,
    tx: &mpsc::Sender<Change>,
    set: &signal::Sender<Option<Vec<Instance>>>,
) -> Ended {
    let mut stream = match client.watch_prefix(keys, *next).await {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(%prefix, error = %err, "watching the registry failed; keeping the last instances");
            return Ended::Broken;
        }
    };
    loop {
        let deadline = state.next_deadline();
        let answer = tokio::select! {
            answer = stream.next() => Some(answer),
            () = sleep_until(deadline) => None,
        };
        let changes = match answer {
            None => state.tick(Instant::now()),
            Some(Ok(Some(answer))) => {
                if answer.canceled {
                    if answer.compact_revision > 0 {
                        return Ended::Compacted;
                    }
                    let reason = answer.cancel_reason;
                    tracing::warn!(%prefix, %reason, "the registry cancelled the watch");
                    return Ended::Broken;
                }
                apply(&answer, next, state)
            }
            Some(Ok(None)) => {
                tracing::warn!(%prefix, "the registry ended the watch; watching again");
                client.failed(stream.at);
                return Ended::Broken;
            }
            Some(Err(status)) => {
                tracing::warn!(%prefix, error = %status.message(), "the watch broke; watching again");
                if moves_on(&status) {
                    client.failed(stream.at);
                }
                return Ended::Broken;
            }
        };
        if !publish(tx, set, state, changes).await {
            return Ended::Consumer;
        }
    }
}

/// Applies one answer's events (none for a creation or progress answer) and moves
/// `*next` past them.
fn apply(answer: &WatchResponse, next: &mut i64, state: &mut DiscoveryState) -> Vec<Change> {
    let changes = answer.events.iter().filter_map(|event| {
        let kv = event.kv.as_ref()?;
        *next = (*next).max(kv.mod_revision + 1);
        Some(if event.r#type == EventType::Delete as i32 {
            KeyChange::Delete { key: &kv.key }
        } else {
            KeyChange::Put {
                key: &kv.key,
                value: &kv.value,
            }
        })
    });
    state.apply_keys(changes, Instant::now())
}
