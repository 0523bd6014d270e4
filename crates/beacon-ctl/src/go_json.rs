//! A response as etcdctl's `-o json` prints it: the Go client's structs re-marshalled by
//! Go's `encoding/json` (field order, `"nodes":null`, `"value":""` on directories, HTML
//! characters escaped), which differs from the server's own JSON.

use std::fmt::Write;

use beacon_api::{time::rfc3339_nano, Event, NodeExtern};

/// `{"action":..,"node":..,"prevNode":..}` on one line, without the newline.
pub fn response(event: &Event) -> String {
    let mut out = String::from("{\"action\":");
    string(&mut out, event.action.as_str().as_bytes());
    out.push_str(",\"node\":");
    optional_node(&mut out, event.node.as_ref());
    out.push_str(",\"prevNode\":");
    optional_node(&mut out, event.prev_node.as_ref());
    out.push('}');
    out
}

fn optional_node(out: &mut String, node: Option<&NodeExtern>) {
    match node {
        Some(n) => self::node(out, n),
        None => out.push_str("null"),
    }
}

fn node(out: &mut String, n: &NodeExtern) {
    out.push_str("{\"key\":");
    string(out, &n.key);
    if n.dir {
        out.push_str(",\"dir\":true");
    }
    out.push_str(",\"value\":");
    string(out, n.value.as_deref().unwrap_or(b""));
    out.push_str(",\"nodes\":");
    if n.nodes.is_empty() {
        out.push_str("null");
    } else {
        out.push('[');
        for (i, child) in n.nodes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            node(out, child);
        }
        out.push(']');
    }
    let _ = write!(
        out,
        ",\"createdIndex\":{},\"modifiedIndex\":{}",
        n.created_index, n.modified_index
    );
    if let Some(ns) = n.expiration {
        out.push_str(",\"expiration\":");
        string(out, rfc3339_nano(ns).as_bytes());
    }
    if n.ttl != 0 {
        let _ = write!(out, ",\"ttl\":{}", n.ttl);
    }
    out.push('}');
}

/// A JSON string escaped as Go's encoder escapes it (as of Go 1.19, etcd 3.4's).
fn string(out: &mut String, s: &[u8]) {
    beacon_api::go_json::string(out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_api::Action;

    #[test]
    fn matches_etcdctl_json() {
        let ev = Event {
            action: Action::Create,
            node: Some(NodeExtern {
                key: "/d2".into(),
                dir: true,
                created_index: 7,
                modified_index: 7,
                ..Default::default()
            }),
            prev_node: None,
            etcd_index: 7,
            refresh: false,
        };
        assert_eq!(
            response(&ev),
            r#"{"action":"create","node":{"key":"/d2","dir":true,"value":"","nodes":null,"createdIndex":7,"modifiedIndex":7},"prevNode":null}"#
        );
    }

    #[test]
    fn escapes_like_go() {
        let mut out = String::new();
        string(&mut out, "a<b>&\"\u{1}\u{8}".as_bytes());
        assert_eq!(out, r#""a\u003cb\u003e\u0026\"\u0001\u0008""#);
    }
}
