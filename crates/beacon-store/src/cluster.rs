//! The writes etcd makes into its v2 store's own namespace (`/0`) as its membership
//! changes: each member's records and the cluster version. They are not client keys,
//! but each takes an etcd index and a place in the event history, so a fresh single
//! member's first client write is index 4, not 1, and tools that watch from a small
//! `waitIndex` rely on that. Beacon keeps its membership in openraft's, and the state
//! machine tells the store which of these writes each membership entry stands for
//! ([`Store::record_cluster_writes`]); the store takes their indexes and keeps them in
//! its history as events no watcher sees.

use std::sync::Arc;

use beacon_api::{Action, ByteString, Event, NodeExtern};

use crate::stats::Op;
use crate::store::Store;

/// What etcd 3.4 writes into `/0` for one membership event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterWrite {
    /// A member added: its `raftAttributes` created.
    MemberAdded(u64),
    /// A member's peer URLs or learner mark changed: its `raftAttributes` updated.
    MemberUpdated(u64),
    /// A member published its name and client URLs (at every start): its `attributes`
    /// set.
    MemberPublished(u64),
    /// A member removed: its records deleted and `/0/removed_members/<id>` created.
    MemberRemoved(u64),
    /// The cluster version decided, once in a cluster's life: `/0/version` set.
    ClusterVersion,
}

impl ClusterWrite {
    /// The store operations etcd makes for it, with the keys it writes.
    fn operations(self) -> Vec<(Op, String)> {
        let member = |id: u64| format!("/0/members/{id:x}");
        match self {
            ClusterWrite::MemberAdded(id) => {
                vec![(Op::Create, format!("{}/raftAttributes", member(id)))]
            }
            ClusterWrite::MemberUpdated(id) => {
                vec![(Op::Update, format!("{}/raftAttributes", member(id)))]
            }
            ClusterWrite::MemberPublished(id) => {
                vec![(Op::Set, format!("{}/attributes", member(id)))]
            }
            ClusterWrite::MemberRemoved(id) => vec![
                (Op::Delete, member(id)),
                (Op::Create, format!("/0/removed_members/{id:x}")),
            ],
            ClusterWrite::ClusterVersion => vec![(Op::Set, "/0/version".to_string())],
        }
    }
}

impl Store {
    /// Takes an index (and a history slot) for each write etcd would make for
    /// `writes`, in order; no watcher is woken or ever sees them. A second
    /// [`ClusterWrite::ClusterVersion`] is ignored: etcd decides the version once.
    pub fn record_cluster_writes(&mut self, writes: &[ClusterWrite]) {
        for write in writes {
            if *write == ClusterWrite::ClusterVersion {
                if self.cluster_version_decided {
                    continue;
                }
                self.cluster_version_decided = true;
            }
            for (op, key) in write.operations() {
                self.record_hidden_write(op, key);
            }
        }
    }

    /// Takes an index and a history slot for a write etcd makes outside the client's
    /// keys (`/0` here, `/2` for auth), counted as `op` succeeding.
    pub(crate) fn record_hidden_write(&mut self, op: Op, key: String) {
        self.current_index += 1;
        self.counters.record(op, true);
        let index = self.current_index;
        let node = NodeExtern {
            key: ByteString::from(key),
            modified_index: index,
            created_index: index,
            ..NodeExtern::default()
        };
        // Kept as a refresh event: history scans skip those, as etcd's watchers never
        // see its `/0` and `/2` keys from the client's `/1`.
        self.history.add(Arc::new(Event {
            action: Action::Set,
            node: Some(node),
            prev_node: None,
            etcd_index: index,
            refresh: true,
        }));
    }

    /// Whether the cluster version was decided (recorded) already.
    pub fn cluster_version_decided(&self) -> bool {
        self.cluster_version_decided
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, KeysRequest, Method};

    #[test]
    fn cluster_writes_take_indexes_that_watchers_skip() {
        let mut store = Store::new();
        store.record_cluster_writes(&[
            ClusterWrite::MemberAdded(1),
            ClusterWrite::MemberPublished(1),
            ClusterWrite::ClusterVersion,
            ClusterWrite::ClusterVersion,
        ]);
        assert_eq!(store.current_index(), 3, "as a fresh single etcd member");
        assert!(store.cluster_version_decided());
        let mut set = KeysRequest::new(Method::Put, "/a", 0);
        set.value = "1".into();
        store.apply(&Command::Keys(set));
        assert_eq!(store.current_index(), 4);
        // A watch from index 2 finds the client's write, not a cleared history.
        let found = store.history.scan(b"/", true, 2).unwrap().unwrap();
        assert_eq!(found.index(), 4);
        assert_eq!(store.stats().create_success, 1);
        assert_eq!(store.stats().sets_success, 3);
        store.record_cluster_writes(&[ClusterWrite::MemberRemoved(1)]);
        assert_eq!(store.current_index(), 6);
        let mut restored = Store::new();
        restored.recover(&store.save()).unwrap();
        assert_eq!(restored.current_index(), 6);
        assert!(restored.cluster_version_decided());
        assert_eq!(
            restored
                .history
                .scan(b"/", true, 1)
                .unwrap()
                .unwrap()
                .index(),
            4
        );
    }
}
