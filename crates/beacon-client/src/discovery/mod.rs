//! Discovery: a registry prefix turned into a `tower::discover::Discover` stream.
//!
//! A background task lists the prefix, then watches it from the next index (v2) or
//! revision (v3). The pure [`DiscoveryState`] turns listings and events into changes, so
//! the task only moves data. Through v2 ([`watch`]), a watch that times out is asked
//! again from the same index and a `401 EventIndexCleared` re-lists and resumes from
//! `X-Etcd-Index + 1`; through v3 ([`watch_v3`]), a broken stream is opened again from
//! the revision after the last seen, and a watch cancelled for compaction re-lists. An
//! unreachable registry (the client fails over between members first) keeps the last
//! published set while the task retries with a bounded backoff.
//!
//! The channel to the consumer is bounded. A consumer that stops polling stops the task
//! at its next send; when it resumes, the watch index may have been cleared and the
//! re-list brings it up to date, so the bound costs no change.

mod instance;
mod state;
mod watch;
mod watch_v3;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, watch as signal};

pub use instance::{Instance, InstanceInfo};
pub use state::{Change, DiscoveryState, KeyChange};

use crate::registration::Registry;

/// Where a service's instances live: `/services/<service>`, or
/// `/services/<service>/<datacenter>` for one datacenter.
pub fn service_prefix(service: &str, datacenter: Option<&str>) -> String {
    let service = service.trim_matches('/');
    match datacenter {
        Some(dc) => format!("/services/{service}/{}", dc.trim_matches('/')),
        None => format!("/services/{service}"),
    }
}

/// How discovery behaves; `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct DiscoveryConfig {
    /// A removal of more than this share of the set within `removal_grace` is held
    /// (default 0.5).
    pub max_removed_share: f64,
    /// How long a held removal must stay true before it is published (default 15 s).
    pub removal_grace: Duration,
    /// How long one watch request may wait for an event (default 60 s).
    pub watch_timeout: Duration,
    /// The longest wait between attempts while the registry is unreachable (default 5 s).
    pub max_backoff: Duration,
    /// Changes buffered for a consumer that is not polling (default 1024).
    pub channel_capacity: usize,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            max_removed_share: 0.5,
            removal_grace: Duration::from_secs(15),
            watch_timeout: Duration::from_secs(60),
            max_backoff: Duration::from_secs(5),
            channel_capacity: 1024,
        }
    }
}

/// The instances under a prefix, as a stream of changes; implements
/// `tower::discover::Discover` with the registry key as the service key.
///
/// Dropping it stops the background task.
#[derive(Debug)]
pub struct Discovery {
    changes: mpsc::Receiver<Change>,
    published: signal::Receiver<Option<Vec<Instance>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Discovery {
    /// Starts discovering the instances under `prefix` (e.g. `/services/api`, or
    /// `/services/api/dc1` for one datacenter) through `registry` (a v2 [`Client`](crate::Client) or a
    /// [`V3Client`](crate::V3Client)).
    pub fn start(
        registry: impl Into<Registry>,
        prefix: &str,
        config: DiscoveryConfig,
    ) -> Discovery {
        assert!(config.channel_capacity > 0, "a channel holds something");
        let (tx, changes) = mpsc::channel(config.channel_capacity);
        let (set, published) = signal::channel(None);
        let prefix = format!("/{}", prefix.trim_matches('/'));
        let task = match registry.into() {
            Registry::V2(client) => tokio::spawn(watch::run(client, prefix, config, tx, set)),
            Registry::V3(client) => tokio::spawn(watch_v3::run(client, prefix, config, tx, set)),
        };
        Discovery {
            changes,
            published,
            task,
        }
    }

    /// Starts discovering every instance of `service` (any datacenter) with the
    /// default configuration.
    pub fn of_service(registry: impl Into<Registry>, service: &str) -> Discovery {
        Discovery::start(
            registry,
            &service_prefix(service, None),
            DiscoveryConfig::default(),
        )
    }

    /// The instances published so far (empty until the first listing), including any
    /// whose change the stream has yet to deliver.
    pub fn instances(&self) -> Vec<Instance> {
        self.published.borrow().clone().unwrap_or_default()
    }

    /// A handle that reads the published instances after the stream has been given
    /// away (to a balancer, say).
    pub fn watcher(&self) -> InstancesWatcher {
        InstancesWatcher(self.published.clone())
    }

    /// The stream with each instance turned into its HTTP authority; instances whose
    /// host or port cannot address anything are left out (and logged).
    pub fn authorities(self) -> Authorities {
        Authorities(self)
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl futures_util::Stream for Discovery {
    type Item = Result<tower::discover::Change<String, Instance>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.changes.poll_recv(cx).map(|c| {
            c.map(|c| {
                Ok(match c {
                    Change::Insert(i) => tower::discover::Change::Insert(i.key.clone(), i),
                    Change::Remove(k) => tower::discover::Change::Remove(k),
                })
            })
        })
    }
}

/// Reads a [`Discovery`]'s published instances from elsewhere.
#[derive(Clone, Debug)]
pub struct InstancesWatcher(signal::Receiver<Option<Vec<Instance>>>);

impl InstancesWatcher {
    /// The instances published so far.
    pub fn instances(&self) -> Vec<Instance> {
        self.0.borrow().clone().unwrap_or_default()
    }

    /// Waits until the first listing has been published (or `timeout` passes); true
    /// when it has.
    pub async fn listed(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.0.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The published set as a `Discover` stream of HTTP authorities, for one more
    /// balancer: each call makes an independent stream, so one discovery can feed a
    /// balancer per thread. Changes that come faster than the stream is read are
    /// coalesced (the stream diffs whole sets), which a balancer does not mind.
    pub fn authorities(
        self,
    ) -> impl futures_util::Stream<
        Item = Result<tower::discover::Change<String, http::uri::Authority>, Infallible>,
    > + Send
           + 'static {
        type Set = BTreeMap<String, http::uri::Authority>;
        let start = (self.0, Set::new(), VecDeque::new(), true);
        futures_util::stream::unfold(
            start,
            |(mut rx, mut last, mut queue, mut fresh)| async move {
                loop {
                    if let Some(change) = queue.pop_front() {
                        return Some((Ok(change), (rx, last, queue, fresh)));
                    }
                    if !fresh && rx.changed().await.is_err() {
                        return None;
                    }
                    fresh = false;
                    let next: Set = rx
                        .borrow_and_update()
                        .iter()
                        .flatten()
                        .filter_map(|i| Some((i.key.clone(), i.info.authority()?)))
                        .collect();
                    for key in last.keys().filter(|k| !next.contains_key(*k)) {
                        queue.push_back(tower::discover::Change::Remove(key.clone()));
                    }
                    for (key, authority) in &next {
                        if last.get(key) != Some(authority) {
                            queue.push_back(tower::discover::Change::Insert(
                                key.clone(),
                                authority.clone(),
                            ));
                        }
                    }
                    last = next;
                }
            },
        )
    }
}

/// A [`Discovery`] whose services are HTTP authorities (`host:port`).
#[derive(Debug)]
pub struct Authorities(Discovery);

impl Authorities {
    /// The instances published so far.
    pub fn instances(&self) -> Vec<Instance> {
        self.0.instances()
    }

    /// See [`Discovery::watcher`].
    pub fn watcher(&self) -> InstancesWatcher {
        self.0.watcher()
    }
}

impl futures_util::Stream for Authorities {
    type Item = Result<tower::discover::Change<String, http::uri::Authority>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let change = match Pin::new(&mut self.0).poll_next(cx) {
            Poll::Ready(Some(Ok(change))) => change,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let mapped = match change {
            tower::discover::Change::Insert(key, instance) => match instance.info.authority() {
                Some(a) => tower::discover::Change::Insert(key, a),
                None => {
                    tracing::warn!(%key, "instance has no usable host and port");
                    // Whatever the key held before is no longer valid.
                    tower::discover::Change::Remove(key)
                }
            },
            tower::discover::Change::Remove(key) => tower::discover::Change::Remove(key),
        };
        Poll::Ready(Some(Ok(mapped)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn instance(key: &str, port: u16) -> Instance {
        Instance {
            key: key.to_string(),
            info: InstanceInfo::new("127.0.0.1", port),
        }
    }

    fn describe(change: tower::discover::Change<String, http::uri::Authority>) -> String {
        match change {
            tower::discover::Change::Insert(k, a) => format!("+{k}={a}"),
            tower::discover::Change::Remove(k) => format!("-{k}"),
        }
    }

    #[tokio::test]
    async fn each_watcher_stream_diffs_the_published_sets() {
        let (set, rx) = signal::channel(None);
        let mut stream = Box::pin(InstancesWatcher(rx).authorities());
        let mut next = async || describe(stream.next().await.unwrap().unwrap());
        set.send_replace(Some(vec![instance("a", 1)]));
        assert_eq!(next().await, "+a=127.0.0.1:1");
        set.send_replace(Some(vec![instance("a", 2), instance("b", 3)]));
        assert_eq!(next().await, "+a=127.0.0.1:2");
        assert_eq!(next().await, "+b=127.0.0.1:3");
        set.send_replace(Some(Vec::new()));
        assert_eq!(next().await, "-a");
        assert_eq!(next().await, "-b");
        drop(set);
        assert!(stream.next().await.is_none(), "ends with the discovery");
    }
}
