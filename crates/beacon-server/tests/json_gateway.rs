//! etcd's JSON gateway (`/v3/...` as JSON over HTTP/1.1), against etcd 3.4 and Beacon
//! alike: the same requests to both, each answer written down as its status, the
//! headers grpc-gateway sets and the body, normalised where the two must differ (member
//! and cluster ids, terms, URLs, sizes), and both transcripts must be equal. Covers KV
//! (put, range with prefix/limit/keys_only/count_only, delete with prev_kv, txn with
//! compares, compaction and its refusals), leases (grant, keep-alive stream,
//! time-to-live, revoke, list, an unknown lease), the cluster and maintenance calls,
//! watch streams (a put seen, history, a compacted start), and grpc-gateway's own
//! refusals (bad JSON, unknown paths and methods, `/v3beta`, `/v3alpha`), and the Lock
//! and Election calls (`/v3/lock/*`, `/v3/election/*`, Observe as a stream), and auth
//! (`/v3/auth/*`, a token in `Authorization`, calls refused without one or with a bad
//! one).

use std::time::Duration;

use beacon_testkit::{assert_same_answers, etcd_or_skip, ServerProcess};

/// How long a watch may take to show what the test waits for.
const WATCH_WAIT: Duration = Duration::from_secs(10);

/// Fields whose values differ between two servers by nature: ids, terms, addresses,
/// database sizes and indexes, and etcd's hash of its own database file.
const DIFFER_BY_NATURE: &[&str] = &[
    "cluster_id",
    "member_id",
    "raft_term",
    "ID",
    "name",
    "peerURLs",
    "clientURLs",
    "leader",
    "dbSize",
    "dbSizeInUse",
    "raftIndex",
    "raftTerm",
    "raftAppliedIndex",
    "hash",
    // Auth tokens are random on both.
    "token",
];

/// `body` with the value of every field in [`DIFFER_BY_NATURE`] replaced by `"*"`,
/// except lease ids (under `keep_ids`), which the script chooses itself. The text is
/// kept otherwise as it is, so the fields' order and spelling are compared too.
fn normalise(body: &str, keep_ids: bool) -> String {
    let mut text = body.to_string();
    for name in DIFFER_BY_NATURE {
        if keep_ids && *name == "ID" {
            continue;
        }
        let field = format!("\"{name}\":");
        let mut from = 0;
        while let Some(at) = text[from..].find(&field) {
            let start = from + at + field.len();
            let end = start + value_len(&text[start..]);
            // The servers' own URLs differ by port; URLs the script chose do not.
            if name.ends_with("URLs") && !text[start..end].contains("127.0.0.1") {
                from = end;
                continue;
            }
            text.replace_range(start..end, "\"*\"");
            from = start + 3;
        }
    }
    text
}

/// The length of the JSON string, number or flat array at the start of `text`.
fn value_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let end = match bytes.first() {
        Some(b'"') => bytes[1..].iter().position(|b| *b == b'"').map(|i| i + 2),
        Some(b'[') => bytes.iter().position(|b| *b == b']').map(|i| i + 1),
        _ => bytes.iter().position(|b| matches!(b, b',' | b'}')),
    };
    end.unwrap_or(bytes.len())
}

/// A body as text: normalised, with its line ends shown.
fn body_text(body: &str, keep_ids: bool) -> String {
    normalise(body, keep_ids).replace('\n', "\\n")
}

/// An answer's status, the headers grpc-gateway chooses and whether it is chunked.
fn head_text(answer: &reqwest::Response) -> String {
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "{} type={} grpc={} trailer={} chunked={}",
        answer.status().as_u16(),
        header("content-type"),
        header("grpc-metadata-content-type"),
        header("trailer"),
        answer.headers().contains_key("transfer-encoding"),
    )
}

struct Gateway {
    http: reqwest::Client,
    url: String,
}

impl Gateway {
    fn new(server: &ServerProcess) -> Self {
        // Redirects are answers to compare, not to follow.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client");
        Gateway {
            http,
            url: server.client_url(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &str) -> reqwest::Response {
        self.send_as(None, method, path, body).await
    }

    async fn send_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: &str,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        request
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A whole answer as one line of the transcript.
    async fn call(&self, path: &str, body: &str) -> String {
        self.call_with(reqwest::Method::POST, path, body, true)
            .await
    }

    async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &str,
        keep_ids: bool,
    ) -> String {
        let answer = self.send(method.clone(), path, body).await;
        let head = head_text(&answer);
        let text = answer.text().await.expect("the body");
        format!(
            "{method} {path} {body} -> {head} {}",
            body_text(&text, keep_ids)
        )
    }

    /// A call with `token` in `Authorization`, as one line of the transcript.
    async fn call_as(&self, token: &str, path: &str, body: &str) -> String {
        let answer = self
            .send_as(Some(token), reqwest::Method::POST, path, body)
            .await;
        let head = head_text(&answer);
        let text = answer.text().await.expect("the body");
        format!("as {path} {body} -> {head} {}", body_text(&text, true))
    }

    /// Logs in: the transcript's line, and the token.
    async fn authenticate(&self, name: &str, password: &str) -> (String, String) {
        let body = format!(r#"{{"name":"{name}","password":"{password}"}}"#);
        let answer = self
            .send(reqwest::Method::POST, "/v3/auth/authenticate", &body)
            .await;
        let head = head_text(&answer);
        let text = answer.text().await.expect("the body");
        let token = text
            .split("\"token\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_string();
        let line = format!("login {name} -> {head} {}", body_text(&text, true));
        (line, token)
    }

    /// Opens a watch stream with `body`; its answers are read with [`Watch::lines`].
    async fn watch(&self, body: &str) -> Watch {
        self.stream("/v3/watch", body).await
    }

    /// Opens the streaming call at `path` with `body`.
    async fn stream(&self, path: &str, body: &str) -> Watch {
        let answer = self.send(reqwest::Method::POST, path, body).await;
        Watch {
            head: head_text(&answer),
            answer,
            unread: String::new(),
        }
    }
}

struct Watch {
    head: String,
    answer: reqwest::Response,
    unread: String,
}

impl Watch {
    /// The next `n` lines of the stream, normalised, within [`WATCH_WAIT`].
    async fn lines(&mut self, n: usize) -> String {
        let mut lines = Vec::new();
        let read = tokio::time::timeout(WATCH_WAIT, async {
            while lines.len() < n {
                if let Some(end) = self.unread.find('\n') {
                    let line: String = self.unread.drain(..=end).collect();
                    lines.push(body_text(&line, true));
                    continue;
                }
                match self.answer.chunk().await.expect("the stream") {
                    Some(chunk) => self.unread.push_str(&String::from_utf8_lossy(&chunk)),
                    None => break,
                }
            }
        })
        .await;
        let ended = if read.is_err() { " (timed out)" } else { "" };
        format!("{} {}{ended}", self.head, lines.join(" "))
    }

    /// Everything the stream still sends until it ends, within [`WATCH_WAIT`].
    async fn rest(&mut self) -> String {
        let read = tokio::time::timeout(WATCH_WAIT, async {
            while let Some(chunk) = self.answer.chunk().await.expect("the stream") {
                self.unread.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
        let ended = if read.is_err() {
            " (timed out)"
        } else {
            " (ended)"
        };
        format!(
            "{}{ended}",
            body_text(&std::mem::take(&mut self.unread), true)
        )
    }
}

/// The script, run against one server: every answer as a line.
async fn transcript(server: &ServerProcess) -> Vec<String> {
    let gw = Gateway::new(server);
    let mut out = Vec::new();
    // KV: puts (one with prev_kv), ranges over a prefix.
    for (key, value) in [("a/1", "1"), ("a/2", "2"), ("a/3", "3"), ("b", "4")] {
        let body = format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64(value));
        out.push(gw.call("/v3/kv/put", &body).await);
    }
    let (a, a_end) = (b64("a/"), b64("a0"));
    out.push(
        gw.call(
            "/v3/kv/put",
            &format!(
                r#"{{"key":"{}","value":"MTE=","prev_kv":true}}"#,
                b64("a/1")
            ),
        )
        .await,
    );
    for extra in [
        "",
        r#","limit":"2""#,
        r#","keys_only":true"#,
        r#","count_only":true"#,
        r#","limit":2,"sort_order":"DESCEND","sort_target":"MOD""#,
        r#","revision":"2""#,
        r#","serializable":true,"min_mod_revision":"3""#,
    ] {
        let body = format!(r#"{{"key":"{a}","range_end":"{a_end}"{extra}}}"#);
        out.push(gw.call("/v3/kv/range", &body).await);
    }
    out.push(
        gw.call("/v3beta/kv/range", &format!(r#"{{"key":"{}"}}"#, b64("b")))
            .await,
    );
    // Deletes: with prev_kv, of nothing.
    let deleted = format!(r#"{{"key":"{}","prev_kv":true}}"#, b64("b"));
    out.push(gw.call("/v3/kv/deleterange", &deleted).await);
    out.push(gw.call("/v3/kv/deleterange", &deleted).await);
    // A transaction both ways.
    let txn = format!(
        r#"{{"compare":[{{"key":"{k}","result":"EQUAL","target":"VALUE","value":"{v}"}}],"success":[{{"request_put":{{"key":"{k}","value":"{n}"}}}}],"failure":[{{"request_range":{{"key":"{k}"}}}}]}}"#,
        k = b64("a/2"),
        v = b64("2"),
        n = b64("22"),
    );
    out.push(gw.call("/v3/kv/txn", &txn).await);
    out.push(gw.call("/v3/kv/txn", &txn).await);
    let versions = format!(
        r#"{{"compare":[{{"key":"{k}","result":"GREATER","target":"VERSION","version":"1"}},{{"key":"{k}","target":"CREATE","result":"LESS","create_revision":"100"}}],"success":[{{"request_delete_range":{{"key":"{k}","prev_kv":true}}}}]}}"#,
        k = b64("a/3"),
    );
    out.push(gw.call("/v3/kv/txn", &versions).await);

    // Watches: history from a revision, then a put seen live.
    let mut history = gw
        .watch(&format!(
            r#"{{"create_request":{{"key":"{a}","range_end":"{a_end}","start_revision":"2"}}}}"#
        ))
        .await;
    out.push(history.lines(2).await);
    let mut live = gw
        .watch(&format!(
            r#"{{"create_request":{{"key":"{}","prev_kv":true}}}}"#,
            b64("w")
        ))
        .await;
    out.push(live.lines(1).await);
    out.push(
        gw.call(
            "/v3/kv/put",
            &format!(r#"{{"key":"{}","value":"MQ=="}}"#, b64("w")),
        )
        .await,
    );
    out.push(
        gw.call(
            "/v3/kv/put",
            &format!(r#"{{"key":"{}","value":"Mg=="}}"#, b64("w")),
        )
        .await,
    );
    out.push(live.lines(2).await);
    drop((history, live));
    // Several requests in one body: creates (one with its own id), a progress request,
    // cancels of a watcher and of none, an id taken again once free and one in use.
    let mut several = gw
        .watch(concat!(
            r#"{"create_request":{"key":"YQ=="}}{"create_request":{"key":"Yg==","watch_id":"7"}}"#,
            r#"{"progress_request":{}}{"cancel_request":{"watch_id":"7"}}"#,
            r#"{"cancel_request":{"watch_id":"70"}}{"create_request":{"key":"Yw==","watch_id":"7"}}"#,
            r#"{"create_request":{"key":"Yw==","watch_id":"7"}}{"create_request":{"key":"Yw=="}}"#,
        ))
        .await;
    out.push(several.lines(7).await);
    drop(several);
    // A request that does not decode ends the requests, not the answers.
    let mut cut = gw.watch(r#"{"create_request":{"key":"eA=="}} {"bad"#).await;
    out.push(cut.lines(1).await);
    out.push(
        gw.call("/v3/kv/put", r#"{"key":"eA==","value":"MQ=="}"#)
            .await,
    );
    out.push(cut.lines(1).await);
    drop(cut);

    // Compaction and its refusals, and a watch from before it.
    out.push(gw.call("/v3/kv/compaction", r#"{"revision":"1000"}"#).await);
    out.push(
        gw.call("/v3/kv/compaction", r#"{"revision":"4","physical":true}"#)
            .await,
    );
    out.push(gw.call("/v3/kv/compaction", r#"{"revision":"4"}"#).await);
    out.push(
        gw.call(
            "/v3/kv/range",
            &format!(r#"{{"key":"{a}","revision":"3"}}"#),
        )
        .await,
    );
    let mut compacted = gw
        .watch(&format!(
            r#"{{"create_request":{{"key":"{a}","start_revision":"2"}}}}"#
        ))
        .await;
    out.push(compacted.lines(2).await);
    drop(compacted);

    // Leases: grant, a key on it, keep-alive, time-to-live, list, revoke; unknown ones.
    out.push(
        gw.call("/v3/lease/grant", r#"{"TTL":"60","ID":"4242"}"#)
            .await,
    );
    out.push(
        gw.call("/v3/lease/grant", r#"{"TTL":"60","ID":"4242"}"#)
            .await,
    );
    out.push(
        gw.call("/v3/lease/grant", r#"{"TTL":"30","ID":"4343"}"#)
            .await,
    );
    let leased = format!(r#"{{"key":"{}","value":"MQ==","lease":"4242"}}"#, b64("l"));
    out.push(gw.call("/v3/kv/put", &leased).await);
    out.push(gw.call("/v3/lease/keepalive", r#"{"ID":"4242"}"#).await);
    out.push(gw.call("/v3/lease/keepalive", r#"{"ID":"99"}"#).await);
    for body in [r#"{"ID":"4242"} {"ID":4343}"#, "", r#"{"ID":x}"#, "[]"] {
        out.push(gw.call("/v3/lease/keepalive", body).await);
    }
    let ttl = gw
        .call("/v3/lease/timetolive", r#"{"ID":"4242","keys":true}"#)
        .await;
    // The remaining TTL is 59 or 60 depending on the second the call falls in.
    out.push(ttl.replace(r#""TTL":"59""#, r#""TTL":"60""#));
    out.push(gw.call("/v3/kv/lease/timetolive", r#"{"ID":"99"}"#).await);
    let leases = gw.call("/v3/lease/leases", "{}").await;
    out.push(leases.replace(
        r#"{"ID":"4343"},{"ID":"4242"}"#,
        r#"{"ID":"4242"},{"ID":"4343"}"#,
    ));
    out.push(gw.call("/v3/lease/revoke", r#"{"ID":"4242"}"#).await);
    out.push(gw.call("/v3/kv/lease/revoke", r#"{"ID":"4242"}"#).await);
    out.push(
        gw.call("/v3/kv/range", &format!(r#"{{"key":"{}"}}"#, b64("l")))
            .await,
    );
    out.push(gw.call("/v3/kv/put", &leased).await);
    let granted = gw.call_with(
        reqwest::Method::POST,
        "/v3/lease/grant",
        r#"{"TTL":"1"}"#,
        false,
    );
    out.push(granted.await);

    // The cluster and maintenance.
    let members = gw.call_with(
        reqwest::Method::POST,
        "/v3/cluster/member/list",
        "{}",
        false,
    );
    out.push(members.await);
    out.push(gw.call("/v3/cluster/member/remove", r#"{"ID":"1"}"#).await);
    // Strings as Go's encoder writes them (`<`, `>`, `&` escaped).
    let learner = r#"{"peerURLs":["http://a<b>&c:1"],"isLearner":true}"#;
    let added = gw.call_with(
        reqwest::Method::POST,
        "/v3/cluster/member/add",
        learner,
        false,
    );
    // The members list in the answer is in id order, and the servers' ids are random.
    let added = added.await;
    out.push(
        added
            .split(r#","members""#)
            .next()
            .unwrap_or_default()
            .to_string(),
    );
    out.push(gw.call("/v3/maintenance/status", "{}").await);
    out.push(gw.call("/v3/maintenance/alarm", "{}").await);
    out.push(gw.call("/v3/maintenance/hash", "{}").await);
    out.push(gw.call("/v3/maintenance/transfer-leadership", "{}").await);

    // grpc-gateway's and Go's own refusals.
    let key = format!(r#"{{"key":"{}"}}"#, b64("a/1"));
    for body in [
        "{}",
        "",
        "null",
        r#"{"key":"YS8x""#,
        r#"{"key":"YS8x","limit":x}"#,
        "[]",
        r#"{"key":"!!!"}"#,
        r#"{"key":"YS8x","bogus":[1,2]} trailing"#,
        r#"{"key":"YS8x","limit":null,"sort_order":null}"#,
        r#"{"key":"YS8x","keys_only":"true"}"#,
        r#"{"key":123}"#,
    ] {
        out.push(gw.call("/v3/kv/range", body).await);
    }
    out.push(
        gw.call("/v3/kv/put", r#"{"key":"YQ==","lease":"12345"}"#)
            .await,
    );
    out.push(gw.call("/v3/kv/put", r#"{"value":"YQ=="}"#).await);
    out.push(
        gw.call("/v3/watch", r#"{"create_request":{"key":"Zm9v""#)
            .await,
    );
    // Over etcd's request limit (1.5 MiB) and over gRPC's message limit (2 MiB).
    for value_bytes in [(3 << 19) + 100, (2 << 20) + 100] {
        let value = b64(&"x".repeat(value_bytes));
        let body = format!(r#"{{"key":"YQ==","value":"{value}"}}"#);
        out.push(
            gw.call("/v3/kv/put", &body)
                .await
                .replace(&value, "<value>"),
        );
    }
    // A stream's request over gRPC's limit: refused as the stream's answer, first or later.
    let big_key = b64(&"x".repeat((2 << 20) + 100));
    let big_create = format!(r#"{{"create_request":{{"key":"{big_key}"}}}}"#);
    let created_first = format!(r#"{{"create_request":{{"key":"YQ=="}}}}{big_create}"#);
    for body in [&big_create, &created_first] {
        out.push(gw.call("/v3/watch", body).await.replace(&big_key, "<key>"));
    }
    for path in [
        "/v3/kv/rangex",
        "/v3/kv/range/",
        "/v3alpha/kv/range",
        "/v3beta",
        "/v3/maintenance/hashkv",
    ] {
        out.push(gw.call(path, &key).await);
    }
    out.push(gw.call("/v3", &key).await);
    out.push(gw.call("/v3/", &key).await);
    out.push(
        gw.call_with(reqwest::Method::GET, "/v3/kv/range", "", true)
            .await,
    );
    out.push(
        gw.call_with(reqwest::Method::HEAD, "/v3/kv/range", "", true)
            .await,
    );
    out.push(
        gw.call_with(reqwest::Method::PUT, "/v3/lease/grant", "", true)
            .await,
    );
    out
}

/// Lock and Election through the gateway: a lock taken and given back, a campaign won,
/// proclaimed, observed and resigned, and their refusals.
async fn recipes(server: &ServerProcess) -> Vec<String> {
    let gw = Gateway::new(server);
    let mut out = Vec::new();
    out.push(
        gw.call("/v3/lease/grant", r#"{"TTL":"60","ID":"77"}"#)
            .await,
    );
    let (lock, election) = (b64("L"), b64("E"));
    out.push(
        gw.call(
            "/v3/lock/lock",
            &format!(r#"{{"name":"{lock}","lease":"77"}}"#),
        )
        .await,
    );
    let held = b64("L/4d");
    out.push(
        gw.call("/v3/lock/unlock", &format!(r#"{{"key":"{held}"}}"#))
            .await,
    );
    out.push(
        gw.call(
            "/v3/lock/lock",
            &format!(r#"{{"name":"{lock}","lease":"999"}}"#),
        )
        .await,
    );
    out.push(gw.call("/v3/lock/unlock", "{}").await);
    let name = format!(r#"{{"name":"{election}"}}"#);
    out.push(gw.call("/v3/election/leader", &name).await);
    let campaign = format!(
        r#"{{"name":"{election}","lease":"77","value":"{}"}}"#,
        b64("v1")
    );
    let won = gw.call("/v3/election/campaign", &campaign).await;
    out.push(won.clone());
    let rev = won
        .split("\"rev\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no rev in {won}"))
        .to_string();
    let leader = format!(
        r#"{{"name":"{election}","key":"{}","rev":"{rev}","lease":"77"}}"#,
        b64("E/4d")
    );
    let mut observe = gw.stream("/v3/election/observe", &name).await;
    out.push(observe.lines(1).await);
    let proclaim = format!(r#"{{"leader":{leader},"value":"{}"}}"#, b64("v2"));
    out.push(gw.call("/v3/election/proclaim", &proclaim).await);
    out.push(observe.lines(1).await);
    out.push(gw.call("/v3/election/leader", &name).await);
    out.push(
        gw.call("/v3/election/resign", &format!(r#"{{"leader":{leader}}}"#))
            .await,
    );
    out.push(gw.call("/v3/election/proclaim", &proclaim).await);
    out.push(gw.call("/v3/election/leader", &name).await);
    let stranger = format!(
        r#"{{"name":"{election}","lease":"999","value":"{}"}}"#,
        b64("x")
    );
    out.push(gw.call("/v3/election/campaign", &stranger).await);
    out.push(
        gw.call_with(reqwest::Method::GET, "/v3/lock/lock", "", true)
            .await,
    );
    out
}

/// Auth through the gateway: users, roles and a permission set up, auth enabled, then
/// calls with a good token, none, a bad one and a user without the permission.
async fn auth(server: &ServerProcess) -> Vec<String> {
    let gw = Gateway::new(server);
    let mut out = Vec::new();
    let (a, b) = (b64("/a/1"), b64("/b"));
    for (path, body) in [
        ("/v3/auth/enable", "{}".to_string()),
        (
            "/v3/auth/user/add",
            r#"{"name":"root","password":"rootpw"}"#.into(),
        ),
        (
            "/v3/auth/user/grant",
            r#"{"user":"root","role":"root"}"#.into(),
        ),
        (
            "/v3/auth/user/add",
            r#"{"name":"alice","password":"pw"}"#.into(),
        ),
        ("/v3/auth/role/add", r#"{"name":"r"}"#.into()),
        (
            "/v3/auth/role/grant",
            format!(
                r#"{{"name":"r","perm":{{"permType":"READWRITE","key":"{}","range_end":"{}"}}}}"#,
                b64("/a/"),
                b64("/a0")
            ),
        ),
        (
            "/v3/auth/user/grant",
            r#"{"user":"alice","role":"r"}"#.into(),
        ),
        ("/v3/auth/role/get", r#"{"role":"r"}"#.into()),
        ("/v3/auth/user/get", r#"{"name":"alice"}"#.into()),
        ("/v3/auth/user/list", "{}".into()),
        ("/v3/auth/role/list", "{}".into()),
        ("/v3/auth/enable", "{}".into()),
        ("/v3/kv/put", format!(r#"{{"key":"{a}","value":"{a}"}}"#)),
    ] {
        out.push(gw.call(path, &body).await);
    }
    let (line, _) = gw.authenticate("alice", "wrong").await;
    out.push(line);
    let (line, alice) = gw.authenticate("alice", "pw").await;
    out.push(line);
    let (line, root) = gw.authenticate("root", "rootpw").await;
    out.push(line);
    out.push(
        gw.call_as(
            &alice,
            "/v3/kv/put",
            &format!(r#"{{"key":"{a}","value":"{a}"}}"#),
        )
        .await,
    );
    out.push(
        gw.call_as(&alice, "/v3/kv/range", &format!(r#"{{"key":"{a}"}}"#))
            .await,
    );
    out.push(
        gw.call_as(
            &alice,
            "/v3/kv/put",
            &format!(r#"{{"key":"{b}","value":"{b}"}}"#),
        )
        .await,
    );
    out.push(gw.call_as(&alice, "/v3/auth/user/list", "{}").await);
    out.push(
        gw.call_as("nonsense.1", "/v3/kv/range", &format!(r#"{{"key":"{a}"}}"#))
            .await,
    );
    out.push(
        gw.call_as(
            &root,
            "/v3/kv/put",
            &format!(r#"{{"key":"{b}","value":"{b}"}}"#),
        )
        .await,
    );
    out.push(
        gw.call_as(
            &root,
            "/v3/auth/role/revoke",
            &format!(
                r#"{{"role":"r","key":"{}","range_end":"{}"}}"#,
                b64("/a/"),
                b64("/a0")
            ),
        )
        .await,
    );
    out.push(
        gw.call_as(&alice, "/v3/kv/range", &format!(r#"{{"key":"{a}"}}"#))
            .await,
    );
    out.push(gw.call_as(&root, "/v3/auth/disable", "{}").await);
    out.push(
        gw.call("/v3/kv/range", &format!(r#"{{"key":"{b}"}}"#))
            .await,
    );
    out
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A watch whose server stops: what the stream says before it ends.
async fn stopped_watch(mut server: ServerProcess) -> Vec<String> {
    let gw = Gateway::new(&server);
    let mut watch = gw.watch(r#"{"create_request":{"key":"Zm9v"}}"#).await;
    let mut out = vec![watch.lines(1).await];
    assert!(server.terminate(WATCH_WAIT), "the server stops");
    out.push(watch.rest().await);
    out
}

/// Runs `script` against a fresh etcd, then a fresh Beacon, and compares the answers.
fn same_answers<F, Fut>(script: F)
where
    F: Fn(ServerProcess) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let want = runtime.block_on(script(ServerProcess::etcd().expect("etcd starts")));
    let got = runtime.block_on(script(ServerProcess::beacon().expect("beacon starts")));
    assert_same_answers(&want, &got);
}

#[test]
fn auth_answers_as_etcds() {
    same_answers(|server| async move { auth(&server).await });
}

#[test]
fn a_watch_ends_when_the_server_stops() {
    same_answers(stopped_watch);
}

#[test]
fn lock_and_election_answer_as_etcds() {
    same_answers(|server| async move { recipes(&server).await });
}

#[test]
fn the_json_gateway_answers_as_etcds() {
    same_answers(|server| async move { transcript(&server).await });
}
