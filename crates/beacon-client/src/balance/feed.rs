//! Carries discovery's changes to the balancer, turning each target into a service.
//!
//! tower's balancer reads its `Discover` only while it is polled, that is only while a
//! request waits. A task of our own reads discovery as it happens instead, so that the
//! balancer always knows how many instances exist (a request can then fail at once when there
//! are none, instead of waiting in the balancer), and so that an idle discovery stream is
//! read as soon as it has news. It also keeps each listed instance on the failure-accrual
//! board, from the insert to the remove: the balancer drops a removed service only when it
//! next polls it, which may be much later. The task ends when the balancer is dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Display;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;

use futures_util::{Stream, TryStream, TryStreamExt};
use tokio::sync::{mpsc, watch};
use tower::discover::Change;

use super::board::{Board, InstanceId, Listed};

/// Starts the task that reads `discover` and returns the stream the balancer reads.
///
/// `wrap` builds an instance's service from its target and its record on `board`; the
/// balancer knows each instance by that record's id (cheaper to hash, on every request,
/// than the discovery key). Discovery errors are skipped: the last known instances stay in
/// use, as Finagle keeps its last good set.
/// At most `changes_max` changes wait for the balancer; past that (an idle balancer and
/// a busy discovery) the task waits too, so changes arrive late but are never lost.
pub(crate) fn spawn<D, K, T, W, S>(
    discover: D,
    wrap: W,
    board: Arc<Board>,
    discovered: watch::Sender<usize>,
    changes_max: usize,
) -> impl Stream<Item = Result<Change<InstanceId, S>, Infallible>> + Unpin + Send + 'static
where
    D: TryStream<Ok = Change<K, T>> + Send + 'static,
    K: Hash + Eq + Clone + Display + Send + 'static,
    W: Fn(&T, InstanceId) -> S + Send + 'static,
    S: Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(changes_max);
    tokio::spawn(async move {
        let mut discover = pin!(discover.into_stream());
        let mut listed: HashMap<K, Listed> = HashMap::new();
        loop {
            // Scoped so that discovery's own values (maybe not `Send`) are gone at the await.
            let change = {
                let next = tokio::select! {
                    // Nobody balances any more: stop reading discovery.
                    _ = tx.closed() => return,
                    next = discover.try_next() => next,
                };
                match next {
                    Ok(Some(Change::Insert(key, target))) => {
                        // A key listed again (a new address) keeps its record.
                        let id = listed
                            .entry(key.clone())
                            .or_insert_with(|| board.list(key.to_string()))
                            .id();
                        Change::Insert(id, wrap(&target, id))
                    }
                    Ok(Some(Change::Remove(key))) => match listed.remove(&key) {
                        Some(listing) => Change::Remove(listing.id()),
                        None => continue,
                    },
                    // The stream ended: keep the instances we have.
                    Ok(None) => break,
                    Err(_) => continue,
                }
            };
            discovered.send_replace(listed.len());
            if tx.send(change).await.is_err() {
                return;
            }
        }
        // Discovery ended; the balancer keeps its instances, and they stay listed.
        tx.closed().await;
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|change| change.map(Ok)))
}
