//! etcd v2's key-space JSON: `Event` (the response body) and `Action`; the node it
//! carries, `NodeExtern`, lives with its children's list in `node_list`.

use serde::Serialize;

use crate::node_list::NodeExtern;

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
}

fn is_false(b: &bool) -> bool {
    !*b
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
