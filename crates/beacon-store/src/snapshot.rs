//! Saving the store to bytes and rebuilding it: the tree, the index, the history and
//! the v2 auth records.
//! Watchers are not saved; recovering drops them, as etcd's recovery does.
//!
//! Saving happens in two steps, so that a Raft snapshot never holds up the writes: a
//! [`StoreView`] is taken under the store's lock in O(1) (it shares the persistent tree,
//! see `node`), and is encoded later, elsewhere, while the store goes on applying.

use std::collections::BTreeSet;
use std::sync::Arc;

use beacon_api::{ByteString, Event};
use serde::{Deserialize, Serialize};

use crate::auth::AuthState;
use crate::history::History;
use crate::name::Name;
use crate::node::{Children, Kind, Node};
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
    /// Bytes: a JSON string when UTF-8, as every snapshot written before keys were
    /// bytes (see `ByteString`).
    path: ByteString,
    created: u64,
    modified: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expire_ns: Option<i64>,
    /// `None` for a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<ByteString>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    current_index: u64,
    nodes: Vec<SavedNode>,
    history: Vec<Event>,
    stats: StoreStats,
    /// Absent in snapshots written before members could be removed.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    removed_members: BTreeSet<u64>,
    /// Absent before the store recorded etcd's cluster writes, and while undecided.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    cluster_version_decided: bool,
    /// The v2 auth records; absent until the first auth write, and before them.
    #[serde(default, skip_serializing_if = "AuthState::is_untouched")]
    auth: AuthState,
}

/// The store's state at one moment, frozen: what [`Store::save`] would have written
/// then. Taking it costs O(1) in the number of keys (the tree and the history are
/// persistent and shared, not copied; only the counters and the ids of removed members
/// are copied), so it can be taken under the store's lock between two applies; encoding it
/// ([`StoreView::save`]) can then run anywhere, for as long as it takes, while the store
/// changes: the store copies what it changes instead of touching what the view holds.
pub struct StoreView {
    root: Arc<Node>,
    current_index: u64,
    history: History,
    stats: StoreStats,
    removed_members: BTreeSet<u64>,
    cluster_version_decided: bool,
    auth: Arc<AuthState>,
}

/// A view is encoded on another thread than the store's (the snapshot builder's).
const _: fn() = || {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<StoreView>();
};

impl StoreView {
    /// The etcd index the view was taken at.
    pub fn current_index(&self) -> u64 {
        self.current_index
    }

    /// The state as snapshot bytes: exactly those [`Store::save`] gave when the view
    /// was taken. Linear in the number of keys; meant to run off the store's lock.
    pub fn save(&self) -> Vec<u8> {
        let mut nodes = Vec::new();
        save_children(&self.root, b"/", &mut nodes);
        let saved = Saved {
            version: SNAPSHOT_FORMAT_VERSION,
            current_index: self.current_index,
            nodes,
            history: self.history.events().map(|e| (**e).clone()).collect(),
            stats: self.stats.clone(),
            removed_members: self.removed_members.clone(),
            cluster_version_decided: self.cluster_version_decided,
            auth: (*self.auth).clone(),
        };
        serde_json::to_vec(&saved).expect("store state always serializes")
    }
}

impl Store {
    /// The state as it is now, in O(1): see [`StoreView`].
    pub fn snapshot_view(&self) -> StoreView {
        StoreView {
            root: Arc::clone(&self.root),
            current_index: self.current_index,
            history: self.history.clone(),
            stats: self.stats(),
            removed_members: self.removed_members.clone(),
            cluster_version_decided: self.cluster_version_decided,
            auth: Arc::clone(&self.auth),
        }
    }

    /// The store's state as bytes, for a Raft snapshot; under a lock, prefer
    /// [`Store::snapshot_view`] and save the view after the lock is released.
    pub fn save(&self) -> Vec<u8> {
        self.snapshot_view().save()
    }

    /// Replaces the state with a snapshot's; every watcher is dropped.
    pub fn recover(&mut self, bytes: &[u8]) -> Result<(), RecoverError> {
        let saved: Saved = serde_json::from_slice(bytes)?;
        if saved.version != SNAPSHOT_FORMAT_VERSION {
            return Err(RecoverError::Version(saved.version));
        }
        let mut tree = TreeBuilder::default();
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
            let node = Node {
                created_index: n.created,
                modified_index: n.modified,
                expire_ns: n.expire_ns,
                kind: match n.value {
                    Some(v) => Kind::File(v),
                    None => Kind::Dir(Default::default()),
                },
            };
            tree.insert(clean, node)?;
        }
        let root = tree.finish()?;
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
        self.cluster_version_decided = saved.cluster_version_decided;
        self.auth = Arc::new(saved.auth);
        Ok(())
    }
}

/// Appends every node below `dir`, parents first (pre-order), with an explicit stack:
/// a key thousands of levels deep must not recurse once per level.
fn save_children(dir: &Node, dir_path: &[u8], out: &mut Vec<SavedNode>) {
    let Some(children) = dir.children() else {
        return;
    };
    // Each directory being saved: its path and the children left.
    let mut stack = vec![(ByteString::from(dir_path), children.iter())];
    while let Some((parent_path, children)) = stack.last_mut() {
        let Some((name, child)) = children.next() else {
            stack.pop();
            continue;
        };
        let child_path = path::join(parent_path, name);
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
        if let Some(grandchildren) = child.children() {
            stack.push((child_path, grandchildren.iter()));
        }
    }
}

/// Builds the tree from saved nodes, parents first. `save` writes them in pre-order, so
/// the directories on the path to the latest node are kept open on a stack, detached,
/// and each node joins the top one: linear however deep the tree. A node whose parent
/// is not open (`save` never writes one) is placed by a walk from the root.
struct TreeBuilder {
    root: Node,
    /// Open directories with their paths, each the parent of the next.
    open: Vec<(ByteString, Node)>,
}

impl Default for TreeBuilder {
    fn default() -> Self {
        TreeBuilder {
            root: Node::new_dir(0, None),
            open: Vec::new(),
        }
    }
}

impl TreeBuilder {
    fn insert(&mut self, clean: ByteString, node: Node) -> Result<(), RecoverError> {
        let (dir, name) = path::split(&clean);
        while self.open.last().is_some_and(|(open, _)| open != dir) {
            self.close_top()?;
        }
        if self.open.is_empty() && find_dir(&mut self.root, dir).is_none() {
            return Err(RecoverError::Inconsistent(format!(
                "{clean} comes before its parent"
            )));
        }
        if node.is_dir() {
            self.open.push((clean, node));
            return Ok(());
        }
        self.attach(&clean, Name::from(name), node)
    }

    /// Puts `node` under its parent: the top open directory, or else found from the root.
    fn attach(&mut self, clean: &[u8], name: Name, node: Node) -> Result<(), RecoverError> {
        let children = match self.open.last_mut() {
            Some((
                _,
                Node {
                    kind: Kind::Dir(children),
                    ..
                },
            )) => children,
            _ => find_dir(&mut self.root, path::split(clean).0).ok_or_else(|| {
                RecoverError::Inconsistent(format!(
                    "{} comes before its parent",
                    String::from_utf8_lossy(clean)
                ))
            })?,
        };
        if children.insert(name, Arc::new(node)).is_some() {
            return Err(RecoverError::Inconsistent(format!(
                "{} appears twice",
                String::from_utf8_lossy(clean)
            )));
        }
        Ok(())
    }

    fn close_top(&mut self) -> Result<(), RecoverError> {
        let Some((clean, node)) = self.open.pop() else {
            return Ok(());
        };
        let name = Name::from(path::split(&clean).1);
        self.attach(&clean, name, node)
    }

    fn finish(mut self) -> Result<Node, RecoverError> {
        while !self.open.is_empty() {
            self.close_top()?;
        }
        Ok(std::mem::replace(&mut self.root, Node::new_dir(0, None)))
    }
}

fn find_dir<'a>(root: &'a mut Node, clean: &[u8]) -> Option<&'a mut Children> {
    let mut node = root;
    for name in path::components(clean) {
        let Kind::Dir(children) = &mut node.kind else {
            return None;
        };
        // The tree is being built and shared with no one: this copies nothing.
        node = Arc::make_mut(children.get_mut(name)?);
    }
    match &mut node.kind {
        Kind::Dir(children) => Some(children),
        Kind::File(_) => None,
    }
}
