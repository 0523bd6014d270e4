//! etcd's v2 proxy mode, against etcd 3.4.23: the same scenario runs once with
//! `etcd --proxy on` and once with `beacon --proxy on` in front of a fresh one-member
//! Beacon cluster (the member is not what is tested), and what a client sees through
//! each proxy is compared: v2 writes, reads and watches, `/v2/members`, the proxy's
//! own `/v2/config/local/proxy`, the cluster file it writes, a restart without
//! `--proxy`, the readonly refusal, the answers once the member is gone, and the
//! fall back of a member too late for a full discovery cluster.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use beacon_testkit::{
    beacon_bin, etcd_bin, etcd_or_skip, free_port, ServerProcess, TempDir, V2ProxyProcess,
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);

/// A request's status and body, with the member's and the proxy's addresses masked.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    form: Option<&[(&str, &str)]>,
    masks: &[(&str, &str)],
) -> (u16, String) {
    let mut req = http.request(method, url);
    if let Some(form) = form {
        req = req.form(form);
    }
    let resp = req.send().await.expect("the proxy answers");
    let status = resp.status().as_u16();
    let mut body = resp.text().await.expect("a body");
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
    let cluster = format!("default={}", member.peer_url());
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
    let counted = text
        .lines()
        .any(|l| l.starts_with("etcd_proxy_requests_total{method=\"PUT\"}"));
    steps.push(("metrics".into(), 200, format!("counts PUT: {counted}")));
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
    let readonly = ["--proxy", "readonly", "--initial-cluster", &cluster];
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
    // What etcd answers, pinned: the readonly refusal is a bare 501, and once the
    // member is gone a 502 then a 503 in its httpproxy words.
    assert_eq!(step("readonly put").1, 501);
    assert_eq!(step("readonly put").2, "");
    let gone = step("member gone");
    assert_eq!(
        (gone.1, gone.2.as_str()),
        (
            502,
            r#"{"message":"httpproxy: unable to get response from 1 endpoint(s)"}"#
        )
    );
    let still = step("member still gone");
    assert_eq!(
        (still.1, still.2.as_str()),
        (
            503,
            r#"{"message":"httpproxy: zero endpoints currently available"}"#
        )
    );
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

/// An invalid `--proxy`, and a data dir holding both a member and a proxy: the same
/// exit codes and words.
#[test]
fn refusals_are_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let mut seen = Vec::new();
    for bin in [etcd_bin(), beacon_bin()] {
        let out = Command::new(&bin)
            .args(["--proxy", "bogus"])
            .output()
            .expect("runs");
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        let said = text.contains(r#"invalid value "bogus" for flag -proxy: invalid value"#);
        let temp = TempDir::new("v2-proxy-both").expect("temp dir");
        for sub in ["member", "proxy"] {
            std::fs::create_dir_all(temp.path().join("data").join(sub)).expect("dirs");
        }
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let both = Command::new("timeout")
            .arg("20")
            .arg(&bin)
            .args([
                "--data-dir",
                &temp.path().join("data").display().to_string(),
            ])
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .output()
            .expect("runs");
        let log = String::from_utf8_lossy(&both.stderr).into_owned();
        let refused = log.contains("invalid datadir. Both member and proxy directories exist.");
        seen.push((out.status.code(), said, both.status.code(), refused));
    }
    assert_eq!(seen[0], (Some(2), true, Some(1), true), "etcd");
    assert_eq!(seen[1], seen[0], "beacon");
}

/// A member too late for a full discovery cluster becomes its proxy (etcd's default
/// `--discovery-fallback=proxy`), and serves the cluster's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_too_late_for_a_full_discovery_cluster_becomes_its_proxy() {
    if !etcd_or_skip() {
        return;
    }
    let member = ServerProcess::beacon().expect("the member starts");
    let http = support::http();
    support::put(&http, &member.client_url(), "k", "v")
        .await
        .expect("a write");
    let mut seen = Vec::new();
    for (i, bin) in [etcd_bin(), beacon_bin()].into_iter().enumerate() {
        // The discovery directory says one member, and one registered already.
        let dir = format!("_etcd/registry/full{i}");
        let service = member.client_url();
        support::put(&http, &service, &format!("{dir}/_config/size"), "1")
            .await
            .expect("size");
        let registered = format!("default={}", member.peer_url());
        support::put(&http, &service, &format!("{dir}/1234"), &registered)
            .await
            .expect("registered");
        let temp = TempDir::new("v2-proxy-fallback").expect("temp dir");
        let data_dir = temp.path().join("late");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let url = format!("{service}/v2/keys/{dir}");
        let late = V2ProxyProcess::start(
            &bin,
            &data_dir,
            &[
                "--name",
                "late",
                "--discovery",
                &url,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ],
            &[],
        )
        .expect("the late member starts as a proxy");
        let got = support::get_json(&http, &format!("{}/v2/keys/k", late.url())).await;
        seen.push((
            got["node"]["value"].clone(),
            data_dir.join("proxy/cluster").is_file(),
        ));
    }
    assert_eq!(seen[0], (Value::from("v"), true), "etcd");
    assert_eq!(seen[1], seen[0], "beacon");
}

/// `ETCD_PROXY` and a config file's `proxy:` key make a readonly proxy as the flag does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_and_a_config_file_set_the_proxy_too() {
    if !etcd_or_skip() {
        return;
    }
    let member = ServerProcess::beacon().expect("the member starts");
    let cluster = format!("default={}", member.peer_url());
    let http = support::http();
    let mut seen = Vec::new();
    for bin in [etcd_bin(), beacon_bin()] {
        let temp = TempDir::new("v2-proxy-env").expect("temp dir");
        let env = [
            ("ETCD_PROXY", "readonly"),
            ("ETCD_INITIAL_CLUSTER", cluster.as_str()),
        ];
        let by_env = V2ProxyProcess::start(&bin, &temp.path().join("env"), &[], &env)
            .expect("the proxy starts");
        // A config file replaces the command line: it names the same port and dir.
        let data_dir = temp.path().join("file");
        let port = free_port();
        let yaml = format!(
            "proxy: readonly\nproxy-failure-wait: 100\ndata-dir: {}\n\
             listen-client-urls: http://127.0.0.1:{port}\n\
             advertise-client-urls: http://127.0.0.1:{port}\ninitial-cluster: {cluster}\n",
            data_dir.display()
        );
        let file = temp.path().join("proxy.yml");
        std::fs::write(&file, yaml).expect("config file");
        let mut by_file = V2ProxyProcess::on_port(&bin, port, &data_dir);
        let args = ["--config-file", &file.display().to_string()];
        by_file.respawn(&args, &[]).expect("the proxy starts");
        for proxy in [&by_env, &by_file] {
            let put = http
                .put(format!("{}/v2/keys/k", proxy.url()))
                .form(&[("value", "v")])
                .send()
                .await
                .expect("an answer");
            let get = http
                .get(format!("{}/v2/keys/", proxy.url()))
                .send()
                .await
                .expect("an answer");
            let file = proxy.data_dir().join("proxy/cluster").is_file();
            seen.push((put.status().as_u16(), get.status().as_u16(), file));
        }
    }
    assert_eq!(seen[..2], [(501, 200, true), (501, 200, true)], "etcd");
    assert_eq!(seen[2..], seen[..2], "beacon");
}

/// A member whose client URL is `https` (with client certificates) is reached with the
/// proxy's client TLS flags; without them, it answers etcd's 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_members_are_dialed_with_the_client_tls() {
    if !etcd_or_skip() {
        return;
    }
    let pki = beacon_testkit::Pki::new().expect("test certificates");
    let path = |p: &std::path::Path| p.display().to_string();
    let member_flags = [
        "--cert-file".to_string(),
        path(&pki.server.cert),
        "--key-file".to_string(),
        path(&pki.server.key),
        "--client-cert-auth".to_string(),
        "--trusted-ca-file".to_string(),
        path(&pki.ca),
    ];
    let member_flags: Vec<&str> = member_flags.iter().map(String::as_str).collect();
    let https = beacon_testkit::Https {
        client: true,
        peer: false,
    };
    let member = ServerProcess::start_https(
        beacon_testkit::ServerKind::Beacon,
        beacon_bin(),
        https,
        &member_flags,
    )
    .expect("the member starts");
    let cluster = format!("default={}", member.peer_url());
    let (cert, key, ca) = (path(&pki.client.cert), path(&pki.client.key), path(&pki.ca));
    let http = support::http();
    let mut seen = Vec::new();
    for bin in [etcd_bin(), beacon_bin()] {
        let temp = TempDir::new("v2-proxy-tls").expect("temp dir");
        for (dir, tls) in [
            (
                "with",
                vec![
                    "--cert-file",
                    &cert,
                    "--key-file",
                    &key,
                    "--trusted-ca-file",
                    &ca,
                ],
            ),
            ("without", vec![]),
        ] {
            let mut args = vec!["--proxy", "on", "--initial-cluster", &cluster];
            args.extend(tls);
            let proxy = V2ProxyProcess::start(&bin, &temp.path().join(dir), &args, &[])
                .expect("the proxy starts");
            let resp = http.get(format!("{}/v2/keys/", proxy.url())).send().await;
            let resp = resp.expect("an answer");
            let status = resp.status().as_u16();
            seen.push((status, resp.text().await.unwrap_or_default()));
        }
    }
    assert_eq!(seen[0].0, 200, "etcd: {seen:?}");
    let refused = r#"{"message":"httpproxy: unable to get response from 1 endpoint(s)"}"#;
    assert_eq!(seen[1], (502, refused.to_string()), "etcd");
    assert_eq!(seen[2..], seen[..2], "beacon");
}
