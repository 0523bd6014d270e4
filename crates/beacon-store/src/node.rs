//! The node tree: files hold a value, directories hold children by name.

use std::collections::BTreeMap;

use beacon_api::NodeExtern;

use crate::path;

/// A file or directory. Its path is not stored: it is known from the walk that
/// reached it, which keeps a million keys cheap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub created_index: u64,
    pub modified_index: u64,
    /// Absolute expiration in Unix nanoseconds; `None` is permanent.
    pub expire_ns: Option<i64>,
    pub kind: Kind,
}

/// What a node holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File(String),
    /// Children in name order, which is also etcd's `sorted` order.
    Dir(BTreeMap<String, Node>),
}

impl Node {
    pub fn new_file(value: String, index: u64, expire_ns: Option<i64>) -> Node {
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
            kind: Kind::Dir(BTreeMap::new()),
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    /// The value of a file; directories read as "" (etcd's `node.Value` is empty).
    pub fn value(&self) -> &str {
        match &self.kind {
            Kind::File(v) => v,
            Kind::Dir(_) => "",
        }
    }

    pub fn children(&self) -> Option<&BTreeMap<String, Node>> {
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

    /// etcd's `node.Repr`: the node as shown, children included when `recursive`.
    pub fn repr(&self, node_path: &str, recursive: bool, now_ns: i64) -> NodeExtern {
        let (expiration, ttl) = self.expiration_and_ttl(now_ns);
        let mut out = NodeExtern {
            key: shown_key(node_path),
            expiration,
            ttl,
            modified_index: self.modified_index,
            created_index: self.created_index,
            ..NodeExtern::default()
        };
        match &self.kind {
            Kind::File(v) => out.value = Some(v.clone()),
            Kind::Dir(children) => {
                out.dir = true;
                if recursive {
                    out.nodes = list_visible(children, node_path, true, now_ns);
                }
            }
        }
        out
    }

    /// etcd's `loadInternalNode`: like `repr`, but a directory always lists its children
    /// (recursively only when asked).
    pub fn load(&self, node_path: &str, recursive: bool, now_ns: i64) -> NodeExtern {
        let mut out = self.repr(node_path, false, now_ns);
        if let Kind::Dir(children) = &self.kind {
            out.nodes = list_visible(children, node_path, recursive, now_ns);
        }
        out
    }

    /// Visits this node's subtree children first, then the node itself, as etcd's
    /// `node.Remove` calls back: `visit(path, node)`.
    pub fn walk_post_order(&self, node_path: &str, visit: &mut dyn FnMut(&str, &Node)) {
        if let Kind::Dir(children) = &self.kind {
            for (name, child) in children {
                child.walk_post_order(&path::join(node_path, name), visit);
            }
        }
        visit(node_path, self);
    }
}

/// Children as shown: hidden ones left out, in name order.
fn list_visible(
    children: &BTreeMap<String, Node>,
    dir_path: &str,
    recursive: bool,
    now_ns: i64,
) -> Vec<NodeExtern> {
    children
        .iter()
        .filter(|(name, _)| !path::is_hidden_name(name))
        .map(|(name, child)| child.repr(&path::join(dir_path, name), recursive, now_ns))
        .collect()
}

/// etcd shows the root without a key (its internal "/1" trims to "").
pub(crate) fn shown_key(node_path: &str) -> String {
    if node_path == "/" {
        String::new()
    } else {
        node_path.to_string()
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
