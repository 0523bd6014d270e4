//! A successful keys answer: the event plus the headers that carry etcd's state.

use beacon_api::Event;

/// The answer to a keys call or a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The event etcd sent (its `etcd_index` is set from `X-Etcd-Index` too).
    pub event: Event,
    /// `X-Etcd-Index`: the store's index when the answer was made (0 if absent).
    pub etcd_index: u64,
    /// `X-Etcd-Cluster-Id`, when sent.
    pub cluster_id: Option<String>,
}

impl Response {
    /// The node of the event; etcd always sends one on success.
    pub fn node(&self) -> Option<&beacon_api::NodeExtern> {
        self.event.node.as_ref()
    }
}
