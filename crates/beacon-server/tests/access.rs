//! `--host-whitelist` and `--cors`, against etcd 3.4.23: the same raw HTTP requests to
//! both, with listed and unlisted Host headers and origins, on v2, `/version`, the
//! JSON gateway and `/metrics`; the answers compared without their dates.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use beacon_testkit::{beacon_bin, etcd_bin, etcd_or_skip, ServerKind, ServerProcess};

/// Sends `request` (with `PORT` standing for the server's port) and returns the
/// answer: its status line, the headers that tell (lower-cased, sorted) and the body.
fn exchange(port: u16, request: &str) -> String {
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = request.replace("PORT", &port.to_string());
    sock.write_all(request.as_bytes()).expect("sent");
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).expect("an answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_string();
    let mut headers: Vec<String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .filter(|(n, _)| n.starts_with("access-control") || n.starts_with("content-"))
        .map(|(n, v)| format!("{n}: {v}"))
        .collect();
    headers.sort();
    // Keys and gateway documents differ in indexes and ids, so in length too.
    let body = if body.starts_with("{\"action\"") || body.contains("\"header\"") {
        headers.retain(|h| !h.starts_with("content-length"));
        "(json)"
    } else if request.contains("/metrics") {
        "(metrics)"
    } else {
        body
    };
    format!("{status}\n{}\n{body}", headers.join("\n"))
}

fn get(path: &str, host: &str, origin: Option<&str>) -> String {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{origin}Connection: close\r\n\r\n")
}

fn requests() -> Vec<String> {
    let here = "127.0.0.1:PORT";
    let range = r#"{"key":"aw=="}"#;
    vec![
        get("/version", here, Some("http://a.com:1")),
        get("/version", here, Some("https://b.org:8")),
        get("/version", here, Some("http://c.com:1")),
        get("/version", here, None),
        get("/v2/keys/", "example.com", Some("http://a.com:1")),
        get("/v2/keys/", "evil.com:PORT", Some("http://a.com:1")),
        get("/version", "[::1]:80", None),
        get("/version", "EXAMPLE.COM", None),
        get("/metrics", "evil.com", None),
        "OPTIONS /v2/keys/a HTTP/1.1\r\nHost: example.com\r\nOrigin: http://a.com:1\r\n\
         Connection: close\r\n\r\n"
            .into(),
        "OPTIONS /v2/keys/a HTTP/1.1\r\nHost: evil.com\r\nConnection: close\r\n\r\n".into(),
        format!(
            "POST /v3/kv/range HTTP/1.1\r\nHost: evil.com\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{range}",
            range.len()
        ),
        format!(
            "POST /v3/kv/range HTTP/1.1\r\nHost: {here}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{range}",
            range.len()
        ),
        // HTTP/1.0 may leave Host out: Go's Request.Host is then empty.
        "GET /version HTTP/1.0\r\n\r\n".into(),
    ]
}

#[test]
fn host_whitelist_and_cors_answer_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let args = [
        "--enable-v2",
        "--host-whitelist=example.com,127.0.0.1",
        "--cors",
        "http://a.com:1, https://b.org:8",
    ];
    let mut told = Vec::new();
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let member = ServerProcess::cluster_with(kind, bin, 1, &args)
            .expect("a member")
            .remove(0);
        let answers: Vec<String> = requests()
            .iter()
            .map(|r| exchange(member.client_port(), r))
            .collect();
        told.push(answers);
    }
    for (i, (etcd, beacon)) in told[0].iter().zip(&told[1]).enumerate() {
        assert_eq!(etcd, beacon, "request {i}: {:?}", requests()[i]);
    }
    assert!(told[1][5].starts_with("HTTP/1.1 421"), "{}", told[1][5]);
    assert!(told[1][0].contains("access-control-allow-origin: http://a.com:1"));
}

/// Over TLS etcd checks no Host: a request naming an unlisted one is served.
#[test]
fn over_tls_any_host_is_served_as_by_etcd() {
    if !etcd_or_skip() {
        return;
    }
    let pki = beacon_testkit::Pki::new().expect("test certificates");
    let flags = [
        "--cert-file",
        pki.server.cert.to_str().unwrap(),
        "--key-file",
        pki.server.key.to_str().unwrap(),
        "--host-whitelist=example.com",
    ];
    let https = beacon_testkit::Https {
        client: true,
        peer: false,
    };
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let member = ServerProcess::start_https(kind, bin, https, &flags).expect("a member");
        let info = beacon_tls::TlsInfo {
            trusted_ca_file: Some(pki.ca.clone()),
            ..beacon_tls::TlsInfo::default()
        };
        let config = info.client_config(&[b"http/1.1"]).expect("a client config");
        let conn = rustls::ClientConnection::new(config, "127.0.0.1".try_into().unwrap()).unwrap();
        let tcp = std::net::TcpStream::connect(("127.0.0.1", member.client_port())).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(get("/version", "evil.com", None).as_bytes())
            .unwrap();
        let mut answer = Vec::new();
        // Go may close without TLS's close_notify: what came is the answer.
        let _ = tls.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{kind:?}: {answer}");
    }
}
