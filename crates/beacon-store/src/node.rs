//! The node tree: files hold a value, directories hold children by name.
//!
//! The tree is persistent: a directory's children are an `imbl::OrdMap` (a B+tree whose
//! nodes are shared between clones) of `Arc<Node>`s. Cloning a node is O(1) whatever
//! lies below it, so a snapshot view shares the whole tree with the live store, and a
//! write copies only what it changes (the nodes on its path, and the B+tree nodes on
//! the way to each), through `Arc::make_mut`, the first time after a view was taken.

use std::sync::Arc;

use beacon_api::{ByteString, NodeExtern};

use crate::name::Name;
use crate::path;

/// A directory's children by name: name order is also etcd's `sorted` order.
pub(crate) type Children = imbl::OrdMap<Name, Arc<Node>>;

/// A file or directory. Its path is not stored: it is known from the walk that
/// reached it, which keeps a million keys cheap.
/// `Clone` is shallow (a directory's children are shared, not copied). No `Debug` or
/// `PartialEq`: derived, they would recurse once per level.
#[derive(Clone)]
pub(crate) struct Node {
    pub created_index: u64,
    pub modified_index: u64,
    /// Absolute expiration in Unix nanoseconds; `None` is permanent.
    pub expire_ns: Option<i64>,
    pub kind: Kind,
}

/// What a node holds.
#[derive(Clone)]
pub(crate) enum Kind {
    File(ByteString),
    /// Children in name order, which is also etcd's `sorted` order.
    Dir(Children),
}

impl Node {
    pub fn new_file(value: ByteString, index: u64, expire_ns: Option<i64>) -> Node {
        Node {
            created_index: index,
            modified_index: index,
            expire_ns,
            kind: Kind::File(value),
        }
    }

    pub fn new_dir(index: u64, expire_ns: Option<i64>) -> Node {
        Node {
            created_index: index,
            modified_index: index,
            expire_ns,
            kind: Kind::Dir(Children::new()),
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    /// The value of a file; directories read as "" (etcd's `node.Value` is empty).
    pub fn value(&self) -> &[u8] {
        match &self.kind {
            Kind::File(v) => v,
            Kind::Dir(_) => b"",
        }
    }

    pub fn children(&self) -> Option<&Children> {
        match &self.kind {
            Kind::Dir(c) => Some(c),
            Kind::File(_) => None,
        }
    }

    /// etcd's `expirationAndTTL`: the expiration and the seconds left, rounded up.
    pub fn expiration_and_ttl(&self, now_ns: i64) -> (Option<i64>, i64) {
        match self.expire_ns {
            None => (None, 0),
            Some(at) => {
                let left = i128::from(at) - i128::from(now_ns);
                let mut ttl = left / 1_000_000_000;
                if left % 1_000_000_000 > 0 {
                    ttl += 1;
                }
                (
                    Some(at),
                    ttl.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
                )
            }
        }
    }

    /// The node as shown without its children: key, value or `dir`, TTL and indexes.
    fn shown(&self, node_path: &[u8], now_ns: i64) -> NodeExtern {
        let (expiration, ttl) = self.expiration_and_ttl(now_ns);
        NodeExtern {
            key: shown_key(node_path),
            value: match &self.kind {
                Kind::File(v) => Some(v.clone()),
                Kind::Dir(_) => None,
            },
            dir: self.is_dir(),
            expiration,
            ttl,
            modified_index: self.modified_index,
            created_index: self.created_index,
            ..NodeExtern::default()
        }
    }

    /// etcd's `node.Repr`: the node as shown, children included when `recursive`.
    pub fn repr(&self, node_path: &[u8], recursive: bool, now_ns: i64) -> NodeExtern {
        match &self.kind {
            Kind::Dir(children) if recursive => list_visible(
                self.shown(node_path, now_ns),
                children,
                node_path,
                true,
                now_ns,
            ),
            _ => self.shown(node_path, now_ns),
        }
    }

    /// etcd's `loadInternalNode`: like `repr`, but a directory always lists its children
    /// (recursively only when asked).
    pub fn load(&self, node_path: &[u8], recursive: bool, now_ns: i64) -> NodeExtern {
        match &self.kind {
            Kind::Dir(children) => list_visible(
                self.shown(node_path, now_ns),
                children,
                node_path,
                recursive,
                now_ns,
            ),
            Kind::File(_) => self.shown(node_path, now_ns),
        }
    }

    /// Visits this node's subtree children first, then the node itself, as etcd's
    /// `node.Remove` calls back: `visit(path, node)`. An explicit stack and one path
    /// buffer, so that a deep tree costs neither stack nor a path per level.
    pub fn walk_post_order(&self, node_path: &[u8], visit: &mut dyn FnMut(&[u8], &Node)) {
        let mut path = node_path.to_vec();
        // Each open node, the path length before its name was added, and its children.
        let mut stack = vec![(self, path.len(), self.children().map(|c| c.iter()))];
        while let Some((node, path_len, children)) = stack.last_mut() {
            match children.as_mut().and_then(Iterator::next) {
                Some((name, child)) => {
                    let before = path.len();
                    path::push_name(&mut path, name);
                    let child: &Node = child;
                    stack.push((child, before, child.children().map(|c| c.iter())));
                }
                None => {
                    let (node, path_len) = (*node, *path_len);
                    visit(&path, node);
                    path.truncate(path_len);
                    stack.pop();
                }
            }
        }
    }
}

impl Drop for Node {
    /// Dismantles the subtree level by level: the drop glue of nested maps would recurse
    /// once per level, and a key can be thousands of levels deep. Only what this node
    /// owns alone is dismantled; a child that a snapshot view (or another version of the
    /// tree) still holds is left to its last holder, whose drop lands here too.
    fn drop(&mut self) {
        let Kind::Dir(children) = &mut self.kind else {
            return;
        };
        if children.is_empty() {
            return;
        }
        let mut pending = vec![std::mem::take(children)];
        while let Some(map) = pending.pop() {
            // Our own reference to each child that has children of its own, so that
            // dropping the map (which may share its B+tree with another version) frees
            // none of them in its drop glue, which would recurse through theirs.
            let deep: Vec<Arc<Node>> = map
                .values()
                .filter(|child| child.children().is_some_and(|c| !c.is_empty()))
                .cloned()
                .collect();
            drop(map);
            for child in deep {
                // `None`: someone else still holds it, and dismantles it when done.
                if let Some(mut child) = Arc::into_inner(child) {
                    if let Kind::Dir(grandchildren) = &mut child.kind {
                        pending.push(std::mem::take(grandchildren));
                    }
                }
            }
        }
    }
}

/// Adds the visible children of the directory at `dir_path` to `shown`, hidden ones left
/// out, in name order; with `recursive`, every directory below lists its own the same
/// way. An explicit stack instead of recursion, however deep the tree.
fn list_visible(
    shown: NodeExtern,
    children: &Children,
    dir_path: &[u8],
    recursive: bool,
    now_ns: i64,
) -> NodeExtern {
    // Each directory being listed: its node as shown, its path, the children left.
    let mut stack = vec![(shown, ByteString::from(dir_path), children.iter())];
    loop {
        let (dir_shown, dir_path, children) = stack.last_mut().expect("the stack holds the top");
        match children.next() {
            Some((name, _)) if path::is_hidden_name(name) => {}
            Some((name, child)) => {
                let child_path = path::join(dir_path, name);
                let child_shown = child.shown(&child_path, now_ns);
                match &child.kind {
                    Kind::Dir(grandchildren) if recursive => {
                        stack.push((child_shown, child_path, grandchildren.iter()));
                    }
                    _ => dir_shown.nodes.push(child_shown),
                }
            }
            None => {
                let (done, _, _) = stack.pop().expect("the stack holds the top");
                match stack.last_mut() {
                    Some((parent, _, _)) => parent.nodes.push(done),
                    None => return done,
                }
            }
        }
    }
}

/// etcd shows the root without a key (its internal "/1" trims to "").
pub(crate) fn shown_key(node_path: &[u8]) -> ByteString {
    if node_path == b"/" {
        ByteString::new()
    } else {
        node_path.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_like_etcd() {
        let n = Node::new_file("v".into(), 1, Some(10_000_000_000));
        assert_eq!(n.expiration_and_ttl(0).1, 10);
        assert_eq!(n.expiration_and_ttl(1).1, 10);
        assert_eq!(n.expiration_and_ttl(9_000_000_001).1, 1);
        assert_eq!(n.expiration_and_ttl(10_000_000_000).1, 0);
        // Past its time but not yet expired by a sync: Go's division truncates toward zero.
        assert_eq!(n.expiration_and_ttl(11_500_000_000).1, -1);
    }
}
