//! etcd v2's key-space JSON: `Event` (the response body) and `NodeExtern` (a node as shown).

use serde::{Serialize, Serializer};

use crate::byte_string::ByteString;
use crate::node_list::NodeList;

/// What an event did, as named in the `action` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, Serialize)]
pub enum Action {
    #[serde(rename = "get")]
    Get,
    #[serde(rename = "create")]
    Create,
    #[serde(rename = "set")]
    Set,
    #[serde(rename = "update")]
    Update,
    #[serde(rename = "delete")]
    Delete,
    #[serde(rename = "compareAndSwap")]
    CompareAndSwap,
    #[serde(rename = "compareAndDelete")]
    CompareAndDelete,
    #[serde(rename = "expire")]
    Expire,
}

impl Action {
    /// etcd's spelling of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Create => "create",
            Action::Set => "set",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::CompareAndSwap => "compareAndSwap",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
        }
    }
}

/// A node as etcd shows it; every field is omitted when empty, as Go's `omitempty` does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// The body of a successful v2 keys response and of a watch notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// The node after the action (for `get`, the node read).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<NodeExtern>,
    /// The node before the action, when there was one.
    #[serde(rename = "prevNode", skip_serializing_if = "Option::is_none", default)]
    pub prev_node: Option<NodeExtern>,
    /// The store's etcd index after the action; sent as `X-Etcd-Index`, not in the body.
    #[serde(skip)]
    pub etcd_index: u64,
    /// True when a TTL refresh made this event; watchers are not woken by it.
    #[serde(skip_serializing_if = "is_false", default)]
    pub refresh: bool,
}

impl Event {
    /// The index watchers compare against: the node's modified index.
    pub fn index(&self) -> u64 {
        self.node.as_ref().map_or(0, |n| n.modified_index)
    }

    /// The key the event concerns.
    pub fn key(&self) -> &[u8] {
        self.node.as_ref().map_or(b"", |n| n.key.as_bytes())
    }

    /// etcd answers 201 for a create, and for a set that made a new node.
    pub fn is_created(&self) -> bool {
        self.action == Action::Create || (self.action == Action::Set && self.prev_node.is_none())
    }

    /// The JSON line etcd writes: the body and a newline. `refresh` is left out: etcd
    /// copies events before writing them and its copy drops the flag, so no client ever
    /// sees it (it only keeps refreshes out of watches). Written by [`crate::go_json`],
    /// without recursion, as Go escapes it.
    pub fn to_json_line(&self) -> String {
        let mut line = String::from("{\"action\":\"");
        line.push_str(self.action.as_str());
        line.push('"');
        if let Some(node) = &self.node {
            line.push_str(",\"node\":");
            crate::go_json::node(&mut line, node);
        }
        if let Some(prev) = &self.prev_node {
            line.push_str(",\"prevNode\":");
            crate::go_json::node(&mut line, prev);
        }
        line.push_str("}\n");
        line
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

    #[test]
    fn event_json_matches_etcd_field_order_and_omissions() {
        let ev = Event {
            action: Action::Set,
            node: Some(NodeExtern {
                key: "/foo".into(),
                value: Some("bar".into()),
                expiration: Some(1_500_000_000),
                ttl: 5,
                modified_index: 7,
                created_index: 7,
                ..Default::default()
            }),
            prev_node: None,
            etcd_index: 7,
            refresh: false,
        };
        assert_eq!(
            ev.to_json_line(),
            "{\"action\":\"set\",\"node\":{\"key\":\"/foo\",\"value\":\"bar\",\"expiration\":\"1970-01-01T00:00:01.5Z\",\"ttl\":5,\"modifiedIndex\":7,\"createdIndex\":7}}\n"
        );
        assert!(ev.is_created());
    }

    #[test]
    fn root_has_no_key_and_empty_dirs_no_nodes() {
        let root = NodeExtern {
            dir: true,
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&root).unwrap(), "{\"dir\":true}");
    }
}
