//! Saving the store to bytes and rebuilding it: the tree, the index and the history.
//! Watchers are not saved; recovering drops them, as etcd's recovery does.

use std::sync::Arc;

use beacon_api::Event;
use serde::{Deserialize, Serialize};

use crate::history::History;
use crate::node::{Kind, Node};
use crate::path;
use crate::stats::StoreStats;
use crate::store::Store;

const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// Why snapshot bytes could not become a store.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The bytes are not a store snapshot.
    #[error("store snapshot does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    /// Written by a format this build does not read.
    #[error("store snapshot has format version {0}, this build reads {SNAPSHOT_FORMAT_VERSION}")]
    Version(u32),
    /// Decodes, but breaks the tree's invariants.
    #[error("store snapshot is inconsistent: {0}")]
    Inconsistent(String),
}

/// A node in the flat, parents-first list a snapshot holds. Flat, so that a deep tree
/// needs no deep recursion to decode.
#[derive(Serialize, Deserialize)]
struct SavedNode {
    path: String,
    created: u64,
    modified: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expire_ns: Option<i64>,
    /// `None` for a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    current_index: u64,
    nodes: Vec<SavedNode>,
    history: Vec<Event>,
    stats: StoreStats,
    /// Absent in snapshots written before members could be removed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    removed_members: std::collections::BTreeSet<u64>,
}

impl Store {
    /// The store's state as bytes, for a Raft snapshot.
    pub fn save(&self) -> Vec<u8> {
        let mut nodes = Vec::new();
        save_children(&self.root, "/", &mut nodes);
        let saved = Saved {
            version: SNAPSHOT_FORMAT_VERSION,
            current_index: self.current_index,
            nodes,
            history: self.history.events().map(|e| (**e).clone()).collect(),
            stats: self.stats(),
            removed_members: self.removed_members.clone(),
        };
        serde_json::to_vec(&saved).expect("store state always serializes")
    }

    /// Replaces the state with a snapshot's; every watcher is dropped.
    pub fn recover(&mut self, bytes: &[u8]) -> Result<(), RecoverError> {
        let saved: Saved = serde_json::from_slice(bytes)?;
        if saved.version != SNAPSHOT_FORMAT_VERSION {
            return Err(RecoverError::Version(saved.version));
        }
        let mut root = Node::new_dir(0, None);
        for n in saved.nodes {
            let clean = path::clean(&n.path);
            if clean != n.path || clean == "/" {
                return Err(RecoverError::Inconsistent(format!("bad path {:?}", n.path)));
            }
            if n.modified > saved.current_index || n.created > saved.current_index {
                return Err(RecoverError::Inconsistent(format!(
                    "{} is newer than the store",
                    n.path
                )));
            }
            let (dir, name) = path::split(&clean);
            let parent = find_dir(&mut root, dir).ok_or_else(|| {
                RecoverError::Inconsistent(format!("{} comes before its parent", n.path))
            })?;
            let node = Node {
                created_index: n.created,
                modified_index: n.modified,
                expire_ns: n.expire_ns,
                kind: match n.value {
                    Some(v) => Kind::File(v),
                    None => Kind::Dir(Default::default()),
                },
            };
            if parent.insert(name.to_string(), node).is_some() {
                return Err(RecoverError::Inconsistent(format!(
                    "{} appears twice",
                    n.path
                )));
            }
        }
        let mut history = History::default();
        let mut last = 0;
        for event in saved.history {
            if event.index() <= last || event.index() > saved.current_index {
                return Err(RecoverError::Inconsistent("history out of order".into()));
            }
            last = event.index();
            history.add(Arc::new(event));
        }
        self.clear_watchers();
        self.replace_state(root, saved.current_index, history);
        self.counters.restore(&saved.stats);
        self.removed_members = saved.removed_members;
        Ok(())
    }
}

fn save_children(dir: &Node, dir_path: &str, out: &mut Vec<SavedNode>) {
    let Some(children) = dir.children() else {
        return;
    };
    for (name, child) in children {
        let child_path = path::join(dir_path, name);
        out.push(SavedNode {
            path: child_path.clone(),
            created: child.created_index,
            modified: child.modified_index,
            expire_ns: child.expire_ns,
            value: match &child.kind {
                Kind::File(v) => Some(v.clone()),
                Kind::Dir(_) => None,
            },
        });
        save_children(child, &child_path, out);
    }
}

fn find_dir<'a>(
    root: &'a mut Node,
    clean: &str,
) -> Option<&'a mut std::collections::BTreeMap<String, Node>> {
    let mut node = root;
    for name in path::components(clean) {
        let Kind::Dir(children) = &mut node.kind else {
            return None;
        };
        node = children.get_mut(name)?;
    }
    match &mut node.kind {
        Kind::Dir(children) => Some(children),
        Kind::File(_) => None,
    }
}
