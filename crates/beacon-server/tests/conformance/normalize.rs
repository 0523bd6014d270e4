//! Turns one server's response into a comparable JSON record: indexes made relative to the
//! file's base, timestamps and URLs replaced by placeholders, unsorted listings sorted; and
//! compares two records with a one-second tolerance on `ttl`.

use serde_json::{json, Map, Value};

use crate::corpus::Entry;
use crate::http::RawResponse;

/// What normalization needs to know about the server that answered.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// Index subtracted from every non-zero index.
    pub base: u64,
    /// (text to replace, placeholder), e.g. the server's own client URL.
    pub urls: Vec<(String, String)>,
}

/// What normalization needs to know about the request as sent.
#[derive(Debug, Clone, Default)]
pub struct SentFacts {
    /// Whether `nodes` order matters (sorted=true).
    pub sorted: bool,
    /// The absolute prevIndex sent, which a 101 cause echoes as "[prevIndex != modifiedIndex]".
    pub prev_index: Option<String>,
}

/// The comparable record of one response.
pub fn record(resp: &RawResponse, entry: &Entry, sent: &SentFacts, facts: &ServerFacts) -> Value {
    let mut headers = Map::new();
    let wanted = ["content-type", "x-etcd-index"]
        .into_iter()
        .map(String::from)
        .chain(entry.headers.iter().cloned());
    for name in wanted {
        let value = match resp.headers.get(&name) {
            None => Value::Null,
            Some(v) if name == "x-etcd-index" => match v.parse::<u64>() {
                Ok(n) => relative(n, facts.base),
                Err(_) => json!(v),
            },
            Some(v) => json!(replace_urls(v, facts)),
        };
        headers.insert(name, value);
    }
    let mut out = Map::new();
    out.insert("status".into(), json!(resp.status));
    out.insert("headers".into(), Value::Object(headers));
    let body = if resp.body.is_empty() {
        Value::Null
    } else {
        let text = String::from_utf8_lossy(&resp.body).to_string();
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v.is_object() || v.is_array() => body_value(v, sent, entry.shape, facts),
            _ => json!({ "text": replace_urls(&text, facts) }),
        }
    };
    out.insert("body".into(), body);
    if entry.events.is_some() {
        let events = resp
            .events
            .iter()
            .map(|e| body_value(e.clone(), sent, entry.shape, facts));
        out.insert("events".into(), Value::Array(events.collect()));
    }
    Value::Object(out)
}

/// A record for a request that got no response at all.
pub fn failure(message: &str) -> Value {
    json!({ "failed": message })
}

fn body_value(v: Value, sent: &SentFacts, shape: bool, facts: &ServerFacts) -> Value {
    let v = normalize(v, sent, facts);
    if shape {
        shape_of(&v)
    } else {
        v
    }
}

fn relative(n: u64, base: u64) -> Value {
    // Index 0 means "no index" (request errors answer it): keep it apart from "equals base".
    if n == 0 {
        json!("zero")
    } else {
        json!(n as i64 - base as i64)
    }
}

fn replace_urls(text: &str, facts: &ServerFacts) -> String {
    let mut s = text.to_string();
    for (from, to) in &facts.urls {
        s = s.replace(from.as_str(), to);
    }
    s
}

fn normalize(v: Value, sent: &SentFacts, facts: &ServerFacts) -> Value {
    match v {
        Value::Object(map) => {
            let code = map.get("errorCode").and_then(Value::as_u64);
            let mut out = Map::new();
            for (k, v) in map {
                let v = match (k.as_str(), v) {
                    ("createdIndex" | "modifiedIndex" | "index", Value::Number(n))
                        if n.is_u64() =>
                    {
                        relative(n.as_u64().unwrap(), facts.base)
                    }
                    ("expiration", Value::String(_)) => json!("<time>"),
                    ("cause", Value::String(s)) if code == Some(401) => {
                        json!(cleared_cause(&s, facts.base))
                    }
                    ("cause", Value::String(s)) if code == Some(101) => {
                        json!(compare_cause(&s, sent, facts.base))
                    }
                    ("nodes", Value::Array(items)) => {
                        let mut items: Vec<Value> = items
                            .into_iter()
                            .map(|i| normalize(i, sent, facts))
                            .collect();
                        if !sent.sorted {
                            items.sort_by_key(|i| i["key"].as_str().unwrap_or("").to_string());
                        }
                        Value::Array(items)
                    }
                    (_, v) => normalize(v, sent, facts),
                };
                out.insert(k, v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| normalize(i, sent, facts))
                .collect(),
        ),
        Value::String(s) => Value::String(in_order_names(&replace_urls(&s, facts), facts.base)),
        other => other,
    }
}

/// In-order keys are named by their creation index, zero padded to 20 digits: a path
/// segment of exactly 20 digits becomes `#<relative index>`.
fn in_order_names(text: &str, base: u64) -> String {
    text.split('/')
        .map(|seg| match seg.parse::<u64>() {
            Ok(n) if seg.len() == 20 => {
                format!("#{}", relative(n, base).to_string().replace('"', ""))
            }
            _ => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// "the requested history has been cleared [S/I]" carries absolute indexes.
fn cleared_cause(cause: &str, base: u64) -> String {
    let (Some(open), Some(close)) = (cause.find('['), cause.rfind(']')) else {
        return cause.to_string();
    };
    let rel = |s: &str| {
        s.parse::<u64>()
            .map(|n| relative(n, base).to_string().replace('"', ""))
            .unwrap_or_else(|_| s.to_string())
    };
    let parts: Vec<String> = cause[open + 1..close].split('/').map(rel).collect();
    format!(
        "{}[{}]{}",
        &cause[..open],
        parts.join("/"),
        &cause[close + 1..]
    )
}

/// "[prevValue != value] [prevIndex != modifiedIndex]": the index comparison, recognised by
/// echoing the prevIndex sent, carries absolute indexes.
fn compare_cause(cause: &str, sent: &SentFacts, base: u64) -> String {
    let Some(prev) = &sent.prev_index else {
        return cause.to_string();
    };
    let prefix = format!("[{prev} != ");
    let Some(start) = cause.rfind(&prefix) else {
        return cause.to_string();
    };
    let rest = &cause[start + prefix.len()..];
    let Some(end) = rest.find(']') else {
        return cause.to_string();
    };
    let rel = |s: &str| match s.parse::<u64>() {
        Ok(n) => relative(n, base).to_string().replace('"', ""),
        Err(_) => s.to_string(),
    };
    format!(
        "{}[{} != {}]{}",
        &cause[..start],
        rel(prev),
        rel(&rest[..end]),
        &rest[end + 1..]
    )
}

/// Keys and value types only; array elements' shapes deduplicated.
fn shape_of(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(items) => {
            let mut shapes: Vec<Value> = Vec::new();
            for s in items.iter().map(shape_of) {
                if !shapes.contains(&s) {
                    shapes.push(s);
                }
            }
            Value::Array(shapes)
        }
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape_of(v))).collect())
        }
    }
}

/// Equality, except that `ttl` numbers may differ by one.
pub fn equivalent(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, va)| {
                    y.get(k).is_some_and(|vb| {
                        if k == "ttl" {
                            match (va.as_i64(), vb.as_i64()) {
                                (Some(p), Some(q)) => (p - q).abs() <= 1,
                                _ => equivalent(va, vb),
                            }
                        } else {
                            equivalent(va, vb)
                        }
                    })
                })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equivalent(p, q))
        }
        _ => a == b,
    }
}
