//! `beaconctl proxy` end to end: a real registry, real instances, and plain HTTP
//! clients talking to the proxy.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use beacon_testkit::workspace_bin;
use support::{registries, registry, InstanceOptions, InstanceProcess};

/// A running `beaconctl proxy`.
struct Proxy {
    child: Child,
    addr: String,
}

impl Proxy {
    fn start(endpoint: &str, service: &str, extra: &[&str]) -> Proxy {
        let mut child = Command::new(workspace_bin("beaconctl"))
            .args([
                "--endpoints",
                endpoint,
                "proxy",
                service,
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("beaconctl runs");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let addr = line
            .trim()
            .rsplit_once(" on ")
            .map(|(_, a)| a.to_string())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Proxy { child, addr }
    }

    /// One request on a fresh connection: status and body.
    fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut sock = TcpStream::connect(&self.addr).expect("proxy accepts");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            sock,
            "{method} {path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).expect("an answer");
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not HTTP: {answer:?}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.trim().to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Proxy {
    /// SIGTERM, then how long the proxy took to exit and its status (killed after 10 s).
    fn terminate(&mut self) -> (Duration, std::process::ExitStatus) {
        let start = Instant::now();
        // kill(1) rather than libc: the tests need no unsafe code for one signal.
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM delivered");
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.try_wait().expect("child") {
                return (start.elapsed(), status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the proxy did not exit within 10 s of SIGTERM");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_proxy_balances_fails_over_and_refuses_when_no_instance_is_left() {
    for kind in registries() {
        let server = registry(kind);
        let endpoint = server.client_url();
        let proxy = Proxy::start(&endpoint, "web", &[]);
        // Nothing registered yet: a short reason, not a hang.
        let (status, body) = proxy.request("GET", "/", "");
        assert_eq!(status, 503, "{kind:?}: {body}");
        assert_eq!(body, "no instance of web is available");

        let opts = InstanceOptions::default();
        let mut a = InstanceProcess::start("web", "a", &endpoint, &opts);
        let _b = InstanceProcess::start("web", "b", &endpoint, &opts);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < 2 {
            assert!(
                Instant::now() < deadline,
                "{kind:?}: only {seen:?} answered"
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
            assert_eq!((status, body.as_str()), (200, "b"), "{kind:?}: request {i}");
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
