//! Watches are cheap and never leak: 10,000 idle long-poll watchers cost the server
//! under 50 MiB of resident memory, and when their clients disconnect the server
//! forgets them at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use beacon_testkit::{http_get, rss_bytes, ServerProcess};

const WATCHERS: usize = 10_000;
const EXTRA_RSS_BYTES_MAX: u64 = 50 * 1024 * 1024;

#[test]
fn ten_thousand_idle_watchers_are_cheap_and_removed_on_disconnect() {
    let server = ServerProcess::beacon_at(env!("CARGO_BIN_EXE_beacon")).expect("beacon starts");
    let pid = server.pid().expect("running");
    let port = server.client_port();
    // Warm the server's paths once so allocator growth from the first request is not counted.
    let _ = open_watch(port, "/warm");
    wait_for_watchers(port, 0);
    let before = rss_bytes(pid);

    let mut conns = Vec::with_capacity(WATCHERS);
    for i in 0..WATCHERS {
        conns.push(open_watch(port, &format!("/services/svc/dc/{}", i % 100)));
    }
    wait_for_watchers(port, WATCHERS as u64);
    let after = rss_bytes(pid);
    let extra = after.saturating_sub(before);
    println!(
        "{WATCHERS} idle watchers: rss {before} -> {after} bytes (+{} KiB)",
        extra / 1024
    );
    assert!(
        extra < EXTRA_RSS_BYTES_MAX,
        "{WATCHERS} watchers cost {extra} bytes"
    );

    drop(conns);
    wait_for_watchers(port, 0);
}

/// Opens a long-poll watch and waits for its status line and headers, which the
/// server sends as soon as the watcher is registered.
fn open_watch(port: u16, key: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v2/keys{key}?wait=true HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).expect("watch headers arrive"),
            1,
            "server closed the watch"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

fn wait_for_watchers(port: u16, want: u64) {
    let started = Instant::now();
    loop {
        let stats = http_get(port, "/v2/stats/store")
            .expect("stats")
            .json()
            .expect("stats JSON");
        if stats["watchers"].as_u64() == Some(want) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "watchers stuck at {}, want {want}",
            stats["watchers"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
