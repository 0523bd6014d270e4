//! etcd's JSON as Go's `encoding/json` writes it (`json.NewEncoder(w).Encode(v)`, Go 1.19
//! as in etcd 3.4.23): `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`..., control
//! bytes as `\u00XX` (no `\b` or `\f`), and each byte that is not part of valid UTF-8 as
//! `\ufffd`, one per byte.
//!
//! A node is written with an explicit stack rather than by recursion: a key thousands of
//! levels deep nests that many `nodes` arrays in a recursive listing.

use std::fmt::Write;

use crate::node_list::NodeExtern;
use crate::time::rfc3339_nano;
use crate::v2::Event;

impl Event {
    /// The JSON line etcd writes: the body and a newline. `refresh` is left out: etcd
    /// copies events before writing them and its copy drops the flag, so no client ever
    /// sees it (it only keeps refreshes out of watches). Written here, without
    /// recursion, as Go escapes it.
    pub fn to_json_line(&self) -> String {
        let mut line = String::from("{\"action\":\"");
        line.push_str(self.action.as_str());
        line.push('"');
        if let Some(current) = &self.node {
            line.push_str(",\"node\":");
            node(&mut line, current);
        }
        if let Some(prev) = &self.prev_node {
            line.push_str(",\"prevNode\":");
            node(&mut line, prev);
        }
        line.push_str("}\n");
        line
    }
}

/// Appends `s` as a JSON string, escaped as Go escapes it.
pub fn string(out: &mut String, s: &[u8]) {
    out.push('"');
    for chunk in s.utf8_chunks() {
        let valid = chunk.valid();
        let bytes = valid.as_bytes();
        // Runs that need no escape are copied at once. Every byte to escape is ASCII,
        // except U+2028 and U+2029 (E2 80 A8, E2 80 A9), so bytes can be scanned.
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let (len, escape): (usize, Option<&str>) = match bytes[i] {
                b'"' => (1, Some("\\\"")),
                b'\\' => (1, Some("\\\\")),
                b'\n' => (1, Some("\\n")),
                b'\r' => (1, Some("\\r")),
                b'\t' => (1, Some("\\t")),
                b if b < 0x20 || matches!(b, b'<' | b'>' | b'&') => (1, Some("")),
                0xe2 if bytes.get(i + 1) == Some(&0x80)
                    && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) =>
                {
                    (3, Some(""))
                }
                _ => (1, None),
            };
            if let Some(escape) = escape {
                out.push_str(&valid[start..i]);
                if escape.is_empty() {
                    let c = valid[i..i + len].chars().next().unwrap_or_default();
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    out.push_str(escape);
                }
                start = i + len;
            }
            i += len;
        }
        out.push_str(&valid[start..]);
        // Go's decoder gives up on an invalid sequence one byte at a time.
        for _ in chunk.invalid() {
            out.push_str("\\ufffd");
        }
    }
    out.push('"');
}

/// Appends a node as etcd writes it, children included, in `NodeExtern`'s field order,
/// empty fields omitted (Go's `omitempty`).
pub fn node(out: &mut String, n: &NodeExtern) {
    // Each open node: its children still to write, and whether one was written yet.
    let mut stack: Vec<(&NodeExtern, std::slice::Iter<'_, NodeExtern>, bool)> = Vec::new();
    if open(out, n) {
        stack.push((n, n.nodes.iter(), false));
    }
    while let Some((parent, children, wrote_one)) = stack.last_mut() {
        match children.next() {
            Some(child) => {
                if *wrote_one {
                    out.push(',');
                }
                *wrote_one = true;
                if open(out, child) {
                    stack.push((child, child.nodes.iter(), false));
                }
            }
            None => {
                out.push(']');
                close(out, parent, true);
                stack.pop();
            }
        }
    }
}

/// Writes a node's fields up to its children. Returns true when it has children to
/// write (the `nodes` array is then open); otherwise the node is complete.
fn open(out: &mut String, n: &NodeExtern) -> bool {
    out.push('{');
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
    };
    if !n.key.is_empty() {
        sep(out);
        out.push_str("\"key\":");
        string(out, n.key.as_bytes());
    }
    if let Some(v) = &n.value {
        sep(out);
        out.push_str("\"value\":");
        string(out, v.as_bytes());
    }
    if n.dir {
        sep(out);
        out.push_str("\"dir\":true");
    }
    if let Some(ns) = n.expiration {
        sep(out);
        out.push_str("\"expiration\":");
        string(out, rfc3339_nano(ns).as_bytes());
    }
    if n.ttl != 0 {
        sep(out);
        let _ = write!(out, "\"ttl\":{}", n.ttl);
    }
    if n.nodes.is_empty() {
        let wrote_any = !first;
        close(out, n, wrote_any);
        false
    } else {
        sep(out);
        out.push_str("\"nodes\":[");
        true
    }
}

/// Writes the fields after the children and closes the node.
fn close(out: &mut String, n: &NodeExtern, wrote_any: bool) {
    let mut first = !wrote_any;
    for (name, v) in [
        ("modifiedIndex", n.modified_index),
        ("createdIndex", n.created_index),
    ] {
        if v != 0 {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
            let _ = write!(out, "\"{name}\":{v}");
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &[u8]) -> String {
        let mut out = String::new();
        string(&mut out, s);
        out
    }

    #[test]
    fn escapes_like_go_1_19() {
        // Checked against etcd 3.4.23 (`curl -d 'value=<%26>%E2%80%A8%EF%BF%BD%00%7F'`).
        assert_eq!(
            quoted("<&>\u{2028}\u{2029}\u{fffd}\0\x7f\x08\x0c\"\\\n\r\té".as_bytes()),
            // DEL (0x7f) is written as is.
            concat!(
                r#""\u003c\u0026\u003e\u2028\u2029�\u0000"#,
                "\x7f",
                r#"\u0008\u000c\"\\\n\r\té""#
            )
        );
    }

    #[test]
    fn each_invalid_byte_is_one_replacement() {
        // Go writes three for a cut 4-byte sequence; Rust's lossy decoding writes one.
        assert_eq!(quoted(b"\xf0\x9f\x98"), r#""\ufffd\ufffd\ufffd""#);
        assert_eq!(quoted(b"k\xff"), r#""k\ufffd""#);
        assert_eq!(quoted(b"\xc0\x80a"), r#""\ufffd\ufffda""#);
        assert_eq!(quoted("😀".as_bytes()), "\"😀\"");
    }

    #[test]
    fn nested_nodes_in_field_order() {
        let n = NodeExtern {
            dir: true,
            nodes: vec![
                NodeExtern {
                    key: "/a".into(),
                    dir: true,
                    nodes: vec![NodeExtern {
                        key: "/a/b".into(),
                        value: Some("1".into()),
                        modified_index: 2,
                        created_index: 2,
                        ..NodeExtern::default()
                    }]
                    .into(),
                    modified_index: 2,
                    created_index: 2,
                    ..NodeExtern::default()
                },
                NodeExtern {
                    key: "/e".into(),
                    dir: true,
                    modified_index: 3,
                    created_index: 3,
                    ..NodeExtern::default()
                },
            ]
            .into(),
            ..NodeExtern::default()
        };
        let mut out = String::new();
        node(&mut out, &n);
        assert_eq!(
            out,
            r#"{"dir":true,"nodes":[{"key":"/a","dir":true,"nodes":[{"key":"/a/b","value":"1","modifiedIndex":2,"createdIndex":2}],"modifiedIndex":2,"createdIndex":2},{"key":"/e","dir":true,"modifiedIndex":3,"createdIndex":3}]}"#
        );
        let mut empty = String::new();
        node(&mut empty, &NodeExtern::default());
        assert_eq!(empty, "{}");
    }
}
