//! The corpus format: one request per entry, options on the indented lines below it.
//!
//! ```text
//! # a comment
//! PUT /v2/keys/a?ttl={base+2}       method and request target, sent verbatim
//!   body: value=x&dir=false         form body (application/x-www-form-urlencoded)
//!   raw-body: value=x               body sent without a Content-Type
//!   content-type: text/plain        overrides the body's Content-Type
//!   shape                           compare only the JSON shape (keys and value types)
//!   headers: Location Allow         also compare these response headers
//!   events: 3                       stream watch: read 3 events, then hang up
//!   async: w1                       send in the background; compared at `JOIN w1`
//!   until-status: 404               resend until the status matches (15 s deadline)
//!   repeat: 1010                    send N times, compare only the last response
//!   watchers: 1                     first wait until /v2/stats/store counts N watchers
//! JOIN w1
//! ```
//!
//! Targets and bodies may hold index placeholders: `{base}` is the modifiedIndex of the
//! file's opening write, `{cur}` the X-Etcd-Index of the last synchronous response, each
//! optionally `+N` or `-N`.

use std::path::Path;

/// One corpus step.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send a request.
    Request(Entry),
    /// Wait for a background request and compare its response here.
    Join { name: String, at: String },
}

/// One request and its options.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// `file:line`, for messages.
    pub at: String,
    /// HTTP method.
    pub method: String,
    /// Path and query, with placeholders.
    pub target: String,
    /// Body with placeholders, and its Content-Type (None: no header).
    pub body: Option<(Option<String>, String)>,
    /// Compare JSON shape only.
    pub shape: bool,
    /// Extra response headers to compare, lowercased.
    pub headers: Vec<String>,
    /// Stream watch: number of events to read.
    pub events: Option<usize>,
    /// Background request name.
    pub async_name: Option<String>,
    /// Resend until this status.
    pub until_status: Option<u16>,
    /// Send this many times.
    pub repeat: usize,
    /// Wait for this many watchers first.
    pub watchers: Option<u64>,
}

impl Entry {
    /// The request as written, for messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} {}", self.at, self.method, self.target);
        if let Some((_, body)) = &self.body {
            s.push_str(&format!("  body: {body}"));
        }
        s
    }
}

/// Parses one corpus file.
pub fn parse(path: &Path) -> Vec<Step> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut steps: Vec<Step> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = format!("{name}:{}", i + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !raw.starts_with([' ', '\t']) {
            let (method, target) = line.split_once(' ').unwrap_or((line, ""));
            if method == "JOIN" {
                steps.push(Step::Join {
                    name: target.trim().to_string(),
                    at,
                });
                continue;
            }
            steps.push(Step::Request(Entry {
                at,
                method: method.to_string(),
                target: target.trim().to_string(),
                repeat: 1,
                ..Entry::default()
            }));
            continue;
        }
        let Some(Step::Request(entry)) = steps.last_mut() else {
            panic!("{at}: option without a request");
        };
        let (key, value) = line
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .unwrap_or((line, ""));
        match key {
            "body" => {
                let ct = entry.body.as_ref().and_then(|(ct, _)| ct.clone());
                let ct = ct.or(Some("application/x-www-form-urlencoded".to_string()));
                entry.body = Some((ct, value.to_string()));
            }
            "raw-body" => entry.body = Some((None, value.to_string())),
            "content-type" => {
                let body = entry.body.take().map(|(_, b)| b).unwrap_or_default();
                entry.body = Some((Some(value.to_string()), body));
            }
            "shape" => entry.shape = true,
            "headers" => {
                entry.headers = value
                    .split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect()
            }
            "events" => entry.events = Some(number(value, &at)),
            "async" => entry.async_name = Some(value.to_string()),
            "until-status" => entry.until_status = Some(number(value, &at)),
            "repeat" => entry.repeat = number(value, &at),
            "watchers" => entry.watchers = Some(number(value, &at)),
            _ => panic!("{at}: unknown option {key:?}"),
        }
    }
    steps
}

fn number<T: std::str::FromStr>(value: &str, at: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{at}: {value:?} is not a number"))
}

/// Replaces `{base}`, `{base+N}`, `{base-N}`, `{cur}`, `{cur+N}`, `{cur-N}` in `text`.
pub fn substitute(text: &str, base: u64, cur: u64) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        if !(inner.starts_with("base") || inner.starts_with("cur")) {
            // Not a placeholder (e.g. a JSON body): keep the brace and go on after it.
            out.push('{');
            rest = &rest[open + 1..];
            continue;
        }
        let (name, offset) = match inner.find(['+', '-']) {
            Some(p) => {
                let n: i64 = inner[p + 1..]
                    .parse()
                    .unwrap_or_else(|_| panic!("bad placeholder {inner}"));
                (&inner[..p], if &inner[p..p + 1] == "-" { -n } else { n })
            }
            None => (inner, 0),
        };
        let value = match name {
            "base" => base,
            "cur" => cur,
            _ => panic!("bad placeholder {{{inner}}}"),
        };
        out.push_str(&(value as i64 + offset).to_string());
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}
