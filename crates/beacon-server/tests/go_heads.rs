//! Request heads that Go's HTTP server treats in its own way, sent as the same raw
//! bytes to etcd 3.4 and to Beacon (issue 13, defect 7): lines ending in a bare LF
//! are served; HTTP/1.1 without `Host` is a 400 with the reason in the status line;
//! a `Transfer-Encoding` other than one `chunked` is a 501; Go writes these answers
//! itself and closes the connection. Compared: each answer's status line,
//! `Content-Type` and body, and whether the server closed the connection.
//!
//! Skips without etcd unless `BEACON_REQUIRE_ETCD=1`; `BEACON_BIN` / `ETCD_BIN`
//! choose the binaries. A second test runs the same requests against Beacon alone.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use beacon_testkit::{etcd_available, ServerProcess};

/// How long a connection that should stay open is watched for a close.
const OPEN_CHECK: Duration = Duration::from_millis(1500);

/// (what it shows, the raw bytes sent on one connection).
const CASES: &[(&str, &str)] = &[
    (
        "bare LF line endings",
        "GET /version HTTP/1.1\nHost: a\nConnection: close\n\n",
    ),
    (
        "bare LF, two pipelined requests",
        "GET /version HTTP/1.1\nHost: a\n\nGET /version HTTP/1.1\nHost: a\nConnection: close\n\n",
    ),
    (
        "bare LF, mixed with CRLF",
        "GET /version HTTP/1.1\r\nHost: a\n\r\n",
    ),
    (
        "bare LF watch",
        "GET /v2/keys/lf?wait=true HTTP/1.1\nHost: a\n\n",
    ),
    ("HTTP/1.1 without Host", "GET /version HTTP/1.1\r\n\r\n"),
    (
        "a watch without Host",
        "GET /v2/keys/w?wait=true HTTP/1.1\r\n\r\n",
    ),
    (
        "an absolute URL without Host",
        "GET http://a/version HTTP/1.1\r\n\r\n",
    ),
    (
        "HTTP/1.0 without Host is fine",
        "GET /version HTTP/1.0\r\n\r\n",
    ),
    ("an empty Host is fine", "GET /version HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n"),
    (
        "two Host headers",
        "GET /version HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ),
    (
        "a malformed Host",
        "GET /version HTTP/1.1\r\nHost: a b\r\n\r\n",
    ),
    (
        "Transfer-Encoding: gzip, chunked",
        "PUT /v2/keys/te HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: gzip, chunked\r\n\r\n7\r\nvalue=v\r\n0\r\n\r\n",
    ),
    (
        "Transfer-Encoding: gzip",
        "PUT /v2/keys/te HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: gzip\r\n\r\n7\r\nvalue=v\r\n0\r\n\r\n",
    ),
    (
        "Transfer-Encoding: identity",
        "GET /version HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
    ),
    (
        "Transfer-Encoding: chunked, chunked",
        "GET /version HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "two Transfer-Encoding lines",
        "GET /version HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "an empty Transfer-Encoding",
        "GET /version HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n",
    ),
    (
        "Transfer-Encoding:  Chunked  is fine",
        "GET /version HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\nConnection: close\r\n\r\n0\r\n\r\n",
    ),
    (
        "the transfer coding is judged before the missing Host",
        "GET /version HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    ),
    (
        "a second request without Host",
        "GET /version HTTP/1.1\r\nHost: a\r\n\r\nGET /version HTTP/1.1\r\n\r\n",
    ),
    (
        "a second request with gzip, chunked",
        "GET /version HTTP/1.1\r\nHost: a\r\n\r\nGET /version HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "a second request with two Hosts",
        "GET /version HTTP/1.1\r\nHost: a\r\n\r\nGET /version HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ),
];

/// What is compared of one server's answers on one connection.
#[derive(Debug, PartialEq, Eq)]
struct Answers {
    /// Per response: status line, Content-Type, body (JSON bodies only by errorCode,
    /// as indexes differ between the servers).
    responses: Vec<(String, String, String)>,
    closed: bool,
}

#[test]
fn beacon_answers_odd_heads_as_etcd_does() {
    if !etcd_available() {
        if std::env::var("BEACON_REQUIRE_ETCD").is_ok_and(|v| v == "1") {
            panic!("etcd not found (BEACON_REQUIRE_ETCD=1): install etcd-server or set ETCD_BIN");
        }
        eprintln!("skipped: etcd not found");
        return;
    }
    let etcd = ServerProcess::etcd().unwrap_or_else(|e| panic!("start etcd: {e}"));
    let beacon = ServerProcess::beacon().expect("beacon starts");
    let mut mismatches = Vec::new();
    for (what, raw) in CASES {
        let want = exchange(etcd.client_port(), raw);
        let got = exchange(beacon.client_port(), raw);
        if want != got {
            mismatches.push(format!("{what}:\n  etcd:   {want:?}\n  beacon: {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The same requests against Beacon alone, with the answers etcd 3.4.23 gave
/// written out, so the rules hold where etcd is not installed.
#[test]
fn beacon_answers_odd_heads_as_go_does() {
    let beacon = ServerProcess::beacon().expect("beacon starts");
    for (what, raw) in CASES {
        if let Some(expected) = go_answer(what) {
            assert_eq!(exchange(beacon.client_port(), raw), expected, "{what}");
        }
    }
    // A bare-LF watch is a watch: its headers come at once, the connection stays.
    let watch = exchange(
        beacon.client_port(),
        "GET /v2/keys/lf?wait=true HTTP/1.1\nHost: a\n\n",
    );
    assert_eq!(watch.responses.len(), 1, "{watch:?}");
    assert_eq!(watch.responses[0].0, "HTTP/1.1 200 OK", "{watch:?}");
    assert!(!watch.closed, "{watch:?}");
}

/// What etcd 3.4.23 answered to the cases that show a rule.
fn go_answer(case: &str) -> Option<Answers> {
    let version = r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#;
    let ok = || {
        let ok = ("HTTP/1.1 200 OK", "application/json", version);
        (ok.0.to_string(), ok.1.to_string(), ok.2.to_string())
    };
    let go = |status: &str, body: &str| {
        let text = "text/plain; charset=utf-8";
        (
            format!("HTTP/1.1 {status}"),
            text.to_string(),
            body.to_string(),
        )
    };
    let missing_host = go(
        "400 Bad Request: missing required Host header",
        "400 Bad Request: missing required Host header",
    );
    let unsupported_te = go("501 Not Implemented", "Unsupported transfer encoding");
    let responses = match case {
        "bare LF line endings" => vec![ok()],
        "bare LF, two pipelined requests" => vec![ok(), ok()],
        "HTTP/1.1 without Host" | "a watch without Host" | "an absolute URL without Host" => {
            vec![missing_host]
        }
        "two Host headers" => vec![go("400 Bad Request", "400 Bad Request")],
        "Transfer-Encoding: gzip, chunked" | "Transfer-Encoding: gzip" => vec![unsupported_te],
        "a second request without Host" => vec![ok(), missing_host],
        "a second request with gzip, chunked" => vec![ok(), unsupported_te],
        _ => return None,
    };
    Some(Answers {
        responses,
        closed: true,
    })
}

/// Sends `raw` on a new connection and reads what comes back until the server closes
/// or stays quiet for [`OPEN_CHECK`].
fn exchange(port: u16, raw: &str) -> Answers {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(raw.as_bytes()).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut bytes = Vec::new();
    let mut quiet_since = Instant::now();
    let closed = loop {
        let mut buf = [0u8; 4096];
        match conn.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                quiet_since = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if quiet_since.elapsed() >= OPEN_CHECK {
                    break false;
                }
            }
            // A reset after the answer (the server closed with our bytes unread).
            Err(_) => break true,
        }
    };
    Answers {
        responses: parse_responses(&bytes),
        closed,
    }
}

/// Splits a byte stream into responses: each one's status line, Content-Type and body
/// (by Content-Length; a chunked body counts as empty, as a watch's is at first).
fn parse_responses(mut bytes: &[u8]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or("").to_string();
        let mut content_type = String::new();
        let mut length = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "content-type" => content_type = value.trim().to_string(),
                "content-length" => length = value.trim().parse::<usize>().ok(),
                _ => {}
            }
        }
        let rest = &bytes[end + 4..];
        let (body, next) = match length {
            Some(n) => rest.split_at(n.min(rest.len())),
            // Go's own error answers have no length: the body runs to the close.
            None if content_type.starts_with("text/plain") => (rest, &rest[rest.len()..]),
            None => (&rest[..0], &rest[rest.len()..]),
        };
        let body = String::from_utf8_lossy(body).into_owned();
        let body = match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(v) if v.get("errorCode").is_some() => format!("errorCode {}", v["errorCode"]),
            _ => body,
        };
        out.push((status, content_type, body));
        bytes = next;
    }
    out
}
