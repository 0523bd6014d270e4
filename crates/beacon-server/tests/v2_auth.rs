//! etcd 3.4's v2 auth API, etcd 3.4.23 and Beacon side by side: the same raw HTTP
//! requests and the same `ETCDCTL_API=2 etcdctl` commands to each, whose answers
//! (status, body, the headers etcd's clients read, etcdctl's output and exit code) must
//! be equal. The story: users and roles made, granted and revoked, the errors etcd words
//! its own way, auth enabled, keys refused and allowed by role and by the guest role,
//! member changes refused, auth disabled, and everything still there after a restart
//! over a Raft snapshot. Index values are compared as they are: auth records live in
//! etcd's v2 store, so they move `X-Etcd-Index` as they do in etcd.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use beacon_testkit::{etcd_or_skip, Https, PemPair, Pki, ServerKind, ServerProcess};

/// Small, so that the story's writes cross several Raft snapshots before the restart.
const SNAPSHOT_COUNT: &str = "5";
/// A password that must never be written in the clear: not to the log, not to disk.
const SECRET: &str = "never-in-the-clear-7f3a";

/// How long a cluster may take until every member has published itself.
const SETTLE: Duration = Duration::from_secs(20);

/// The servers under test (one, or a cluster's members), the one requests go to, and
/// the answers so far.
struct Story {
    servers: Vec<ServerProcess>,
    at: usize,
    http: reqwest::Client,
    answers: Vec<String>,
}

fn bin(kind: ServerKind) -> std::path::PathBuf {
    match kind {
        ServerKind::Beacon => beacon_testkit::beacon_bin(),
        ServerKind::Etcd => beacon_testkit::etcd_bin(),
    }
}

impl Story {
    fn start(kind: ServerKind) -> Story {
        let server = ServerProcess::start_https(
            kind,
            bin(kind),
            Https::default(),
            &["--snapshot-count", SNAPSHOT_COUNT],
        )
        .expect("the server starts");
        Story::over(vec![server])
    }

    fn over(servers: Vec<ServerProcess>) -> Story {
        Story {
            servers,
            at: 0,
            http: reqwest::Client::new(),
            answers: Vec::new(),
        }
    }

    /// The member requests go to.
    fn server(&self) -> &ServerProcess {
        &self.servers[self.at]
    }

    /// One HTTP request, as `user:password` when `credentials` are given; the answer's
    /// status, the headers etcd's clients read, and its body.
    async fn call(&mut self, method: &str, path: &str, credentials: Option<&str>, body: &str) {
        let url = format!("{}{path}", self.server().client_url());
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self.http.request(method.clone(), &url);
        if let Some((user, password)) = credentials.and_then(|c| c.split_once(':')) {
            req = req.basic_auth(user, Some(password));
        }
        if !body.is_empty() {
            let form = !body.starts_with('{') && body.contains('=');
            let content_type = if form {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            };
            req = req
                .header("content-type", content_type)
                .body(body.to_string());
        }
        let resp = req.send().await.expect("the server answers");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        // The cluster id is each cluster's own: only whether it is sent is compared.
        let head = format!(
            "{} type={:?} index={:?} cluster-id={} allow={:?} www-authenticate={:?}",
            resp.status().as_u16(),
            header("content-type"),
            header("x-etcd-index"),
            header("x-etcd-cluster-id").is_some(),
            header("allow"),
            header("www-authenticate"),
        );
        let text = resp.text().await.expect("a body");
        let who = credentials.map_or("", |c| c.split(':').next().unwrap_or(""));
        let at = self.at;
        self.answers
            .push(format!("m{at}: {method} {path} as {who:?}: {head}\n{text}"));
    }

    /// One `ETCDCTL_API=2 etcdctl` command; what it printed and its exit code.
    fn ctl(&mut self, args: &[&str], stdin: &str) {
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "2")
            .arg("--endpoints")
            .arg(self.server().client_url())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("etcdctl starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("etcdctl reads its stdin");
        let out = child.wait_with_output().expect("etcdctl ends");
        self.answers.push(format!(
            "etcdctl {}: exit {:?}\n{}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }

    /// A write's `X-Etcd-Index` and a watch from index 1, which must not see `/2`.
    async fn index(&mut self, credentials: Option<&str>) {
        self.call("PUT", "/v2/keys/probe", credentials, "value=1")
            .await;
    }
}

/// The users and roles API before auth is on, raw HTTP.
async fn manage(s: &mut Story) {
    s.index(None).await;
    for path in [
        "/v2/auth/enable",
        "/v2/auth/users",
        "/v2/auth/users/",
        "/v2/auth/roles",
        "/v2/auth/roles/root",
        "/v2/auth/roles/guest",
        "/v2/auth/users/root",
        "/v2/auth/users/a/b",
        "/v2/auth/enable/",
        "/v2/auth/nothing",
    ] {
        s.call("GET", path, None, "").await;
    }
    // The first auth write also makes etcd's `/2` directories: 4 indexes more.
    let root = r#"{"user":"root","password":"pw"}"#;
    s.call("PUT", "/v2/auth/users/root", None, root).await;
    s.index(None).await;
    s.call("PUT", "/v2/auth/users/root", None, root).await;
    s.call("PUT", "/v2/auth/users/bob", None, r#"{"user":"bob"}"#)
        .await;
    let with_roles = r#"{"user":"bob","password":"b","roles":["x","x"]}"#;
    s.call("PUT", "/v2/auth/users/bob", None, with_roles).await;
    s.call("PUT", "/v2/auth/users/bob", None, with_roles).await;
    s.call("GET", "/v2/auth/users/bob", None, "").await;
    s.call("GET", "/v2/auth/users", None, "").await;
    s.call("PUT", "/v2/auth/roles/x", None, r#"{"role":"x"}"#)
        .await;
    s.call("PUT", "/v2/auth/roles/x", None, r#"{"role":"x"}"#)
        .await;
    s.call("GET", "/v2/auth/users/bob", None, "").await;
    for (body, what) in [
        (
            r#"{"role":"x","grant":{"kv":{"read":["/foo/*","/a"]}}}"#,
            "x",
        ),
        (r#"{"role":"x","revoke":{"kv":{"read":["/a","/zz"]}}}"#, "x"),
        (r#"{"role":"x","revoke":{"kv":{"read":["/zz"]}}}"#, "x"),
        (r#"{"role":"e","grant":{"kv":{}}}"#, "e"),
        (
            r#"{"role":"y","permissions":{"kv":{"read":["/a"]}},"grant":{"kv":{"read":["/b"]}}}"#,
            "y",
        ),
        (r#"{"role":"y","grant":{"kv":{"write":["/b"]}}}"#, "y"),
        (r#"{"role":"root","grant":{"kv":{"write":["/b"]}}}"#, "root"),
        (r#"{"role":"root"}"#, "root"),
        (
            r#"{"role":"q","permissions":{"kv":{"read":["/a<&>"]}}} trailing"#,
            "q",
        ),
        (r#"{"permissions":{}}"#, "q2"),
        // Go's decoder: names in any case, null as absent.
        (
            r#"{"Role":"n","Permissions":{"KV":{"Read":["/n"]}},"grant":null}"#,
            "n",
        ),
        (r#"{"role":"m","permissions":null}"#, "m"),
        (r#"{"role":"m2","permissions":{"kv":{"read":"/x"}}}"#, "m2"),
        ("garbage", "g"),
    ] {
        s.call("PUT", &format!("/v2/auth/roles/{what}"), None, body)
            .await;
    }
    s.call("GET", "/v2/auth/roles/e", None, "").await;
    // Names with HTML characters, escaped in etcd's errors as in its documents.
    s.call("GET", "/v2/auth/roles/a%3Cb%3E%26", None, "").await;
    for body in [
        r#"{"user":"bob","revoke":["x"]}"#,
        r#"{"user":"bob","grant":["x"]}"#,
        r#"{"user":"bob","password":"c"}"#,
        r#"{"user":"bob"}"#,
        r#"{"user":"bob","roles":["a"],"grant":["b"]}"#,
        r#"{"user":"bob","grant":["b","b"]}"#,
        r#"{"user":"bob","revoke":["never"]}"#,
        r#"{"user":"other","password":"c"}"#,
        r#"{"USER":"bob","Grant":["n"],"roles":null}"#,
    ] {
        s.call("PUT", "/v2/auth/users/bob", None, body).await;
    }
    // A user made without roles has null ones, which a bare update makes empty.
    s.call(
        "PUT",
        "/v2/auth/users/carl",
        None,
        r#"{"user":"carl","password":"c"}"#,
    )
    .await;
    s.call("PUT", "/v2/auth/users/carl", None, r#"{"user":"carl"}"#)
        .await;
    s.call(
        "PUT",
        "/v2/auth/users/nobody",
        None,
        r#"{"user":"nobody","grant":["b"]}"#,
    )
    .await;
    s.call("DELETE", "/v2/auth/users/carl", None, "").await;
    s.call("DELETE", "/v2/auth/users/carl", None, "").await;
    s.call("DELETE", "/v2/auth/roles/root", None, "").await;
    s.call("DELETE", "/v2/auth/roles/nope", None, "").await;
    s.call("DELETE", "/v2/auth/roles/e", None, "").await;
    s.call("POST", "/v2/auth/roles/nope", None, "").await;
    s.call("POST", "/v2/auth/users", None, "").await;
    s.call("GET", "/v2/auth/roles", None, "").await;
    let sam = format!(r#"{{"user":"sam","password":"{SECRET}"}}"#);
    s.call("PUT", "/v2/auth/users/sam", None, &sam).await;
    s.index(None).await;
}

/// Auth on: who may do what, raw HTTP.
async fn enforce(s: &mut Story) {
    s.call("DELETE", "/v2/auth/enable", None, "").await;
    s.call("PUT", "/v2/auth/enable", None, "").await;
    s.call("PUT", "/v2/auth/enable", Some("root:pw"), "").await;
    s.call("GET", "/v2/auth/enable", None, "").await;
    s.index(None).await;
    s.call("GET", "/v2/auth/roles/guest", None, "").await;
    s.call("GET", "/v2/auth/roles/guest", Some("root:pw"), "")
        .await;
    for who in [
        None,
        Some("root:pw"),
        Some("root:bad"),
        Some("bob:c"),
        Some("nobody:c"),
    ] {
        s.call("GET", "/v2/keys/probe", who, "").await;
        // A watch is a read: the history answers at once where it is allowed.
        s.call("GET", "/v2/keys/probe?wait=true&waitIndex=1", who, "")
            .await;
        s.call("GET", "/v2/keys/foo/a", who, "").await;
        s.call("GET", "/v2/keys/foo?recursive=true", who, "").await;
        s.call("GET", "/v2/keys/foo/?recursive=true", who, "").await;
        s.call("PUT", "/v2/keys/foo/a", who, "value=1").await;
        // Sorted: etcd lists a directory in its map's random order otherwise.
        s.call("GET", "/v2/keys?sorted=true", who, "").await;
        s.call("GET", "/v2/auth/users", who, "").await;
        s.call("DELETE", "/v2/members/123", who, "").await;
        s.call("GET", "/v2/auth/enable", who, "").await;
    }
    s.call("DELETE", "/v2/auth/users/root", Some("root:pw"), "")
        .await;
    // The guest role loses its writes, then goes: guests may do nothing.
    let revoke = r#"{"role":"guest","revoke":{"kv":{"write":["/*"]}}}"#;
    s.call("PUT", "/v2/auth/roles/guest", Some("root:pw"), revoke)
        .await;
    s.call("PUT", "/v2/keys/g", None, "value=1").await;
    s.call("GET", "/v2/keys/probe", None, "").await;
    s.call("DELETE", "/v2/auth/roles/guest", Some("root:pw"), "")
        .await;
    s.call("GET", "/v2/keys/probe", None, "").await;
    s.call("DELETE", "/v2/auth/enable", Some("bob:c"), "").await;
    s.call("DELETE", "/v2/auth/enable", Some("root:pw"), "")
        .await;
    s.call("DELETE", "/v2/auth/enable", None, "").await;
    s.index(None).await;
}

/// The same through etcdctl v2, auth on and off again.
fn etcdctl(s: &mut Story) {
    let as_root = ["--username", "root:pw"];
    let root = |s: &mut Story, args: &[&str], stdin: &str| {
        let all: Vec<&str> = as_root.iter().chain(args).copied().collect();
        s.ctl(&all, stdin);
    };
    s.ctl(&["user", "list"], "");
    s.ctl(&["role", "list"], "");
    s.ctl(&["user", "add", "dora:d"], "");
    s.ctl(&["user", "add", "dora:d"], "");
    s.ctl(&["user", "get", "root"], "");
    s.ctl(&["role", "add", "r"], "");
    s.ctl(&["role", "add", "r"], "");
    s.ctl(&["role", "get", "r"], "");
    s.ctl(&["role", "grant", "r", "--path", "/dora/*", "--read"], "");
    s.ctl(&["role", "grant", "r", "--path", "/dora/*", "--write"], "");
    s.ctl(&["role", "grant", "r", "--path", "/bar", "--readwrite"], "");
    s.ctl(&["role", "grant", "r", "--path", "/bar", "--read"], "");
    s.ctl(&["role", "get", "r"], "");
    s.ctl(&["user", "grant", "dora", "--roles", "r"], "");
    s.ctl(&["user", "grant", "dora", "--roles", "r"], "");
    s.ctl(&["user", "get", "dora"], "");
    s.ctl(&["user", "list"], "");
    s.ctl(&["user", "passwd", "dora"], "d2\n");
    s.ctl(&["auth", "enable"], "");
    s.ctl(&["auth", "enable"], "");
    s.ctl(&["get", "/probe"], "");
    s.ctl(&["--username", "dora:d2", "set", "/dora/a", "1"], "");
    s.ctl(&["--username", "dora:d2", "get", "/dora/a"], "");
    s.ctl(&["--username", "dora:d2", "set", "/probe", "2"], "");
    s.ctl(&["--username", "dora:d", "get", "/dora/a"], "");
    s.ctl(&["--username", "dora:d2", "ls", "--recursive", "/dora"], "");
    s.ctl(&["user", "list"], "");
    root(s, &["set", "/probe", "3"], "");
    root(s, &["user", "list"], "");
    root(s, &["role", "list"], "");
    root(s, &["role", "revoke", "r", "--path", "/bar", "--read"], "");
    root(s, &["role", "get", "r"], "");
    root(s, &["user", "revoke", "dora", "--roles", "r"], "");
    root(s, &["user", "revoke", "dora", "--roles", "r"], "");
    root(s, &["role", "remove", "r"], "");
    root(s, &["role", "remove", "r"], "");
    root(s, &["user", "remove", "dora"], "");
    root(s, &["user", "remove", "dora"], "");
    root(s, &["user", "remove", "root"], "");
    // Refused without credentials: auth stays on over the restart.
    s.ctl(&["auth", "disable"], "");
}

/// After a restart over snapshots: still on, same records, same indexes; and the
/// member's first auth write after its start tries etcd's directories again.
async fn after_restart(s: &mut Story) {
    s.servers[0].restart().expect("the server restarts");
    // The old process's keep-alive connections died with it.
    s.http = reqwest::Client::new();
    s.call("GET", "/v2/auth/enable", None, "").await;
    s.call("GET", "/v2/keys/probe", None, "").await;
    s.index(Some("root:pw")).await;
    s.call("GET", "/v2/auth/users", Some("root:pw"), "").await;
    s.call("GET", "/v2/auth/roles", Some("root:pw"), "").await;
    s.call("GET", "/v2/auth/users/bob", Some("root:pw"), "")
        .await;
    s.call("PUT", "/v2/keys/foo/b", Some("bob:c"), "value=1")
        .await;
    s.call("PUT", "/v2/keys/foo/b", Some("bob:b"), "value=1")
        .await;
    let erin = r#"{"user":"erin","password":"e"}"#;
    s.call("PUT", "/v2/auth/users/erin", Some("root:pw"), erin)
        .await;
    s.index(Some("root:pw")).await;
    s.ctl(&["--username", "root:pw", "auth", "disable"], "");
    s.ctl(&["get", "/probe"], "");
    s.index(None).await;
}

async fn story(kind: ServerKind) -> Vec<String> {
    let mut s = Story::start(kind);
    manage(&mut s).await;
    enforce(&mut s).await;
    etcdctl(&mut s);
    after_restart(&mut s).await;
    let clear = in_the_clear(s.server());
    s.answers
        .push(format!("password in the clear in {clear:?}"));
    s.answers
}

/// The files of the server's data directory and its log that hold [`SECRET`].
fn in_the_clear(server: &ServerProcess) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![server.data_dir()];
    let mut files = vec![server.log_path()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        if bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()) {
            found.push(file);
        }
    }
    found
}

#[tokio::test]
async fn v2_auth_answers_as_etcd_does() {
    if !etcd_or_skip() {
        return;
    }
    let want = story(ServerKind::Etcd).await;
    let got = story(ServerKind::Beacon).await;
    beacon_testkit::assert_same_answers(&want, &got);
}

/// A 3-member cluster: records written through one member are what every member
/// answers and enforces, and each member's first auth write tries etcd's `/2`
/// directories again (failed creations, no index).
async fn cluster_story(kind: ServerKind) -> Vec<String> {
    // One more try on a loaded machine, as tests/v2_index.rs does.
    let members = ServerProcess::cluster(kind, bin(kind), 3)
        .or_else(|_| ServerProcess::cluster(kind, bin(kind), 3))
        .expect("the cluster starts");
    let mut s = Story::over(members);
    s.wait_all_published().await;
    s.sync(None).await;
    s.at = 1;
    let root = r#"{"user":"root","password":"pw"}"#;
    s.call("PUT", "/v2/auth/users/root", None, root).await;
    s.at = 2;
    let reader = r#"{"role":"reader","permissions":{"kv":{"read":["/c/*"],"write":[]}}}"#;
    s.call("PUT", "/v2/auth/roles/reader", None, reader).await;
    s.at = 0;
    let carol = r#"{"user":"carol","password":"c","roles":["reader"]}"#;
    s.call("PUT", "/v2/auth/users/carol", None, carol).await;
    s.sync(None).await;
    s.at = 2;
    s.call("GET", "/v2/auth/users", None, "").await;
    s.at = 1;
    s.call("GET", "/v2/auth/roles/reader", None, "").await;
    s.call("PUT", "/v2/auth/enable", None, "").await;
    s.sync(Some("root:pw")).await;
    s.at = 2;
    s.call("GET", "/v2/keys/c/x", Some("carol:c"), "").await;
    s.call("PUT", "/v2/keys/c/x", Some("carol:c"), "value=1")
        .await;
    s.call("PUT", "/v2/keys/c/x", Some("root:pw"), "value=1")
        .await;
    s.call("PUT", "/v2/auth/users/dan", Some("carol:c"), root)
        .await;
    s.sync(Some("root:pw")).await;
    s.at = 0;
    s.call("GET", "/v2/keys/c/x", Some("carol:c"), "").await;
    s.call("GET", "/v2/keys/c/x", Some("carol:x"), "").await;
    s.call("DELETE", "/v2/members/1234", Some("carol:c"), "")
        .await;
    s.call("DELETE", "/v2/auth/enable", Some("root:pw"), "")
        .await;
    s.sync(None).await;
    s.answers
}

impl Story {
    /// A quorum read on every member in turn, recording the index each answers: once
    /// it answers, that member has applied every write before (etcd's quorum reads go
    /// through Raft, Beacon's through its log), so what follows reads no stale record.
    async fn sync(&mut self, credentials: Option<&str>) {
        let at = self.at;
        for member in 0..self.servers.len() {
            self.at = member;
            self.call("GET", "/v2/keys/?quorum=true&sorted=true", credentials, "")
                .await;
        }
        self.at = at;
    }

    /// Waits until every member's name and client URLs are published, each a write
    /// that takes an etcd index, so that indexes compare from then on.
    async fn wait_all_published(&self) {
        let deadline = Instant::now() + SETTLE;
        let url = format!("{}/v2/members", self.server().client_url());
        loop {
            let members: serde_json::Value = match self.http.get(&url).send().await {
                Ok(resp) => resp.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            let list = members["members"].as_array().cloned().unwrap_or_default();
            if list.len() == self.servers.len() && list.iter().all(|m| m["name"] != "") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "members not published: {members}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn v2_auth_in_a_cluster_answers_as_etcd_does() {
    if !etcd_or_skip() {
        return;
    }
    let want = cluster_story(ServerKind::Etcd).await;
    let got = cluster_story(ServerKind::Beacon).await;
    beacon_testkit::assert_same_answers(&want, &got);
}

/// A request as method, path, `user:password` (or empty) and body.
type Step<'a> = (&'a str, &'a str, &'a str, &'a str);

/// One request over TLS with curl (HTTP/1.1: etcd 3.4 answers a v2 request that came
/// over HTTP/2 with 404), presenting `pair`, as `credentials` when given.
fn curl(
    server: &ServerProcess,
    pki: &Pki,
    pair: &PemPair,
    (method, path, credentials, body): Step<'_>,
) -> String {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "--http1.1",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
    ])
    .arg("--cacert")
    .arg(&pki.ca)
    .arg("--cert")
    .arg(&pair.cert)
    .arg("--key")
    .arg(&pair.key);
    if !credentials.is_empty() {
        cmd.args(["-u", credentials]);
    }
    if !body.is_empty() {
        cmd.args(["-d", body]);
    }
    let out = cmd
        .arg(format!("{}{path}", server.client_url()))
        .output()
        .expect("curl runs");
    let who = if credentials.is_empty() {
        ""
    } else {
        credentials.split(':').next().unwrap_or("")
    };
    format!(
        "{method} {path} as {who:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    )
}

/// With `--client-cert-auth`, a request without an `Authorization` header is the user
/// its TLS certificate names, no password asked; one naming no user is a guest, and
/// Basic credentials, when sent, decide alone. The test PKI's client pair is named
/// `root`, its server pair (a client too) `server`.
fn certified_story(kind: ServerKind) -> Vec<String> {
    let pki = Pki::new().expect("the test PKI");
    let flags = [
        "--cert-file",
        pki.server.cert.to_str().expect("a UTF-8 path"),
        "--key-file",
        pki.server.key.to_str().expect("a UTF-8 path"),
        "--client-cert-auth",
        "--trusted-ca-file",
        pki.ca.to_str().expect("a UTF-8 path"),
    ];
    let https = Https {
        client: true,
        peer: false,
    };
    let server =
        ServerProcess::start_https(kind, bin(kind), https, &flags).expect("the server starts");
    let (root, other) = (&pki.client, &pki.server);
    let steps: [(&PemPair, Step<'_>); 12] = [
        (
            root,
            (
                "PUT",
                "/v2/auth/users/root",
                "",
                r#"{"user":"root","password":"pw"}"#,
            ),
        ),
        (
            root,
            (
                "PUT",
                "/v2/auth/roles/s",
                "",
                r#"{"role":"s","permissions":{"kv":{"read":[],"write":["/s/*"]}}}"#,
            ),
        ),
        (
            root,
            (
                "PUT",
                "/v2/auth/users/server",
                "",
                r#"{"user":"server","password":"x","roles":["s"]}"#,
            ),
        ),
        (other, ("PUT", "/v2/auth/enable", "", "")),
        (root, ("PUT", "/v2/auth/enable", "", "")),
        (
            root,
            (
                "PUT",
                "/v2/auth/roles/guest",
                "",
                r#"{"role":"guest","revoke":{"kv":{"write":["/*"]}}}"#,
            ),
        ),
        (other, ("GET", "/v2/auth/users", "", "")),
        (other, ("GET", "/v2/auth/users", "root:pw", "")),
        (root, ("GET", "/v2/auth/users", "root:bad", "")),
        (other, ("PUT", "/v2/keys/s/a", "", "value=1")),
        (other, ("PUT", "/v2/keys/t", "", "value=1")),
        (root, ("DELETE", "/v2/auth/enable", "", "")),
    ];
    steps
        .into_iter()
        .map(|(pair, step)| curl(&server, &pki, pair, step))
        .collect()
}

#[test]
fn v2_auth_with_client_certificates_answers_as_etcd_does() {
    if !etcd_or_skip() {
        return;
    }
    let want = certified_story(ServerKind::Etcd);
    let got = certified_story(ServerKind::Beacon);
    beacon_testkit::assert_same_answers(&want, &got);
}
