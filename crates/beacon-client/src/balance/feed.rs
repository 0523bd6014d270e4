//! Carries discovery's changes to the balancer, turning each target into a service.
//!
//! tower's balancer reads its `Discover` only while it is polled, that is only while a
//! request waits. A task of our own reads discovery as it happens instead, so that the
//! board always knows how many instances exist (a request can then fail at once when there
//! are none, instead of waiting in the balancer), and so that an idle discovery stream is
//! read as soon as it has news. The task ends when the balancer is dropped.

use std::collections::HashSet;
use std::convert::Infallible;
use std::hash::Hash;
use std::pin::pin;

use futures_util::{Stream, TryStream, TryStreamExt};
use tokio::sync::mpsc;
use tower::discover::Change;

use super::board::Board;

/// Starts the task that reads `discover` and returns the stream the balancer reads.
///
/// `wrap` builds an instance's service from its key and target. Discovery errors are
/// skipped: the last known instances stay in use, as Finagle keeps its last good set.
/// At most `changes_max` changes wait for the balancer; past that (an idle balancer and
/// a busy discovery) the task waits too, so changes arrive late but are never lost.
pub(crate) fn spawn<D, K, T, W, S>(
    discover: D,
    wrap: W,
    board: std::sync::Arc<Board>,
    changes_max: usize,
) -> impl Stream<Item = Result<Change<K, S>, Infallible>> + Unpin + Send + 'static
where
    D: TryStream<Ok = Change<K, T>> + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    W: Fn(&K, &T) -> S + Send + 'static,
    S: Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(changes_max);
    tokio::spawn(async move {
        let mut discover = pin!(discover.into_stream());
        let mut keys: HashSet<K> = HashSet::new();
        loop {
            // Scoped so that discovery's own values (maybe not `Send`) are gone at the await.
            let change = {
                let next = tokio::select! {
                    // Nobody balances any more: stop reading discovery.
                    _ = tx.closed() => break,
                    next = discover.try_next() => next,
                };
                match next {
                    Ok(Some(Change::Insert(key, target))) => {
                        let service = wrap(&key, &target);
                        keys.insert(key.clone());
                        Change::Insert(key, service)
                    }
                    Ok(Some(Change::Remove(key))) => {
                        keys.remove(&key);
                        Change::Remove(key)
                    }
                    // The stream ended: keep the instances we have.
                    Ok(None) => break,
                    Err(_) => continue,
                }
            };
            board.set_discovered(keys.len());
            if tx.send(change).await.is_err() {
                break;
            }
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|change| change.map(Ok)))
}
