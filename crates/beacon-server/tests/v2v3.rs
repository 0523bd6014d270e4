//! `--experimental-enable-v2v3`, against etcd 3.4.23: the v2 keys API served from the
//! v3 keyspace under a prefix. The same requests get the same answers (bodies, status
//! codes, `X-Etcd-Index`) and leave the same v3 keys and values; watches send the same
//! events. Where etcd's emulation loses data, hides what it wrote or crashes, the last
//! test pins what each server does. And `--enable-v2=false`, which leaves no `/v2/`
//! API at all, the emulation included.

use std::time::{Duration, Instant};

use beacon_testkit::{etcd_or_skip, ServerKind, ServerProcess};

mod support;

const PREFIX: &str = "--experimental-enable-v2v3=/pfx";

fn start(kind: ServerKind) -> ServerProcess {
    let bin = kind.bin();
    // etcd's emulation drops `/health`, which readiness otherwise asks.
    ServerProcess::start_ready_by_log(kind, bin, &[PREFIX, "--enable-v2"])
        .unwrap_or_else(|e| panic!("{kind:?} starts: {e}"))
}

/// `METHOD path?query` with a form body, answered as `status index body`.
async fn call(
    http: &reqwest::Client,
    s: &ServerProcess,
    method: &str,
    path: &str,
    form: &str,
) -> String {
    let url = format!("{}/v2/keys{path}", s.client_url());
    let req = http
        .request(method.parse().unwrap(), url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    let resp = req.send().await.expect("an answer");
    let index = resp
        .headers()
        .get("x-etcd-index")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    format!(
        "{method} {path} {form} -> {status} {index} {}",
        body.trim_end()
    )
}

/// The v3 keys and values under the prefix, with their revisions, read through the
/// JSON gateway (base64 as sent).
async fn v3_keys(http: &reqwest::Client, s: &ServerProcess) -> String {
    let body = serde_json::json!({"key": "L3BmeA==", "range_end": "L3BmeQ=="});
    let resp: serde_json::Value = http
        .post(format!("{}/v3/kv/range", s.client_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    serde_json::to_string(&resp["kvs"]).unwrap()
}

/// Every kind of v2 request, with the refusals etcd's emulation answers.
const STORY: &[(&str, &str, &str)] = &[
    ("PUT", "/a", "value=1"),
    ("GET", "/a", ""),
    ("PUT", "/d/e/f", "value=2"),
    ("GET", "/?recursive=true", ""),
    ("PUT", "/a", "value=1&ttl=5"),
    ("PUT", "/a?refresh=true", "ttl=5"),
    ("GET", "/missing", ""),
    ("GET", "/?sorted=true", ""),
    ("PUT", "/", "value=x"),
    ("PUT", "/a?prevExist=true", "value=y"),
    ("PUT", "/zz?prevExist=true", "value=y"),
    ("PUT", "/a?prevValue=nope", "value=y"),
    ("PUT", "/a?prevIndex=1", "value=z"),
    ("PUT", "/a?prevIndex=3", "value=z"),
    ("DELETE", "/nodir?dir=true", ""),
    ("DELETE", "/a?prevValue=q", ""),
    ("PUT", "/dd?dir=true", ""),
    ("PUT", "/dd?dir=true", ""),
    ("PUT", "/dd", "value=v"),
    ("DELETE", "/dd?dir=true", ""),
    ("DELETE", "/missing", ""),
    ("DELETE", "/missing?recursive=true", ""),
    ("PUT", "/a?prevExist=false", "value=v"),
    ("PUT", "/new?prevExist=false", "value=v"),
    ("PUT", "/d", "value=v"),
    ("PUT", "/d/e/f/g", "value=v"),
    ("PUT", "/_hidden", "value=h"),
    ("GET", "/", ""),
    ("HEAD", "/a", ""),
    ("DELETE", "/d?dir=true", ""),
    ("DELETE", "/d", ""),
    ("GET", "/d/e?quorum=true", ""),
    ("DELETE", "/d?recursive=true", ""),
    ("DELETE", "/a?prevIndex=4", ""),
    ("GET", "/a", ""),
    ("PUT", "/x/y", "value=1"),
    ("PUT", "/x/y?prevValue=1", "value=2"),
    ("DELETE", "/x/y?prevValue=2&prevIndex=99", ""),
    ("DELETE", "/x/y?prevValue=2", ""),
    ("PUT", "/x?dir=true", "value=1"),
    ("PUT", "/x?dir=true", ""),
    ("GET", "/?recursive=true&sorted=true", ""),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_answer_as_etcds_and_leave_the_same_v3_keys() {
    if !etcd_or_skip() {
        return;
    }
    let http = support::http();
    let mut told = Vec::new();
    for kind in [ServerKind::Etcd, ServerKind::Beacon] {
        let s = start(kind);
        let mut answers = Vec::new();
        for (method, path, form) in STORY {
            answers.push(call(&http, &s, method, path, form).await);
        }
        answers.push(v3_keys(&http, &s).await);
        told.push(answers);
    }
    for (e, b) in told[0].iter().zip(&told[1]) {
        assert_eq!(e, b, "etcd, then beacon");
    }
}

/// Reads a watch's body until it has `n` lines or ends (bounded by a deadline).
async fn lines(resp: reqwest::Response, n: usize) -> Vec<String> {
    let mut resp = resp;
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while text.lines().count() < n && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    text.lines().map(str::to_string).collect()
}

/// Writes whose revisions each carry an action (a delete of a missing key would not,
/// and crashes etcd's watchers: see the last test).
const WATCHED: &[(&str, &str, &str)] = &[
    ("PUT", "/w/k", "value=1"),
    ("PUT", "/w/k?prevValue=1", "value=2"),
    ("PUT", "/w/_h", "value=2"),
    ("PUT", "/w/a/b/c?prevExist=false", "value=2"),
    ("DELETE", "/w/k", ""),
    ("PUT", "/other", "value=3"),
    ("PUT", "/w/k", "value=3"),
    ("DELETE", "/w/k?prevValue=3", ""),
    ("DELETE", "/w/a?recursive=true", ""),
    ("PUT", "/w/k", "value=4"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_send_etcds_events() {
    if !etcd_or_skip() {
        return;
    }
    let http = support::http();
    let mut told = Vec::new();
    for kind in [ServerKind::Etcd, ServerKind::Beacon] {
        let s = start(kind);
        call(&http, &s, "PUT", "/w/first", "value=0").await;
        let watch = |query: &str| {
            http.get(format!("{}/v2/keys{query}", s.client_url()))
                .send()
        };
        let stream = watch("/w?wait=true&recursive=true&stream=true")
            .await
            .unwrap();
        let once = watch("/w/k?wait=true").await.unwrap();
        let index = stream.headers()["x-etcd-index"]
            .to_str()
            .unwrap()
            .to_string();
        for (method, path, form) in WATCHED {
            call(&http, &s, method, path, form).await;
        }
        // From revision 2 (index 1): the first write's event again, then the rest.
        let past = watch("/w?wait=true&recursive=true&stream=true&waitIndex=2")
            .await
            .unwrap();
        let mut seen = vec![index];
        seen.extend(lines(stream, 8).await);
        seen.extend(lines(once, 1).await);
        seen.extend(lines(past, 9).await);
        told.push(seen);
    }
    assert_eq!(told[0], told[1], "etcd, then beacon");
    assert_eq!(told[1].len(), 1 + 8 + 1 + 9, "{:#?}", told[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_etcds_emulation_loses_or_hides_keys_beacon_does_not() {
    if !etcd_or_skip() {
        return;
    }
    let http = support::http();
    let mut told = Vec::new();
    for kind in [ServerKind::Etcd, ServerKind::Beacon] {
        let mut s = start(kind);
        let mut answers = Vec::new();
        for (method, path, form) in [
            ("PUT", "/a/x", "value=1"),
            ("PUT", "/ab/y", "value=2"),
            ("GET", "/a", ""),
            ("DELETE", "/a?recursive=true", ""),
            ("GET", "/ab/y", ""),
        ] {
            answers.push(call(&http, &s, method, path, form).await);
        }
        // POST: etcd answers the directory's path and lists nothing under it.
        let posted = call(&http, &s, "POST", "/q", "value=j").await;
        answers.push(posted.contains(r#""key":"/q","#).to_string());
        let listed = call(&http, &s, "GET", "/q", "").await;
        answers.push(listed.contains(r#""value":"j""#).to_string());
        // A delete of a missing key leaves a revision with an action and no node: a
        // watch that reads it crashes etcd.
        call(&http, &s, "DELETE", "/gone", "").await;
        let watch = http
            .get(format!(
                "{}/v2/keys/?wait=true&recursive=true&waitIndex=1&stream=true",
                s.client_url()
            ))
            .send()
            .await;
        let exited = s.wait_exit(Duration::from_secs(5)).is_some();
        answers.push(format!("exited {exited}"));
        if !exited {
            // Beacon's watch skips that revision and sends every other.
            let events = lines(watch.expect("a watch"), 4).await;
            answers.push(format!("{} events", events.len()));
        }
        told.push(answers);
    }
    let (etcd, beacon) = (&told[0], &told[1]);
    // etcd's listing of /a shows /ab's child, and its delete of /a deletes it.
    assert!(etcd[2].contains("/ab/y"), "{}", etcd[2]);
    assert!(etcd[4].contains("Key not found"), "{}", etcd[4]);
    assert!(!beacon[2].contains("/ab/y"), "{}", beacon[2]);
    assert!(beacon[4].contains(r#""value":"2""#), "{}", beacon[4]);
    assert_eq!(&etcd[5..], ["true", "false", "exited true"]);
    assert_eq!(&beacon[5..], ["false", "true", "exited false", "4 events"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_v2_every_v2_path_is_not_found_as_in_etcd() {
    if !etcd_or_skip() {
        return;
    }
    let http = support::http();
    let mut told = Vec::new();
    for kind in [ServerKind::Etcd, ServerKind::Beacon] {
        let bin = kind.bin();
        // The last of a repeated flag wins: the testkit's own `--enable-v2` is undone.
        let s = ServerProcess::start_https(
            kind,
            bin,
            Default::default(),
            &["--enable-v2=false", PREFIX],
        )
        .unwrap_or_else(|e| panic!("{kind:?} starts: {e}"));
        let mut answers = Vec::new();
        for (method, path, body) in [
            ("PUT", "/v2/keys/a", "value=1"),
            ("GET", "/v2/keys/a", ""),
            ("GET", "/v2/keys", ""),
            ("GET", "/v2/members", ""),
            ("GET", "/v2/machines", ""),
            ("GET", "/v2/stats/self", ""),
            ("GET", "/v2/auth/enable", ""),
            ("GET", "/health", ""),
            ("POST", "/v3/kv/put", r#"{"key":"YQ==","value":"MQ=="}"#),
        ] {
            let resp = http
                .request(method.parse().unwrap(), format!("{}{path}", s.client_url()))
                .body(body)
                .send()
                .await
                .expect("an answer");
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            // The v3 answer's header names each server's own ids.
            let text = if path.starts_with("/v3") {
                String::new()
            } else {
                text
            };
            answers.push(format!("{method} {path} -> {status} {}", text.trim_end()));
        }
        told.push(answers);
    }
    assert_eq!(told[0], told[1], "etcd, then beacon");
    assert!(
        told[1][0].contains("404 404 page not found"),
        "{:?}",
        told[1]
    );
}
