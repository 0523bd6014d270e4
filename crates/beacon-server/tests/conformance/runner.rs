//! Runs one corpus file against one server and returns a record per compared step, in corpus
//! order, so that two servers' runs can be zipped together.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::corpus::{substitute, Entry, Step};
use crate::http::{send, RawRequest, RawResponse, REQUEST_TIMEOUT};
use crate::normalize::{failure, record, SentFacts, ServerFacts};

/// How often `until-status` and `watchers` conditions are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The hidden key whose write opens every file and fixes its base index.
const BASE_KEY: &str = "/v2/keys/_conformance_base";

/// One server under test.
#[derive(Debug, Clone)]
pub struct Side {
    /// "etcd" or "beacon", for messages.
    pub name: String,
    /// Client port.
    pub port: u16,
    /// Server-specific strings to replace in responses.
    pub urls: Vec<(String, String)>,
}

/// One compared step: where it is in the corpus, the request as written, and the record.
pub type Record = (String, Value);

type Pending = HashMap<String, (Entry, SentFacts, JoinHandle<Result<RawResponse, String>>)>;

/// The form parameters of a request as sent (query, then body); first value wins later.
fn params(req: &RawRequest) -> Vec<(String, String)> {
    let query = req.target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let body = req.body.as_ref().map(|(_, b)| b.as_str()).unwrap_or("");
    [body, query]
        .iter()
        .flat_map(|s| s.split('&'))
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn sent_facts(req: &RawRequest) -> SentFacts {
    let params = params(req);
    let first = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    SentFacts {
        sorted: first("sorted")
            .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "TRUE" | "true" | "True")),
        prev_index: first("prevIndex"),
    }
}

/// Runs `steps` against `side`.
pub async fn run_file(side: &Side, steps: &[Step]) -> Vec<Record> {
    let base_req = RawRequest {
        method: "PUT".into(),
        target: BASE_KEY.into(),
        body: Some((
            Some("application/x-www-form-urlencoded".into()),
            "value=base".into(),
        )),
        events: None,
    };
    let base = match send(side.port, &base_req).await {
        Ok(resp) => serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .and_then(|v| v["node"]["modifiedIndex"].as_u64()),
        Err(_) => None,
    };
    let Some(base) = base else {
        return vec![(
            "base write".into(),
            failure(&format!(
                "{}: PUT {BASE_KEY} gave no modifiedIndex",
                side.name
            )),
        )];
    };
    let facts = ServerFacts {
        base,
        urls: side.urls.clone(),
    };
    let mut cur = base;
    let mut pending: Pending = HashMap::new();
    let mut records = Vec::new();
    for step in steps {
        match step {
            Step::Join { name, at } => {
                let Some((entry, sent, handle)) = pending.remove(name) else {
                    panic!("{at}: JOIN {name} without an async request");
                };
                let result = handle.await.unwrap_or_else(|e| Err(e.to_string()));
                records.push((
                    format!("{} (joined at {at})", entry.describe()),
                    to_record(result, &entry, &sent, &facts),
                ));
            }
            Step::Request(entry) => {
                if let Some(n) = entry.watchers {
                    wait_for_watchers(side.port, n).await;
                }
                let req = RawRequest {
                    method: entry.method.clone(),
                    target: substitute(&entry.target, base, cur),
                    body: entry
                        .body
                        .as_ref()
                        .map(|(ct, b)| (ct.clone(), substitute(b, base, cur))),
                    events: entry.events,
                };
                let sent = sent_facts(&req);
                if let Some(name) = &entry.async_name {
                    let port = side.port;
                    let handle = tokio::spawn(async move { send(port, &req).await });
                    pending.insert(name.clone(), (entry.clone(), sent, handle));
                    continue;
                }
                let result = send_repeatedly(side.port, &req, entry).await;
                if let Ok(resp) = &result {
                    let index = resp
                        .headers
                        .get("x-etcd-index")
                        .and_then(|v| v.parse::<u64>().ok());
                    if let Some(index) = index.filter(|&i| i > 0 && entry.events.is_none()) {
                        cur = index;
                    }
                }
                records.push((entry.describe(), to_record(result, entry, &sent, &facts)));
            }
        }
    }
    for (name, (entry, _, handle)) in pending {
        handle.abort();
        records.push((
            entry.describe(),
            failure(&format!("async {name} never joined")),
        ));
    }
    records
}

fn to_record(
    result: Result<RawResponse, String>,
    entry: &Entry,
    sent: &SentFacts,
    facts: &ServerFacts,
) -> Value {
    match result {
        Ok(resp) => record(&resp, entry, sent, facts),
        Err(e) => failure(&e),
    }
}

/// Writes `n` hidden keys so that a server's indexes are offset (self-test: proves that no
/// absolute index leaks past normalization).
pub async fn offset_indexes(port: u16, n: usize) {
    let req = RawRequest {
        method: "PUT".into(),
        target: "/v2/keys/_conformance_offset".into(),
        body: Some((
            Some("application/x-www-form-urlencoded".into()),
            "value=x".into(),
        )),
        events: None,
    };
    for _ in 0..n {
        send(port, &req).await.expect("offset write");
    }
}

/// Sends `repeat` times, then, with `until-status`, keeps sending until the status matches.
async fn send_repeatedly(
    port: u16,
    req: &RawRequest,
    entry: &Entry,
) -> Result<RawResponse, String> {
    let mut last = Err("not sent".to_string());
    for _ in 0..entry.repeat.max(1) {
        last = send(port, req).await;
    }
    let Some(wanted) = entry.until_status else {
        return last;
    };
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    while last.as_ref().map(|r| r.status) != Ok(wanted) && Instant::now() < deadline {
        tokio::time::sleep(POLL_INTERVAL).await;
        last = send(port, req).await;
    }
    last
}

/// Polls `/v2/stats/store` until it counts `n` watchers, so a plain `wait=true` watch is known
/// to be registered before the write that should wake it.
async fn wait_for_watchers(port: u16, n: u64) {
    let req = RawRequest {
        method: "GET".into(),
        target: "/v2/stats/store".into(),
        body: None,
        events: None,
    };
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(resp) = send(port, &req).await {
            let count = serde_json::from_slice::<Value>(&resp.body)
                .ok()
                .and_then(|v| v["watchers"].as_u64());
            if count == Some(n) {
                return;
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
