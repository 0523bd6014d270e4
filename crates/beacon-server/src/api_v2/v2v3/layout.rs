//! Where etcd's v2v3 emulation keeps the v2 tree in the v3 keyspace, so that a v3
//! client sees the same keys under the prefix whichever server wrote them.
//!
//! A node's *store path* is etcd's: the key under `/1` (the v2 store's keys
//! namespace), `/1` itself for the root. A file is the v3 key
//! `<prefix>/<depth:03>/k/<store path>`, a directory the same with a `/` appended (its
//! value empty), where the depth counts the path's slashes: the children of a directory
//! are then the keys that start with the next depth and the directory's path. Every write
//! also puts the v2 action's name at `<prefix>/act`, which is how a watch tells a
//! `create` from a `set`.

use beacon_api::{ByteString, NodeExtern};
use beacon_proto::mvccpb::KeyValue;

/// A v2v3 tree under one v3 prefix (`--experimental-enable-v2v3`).
pub struct Layout {
    prefix: Vec<u8>,
}

impl Layout {
    pub fn new(prefix: &[u8]) -> Self {
        Layout {
            prefix: prefix.to_vec(),
        }
    }

    /// The v3 key of the node at `path` (a store path) as a file.
    pub fn file(&self, path: &[u8]) -> Vec<u8> {
        self.at_depth(path, 0)
    }

    /// The v3 key of the node at `path` as a directory.
    pub fn dir(&self, path: &[u8]) -> Vec<u8> {
        let mut key = self.file(path);
        key.push(b'/');
        key
    }

    /// The prefix of the nodes `depth` levels below `path`. etcd's has no `/` after
    /// the path, so its listing of `/a` also lists the children of `/ab`, and its
    /// recursive delete of `/a` deletes them: this one ends at the boundary.
    pub fn below(&self, path: &[u8], depth: usize) -> Vec<u8> {
        let mut key = self.at_depth(path, depth);
        if path != ROOT {
            key.push(b'/');
        }
        key
    }

    fn at_depth(&self, path: &[u8], depth: usize) -> Vec<u8> {
        let slashes = path.iter().filter(|&&b| b == b'/').count() + depth;
        let mut key = self.prefix.clone();
        key.extend_from_slice(format!("/{slashes:03}/k/").as_bytes());
        key.extend_from_slice(path);
        key
    }

    /// Where every write records its action.
    pub fn action_key(&self) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(b"/act");
        key
    }

    /// The store path of a node's v3 key, and whether it is a directory; `None` for a
    /// key that is not a node (the action key, or a key a v3 client put there).
    pub fn path_of(&self, key: &[u8]) -> Option<(Vec<u8>, bool)> {
        let rest = key
            .strip_prefix(self.prefix.as_slice())?
            .strip_prefix(b"/")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits < 3 {
            return None;
        }
        let path = rest[digits..].strip_prefix(b"/k/")?;
        if !path.starts_with(ROOT) {
            return None;
        }
        match path.strip_suffix(b"/") {
            Some(dir) => Some((dir.to_vec(), true)),
            None => Some((path.to_vec(), false)),
        }
    }

    /// The v2 node a v3 key-value holds (etcd's `mkV2Node`): a directory has no value,
    /// a file the value it holds (empty in a delete event's tombstone).
    pub fn node(&self, kv: &KeyValue) -> Option<NodeExtern> {
        let (path, dir) = self.path_of(&kv.key)?;
        Some(NodeExtern {
            key: key_of(&path),
            value: (!dir).then(|| ByteString::from(kv.value.as_slice())),
            dir,
            modified_index: v2_index(kv.mod_revision),
            created_index: v2_index(kv.create_revision),
            ..NodeExtern::default()
        })
    }
}

/// The store path of the root.
pub const ROOT: &[u8] = b"/1";

/// The store path of `key`, a v2 key as the API cleaned it (`/` for the root).
pub fn store_path(key: &[u8]) -> Vec<u8> {
    let mut path = ROOT.to_vec();
    if key != b"/" {
        path.extend_from_slice(key);
    }
    path
}

/// The v2 key of a store path, as answers show it (empty for the root, which etcd
/// shows without a key).
pub fn key_of(path: &[u8]) -> ByteString {
    ByteString::from(path.strip_prefix(ROOT).unwrap_or(path))
}

/// The directories above `path`, nearest first, the root left out.
pub fn parents(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = path;
    std::iter::from_fn(move || {
        let cut = rest.iter().rposition(|&b| b == b'/')?;
        rest = &rest[..cut];
        (rest.len() > ROOT.len()).then_some(rest)
    })
}

/// The directory `path` is in (the root for a child of the root).
pub fn parent(path: &[u8]) -> &[u8] {
    parents(path).next().unwrap_or(ROOT)
}

/// The v2 index of a v3 revision: the emulation's indexes start at revision 1's 0.
pub fn v2_index(revision: i64) -> u64 {
    u64::try_from(revision.saturating_sub(1)).unwrap_or(0)
}

/// The v3 revision of a v2 index (`prevIndex`).
pub fn v3_revision(index: u64) -> i64 {
    if index == 0 {
        0
    } else {
        i64::try_from(index).map_or(i64::MAX, |i| i.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_etcds() {
        let l = Layout::new(b"/pfx");
        assert_eq!(l.file(&store_path(b"/a")), b"/pfx/002/k//1/a");
        assert_eq!(l.dir(&store_path(b"/d/e")), b"/pfx/003/k//1/d/e/");
        assert_eq!(l.file(&store_path(b"/")), b"/pfx/001/k//1");
        assert_eq!(l.below(&store_path(b"/d"), 1), b"/pfx/003/k//1/d/");
        assert_eq!(l.below(ROOT, 1), b"/pfx/002/k//1");
        assert_eq!(l.action_key(), b"/pfx/act");
    }

    #[test]
    fn nodes_read_back_from_their_keys() {
        let l = Layout::new(b"/pfx");
        assert_eq!(
            l.path_of(b"/pfx/003/k//1/d/e/"),
            Some((b"/1/d/e".to_vec(), true))
        );
        assert_eq!(
            l.path_of(b"/pfx/002/k//1/a"),
            Some((b"/1/a".to_vec(), false))
        );
        assert_eq!(l.path_of(b"/pfx/act"), None);
        assert_eq!(l.path_of(b"/pfx/x"), None);
        assert_eq!(l.path_of(b"/other/002/k//1/a"), None);
        let kv = KeyValue {
            key: b"/pfx/002/k//1/a".to_vec(),
            value: b"1".to_vec(),
            create_revision: 2,
            mod_revision: 5,
            ..KeyValue::default()
        };
        let node = l.node(&kv).unwrap();
        assert_eq!(node.key, "/a");
        assert_eq!(node.value.as_ref().unwrap(), "1");
        assert_eq!((node.created_index, node.modified_index), (1, 4));
    }

    #[test]
    fn parents_stop_above_the_root() {
        let p = store_path(b"/a/b/c");
        let up: Vec<&[u8]> = parents(&p).collect();
        assert_eq!(up, vec![&b"/1/a/b"[..], &b"/1/a"[..]]);
        assert_eq!(parent(&store_path(b"/a")), ROOT);
        assert_eq!(parents(ROOT).count(), 0);
    }

    #[test]
    fn indexes_are_revisions_less_one() {
        assert_eq!(v2_index(0), 0);
        assert_eq!(v2_index(1), 0);
        assert_eq!(v2_index(7), 6);
        assert_eq!(v3_revision(0), 0);
        assert_eq!(v3_revision(6), 7);
    }
}
