//! etcd v2 long-poll watches as clients do them: `?wait=true&recursive=true`, then again
//! from the event's `modifiedIndex + 1`, resynchronising with a GET when the index has
//! left the server's 1000-event history.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::client::{Conn, Head};

/// etcd's "The event in requested index is outdated and cleared" error code.
pub const EVENT_INDEX_CLEARED: u64 = 401;

/// The fields of a watch event the bench uses.
pub struct Event {
    pub action: String,
    pub key: String,
    pub modified_index: u64,
}

/// What a finished long poll gave.
pub enum Outcome {
    Event(Event),
    /// The requested index is older than the history; the caller must resync.
    Cleared,
}

/// The watch URL of `dir`, from `wait_index` when given.
pub fn watch_path(dir: &str, wait_index: Option<u64>) -> String {
    match wait_index {
        Some(index) => format!("{dir}?wait=true&recursive=true&waitIndex={index}"),
        None => format!("{dir}?wait=true&recursive=true"),
    }
}

/// Sends a watch and returns when the server has answered with its head; both etcd and
/// Beacon send the head only once the watcher is registered, so from then on no event
/// can be missed.
pub async fn arm(conn: &mut Conn, dir: &str, wait_index: Option<u64>) -> Result<Head> {
    conn.send("GET", &watch_path(dir, wait_index), None)
        .await
        .context("sending a watch")
}

/// Waits for the body of an armed watch and parses it.
pub async fn outcome(conn: &mut Conn, head: Head) -> Result<Outcome> {
    let body = conn.body(&head).await?;
    let json: Value = serde_json::from_slice(&body)
        .with_context(|| format!("watch body: {:?}", String::from_utf8_lossy(&body)))?;
    if head.status != 200 {
        if json["errorCode"].as_u64() == Some(EVENT_INDEX_CLEARED) {
            return Ok(Outcome::Cleared);
        }
        bail!("watch answered {}: {json}", head.status);
    }
    let node = &json["node"];
    Ok(Outcome::Event(Event {
        action: json["action"].as_str().unwrap_or_default().to_string(),
        key: node["key"].as_str().unwrap_or_default().to_string(),
        modified_index: node["modifiedIndex"]
            .as_u64()
            .with_context(|| format!("event without modifiedIndex: {json}"))?,
    }))
}

/// The `X-Etcd-Index` of a GET of `dir`: a watch from index + 1 sees every later change.
pub async fn current_index(conn: &mut Conn, dir: &str) -> Result<u64> {
    let reply = conn.get(&format!("{dir}?recursive=true")).await?;
    reply
        .etcd_index
        .with_context(|| format!("GET {dir} answered {} without X-Etcd-Index", reply.status))
}
