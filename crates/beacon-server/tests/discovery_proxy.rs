//! `--discovery-proxy`, against etcd 3.4.23: three members reach the discovery service
//! only through a forward proxy (testkit's `ForwardProxy`), under a host name only the
//! proxy resolves, and form their cluster; the proxy saw each kind's requests, in
//! absolute form. A value Go's URL parser refuses ends the start, as etcd's does.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use beacon_testkit::{
    beacon_bin, etcd_bin, etcd_or_skip, ForwardProxy, Https, Pki, ServerKind, ServerProcess,
};

/// A name no resolver of the members knows: only the proxy reaches it.
const SERVICE_HOST: &str = "discovery.invalid";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_reach_the_discovery_service_through_the_proxy_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let service = ServerProcess::beacon().expect("the discovery service starts");
    let proxy = ForwardProxy::start(&[(SERVICE_HOST, IpAddr::V4(Ipv4Addr::LOCALHOST))])
        .expect("the proxy starts");
    let http = support::http();
    let mut seen = Vec::new();
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let dir = support::discovery_dir(&http, &service, kind, 3).await;
        let base = format!("http://{SERVICE_HOST}:{}", service.client_port());
        let url = format!("{base}/v2/keys/{dir}");
        let before = proxy.requests().len();
        let proxy_url = proxy.url();
        let cluster = tokio::task::spawn_blocking(move || {
            let args = ["--discovery-proxy", proxy_url.as_str()];
            ServerProcess::cluster_discovered(kind, bin, 3, &url, &args, &[])
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{kind:?}: the cluster starts through the proxy: {e}"));
        let wrote = support::put(&http, &cluster[1].client_url(), "k", "v").await;
        assert_eq!(wrote.expect("a write")["action"], "set", "{kind:?}");
        // What the proxy was asked: plain requests in absolute form, for the directory.
        let asked: Vec<String> = proxy.requests()[before..].to_vec();
        let prefix = format!("{base}/v2/keys/{dir}");
        let ours = |line: &&String| {
            line.split(' ')
                .nth(1)
                .is_some_and(|t| t.starts_with(&prefix))
        };
        let puts = asked
            .iter()
            .filter(ours)
            .filter(|l| l.starts_with("PUT "))
            .count();
        assert!(
            asked.iter().filter(ours).count() >= 6,
            "{kind:?}: each member asks at least twice: {asked:#?}"
        );
        seen.push(puts);
    }
    // Every member registers once, through the proxy.
    assert_eq!(
        seen,
        [3, 3],
        "registrations through the proxy, etcd's then beacon's"
    );
}

/// An https discovery service (its pair from the test's CA, which the members trust
/// through `SSL_CERT_FILE`, as Go reads it) is reached through a `CONNECT` tunnel, by
/// etcd's members and Beacon's alike; the proxy sees no plain request.
#[test]
fn an_https_service_is_reached_through_a_connect_tunnel_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let pki = Pki::new().expect("test certificates");
    let (cert, key) = (pki.server.cert.display(), pki.server.key.display());
    let tls = [format!("--cert-file={cert}"), format!("--key-file={key}")];
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let https = Https {
        client: true,
        peer: false,
    };
    let service = ServerProcess::start_https(ServerKind::Beacon, beacon_bin(), https, &tls)
        .expect("the https discovery service starts");
    // The pair names localhost; a proxy does not care that the members could reach it.
    let base = format!("https://localhost:{}", service.client_port());
    let proxy = ForwardProxy::start(&[("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST))])
        .expect("the proxy starts");
    let trust = vec![
        "env".to_string(),
        format!("SSL_CERT_FILE={}", pki.ca.display()),
    ];
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let dir = format!("_etcd/registry/tls-{kind:?}");
        let size = std::process::Command::new("curl")
            .args(["-sf", "--cacert"])
            .arg(&pki.ca)
            .args(["-X", "PUT", "-d", "value=3"])
            .arg(format!("{base}/v2/keys/{dir}/_config/size"))
            .output()
            .expect("curl runs");
        assert!(size.status.success(), "size set: {size:?}");
        let before = proxy.requests().len();
        let args = ["--discovery-proxy", &proxy.url()].map(str::to_string);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let url = format!("{base}/v2/keys/{dir}");
        let cluster = ServerProcess::cluster_discovered(kind, bin, 3, &url, &args, &trust)
            .unwrap_or_else(|e| panic!("{kind:?}: the cluster starts through a tunnel: {e}"));
        assert_eq!(cluster.len(), 3);
        let asked: Vec<String> = proxy.requests()[before..].to_vec();
        let tunnel = format!("CONNECT localhost:{} HTTP/1.1", service.client_port());
        assert!(
            asked.iter().filter(|l| **l == tunnel).count() >= 3,
            "{kind:?}: a tunnel for each member at least: {asked:#?}"
        );
        assert!(
            asked.iter().all(|l| l.starts_with("CONNECT ")),
            "{kind:?}: nothing in the clear: {asked:#?}"
        );
    }
}

/// A proxy address Go's URL parser refuses, from `ETCD_DISCOVERY_PROXY`: both stop
/// with exit 1 and etcd's words.
#[test]
fn a_proxy_address_go_cannot_parse_ends_the_start_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let mut said = Vec::new();
    for bin in [etcd_bin(), beacon_bin()] {
        // From the environment, as etcd reads ETCD_DISCOVERY_PROXY.
        let env = ["env", "ETCD_DISCOVERY_PROXY=http://p\x7f:3128"].map(str::to_string);
        let args = ["--name", "a", "--discovery", "http://127.0.0.1:1/v2/keys/t"];
        let (code, log) = support::start_alone(&env, &bin, "http", &args);
        said.push((code, support::said(&log, "failed to join")));
    }
    let want = "failed to join discovery cluster (invalid proxy address \"http://p\\x7f:3128\": \
                parse \"http://p\\x7f:3128\": net/url: invalid control character in URL)";
    assert_eq!(said[0], (Some(1), Some(want.to_string())), "etcd");
    assert_eq!(said[1], said[0], "beacon");
}
