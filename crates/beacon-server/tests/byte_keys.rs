//! Keys and values that are not UTF-8, sent to real etcd 3.4 and to Beacon, and the
//! answers compared byte for byte (indexes made relative). etcd keeps `k%FF` and `k%FE`
//! apart, refuses a compare-and-swap of one against the other, and writes each invalid
//! byte as `\ufffd` in its JSON (one per byte: Go's decoder, not Rust's lossy one).
//! Before keys became bytes, Beacon merged the two keys and let that swap succeed.
//!
//! The conformance corpus compares parsed JSON, which cannot see how a string was
//! escaped; hence this test of its own. Skipped without etcd unless BEACON_REQUIRE_ETCD=1.

use std::time::Duration;

use beacon_testkit::{etcd_available, ServerProcess};

/// Every request of the comparison: method, target (sent verbatim), form body.
const REQUESTS: &[(&str, &str, Option<&str>)] = &[
    ("PUT", "/v2/keys/bytes/k%FF", Some("value=first")),
    // A different key: created (201), no prevNode.
    ("PUT", "/v2/keys/bytes/k%FE", Some("value=second")),
    ("GET", "/v2/keys/bytes/k%FF", None),
    // A compare whose cause shows a value that is not UTF-8.
    ("PUT", "/v2/keys/bytes/k%FF?prevValue=%FE", Some("value=x")),
    ("PUT", "/v2/keys/bytes/cas", Some("value=%FF")),
    // Two values that both print as \ufffd are still different values.
    ("PUT", "/v2/keys/bytes/cas?prevValue=%FE", Some("value=y")),
    ("PUT", "/v2/keys/bytes/cas", Some("value=z&prevValue=%FF")),
    // A cut 4-byte sequence is three replacements; an overlong NUL two.
    ("PUT", "/v2/keys/bytes/v", Some("value=%F0%9F%98.%C0%80")),
    // Go's other escapes: <, >, &, U+2028; a real U+FFFD, NUL and DEL.
    (
        "PUT",
        "/v2/keys/bytes/h",
        Some("value=%3C%26%3E%E2%80%A8%EF%BF%BD%00%7F"),
    ),
    ("PUT", "/v2/keys/bytes/d%FF/x%FE", Some("value=in-dir")),
    // Byte order: "d\xff" < "h" < "k\xfe" < "k\xff" < "v".
    ("GET", "/v2/keys/bytes?recursive=true&sorted=true", None),
    ("DELETE", "/v2/keys/bytes/k%FE", None),
    ("GET", "/v2/keys/bytes/k%FF", None),
    ("GET", "/v2/keys/bytes/nope%FF", None),
    ("DELETE", "/v2/keys/bytes/k%FF?prevValue=%FE", None),
    ("DELETE", "/v2/keys/bytes/k%FF?prevValue=first", None),
    ("PUT", "/v2/keys/bytes/d%FF?dir=true&prevExist=true", None),
    ("GET", "/v2/keys/bytes/d%FF?recursive=true", None),
];

/// The history keeps the two keys apart too: a watch on `k%FF` from the first write
/// sees that write, not the later one of `k%FE`.
const WATCH: &str = "/v2/keys/bytes/k%FF?wait=true&waitIndex=";

struct Answer {
    status: u16,
    body: String,
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    target: &str,
    body: Option<&str>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http.request(method, format!("{base}{target}"));
    if let Some(body) = body {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
    }
    let resp = req.send().await.expect("the server answers");
    Answer {
        status: resp.status().as_u16(),
        body: resp.text().await.expect("a body"),
    }
}

/// The body with every index (`"modifiedIndex":N`, `"createdIndex":N`, `"index":N`)
/// made relative to `base`, so that two servers' answers compare byte for byte.
fn relative(body: &str, base: u64) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = ["Index\":", "\"index\":"]
        .iter()
        .filter_map(|pat| rest.find(pat).map(|i| i + pat.len()))
        .min()
    {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = rest[..digits].parse().unwrap_or(0);
        out.push_str(&format!("{{base+{}}}", n.saturating_sub(base)));
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// The transcript of one server: every answer, indexes relative to its first write.
async fn transcript(server: &ServerProcess) -> Vec<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base_url = server.client_url();
    let first = send(
        &http,
        &base_url,
        "PUT",
        "/v2/keys/bytes/base",
        Some("value=b"),
    )
    .await;
    let first: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    let base = first["node"]["modifiedIndex"].as_u64().unwrap();
    let mut lines = Vec::new();
    for (method, target, body) in REQUESTS {
        let answer = send(&http, &base_url, method, target, *body).await;
        lines.push(format!(
            "{method} {target} -> {} {}",
            answer.status,
            relative(&answer.body, base).trim_end()
        ));
    }
    let watch = format!("{WATCH}{base}");
    let answer = send(&http, &base_url, "GET", &watch, None).await;
    lines.push(format!(
        "GET {WATCH}{{base}} -> {} {}",
        answer.status,
        relative(&answer.body, base).trim_end()
    ));
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_keys_and_values_match_etcd() {
    if !etcd_available() {
        if std::env::var("BEACON_REQUIRE_ETCD").is_ok_and(|v| v == "1") {
            panic!("etcd not found (BEACON_REQUIRE_ETCD=1): install etcd-server or set ETCD_BIN");
        }
        eprintln!("skipped: etcd not found");
        return;
    }
    let etcd = ServerProcess::etcd().expect("etcd starts");
    let beacon = ServerProcess::beacon_at(env!("CARGO_BIN_EXE_beacon")).expect("beacon starts");
    let want = transcript(&etcd).await;
    let got = transcript(&beacon).await;
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(g, w, "beacon (left) differs from etcd (right)");
    }
    assert_eq!(got.len(), want.len());
    // The answers the issue names, spelled out.
    assert!(
        want[1].contains("-> 201 ") && !want[1].contains("prevNode"),
        "{}",
        want[1]
    );
    assert!(
        want[3].contains("-> 412 ") && want[3].contains("Compare failed"),
        "{}",
        want[3]
    );
    assert!(
        want[5].contains(r#""cause":"[\ufffd != \ufffd]""#),
        "{}",
        want[5]
    );
    assert!(
        want[7].contains(r#""value":"\ufffd\ufffd\ufffd.\ufffd\ufffd""#),
        "{}",
        want[7]
    );
}
