//! etcd's v2 proxy mode, against etcd 3.4.23: the same scenario runs once with
//! `etcd --proxy on` and once with `beacon --proxy on` in front of a fresh one-member
//! Beacon cluster (the member is not what is tested), and what a client sees through
//! each proxy is compared: v2 writes, reads and watches, `/v2/members`, the proxy's
//! own `/v2/config/local/proxy`, the cluster file it writes, a restart without
//! `--proxy`, the readonly refusal, `--cors`, and the answers once the member is gone.
//! How a proxy comes to be is `v2_proxy_start.rs`.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use beacon_testkit::{
    beacon_bin, etcd_bin, etcd_or_skip, free_port, ServerProcess, TempDir, V2ProxyProcess,
};

const DEADLINE: Duration = Duration::from_secs(20);

/// The origin every request names, which `--cors` may list.
const ORIGIN: &str = "http://o.example:8080";

/// A request's status, and its body after the CORS origins and content type it was
/// answered with, the member's and the proxy's addresses masked.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    form: Option<&[(&str, &str)]>,
    masks: &[(&str, &str)],
) -> (u16, String) {
    let mut req = http.request(method, url).header("origin", ORIGIN);
    if let Some(form) = form {
        req = req.form(form);
    }
    let resp = req.send().await.expect("the proxy answers");
    let status = resp.status().as_u16();
    let headers = resp.headers();
    let origins: Vec<&str> = headers
        .get_all("access-control-allow-origin")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let kind = headers.get("content-type").and_then(|v| v.to_str().ok());
    let head = format!("origins {origins:?}, type {kind:?}: ");
    let mut body = head + &resp.text().await.expect("a body");
    for (from, to) in masks {
        body = body.replace(from, to);
    }
    (status, body)
}

/// Watches `url` as a stream until it holds `events` lines (or 15 seconds passed),
/// telling `first` when the first one arrived.
async fn stream_lines(
    url: String,
    events: usize,
    first: tokio::sync::oneshot::Sender<()>,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut first = Some(first);
    let mut text = String::new();
    let sent = tokio::time::timeout_at(deadline, reqwest::Client::new().get(url).send()).await;
    let Ok(Ok(mut resp)) = sent else {
        return Vec::new();
    };
    while text.matches('\n').count() < events {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
        if text.contains('\n') {
            if let Some(first) = first.take() {
                let _ = first.send(());
            }
        }
    }
    text.lines().take(events).map(str::to_string).collect()
}

/// What one proxy kind showed, step by step, and whether its stream passed the first
/// event before more came (etcd's buffers it, Beacon's streams it at once).
struct Seen {
    steps: Vec<(String, u16, String)>,
    first_event_alone: bool,
}

async fn scenario(bin: PathBuf) -> Seen {
    let member = ServerProcess::beacon().expect("the member starts");
    let temp = TempDir::new("v2-proxy").expect("temp dir");
    let data_dir = temp.path().join("proxy-data");
    // A peer URL nobody serves: the proxy asks the next one, and the cluster file it
    // writes holds the members' own list.
    let ghost = format!("http://127.0.0.1:{}", free_port());
    let cluster = format!("default={},ghost={ghost}", member.peer_url());
    let on = ["--proxy", "on", "--initial-cluster", &cluster];
    let mut proxy = V2ProxyProcess::start(&bin, &data_dir, &on, &[]).expect("the proxy starts");
    let (base, http) = (proxy.url(), support::http());
    let masks = [
        (member.client_url(), "MEMBER".to_string()),
        (member.peer_url(), "PEER".to_string()),
    ];
    let masks: Vec<(&str, &str)> = masks
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut steps = Vec::new();
    let keys = format!("{base}/v2/keys");
    use reqwest::Method;
    for (name, method, path, form) in [
        ("put", Method::PUT, "/a", Some(&[("value", "1")][..])),
        ("get", Method::GET, "/a", None),
        (
            "cas",
            Method::PUT,
            "/a?prevValue=2",
            Some(&[("value", "3")][..]),
        ),
        ("missing", Method::GET, "/none", None),
        ("delete", Method::DELETE, "/a", None),
    ] {
        let (status, body) = call(&http, method, &format!("{keys}{path}"), form, &masks).await;
        steps.push((name.to_string(), status, body));
    }
    // A long poll answered by a write made after it started.
    let waiting = tokio::spawn({
        let (http, url) = (http.clone(), format!("{keys}/w?wait=true"));
        async move {
            http.get(url)
                .send()
                .await
                .expect("a watch")
                .text()
                .await
                .expect("its event")
        }
    });
    wait_for_watchers(&http, &member, 1).await;
    support::put(&http, &member.client_url(), "w", "x")
        .await
        .expect("a write");
    steps.push(("watch".into(), 200, waiting.await.expect("the watch ends")));
    // A streamed watch: its first event, then the next ones once more were written.
    // Asked on a task of its own: etcd's proxy holds even the head back.
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let streaming = tokio::spawn(stream_lines(
        format!("{keys}/s?wait=true&stream=true"),
        3,
        first_tx,
    ));
    wait_for_watchers(&http, &member, 1).await;
    support::put(&http, &member.client_url(), "s", "0")
        .await
        .expect("a write");
    let first_event_alone = tokio::time::timeout(Duration::from_secs(2), first_rx)
        .await
        .is_ok();
    // Enough events to fill Go's buffers in etcd's proxy, which does not flush them.
    for i in 1..=80 {
        let padded = format!("{i:0>100}");
        support::put(&http, &member.client_url(), "s", &padded)
            .await
            .expect("a write");
    }
    let lines = streaming.await.expect("the stream's reader");
    steps.push(("stream".into(), 200, lines.join("\n")));
    let members = support::get_json(&http, &format!("{base}/v2/members")).await;
    let listed = &members["members"][0];
    steps.push((
        "members".into(),
        200,
        format!(
            "{} {} {}",
            listed["name"], listed["peerURLs"], listed["clientURLs"]
        )
        .replace(&member.client_url(), "MEMBER")
        .replace(&member.peer_url(), "PEER"),
    ));
    let (status, body) = call(
        &http,
        Method::GET,
        &format!("{base}/v2/config/local/proxy"),
        None,
        &masks,
    )
    .await;
    steps.push(("config".into(), status, body));
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("metrics text");
    // The proxy's own samples: the counters with their values, the handling-time
    // histogram's by their names and labels alone (its values are timings).
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("etcd_proxy_"))
        .map(|l| match l.split_once(' ') {
            Some((sample, _)) if l.starts_with("etcd_proxy_handling") => sample,
            _ => l,
        })
        .collect();
    steps.push(("metrics".into(), 200, samples.join("\n")));
    let file = std::fs::read_to_string(data_dir.join("proxy/cluster")).unwrap_or_default();
    steps.push((
        "cluster file".into(),
        0,
        file.replace(&member.peer_url(), "PEER"),
    ));
    // Restarted without --proxy on its data dir, it is a proxy again; with
    // --proxy readonly, it refuses what is not a GET.
    let restarted = proxy.respawn(&["--initial-cluster", &cluster], &[]);
    restarted.expect("the proxy starts again");
    let (status, body) = call(&http, Method::GET, &format!("{keys}/w"), None, &masks).await;
    steps.push(("restarted".into(), status, body));
    let restarted_as_proxy = proxy
        .log_text()
        .contains("already initialized as proxy before");
    steps.push(("restart log".into(), 0, restarted_as_proxy.to_string()));
    let readonly = [
        "--proxy",
        "readonly",
        "--cors",
        ORIGIN,
        "--initial-cluster",
        &cluster,
    ];
    proxy
        .respawn(&readonly, &[])
        .expect("the readonly proxy starts");
    let put = Some(&[("value", "1")][..]);
    for (name, method) in [("readonly put", Method::PUT), ("readonly get", Method::GET)] {
        let (status, body) = call(&http, method, &format!("{keys}/w"), put, &masks).await;
        steps.push((name.into(), status, body));
    }
    // Once the member is gone: the known endpoint fails, then none is left.
    drop(member);
    for name in ["member gone", "member still gone"] {
        let (status, body) = call(&http, Method::GET, &format!("{keys}/w"), None, &masks).await;
        steps.push((name.into(), status, body));
    }
    Seen {
        steps,
        first_event_alone,
    }
}

/// Waits until the member counts `n` watchers (its `/v2/stats/store`).
async fn wait_for_watchers(http: &reqwest::Client, member: &ServerProcess, n: u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let stats =
            support::get_json(http, &format!("{}/v2/stats/store", member.client_url())).await;
        if stats["watchers"].as_u64() == Some(n) {
            return;
        }
        assert!(Instant::now() < deadline, "no watcher registered: {stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_answers_as_etcds_proxy() {
    if !etcd_or_skip() {
        return;
    }
    let etcd = scenario(etcd_bin()).await;
    let beacon = scenario(beacon_bin()).await;
    for (want, got) in etcd.steps.iter().zip(&beacon.steps) {
        assert_eq!(got, want, "beacon's {} differs from etcd's", want.0);
    }
    assert_eq!(beacon.steps.len(), etcd.steps.len());
    let step = |name: &str| etcd.steps.iter().find(|s| s.0 == name).cloned().unwrap();
    // What etcd answers, pinned: the readonly refusal is a bare 501 (no CORS: it is
    // outside etcd's CORS handler), and once the member is gone a 502 then a 503 in its
    // httpproxy words; each forwarded answer names the origin twice, the proxy's CORS
    // before the member's.
    assert_eq!(step("readonly put").1, 501);
    assert_eq!(step("readonly put").2, "origins [], type None: ");
    let listed = format!("origins [{ORIGIN:?}, \"*\"]");
    assert!(step("readonly get").2.starts_with(&listed), "{listed}");
    let json = format!("origins [{ORIGIN:?}], type Some(\"application/json\"): ");
    let gone = step("member gone");
    let unable = r#"{"message":"httpproxy: unable to get response from 1 endpoint(s)"}"#;
    assert_eq!((gone.1, gone.2), (502, format!("{json}{unable}")));
    let still = step("member still gone");
    let zero = r#"{"message":"httpproxy: zero endpoints currently available"}"#;
    assert_eq!((still.1, still.2), (503, format!("{json}{zero}")));
    assert_eq!(step("cluster file").2, r#"{"PeerURLs":["PEER"]}"#);
    assert_eq!(step("restart log").2, "true");
    // etcd's proxy copies a stream without flushing it: the first event waits in its
    // buffers. Beacon's passes each event as it comes, which a watcher needs.
    assert!(
        !etcd.first_event_alone,
        "etcd's proxy held the first event back"
    );
    assert!(
        beacon.first_event_alone,
        "beacon's proxy streams each event"
    );
}
