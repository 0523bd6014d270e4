//! `--discovery-srv` and `--discovery-srv-name`, against etcd 3.4.23. A test DNS server
//! (testkit's `DnsServer`, on port 53 of its own 127.53.x.y) answers the SRV and A
//! questions; each server process sees it through its own `resolv.conf`, bind-mounted
//! in a mount namespace of its own (`unshare -m`, which needs root: without it the
//! tests skip, unless `BEACON_REQUIRE_ETCD=1`).
//!
//! etcd 3.4.23 bootstraps from the `_etcd-server-ssl` records alone (its
//! `GetDNSClusterNames` drops what the `_etcd-server` lookup finds), so the clusters
//! here have https peer URLs, with `--peer-auto-tls`.

mod support;

use std::net::Ipv4Addr;
use std::path::Path;

use beacon_testkit::{
    beacon_bin, etcd_bin, etcd_or_skip, free_ports, DnsServer, Https, ServerKind, ServerProcess,
    SrvAnswer,
};
use serde_json::Value;

const DOMAIN: &str = "test.domain";
const PEER_HTTPS: Https = Https {
    client: false,
    peer: true,
};

/// A DNS server processes can be pointed at, or `None` (the test skips) where this
/// machine does not allow it.
fn dns_or_skip() -> Option<DnsServer> {
    let required = std::env::var("BEACON_REQUIRE_ETCD").is_ok_and(|v| v == "1");
    let dns = match DnsServer::start() {
        Ok(dns) if dns.wrapper_works() => dns,
        Ok(_) if !required => {
            eprintln!("skipping: cannot give a process its own resolv.conf (unshare -m)");
            return None;
        }
        Err(e) if !required => {
            eprintln!("skipping: no test DNS server on port 53: {e}");
            return None;
        }
        Ok(_) => panic!("BEACON_REQUIRE_ETCD=1 but unshare -m and mount --bind fail"),
        Err(e) => panic!("BEACON_REQUIRE_ETCD=1 but the test DNS server cannot start: {e}"),
    };
    for i in 0..4 {
        dns.set_a(&format!("m{i}.{DOMAIN}"), Ipv4Addr::LOCALHOST);
    }
    Some(dns)
}

/// Records for members `m0`, `m1`, ... at `peer_ports`, under `service`.
fn publish(dns: &DnsServer, service: &str, peer_ports: &[u16]) {
    let answers = peer_ports
        .iter()
        .enumerate()
        .map(|(i, port)| SrvAnswer::new(&format!("m{i}.{DOMAIN}"), *port))
        .collect();
    dns.set_srv(&format!("_{service}._tcp.{DOMAIN}"), answers);
}

/// Three members of `kind` started from `_etcd-server-ssl` records naming them, with
/// `args`, under `wrapper`: them and their peer ports.
fn srv_cluster(
    dns: &DnsServer,
    kind: ServerKind,
    bin: std::path::PathBuf,
    args: &[&str],
    wrapper: &[String],
) -> (Vec<ServerProcess>, Vec<u16>) {
    let free = free_ports(6);
    let ports: Vec<(u16, u16)> = free.chunks(2).map(|p| (p[0], p[1])).collect();
    let peer_ports: Vec<u16> = ports.iter().map(|p| p.1).collect();
    publish(dns, "etcd-server-ssl", &peer_ports);
    let cluster =
        ServerProcess::cluster_by_srv(kind, bin, &ports, PEER_HTTPS, DOMAIN, args, wrapper)
            .unwrap_or_else(|e| panic!("{kind:?}: the cluster from SRV records starts: {e}"));
    (cluster, peer_ports)
}

/// The members a member lists: names and peer URLs, each port replaced by the index of
/// the member it belongs to (each cluster has ports of its own), sorted.
async fn members(http: &reqwest::Client, member: &ServerProcess, ports: &[u16]) -> Vec<String> {
    let listed = support::get_json(http, &format!("{}/v2/members", member.client_url())).await;
    let mut out: Vec<String> = listed["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m: &Value| {
            let mut url = m["peerURLs"][0].as_str().unwrap_or_default().to_string();
            for (i, port) in ports.iter().enumerate() {
                url = url.replace(&format!(":{port}"), &format!(":P{i}"));
            }
            format!("{}={url}", m["name"].as_str().unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_bootstrap_from_srv_records_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let Some(dns) = dns_or_skip() else { return };
    let dns = std::sync::Arc::new(dns);
    let http = support::http();
    let mut seen = Vec::new();
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let dns = std::sync::Arc::clone(&dns);
        let (cluster, peer_ports) = tokio::task::spawn_blocking(move || {
            srv_cluster(&dns, kind, bin, &["--peer-auto-tls"], &dns.wrapper())
        })
        .await
        .unwrap();
        let listed = members(&http, &cluster[0], &peer_ports).await;
        for m in &cluster[1..] {
            assert_eq!(members(&http, m, &peer_ports).await, listed, "{kind:?}");
        }
        let wrote = support::put(&http, &cluster[2].client_url(), "k", "v").await;
        assert_eq!(wrote.expect("a write")["action"], "set", "{kind:?}");
        // A v2 read is served by the member asked: it sees the write once it applied it.
        support::wait_value(&http, &cluster[0].client_url(), "k", "v").await;
        seen.push(listed);
    }
    let want: Vec<String> = (0..3)
        .map(|i| format!("m{i}=https://m{i}.{DOMAIN}:P{i}"))
        .collect();
    assert_eq!(seen[0], want, "etcd");
    assert_eq!(seen[1], seen[0], "beacon");
}

/// With peer certificates for the domain alone (from a CA the members trust through
/// `SSL_CERT_FILE`) and no `--peer-trusted-ca-file`, etcd checks its peers'
/// certificates against the `--discovery-srv` domain, not the hosts it dials
/// (`m0.test.domain`, which the certificates do not name): both clusters form.
#[test]
fn peers_are_checked_against_the_domain_without_a_trusted_ca_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let Some(dns) = dns_or_skip() else { return };
    let (ca, pair, _pki) = beacon_testkit::ca_and_pair(&[DOMAIN]).expect("certificates");
    let mut wrapper = dns.wrapper();
    wrapper.extend(["env".to_string(), format!("SSL_CERT_FILE={}", ca.display())]);
    let tls = [
        format!("--peer-cert-file={}", pair.cert.display()),
        format!("--peer-key-file={}", pair.key.display()),
    ];
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let (cluster, _) = srv_cluster(&dns, kind, bin, &tls, &wrapper);
        assert_eq!(cluster.len(), 3, "{kind:?}");
    }
}

/// Member `name` started alone under `dns` with `--discovery-srv`: its exit code and
/// what it said from `words` on.
/// The domain comes from `ETCD_DISCOVERY_SRV` when `from_env`.
fn refused(
    dns: &DnsServer,
    bin: &Path,
    name: &str,
    from_env: bool,
    words: &str,
) -> (Option<i32>, Option<String>) {
    let mut wrapper = dns.wrapper();
    let mut args = vec!["--name", name, "--peer-auto-tls"];
    if from_env {
        wrapper.extend(["env".to_string(), format!("ETCD_DISCOVERY_SRV={DOMAIN}")]);
    } else {
        args.extend(["--discovery-srv", DOMAIN]);
    }
    let (code, log) = support::start_alone(&wrapper, bin, "https", &args);
    (code, support::said(&log, words))
}

/// No record, or records that leave this member out (the domain then from
/// `ETCD_DISCOVERY_SRV`): both exit 1 with etcd's words (the DNS server's address in
/// them is the same for both).
#[test]
fn a_start_without_its_srv_record_fails_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let Some(dns) = dns_or_skip() else { return };
    // Another member's records, on an address no member here listens on (and http
    // records, which etcd 3.4 ignores).
    dns.set_a(&format!("other.{DOMAIN}"), Ipv4Addr::new(127, 0, 0, 2));
    let other = vec![SrvAnswer::new(&format!("other.{DOMAIN}"), 2380)];
    let words = "error setting up initial cluster";
    let mut said = Vec::new();
    for bin in [etcd_bin(), beacon_bin()] {
        dns.set_srv(&format!("_etcd-server-ssl._tcp.{DOMAIN}"), Vec::new());
        let none = refused(&dns, &bin, "m0", false, words);
        dns.set_srv(&format!("_etcd-server-ssl._tcp.{DOMAIN}"), other.clone());
        dns.set_srv(&format!("_etcd-server._tcp.{DOMAIN}"), other.clone());
        let left_out = refused(&dns, &bin, "m1", true, words);
        said.push([none, left_out]);
    }
    let server = dns.ip();
    let want = [
        (
            Some(1),
            Some(format!(
                "error setting up initial cluster: error querying DNS SRV records for \
                 _etcd-server-ssl lookup _etcd-server-ssl._tcp.{DOMAIN} on {server}:53: \
                 no such host"
            )),
        ),
        (
            Some(1),
            Some(
                "error setting up initial cluster: cannot find local etcd member \"m1\" in \
                 SRV records"
                    .to_string(),
            ),
        ),
    ];
    assert_eq!(said[0], want, "etcd");
    assert_eq!(said[1], said[0], "beacon");
}

/// `--discovery-srv-name prod` asks for `_etcd-server-ssl-prod._tcp`: with this member
/// there (and only another one in the plain records), both start and serve alone.
#[test]
fn the_srv_name_picks_the_suffixed_records_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let Some(dns) = dns_or_skip() else { return };
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let free = free_ports(3);
        publish(&dns, "etcd-server-ssl", &[free[2]]);
        publish(&dns, "etcd-server-ssl-prod", &[free[1]]);
        let args = ["--peer-auto-tls", "--discovery-srv-name", "prod"];
        let member = ServerProcess::cluster_by_srv(
            kind,
            bin,
            &[(free[0], free[1])],
            PEER_HTTPS,
            DOMAIN,
            &args,
            &dns.wrapper(),
        )
        .unwrap_or_else(|e| panic!("{kind:?}: starts from the suffixed records: {e}"));
        let log = std::fs::read_to_string(member[0].log_path()).unwrap_or_default();
        let want = format!("got bootstrap from DNS for etcd-server at m0=https://m0.{DOMAIN}");
        assert!(log.contains(&want), "{kind:?}: {log}");
    }
}
