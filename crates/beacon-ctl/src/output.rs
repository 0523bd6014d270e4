//! Printing answers in etcdctl's three formats (`simple`, `extended`, `json`), behind one
//! trait so each command picks the printer once and never matches on the format itself.

use std::io::Write;

use beacon_api::{Action, NodeExtern};
use beacon_client::Response;

use crate::go_json;

/// One output format.
pub trait Printer {
    /// Prints a key's answer (etcdctl's `printResponseKey`).
    fn response(&self, resp: &Response, out: &mut dyn Write) -> std::io::Result<()>;

    /// Prints an `ls` answer; `slash_dirs` is `ls -p`.
    fn listing(
        &self,
        resp: &Response,
        _slash_dirs: bool,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        self.response(resp, out)
    }

    /// Whether this is the `simple` format, which some commands keep silent in.
    fn is_simple(&self) -> bool {
        false
    }
}

/// The printer for `--output NAME`; an unknown name prints etcdctl's complaint instead.
pub fn printer_for(name: &str) -> Box<dyn Printer> {
    match name {
        "simple" => Box::new(Simple),
        "extended" => Box::new(Extended),
        "json" => Box::new(Json),
        other => Box::new(Unsupported(other.to_string())),
    }
}

fn value(node: Option<&NodeExtern>) -> &str {
    // etcd's JSON is UTF-8, so every value read from it is too.
    node.and_then(|n| n.value.as_ref())
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

/// The value alone; for a delete, the value it removed.
pub struct Simple;

impl Printer for Simple {
    fn response(&self, resp: &Response, out: &mut dyn Write) -> std::io::Result<()> {
        let ev = &resp.event;
        if ev.action == Action::Delete {
            writeln!(out, "PrevNode.Value: {}", value(ev.prev_node.as_ref()))
        } else {
            writeln!(out, "{}", value(ev.node.as_ref()))
        }
    }

    fn listing(
        &self,
        resp: &Response,
        slash_dirs: bool,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let Some(node) = resp.node() else {
            return Ok(());
        };
        if !node.dir {
            writeln!(out, "{}", node.key)?;
        }
        for child in &node.nodes {
            tree(child, slash_dirs, out)?;
        }
        Ok(())
    }

    fn is_simple(&self) -> bool {
        true
    }
}

fn tree(node: &NodeExtern, slash_dirs: bool, out: &mut dyn Write) -> std::io::Result<()> {
    if node.dir && slash_dirs {
        writeln!(out, "{}/", node.key)?;
    } else {
        writeln!(out, "{}", node.key)?;
    }
    for child in &node.nodes {
        tree(child, slash_dirs, out)?;
    }
    Ok(())
}

/// RFC 2822-style header lines, a blank line, then the value.
pub struct Extended;

impl Printer for Extended {
    fn response(&self, resp: &Response, out: &mut dyn Write) -> std::io::Result<()> {
        let ev = &resp.event;
        let node = ev.node.clone().unwrap_or_default();
        writeln!(out, "Key: {}", node.key)?;
        writeln!(out, "Created-Index: {}", node.created_index)?;
        writeln!(out, "Modified-Index: {}", node.modified_index)?;
        if let Some(prev) = &ev.prev_node {
            writeln!(
                out,
                "PrevNode.Value: {}",
                prev.value
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )?;
        }
        writeln!(out, "TTL: {}", node.ttl)?;
        writeln!(out, "Index: {}", resp.etcd_index)?;
        if ev.action != Action::Delete {
            writeln!(out)?;
            writeln!(out, "{}", value(Some(&node)))?;
        }
        Ok(())
    }
}

/// The answer as the Go client's JSON, on one line.
pub struct Json;

impl Printer for Json {
    fn response(&self, resp: &Response, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{}", go_json::response(&resp.event))
    }
}

/// An unknown format: etcdctl says so on stderr and still succeeds.
pub struct Unsupported(String);

impl Printer for Unsupported {
    fn response(&self, _resp: &Response, _out: &mut dyn Write) -> std::io::Result<()> {
        eprintln!("Unsupported output format: {}", self.0);
        Ok(())
    }
}
