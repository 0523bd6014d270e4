//! How a v2 proxy comes to be and what its flags do, against etcd 3.4.23, each case
//! run with etcd and with Beacon and compared: refusals (a bad `--proxy`, a data dir
//! with both a member and a proxy), a member too late for a full discovery cluster, a
//! proxy waiting for one to fill, `ETCD_PROXY` and a config file, a proxy started
//! before its member, `https` members reached with the client TLS flags, and
//! `--proxy-read-timeout`. What a client sees through a running proxy is `v2_proxy.rs`.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use beacon_testkit::{
    beacon_bin, etcd_bin, etcd_or_skip, free_port, ServerProcess, TempDir, V2ProxyProcess,
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);

/// A one-member Beacon cluster (the member is not what is tested) and the
/// `--initial-cluster` that names it.
fn one_member() -> (ServerProcess, String) {
    let member = ServerProcess::beacon().expect("the member starts");
    let cluster = format!("default={}", member.peer_url());
    (member, cluster)
}

/// An invalid `--proxy` (or `ETCD_PROXY`), and a data dir holding both a member and a
/// proxy: the same exit codes and words.
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
        // From the environment, the words name the variable (etcd exits 1 there,
        // Beacon 2 as for every refused flag value: not compared).
        let by_env = Command::new(&bin)
            .env("ETCD_PROXY", "bogus")
            .output()
            .expect("runs");
        let text = String::from_utf8_lossy(&by_env.stderr).into_owned();
        let env_said = text.contains(r#"invalid value "bogus" for ETCD_PROXY: invalid value"#);
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
        seen.push((
            out.status.code(),
            said,
            env_said,
            both.status.code(),
            refused,
        ));
    }
    assert_eq!(seen[0], (Some(2), true, true, Some(1), true), "etcd");
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

/// `--proxy on` with `--discovery` waits until the discovery cluster is full, then
/// proxies to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_with_a_discovery_url_waits_for_the_cluster() {
    if !etcd_or_skip() {
        return;
    }
    let member = ServerProcess::beacon().expect("the member starts");
    let http = support::http();
    let service = member.client_url();
    support::put(&http, &service, "k", "v")
        .await
        .expect("a write");
    let mut seen = Vec::new();
    for (i, bin) in [etcd_bin(), beacon_bin()].into_iter().enumerate() {
        let dir = format!("_etcd/registry/filling{i}");
        let size = format!("{dir}/_config/size");
        support::put(&http, &service, &size, "2")
            .await
            .expect("size");
        let first = format!("default={}", member.peer_url());
        let key = format!("{dir}/1");
        support::put(&http, &service, &key, &first)
            .await
            .expect("registered");
        let temp = TempDir::new("v2-proxy-filling").expect("temp dir");
        let data_dir = temp.path().join("proxy");
        let url = format!("{service}/v2/keys/{dir}");
        let starting = tokio::task::spawn_blocking(move || {
            let args = ["--proxy", "on", "--discovery", &url];
            V2ProxyProcess::start(&bin, &data_dir, &args, &[]).map(|p| (p, temp))
        });
        // The second registration is a peer URL nobody serves: the proxy asks the first.
        wait_for_a_discovery_watch(&http, &member).await;
        let ghost = format!("ghost=http://127.0.0.1:{}", free_port());
        let key = format!("{dir}/2");
        support::put(&http, &service, &key, &ghost)
            .await
            .expect("registered");
        let (proxy, _temp) = starting.await.unwrap().expect("the proxy starts");
        let got = support::get_json(&http, &format!("{}/v2/keys/k", proxy.url())).await;
        seen.push(got["node"]["value"].clone());
    }
    assert_eq!(
        seen,
        [Value::from("v"), Value::from("v")],
        "etcd, then beacon"
    );
}

/// Waits until the discovery service (the member) has a watcher: the proxy waiting.
async fn wait_for_a_discovery_watch(http: &reqwest::Client, member: &ServerProcess) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let url = format!("{}/v2/stats/store", member.client_url());
        if support::get_json(http, &url).await["watchers"].as_u64() > Some(0) {
            return;
        }
        assert!(Instant::now() < deadline, "the proxy never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `ETCD_PROXY` and a config file's `proxy:` key make a readonly proxy as the flag does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_and_a_config_file_set_the_proxy_too() {
    if !etcd_or_skip() {
        return;
    }
    let (_member, cluster) = one_member();
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

/// A proxy that starts while its member is down answers etcd's 503, and finds the
/// member once it is back (a proxy without endpoints asks again every second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_started_before_its_member_finds_it() {
    if !etcd_or_skip() {
        return;
    }
    let (mut member, cluster) = one_member();
    member.kill9();
    let http = support::http();
    let temp = TempDir::new("v2-proxy-early").expect("temp dir");
    let on = ["--proxy", "on", "--initial-cluster", &cluster];
    let etcd = V2ProxyProcess::start(&etcd_bin(), &temp.path().join("etcd"), &on, &[]);
    let beacon = V2ProxyProcess::start(&beacon_bin(), &temp.path().join("beacon"), &on, &[]);
    let proxies = [etcd.expect("etcd's proxy"), beacon.expect("beacon's proxy")];
    let mut seen = Vec::new();
    for proxy in &proxies {
        let resp = http
            .get(format!("{}/v2/keys/", proxy.url()))
            .send()
            .await
            .expect("an answer");
        seen.push((
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        ));
    }
    let none = r#"{"message":"httpproxy: zero endpoints currently available"}"#;
    assert_eq!(seen[0], (503, none.to_string()), "etcd");
    assert_eq!(seen[1], seen[0], "beacon");
    member.restart().expect("the member starts again");
    for proxy in &proxies {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let resp = http.get(format!("{}/v2/keys/", proxy.url())).send().await;
            if resp.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never found the member",
                proxy.url()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `--proxy-read-timeout` bounds each read from a member: a long poll that hears
/// nothing for that long ends as an empty 200 (etcd's copy stops and its handler
/// returns), and the member stays an endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_timeout_ends_a_quiet_watch_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let (_member, cluster) = one_member();
    let http = support::http();
    let mut seen = Vec::new();
    for bin in [etcd_bin(), beacon_bin()] {
        let temp = TempDir::new("v2-proxy-read-timeout").expect("temp dir");
        let args = [
            "--proxy",
            "on",
            "--proxy-read-timeout",
            "300",
            "--initial-cluster",
            &cluster,
        ];
        let proxy = V2ProxyProcess::start(&bin, &temp.path().join("p"), &args, &[])
            .expect("the proxy starts");
        let started = Instant::now();
        let url = format!("{}/v2/keys/quiet?wait=true", proxy.url());
        let resp = http.get(url).send().await.expect("an answer");
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("a whole body");
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        let after = http.get(format!("{}/v2/keys/", proxy.url())).send().await;
        seen.push((status, body, after.expect("an answer").status().as_u16()));
    }
    assert_eq!(seen[0], (200, String::new(), 200), "etcd");
    assert_eq!(seen[1], seen[0], "beacon");
}
