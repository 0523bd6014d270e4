//! The fixed corpus: requests that break HTTP's framing, its limits, or etcd's
//! parameters, each a way a server of ours once could, or plausibly could, be hurt.
//! Every case names what it attacks; none touches the canary keys.

use super::raw::{bare_request, form_request};

/// One hostile request and what it attacks.
pub struct Case {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Whether the only right answers are a refusal (4xx) or none at all: a peer
    /// message no member sent must never be taken (2xx) nor break anything (5xx).
    pub refused: bool,
}

pub fn case(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Case {
    Case {
        name: name.into(),
        bytes: bytes.into(),
        refused: false,
    }
}

/// A request head with `headers` spliced in, ending the head.
fn with_headers(request_line: &str, headers: &str) -> Vec<u8> {
    format!("{request_line}\r\nHost: 127.0.0.1\r\n{headers}\r\n").into_bytes()
}

/// The client port's fixed cases.
pub fn client_cases() -> Vec<Case> {
    let mut cases = vec![
        case("nothing", ""),
        case("control bytes", b"\x00\x01\x02\x03\r\n\r\n".to_vec()),
        case("tls client hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
        case("http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        case("http/0.9", "GET /v2/keys/hostile\r\n"),
        case("http/1.0 without host", "GET /v2/keys/hostile HTTP/1.0\r\n\r\n"),
        case("http/9.9", "GET /v2/keys/hostile HTTP/9.9\r\nHost: x\r\n\r\n"),
        case("no version", "GET /v2/keys/hostile\r\nHost: x\r\n\r\n"),
        case("lowercase method", bare_request("get", "/v2/keys/hostile")),
        case("method of symbols", bare_request("G{}T", "/v2/keys/hostile")),
        case("connect", "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n"),
        case("asterisk target", bare_request("OPTIONS", "*")),
        case("absolute-form target", bare_request("GET", "http://elsewhere/v2/keys/hostile")),
        case("target without slash", bare_request("GET", "v2/keys/hostile")),
        case("nul in target", bare_request("GET", "/v2/keys/hos\0tile")),
        case("escaped nul in key", form_request("PUT", "/v2/keys/hostile/%00", "value=1")),
        case("bad escape in key", bare_request("GET", "/v2/keys/hostile/%zz%")),
        case("space in target", bare_request("GET", "/v2/keys/hos tile")),
        case("obs-fold header", with_headers("GET /v2/keys/hostile HTTP/1.1", "X-A: 1\r\n continued\r\n")),
        case("header without colon", with_headers("GET /v2/keys/hostile HTTP/1.1", "NoColon\r\n")),
        case("header name with space", with_headers("GET /v2/keys/hostile HTTP/1.1", "Bad Name: 1\r\n")),
        case("nul in header value", with_headers("GET /v2/keys/hostile HTTP/1.1", "X-A: a\0b\r\n")),
        case("negative content-length", with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Content-Length: -1\r\n")),
        case("huge content-length", with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Content-Length: 99999999999999999999\r\n")),
        case("content-length not a number", with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Content-Length: 1e3\r\n")),
        case("two content-lengths", with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Content-Length: 3\r\nContent-Length: 4\r\n")),
        case("content-length and chunked", with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n")),
        case("unknown transfer-encoding", with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Transfer-Encoding: rot13\r\n")),
        case("chunk size not hex", [with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Transfer-Encoding: chunked\r\n"), b"zz\r\nvalue=1\r\n0\r\n\r\n".to_vec()].concat()),
        case("chunk size of 2^64-1", [with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Transfer-Encoding: chunked\r\n"), b"ffffffffffffffff\r\nvalue=1".to_vec()].concat()),
        case("chunk size overflowing u64", [with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Transfer-Encoding: chunked\r\n"), b"1ffffffffffffffff\r\nvalue=1".to_vec()].concat()),
        case("declared 11 MiB body, sent 7 bytes", [with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11534336\r\n"), b"value=1".to_vec()].concat()),
        case("expect 100-continue for 11 MiB", with_headers("PUT /v2/keys/hostile/a HTTP/1.1", "Expect: 100-continue\r\nContent-Length: 11534336\r\n")),
        case("ttl overflowing i64", form_request("PUT", "/v2/keys/hostile/a", "value=1&ttl=99999999999999999999")),
        case("ttl of i64 max", form_request("PUT", "/v2/keys/hostile/a", "value=1&ttl=9223372036854775807")),
        case("negative ttl", form_request("PUT", "/v2/keys/hostile/a", "value=1&ttl=-1")),
        case("prevIndex overflowing", form_request("PUT", "/v2/keys/hostile/a", "value=1&prevIndex=18446744073709551616")),
        case("waitIndex of u64 max", bare_request("GET", "/v2/keys/hostile?wait=true&waitIndex=18446744073709551615")),
        case("waitIndex not a number", bare_request("GET", "/v2/keys/hostile?wait=true&waitIndex=x")),
        case("every boolean malformed", bare_request("GET", "/v2/keys/hostile?recursive=maybe&sorted=2&quorum=&wait=yes")),
        case("parameter repeated 10,000 times", form_request("PUT", "/v2/keys/hostile/a", &"value=1&".repeat(10_000))),
        case("in-order create under a file", form_request("POST", "/v2/keys/hostile/a/b/c", "value=1")),
        case("delete of the root", bare_request("DELETE", "/v2/keys/?recursive=true&dir=true")),
        case("delete of the root without recursive", bare_request("DELETE", "/v2/keys/")),
        case("put to the root", form_request("PUT", "/v2/keys/", "value=1")),
        case("members with junk json", form_request("POST", "/v2/members", "{\"peerURLs\":[\"\\u0000\"]")),
        case("member delete of a junk id", bare_request("DELETE", "/v2/members/zzzz")),
        case("stats with a long tail", bare_request("GET", &format!("/v2/stats/{}", "x/".repeat(2_000)))),
    ];
    let long_target = format!("/v2/keys/hostile/{}", "a".repeat(100 << 10));
    cases.push(case("100 KiB target", bare_request("GET", &long_target)));
    let many_headers: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    cases.push(case(
        "10,000 headers",
        with_headers("GET /v2/keys/hostile HTTP/1.1", &many_headers),
    ));
    let huge_header = format!("X-Big: {}\r\n", "v".repeat(1 << 20));
    cases.push(case(
        "1 MiB header",
        with_headers("GET /v2/keys/hostile HTTP/1.1", &huge_header),
    ));
    let pipelined = bare_request("GET", "/v2/keys/hostile").repeat(1_000);
    cases.push(case("1,000 pipelined GETs", pipelined));
    let long_key = format!("/v2/keys/hostile/{}", "k".repeat(64 << 10));
    cases.push(case(
        "64 KiB key",
        form_request("PUT", &long_key, "value=1"),
    ));
    // A key 1,000 levels deep, listed recursively (the stack overflow of issue 13's first
    // defect), then removed so that later listings stay cheap.
    let deep = format!("/v2/keys/hostile/deep/{}", ["d"; 1_000].join("/"));
    cases.push(case(
        "1,000-level key",
        form_request("PUT", &deep, "value=1"),
    ));
    cases.push(case(
        "recursive listing of a 1,000-level key",
        bare_request("GET", "/v2/keys/hostile/deep?recursive=true"),
    ));
    cases.push(case(
        "recursive delete of a 1,000-level key",
        bare_request("DELETE", "/v2/keys/hostile/deep?recursive=true"),
    ));
    cases
}

/// Well-formed requests the mutator starts from: every kind of v2 call, all under
/// `/hostile`.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        form_request("PUT", "/v2/keys/hostile/m", "value=v&ttl=5"),
        form_request("PUT", "/v2/keys/hostile/d?dir=true", ""),
        form_request("PUT", "/v2/keys/hostile/m?prevExist=false", "value=v"),
        form_request(
            "PUT",
            "/v2/keys/hostile/m?prevValue=v&prevIndex=3",
            "value=w",
        ),
        form_request("POST", "/v2/keys/hostile/queue", "value=job&ttl=3"),
        bare_request("GET", "/v2/keys/hostile?recursive=true&sorted=true"),
        bare_request("GET", "/v2/keys/hostile/m?wait=true&waitIndex=1"),
        bare_request("GET", "/v2/keys/hostile?quorum=true"),
        bare_request("DELETE", "/v2/keys/hostile/m?prevValue=v"),
        bare_request("DELETE", "/v2/keys/hostile/d?dir=true&recursive=true"),
        bare_request("GET", "/v2/keys/hostile?wait=true&stream=true&recursive=true"),
        b"POST /v2/keys/hostile/queue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nvalue=q\r\n0\r\n\r\n".to_vec(),
        b"POST /v2/members HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"peerURLs\":1}".to_vec(),
        bare_request("GET", "/v2/members"),
        bare_request("GET", "/v2/stats/self"),
        bare_request("GET", "/version"),
        bare_request("GET", "/health"),
    ]
}
