//! The discovery task through the v2 API: list, watch, re-list when history is gone,
//! back off when the registry is unreachable. All decisions about changes are
//! [`DiscoveryState`]'s. The helpers at the end are shared with the v3 task.

use std::time::{Duration, Instant};

use beacon_api::ErrorCode;
use tokio::sync::{mpsc, watch as signal};

use super::state::{Change, DiscoveryState};
use super::{DiscoveryConfig, Instance};
use crate::client::Client;
use crate::error::{EndpointErrorKind, Error};
use crate::options::{GetOptions, WatchOptions};

const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Runs until the consumer drops its end of the channel.
pub(super) async fn run(
    client: Client,
    prefix: String,
    config: DiscoveryConfig,
    tx: mpsc::Sender<Change>,
    set: signal::Sender<Option<Vec<Instance>>>,
) {
    let mut state = DiscoveryState::new(config.max_removed_share, config.removal_grace);
    let mut backoff = Backoff::new(config.max_backoff);
    loop {
        let (root, etcd_index) = match list(&client, &prefix).await {
            Ok(listing) => listing,
            Err(err) => {
                tracing::warn!(%prefix, error = %err, "listing the registry failed; keeping the last instances");
                backoff.wait().await;
                continue;
            }
        };
        backoff.reset();
        let changes = state.relist(root.as_ref(), Instant::now());
        if !publish(&tx, &set, &state, changes).await {
            return;
        }
        let mut wait_index = etcd_index + 1;
        loop {
            let opts = WatchOptions {
                recursive: true,
                wait_index: Some(wait_index),
                timeout: Some(config.watch_timeout),
            };
            let deadline = state.next_deadline();
            let outcome = tokio::select! {
                r = client.watch(&prefix, &opts) => Some(r),
                () = sleep_until(deadline) => None,
            };
            let changes = match outcome {
                None => state.tick(Instant::now()),
                Some(Ok(resp)) => {
                    backoff.reset();
                    wait_index = resp.event.index().max(wait_index - 1) + 1;
                    state.apply(&resp.event, Instant::now())
                }
                Some(Err(err)) if err.is_code(ErrorCode::EventIndexCleared) => {
                    tracing::info!(%prefix, wait_index, "watch history cleared; listing again");
                    break;
                }
                Some(Err(err)) if only_timeouts(&err) => continue,
                Some(Err(err)) => {
                    tracing::warn!(%prefix, error = %err, "watching the registry failed; keeping the last instances");
                    backoff.wait().await;
                    continue;
                }
            };
            if !publish(&tx, &set, &state, changes).await {
                return;
            }
        }
    }
}

/// The prefix's node and the index it was read at; no node when the prefix is absent.
async fn list(
    client: &Client,
    prefix: &str,
) -> Result<(Option<beacon_api::NodeExtern>, u64), Error> {
    let opts = GetOptions {
        recursive: true,
        ..GetOptions::default()
    };
    match client.get(prefix, &opts).await {
        Ok(resp) => Ok((resp.event.node, resp.etcd_index)),
        Err(Error::Etcd { error, .. }) if error.code == ErrorCode::KeyNotFound => {
            Ok((None, error.index))
        }
        Err(err) => Err(err),
    }
}

/// Sends the changes and updates the published set; false once the consumer is gone.
pub(super) async fn publish(
    tx: &mpsc::Sender<Change>,
    set: &signal::Sender<Option<Vec<Instance>>>,
    state: &DiscoveryState,
    changes: Vec<Change>,
) -> bool {
    let first_listing = set.borrow().is_none();
    if changes.is_empty() && !first_listing {
        return !tx.is_closed();
    }
    // The set first: whoever reads it after taking a change from the stream sees that
    // change in it.
    set.send_replace(Some(state.published().collect()));
    for change in changes {
        match &change {
            Change::Insert(i) => {
                tracing::info!(key = %i.key, hostname = %i.info.hostname, port = %i.info.port, "instance up")
            }
            Change::Remove(key) => tracing::info!(%key, "instance gone"),
        }
        if tx.send(change).await.is_err() {
            return false;
        }
    }
    true
}

fn only_timeouts(err: &Error) -> bool {
    match err {
        Error::Unavailable(errors) => errors
            .0
            .iter()
            .all(|e| e.kind == EndpointErrorKind::Timeout),
        _ => false,
    }
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Doubling waits between failed attempts, capped.
pub(super) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(super) fn new(max: Duration) -> Backoff {
        Backoff {
            next: MIN_BACKOFF,
            max: max.max(MIN_BACKOFF),
        }
    }

    pub(super) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }

    pub(super) fn reset(&mut self) {
        self.next = MIN_BACKOFF;
    }
}
