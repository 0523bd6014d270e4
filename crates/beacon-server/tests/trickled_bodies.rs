//! A request body costs the server about its own bytes, however finely the client cuts
//! it up. Issue 13, defect 4: bodies sent one byte per TCP segment cost ~6.5 KB of
//! resident memory per byte (each byte kept a whole hyper read buffer alive), so 40
//! connections trickling 200 KB raised the RSS by 1.3 GB; etcd grew by 4 KB.
//!
//! `BEACON_BIN` runs the test against another build (e.g. main's, to see it fail).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use beacon_testkit::{http_get, rss_bytes, ServerProcess};

const CONNECTIONS: usize = 40;
const BODY_BYTES: usize = 1_500;
/// Growth allowed per body byte held: generous for buffers that double as they grow.
const RSS_BYTES_PER_BODY_BYTE_MAX: u64 = 64;
/// Allocator and runtime noise (thread stacks, arenas) that is no body's fault.
const RSS_NOISE_BYTES: u64 = 8 << 20;

#[test]
fn trickled_bodies_cost_their_bytes_not_their_segments() {
    let server = ServerProcess::beacon().expect("beacon starts");
    let pid = server.pid().expect("running");
    let port = server.client_port();
    // Warm the write path once, so its first allocations are not counted.
    put_whole(port, "/v2/keys/warm", "v");
    let before = rss_bytes(pid);

    let mut conns: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.set_nodelay(true).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            write!(
                c,
                "PUT /v2/keys/trickle/{i} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
            )
            .unwrap();
            c
        })
        .collect();
    let body = form_body(BODY_BYTES);
    // Every byte but the last, one write (one segment, with no delay) each, taking
    // turns over the connections so that the server reads them one at a time.
    for byte in &body[..BODY_BYTES - 1] {
        for c in &mut conns {
            c.write_all(std::slice::from_ref(byte)).unwrap();
        }
    }
    wait_until_server_read_everything(port);
    let during = rss_bytes(pid);
    let sent = (CONNECTIONS * (BODY_BYTES - 1)) as u64;
    let growth = during.saturating_sub(before);
    println!(
        "{sent} body bytes trickled: rss {before} -> {during} (+{growth} bytes, {} per byte)",
        growth / sent
    );
    let allowed = (sent * RSS_BYTES_PER_BODY_BYTE_MAX).max(RSS_NOISE_BYTES);
    assert!(
        growth < allowed,
        "trickled bodies of {sent} bytes grew the RSS by {growth} bytes (allowed {allowed})"
    );

    // The bodies are whole once their last byte comes, and stored as sent.
    for c in &mut conns {
        c.write_all(&body[BODY_BYTES - 1..]).unwrap();
    }
    for c in &mut conns {
        let mut status = [0u8; 12];
        c.read_exact(&mut status).unwrap();
        assert_eq!(
            &status,
            b"HTTP/1.1 201",
            "{}",
            String::from_utf8_lossy(&status)
        );
    }
    let got = http_get(port, "/v2/keys/trickle/7").expect("get");
    let json = got.json().expect("json");
    let value = json["node"]["value"].as_str().expect("value");
    assert_eq!(value.len(), BODY_BYTES - "value=".len());
}

/// `value=xxxx...`, `len` bytes in all.
fn form_body(len: usize) -> Vec<u8> {
    let mut body = b"value=".to_vec();
    body.resize(len, b'x');
    body
}

fn put_whole(port: u16, path: &str, value: &str) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let form = format!("value={value}");
    write!(
        c,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 201"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

/// Waits until no established connection to `port` has unread bytes in the server's
/// receive queue (`/proc/net/tcp`), so the memory measured is what reading cost.
fn wait_until_server_read_everything(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let local = format!(":{port:04X}");
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        let unread: u64 = table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            // Fields: sl, local address, remote address, state, tx_queue:rx_queue.
            .filter(|f| f.len() > 4 && f[1].ends_with(&local) && f[3] == "01")
            .map(|f| {
                let rx = f[4].split(':').nth(1).unwrap_or("0");
                u64::from_str_radix(rx, 16).unwrap_or(0)
            })
            .sum();
        if unread == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server left {unread} bytes unread for 20 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
