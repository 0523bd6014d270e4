//! `NodeExtern`, a node as etcd shows it, and `NodeList`, a directory's listed children
//! (two types that hold each other, so they share a file). A recursive listing of a key thousands of
//! levels deep nests that many lists (etcd accepts such keys), so nothing here recurses
//! per level: dropping, cloning, comparing, printing and serde all walk the tree with an
//! explicit stack, in pre-order.
//!
//! Serde: reading accepts etcd's nested JSON arrays (clients parse etcd's answers;
//! serde_json's own nesting limit bounds those) and the flat form below. Writing gives
//! the flat form, `{"preorder":[[depth,node],...]}`, for Beacon's own messages (a
//! follower's forwarded quorum read); etcd's JSON is written by [`crate::go_json`].

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeStruct, Serializer};

use crate::byte_string::ByteString;

/// A node as etcd shows it; every field is omitted when empty, as Go's `omitempty` does.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeExtern {
    /// The key; empty for the root, which etcd shows without a key. Bytes, as in etcd.
    #[serde(skip_serializing_if = "no_bytes", default)]
    pub key: ByteString,
    /// The value of a file node; `None` for directories. Bytes, as in etcd.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<ByteString>,
    /// True for a directory.
    #[serde(skip_serializing_if = "is_false", default)]
    pub dir: bool,
    /// When the node expires, in Unix nanoseconds; shown as RFC 3339.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_expiration",
        deserialize_with = "deserialize_expiration",
        default
    )]
    pub expiration: Option<i64>,
    /// Seconds left to live, rounded up; 0 (omitted) for permanent nodes.
    #[serde(skip_serializing_if = "is_zero_i64", default)]
    pub ttl: i64,
    /// Children of a directory, when listed; omitted when empty.
    #[serde(skip_serializing_if = "no_nodes", default)]
    pub nodes: NodeList,
    /// etcd index of the node's last change.
    #[serde(rename = "modifiedIndex", skip_serializing_if = "is_zero_u64", default)]
    pub modified_index: u64,
    /// etcd index of the node's creation.
    #[serde(rename = "createdIndex", skip_serializing_if = "is_zero_u64", default)]
    pub created_index: u64,
}

/// A directory's children as listed, in order.
#[derive(Default)]
pub struct NodeList(Vec<NodeExtern>);

impl NodeList {
    /// Every node below, parents before children, each with its depth (0 for these
    /// children themselves).
    pub fn preorder(&self) -> Preorder<'_> {
        Preorder {
            stack: vec![self.0.iter()],
        }
    }

    /// Rebuilds a tree from `(depth, node)` in pre-order, each node without children.
    /// `None` when a depth skips a level.
    fn from_preorder(entries: impl IntoIterator<Item = (usize, NodeExtern)>) -> Option<NodeList> {
        let mut top = Vec::new();
        // open[i] is the node at depth i whose children are still arriving.
        let mut open: Vec<NodeExtern> = Vec::new();
        for (depth, node) in entries {
            if depth > open.len() {
                return None;
            }
            while open.len() > depth {
                close_last(&mut open, &mut top);
            }
            open.push(node);
        }
        while !open.is_empty() {
            close_last(&mut open, &mut top);
        }
        Some(NodeList(top))
    }
}

fn close_last(open: &mut Vec<NodeExtern>, top: &mut Vec<NodeExtern>) {
    if let Some(done) = open.pop() {
        match open.last_mut() {
            Some(parent) => parent.nodes.0.push(done),
            None => top.push(done),
        }
    }
}

/// A node's own fields, without its children.
fn shallow(n: &NodeExtern) -> NodeExtern {
    NodeExtern {
        key: n.key.clone(),
        value: n.value.clone(),
        dir: n.dir,
        expiration: n.expiration,
        ttl: n.ttl,
        nodes: NodeList::default(),
        modified_index: n.modified_index,
        created_index: n.created_index,
    }
}

fn shallow_eq(a: &NodeExtern, b: &NodeExtern) -> bool {
    a.key == b.key
        && a.value == b.value
        && a.dir == b.dir
        && a.expiration == b.expiration
        && a.ttl == b.ttl
        && a.modified_index == b.modified_index
        && a.created_index == b.created_index
}

/// Pre-order walk of a [`NodeList`], with each node's depth.
pub struct Preorder<'a> {
    stack: Vec<std::slice::Iter<'a, NodeExtern>>,
}

impl<'a> Iterator for Preorder<'a> {
    type Item = (usize, &'a NodeExtern);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let depth = self.stack.len().checked_sub(1)?;
            match self.stack[depth].next() {
                Some(node) => {
                    if !node.nodes.0.is_empty() {
                        self.stack.push(node.nodes.0.iter());
                    }
                    return Some((depth, node));
                }
                None => {
                    self.stack.pop();
                }
            }
        }
    }
}

impl Drop for NodeList {
    fn drop(&mut self) {
        // Each node's own list is taken out before the node drops, so every drop is shallow.
        let mut pending = vec![std::mem::take(&mut self.0)];
        while let Some(list) = pending.pop() {
            for mut node in list {
                if !node.nodes.0.is_empty() {
                    pending.push(std::mem::take(&mut node.nodes.0));
                }
            }
        }
    }
}

impl Clone for NodeList {
    fn clone(&self) -> Self {
        NodeList::from_preorder(self.preorder().map(|(d, n)| (d, shallow(n))))
            .expect("a pre-order walk never skips a level")
    }
}

impl PartialEq for NodeList {
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (self.preorder(), other.preorder());
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some((da, na)), Some((db, nb))) if da == db && shallow_eq(na, nb) => {}
                _ => return false,
            }
        }
    }
}

impl Eq for NodeList {}

/// Prints a node's own fields (its children are printed flat by the list).
struct ShallowDebug<'a>(&'a NodeExtern);

impl fmt::Debug for ShallowDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        f.debug_struct("NodeExtern")
            .field("key", &n.key)
            .field("value", &n.value)
            .field("dir", &n.dir)
            .field("expiration", &n.expiration)
            .field("ttl", &n.ttl)
            .field("modified_index", &n.modified_index)
            .field("created_index", &n.created_index)
            .finish()
    }
}

impl fmt::Debug for NodeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.preorder().map(|(d, n)| (d, ShallowDebug(n))))
            .finish()
    }
}

impl Deref for NodeList {
    type Target = Vec<NodeExtern>;
    fn deref(&self) -> &Vec<NodeExtern> {
        &self.0
    }
}

impl DerefMut for NodeList {
    fn deref_mut(&mut self) -> &mut Vec<NodeExtern> {
        &mut self.0
    }
}

impl From<Vec<NodeExtern>> for NodeList {
    fn from(nodes: Vec<NodeExtern>) -> Self {
        NodeList(nodes)
    }
}

impl FromIterator<NodeExtern> for NodeList {
    fn from_iter<I: IntoIterator<Item = NodeExtern>>(iter: I) -> Self {
        NodeList(iter.into_iter().collect())
    }
}

impl IntoIterator for NodeList {
    type Item = NodeExtern;
    type IntoIter = std::vec::IntoIter<NodeExtern>;
    fn into_iter(mut self) -> Self::IntoIter {
        std::mem::take(&mut self.0).into_iter()
    }
}

impl<'a> IntoIterator for &'a NodeList {
    type Item = &'a NodeExtern;
    type IntoIter = std::slice::Iter<'a, NodeExtern>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A node's own fields for serde, in `NodeExtern`'s field names.
struct ShallowSer<'a>(&'a NodeExtern);

impl Serialize for ShallowSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        let mut st = s.serialize_struct("NodeExtern", 7)?;
        st.serialize_field("key", &n.key)?;
        if n.value.is_some() {
            st.serialize_field("value", &n.value)?;
        }
        if n.dir {
            st.serialize_field("dir", &n.dir)?;
        }
        if let Some(ns) = n.expiration {
            st.serialize_field("expiration", &crate::time::rfc3339_nano(ns))?;
        }
        if n.ttl != 0 {
            st.serialize_field("ttl", &n.ttl)?;
        }
        st.serialize_field("modifiedIndex", &n.modified_index)?;
        st.serialize_field("createdIndex", &n.created_index)?;
        st.end()
    }
}

struct PreorderSer<'a>(&'a NodeList);

impl Serialize for PreorderSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for (depth, node) in self.0.preorder() {
            seq.serialize_element(&(depth, ShallowSer(node)))?;
        }
        seq.end()
    }
}

impl Serialize for NodeList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("preorder", &PreorderSer(self))?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for NodeList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeListVisitor)
    }
}

struct NodeListVisitor;

impl<'de> Visitor<'de> for NodeListVisitor {
    type Value = NodeList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of nodes or {\"preorder\":[[depth,node],...]}")
    }

    /// etcd's form: an array of nested nodes.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeList, A::Error> {
        let mut nodes = Vec::new();
        while let Some(node) = seq.next_element::<NodeExtern>()? {
            nodes.push(node);
        }
        Ok(NodeList(nodes))
    }

    /// Beacon's flat form.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeList, A::Error> {
        let mut list = None;
        while let Some(field) = map.next_key::<String>()? {
            if field != "preorder" {
                return Err(de::Error::unknown_field(&field, &["preorder"]));
            }
            let entries: Vec<(usize, NodeExtern)> = map.next_value()?;
            if entries.iter().any(|(_, n)| !n.nodes.0.is_empty()) {
                return Err(de::Error::custom("a pre-order node lists children"));
            }
            list = Some(
                NodeList::from_preorder(entries)
                    .ok_or_else(|| de::Error::custom("a pre-order depth skips a level"))?,
            );
        }
        list.ok_or_else(|| de::Error::missing_field("preorder"))
    }
}

fn no_bytes(s: &ByteString) -> bool {
    s.is_empty()
}

fn no_nodes(nodes: &NodeList) -> bool {
    nodes.is_empty()
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn serialize_expiration<S: Serializer>(ns: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ns {
        Some(ns) => s.serialize_str(&crate::time::rfc3339_nano(*ns)),
        None => s.serialize_none(),
    }
}

fn deserialize_expiration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    text.map(|t| {
        crate::time::parse_rfc3339_nano(&t)
            .ok_or_else(|| serde::de::Error::custom(format!("bad expiration {t:?}")))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(key: &str) -> NodeExtern {
        NodeExtern {
            key: key.into(),
            value: Some("v".into()),
            modified_index: 1,
            created_index: 1,
            ..NodeExtern::default()
        }
    }

    fn dir(key: &str, nodes: Vec<NodeExtern>) -> NodeExtern {
        NodeExtern {
            key: key.into(),
            dir: true,
            nodes: nodes.into(),
            modified_index: 1,
            created_index: 1,
            ..NodeExtern::default()
        }
    }

    #[test]
    fn flat_form_round_trips_and_etcd_form_reads() {
        let tree: NodeList = vec![
            dir("/a", vec![dir("/a/b", vec![leaf("/a/b/c")]), leaf("/a/d")]),
            leaf("/e"),
        ]
        .into();
        let json = serde_json::to_string(&tree).unwrap();
        assert!(
            json.starts_with("{\"preorder\":[[0,{\"key\":\"/a\""),
            "{json}"
        );
        let back: NodeList = serde_json::from_str(&json).unwrap();
        assert_eq!(back, tree);
        assert_eq!(back.clone(), tree);
        let etcd = r#"[{"key":"/a","dir":true,"nodes":[{"key":"/a/b","value":"v"}]}]"#;
        let parsed: NodeList = serde_json::from_str(etcd).unwrap();
        assert_eq!(parsed[0].nodes[0].value.as_deref(), Some(&b"v"[..]));
        let skips = r#"{"preorder":[[1,{"key":"/a"}]]}"#;
        assert!(serde_json::from_str::<NodeList>(skips).is_err());
    }
}
