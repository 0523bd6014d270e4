//! `beaconctl proxy` end to end: a real registry, real instances, and plain HTTP
//! clients talking to the proxy.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use beacon_testkit::workspace_bin;
use support::{modes, registry, Api, InstanceOptions, InstanceProcess, Proxy};

#[test]
fn the_proxy_balances_fails_over_and_refuses_when_no_instance_is_left() {
    for (kind, api) in modes() {
        let server = registry(kind);
        let endpoint = server.client_url();
        let v3 = api == Api::V3;
        let proxy = Proxy::start(&endpoint, "web", if v3 { &["--api", "3"] } else { &[] });
        // Nothing registered yet: a short reason, not a hang.
        let (status, body) = proxy.request("GET", "/", "");
        assert_eq!(status, 503, "{kind:?} {api:?}: {body}");
        assert_eq!(body, "no instance of web is available");

        let opts = InstanceOptions {
            v3,
            ..InstanceOptions::default()
        };
        let mut a = InstanceProcess::start("web", "a", &endpoint, &opts);
        let _b = InstanceProcess::start("web", "b", &endpoint, &opts);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < 2 {
            assert!(
                Instant::now() < deadline,
                "{kind:?} {api:?}: only {seen:?} answered"
            );
            if let (200, id) = proxy.request("GET", "/x?y=1", "") {
                seen.insert(id);
            }
        }
        // Any method and a body are forwarded.
        assert_eq!(proxy.request("POST", "/submit", "payload").0, 200);
        // An instance killed outright: its key is still listed, yet no request fails.
        a.kill9();
        for i in 0..100 {
            let (status, body) = proxy.request("GET", "/", "");
            assert_eq!(
                (status, body.as_str()),
                (200, "b"),
                "{kind:?} {api:?}: request {i}"
            );
        }
    }
}

#[test]
fn the_proxy_refuses_oversized_bodies_and_bad_flags() {
    let server = registry(beacon_testkit::ServerKind::Beacon);
    let endpoint = server.client_url();
    let _a = InstanceProcess::start("web", "a", &endpoint, &InstanceOptions::default());
    let proxy = Proxy::start(&endpoint, "web", &["--max-body-bytes", "10"]);
    let (status, body) = proxy.request("PUT", "/", "more than ten bytes");
    assert_eq!(status, 413, "{body}");
    // A body still arriving after the refusal: the proxy reads it away before closing,
    // or the kernel's reset for unread input could destroy the answer in flight.
    let (status, body) = proxy.request("PUT", "/", &"x".repeat(256 * 1024));
    assert_eq!(status, 413, "{body}");
    let out = Command::new(workspace_bin("beaconctl"))
        .args(["proxy", "web", "--panic-threshold", "2"])
        .output()
        .expect("beaconctl runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("panic_threshold"),
        "{out:?}"
    );
}

#[test]
fn sigterm_closes_idle_keep_alive_connections_and_exits_at_once() {
    let server = registry(beacon_testkit::ServerKind::Beacon);
    let endpoint = server.client_url();
    let mut proxy = Proxy::start(&endpoint, "web", &[]);
    let _a = InstanceProcess::start("web", "a", &endpoint, &InstanceOptions::default());
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.request("GET", "/", "").0 != 200 {
        assert!(Instant::now() < deadline, "the instance never answered");
    }
    // A keep-alive client that got its answer and stays connected, idle.
    let mut idle = TcpStream::connect(&proxy.addr).expect("proxy accepts");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(idle, "GET / HTTP/1.1\r\nHost: proxy\r\n\r\n").unwrap();
    let mut head = [0u8; 512];
    let n = idle.read(&mut head).expect("an answer");
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );

    let (took, status) = proxy.terminate();
    assert!(status.success(), "{status}");
    // The drain allows 5 s; an idle connection must not hold the stop for it.
    assert!(took < Duration::from_secs(2), "exited after {took:?}");
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(
        rest.is_empty() || !rest.starts_with(b"HTTP"),
        "no further answer: {rest:?}"
    );
}
