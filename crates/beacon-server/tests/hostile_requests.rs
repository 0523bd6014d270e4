//! Seeded hostile requests over real loopback connections: valid requests mutated at
//! the byte level (bare LFs, missing or doubled `Host`, odd transfer codings and
//! lengths, truncations, flipped and inserted bytes, trickled writes, pipelining) go to
//! one `beacon` process. It must never die, every answer must be HTTP, a canary key
//! written first must read back intact, and its memory must stay bounded. Bounded in
//! requests and in time.
//!
//! A failure prints the seed; `BEACON_HOSTILE_SEED=<seed>` replays it, and
//! `BEACON_HOSTILE_REQUESTS=<n>` runs longer (default 300).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use beacon_testkit::{http_get, SeededRng, ServerProcess};

const REQUESTS_DEFAULT: usize = 300;
/// The whole run stops here even if requests remain (slow machines, long reads).
const RUN_TIME_MAX: Duration = Duration::from_secs(60);
/// How long one exchange waits for more bytes once the server went quiet.
const QUIET_READ: Duration = Duration::from_millis(150);
/// The most one exchange reads before it hangs up (a stream watch never ends).
const ANSWER_BYTES_MAX: usize = 64 << 10;
const CANARY_VALUE: &str = "intact-canary-value";
/// Resident memory the run may add: the requests write a few small keys and leave
/// nothing open, so anything near this is a leak or an amplification.
const RSS_GROWTH_BYTES_MAX: u64 = 64 << 20;

const BASES: &[&str] = &[
    "GET /v2/keys/fuzz/a HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /v2/keys/fuzz?recursive=true&sorted=true HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /v2/keys/fuzz/a?wait=true HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /v2/keys/fuzz?wait=true&stream=true&recursive=true HTTP/1.1\r\nHost: a\r\n\r\n",
    "PUT /v2/keys/fuzz/a HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=v",
    "POST /v2/keys/fuzz/q HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nvalue=q\r\n0\r\n\r\n",
    "PUT /v2/keys/fuzz/d?dir=true HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    "DELETE /v2/keys/fuzz/a HTTP/1.1\r\nHost: a\r\n\r\n",
    "PUT /v2/keys/fuzz/t HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\nvalue=x&ttl=1",
    "GET /v2/stats/store HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /version HTTP/1.0\r\n\r\n",
    "POST /v2/members HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"peerURLs\":1}",
];

/// Header lines that a mutation may add.
const EXTRA_HEADERS: &[&str] = &[
    "Host: b\r\n",
    "Transfer-Encoding: gzip, chunked\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Transfer-Encoding: identity\r\n",
    "Content-Length: 5\r\n",
    "Content-Length: -1\r\n",
    "Content-Length: 99999999999999999999\r\n",
    "Content-Length: 3, 4\r\n",
    "Connection: close\r\n",
    "Connection: keep-alive, upgrade\r\n",
    "Upgrade: websocket\r\n",
    "Expect: 100-continue\r\n",
    "X-Junk: \u{1}\u{7f}\r\n",
    " folded: continuation\r\n",
    "NoColon\r\n",
    ": empty-name\r\n",
];

#[test]
fn hostile_requests_never_kill_the_server_or_touch_the_canary() {
    let seed = std::env::var("BEACON_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let requests = std::env::var("BEACON_HOSTILE_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(REQUESTS_DEFAULT);
    println!(
        "seed {seed} (replay: BEACON_HOSTILE_SEED={seed} cargo test -p beacon-server --test hostile_requests)"
    );
    let bin = std::env::var_os("BEACON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_beacon")));
    let server = ServerProcess::beacon_at(bin).expect("beacon starts");
    let port = server.client_port();
    let pid = server.pid().expect("running");
    put_canary(port);
    let rss_before = rss_bytes(pid);

    let mut rng = SeededRng::new(seed);
    let started = Instant::now();
    let mut sent = 0;
    while sent < requests && started.elapsed() < RUN_TIME_MAX {
        let raw = hostile_request(&mut rng);
        let trickle = rng.below(8) == 0;
        let answer = exchange(port, &raw, trickle);
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1."),
            "seed {seed}, request #{sent} {:?} got {:?}",
            String::from_utf8_lossy(&raw),
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
        sent += 1;
        if sent % 50 == 0 {
            check_alive_and_canary(port, seed, sent);
        }
    }
    check_alive_and_canary(port, seed, sent);
    let rss_after = rss_bytes(pid);
    println!(
        "{sent} hostile requests in {:?}; rss {rss_before} -> {rss_after} bytes",
        started.elapsed()
    );
    assert!(
        rss_after.saturating_sub(rss_before) < RSS_GROWTH_BYTES_MAX,
        "seed {seed}: {sent} requests grew the RSS from {rss_before} to {rss_after} bytes"
    );
}

/// A base request with a few random mutations.
fn hostile_request(rng: &mut SeededRng) -> Vec<u8> {
    let mut raw = rng.pick(BASES).as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        mutate(rng, &mut raw);
    }
    // Sometimes a second request rides behind it on the same connection.
    if rng.below(4) == 0 {
        raw.extend_from_slice(rng.pick(BASES).as_bytes());
    }
    raw
}

fn mutate(rng: &mut SeededRng, raw: &mut Vec<u8>) {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 2);
    match rng.below(9) {
        // Bare LF line endings, everywhere.
        0 => {
            *raw = String::from_utf8_lossy(raw)
                .replace("\r\n", "\n")
                .into_bytes()
        }
        // No Host.
        1 => {
            *raw = String::from_utf8_lossy(raw)
                .replace("Host: a\r\n", "")
                .into_bytes()
        }
        // An extra header line right after the request line.
        2 => {
            let at = raw.iter().position(|b| *b == b'\n').map_or(0, |p| p + 1);
            let header = rng.pick(EXTRA_HEADERS).as_bytes().to_vec();
            raw.splice(at..at, header);
        }
        // Cut short.
        3 => {
            let keep = rng.below(raw.len() as u64 + 1) as usize;
            raw.truncate(keep);
        }
        // A flipped byte.
        4 if !raw.is_empty() => {
            let at = rng.below(raw.len() as u64) as usize;
            raw[at] ^= 1 << rng.below(8);
        }
        // Random bytes inserted in the head.
        5 => {
            let at = rng.below(head_end as u64 + 1) as usize;
            let junk: Vec<u8> = (0..=rng.below(16)).map(|_| rng.below(256) as u8).collect();
            raw.splice(at..at, junk);
        }
        // A huge header value.
        6 => {
            let at = raw.iter().position(|b| *b == b'\n').map_or(0, |p| p + 1);
            let len = 1 << (8 + rng.below(8));
            let header = format!("X-Big: {}\r\n", "b".repeat(len)).into_bytes();
            raw.splice(at..at, header);
        }
        // A body longer than announced, or junk after it.
        7 => {
            let junk: Vec<u8> = (0..=rng.below(64)).map(|_| rng.below(256) as u8).collect();
            raw.extend_from_slice(&junk);
        }
        // An odd method or target.
        _ => {
            let text = String::from_utf8_lossy(raw).into_owned();
            let (method, target) = (
                rng.pick(&["GET", "PUT", "BREW", "", "G\u{0}T", "OPTIONS"]),
                rng.pick(&[
                    "/v2/keys/fuzz/%zz",
                    "*",
                    "http://x/v2/keys/fuzz",
                    "/v2/keys/../fuzz",
                    "/v2/keys/fuzz/%FF",
                    "",
                ]),
            );
            let mut parts = text.splitn(3, ' ');
            let (_, _, rest) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
            *raw = format!("{method} {target} {rest}").into_bytes();
        }
    }
}

/// Sends `raw` (a byte at a time when `trickle`, the first 64 bytes only) and reads
/// what comes back until the server closes, goes quiet, or sends too much.
fn exchange(port: u16, raw: &[u8], trickle: bool) -> Vec<u8> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.set_nodelay(true).unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Ignored: the server may close on a bad head before it read the rest.
    let _ = if trickle {
        let split = raw.len().min(64);
        raw[..split]
            .iter()
            .try_for_each(|b| conn.write_all(std::slice::from_ref(b)))
            .and_then(|()| conn.write_all(&raw[split..]))
    } else {
        conn.write_all(raw)
    };
    conn.set_read_timeout(Some(QUIET_READ)).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    while answer.len() < ANSWER_BYTES_MAX {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    answer
}

fn put_canary(port: u16) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let form = format!("value={CANARY_VALUE}");
    write!(
        conn,
        "PUT /v2/keys/canary HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 201"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

fn check_alive_and_canary(port: u16, seed: u64, sent: usize) {
    let got = http_get(port, "/v2/keys/canary")
        .unwrap_or_else(|e| panic!("seed {seed}: after {sent} requests the server is gone: {e}"));
    let value = got.json().map(|j| j["node"]["value"].clone());
    assert_eq!(
        value,
        Some(serde_json::json!(CANARY_VALUE)),
        "seed {seed}: after {sent} requests the canary reads {}",
        got.body
    );
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}
