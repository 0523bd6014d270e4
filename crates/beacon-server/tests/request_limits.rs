//! etcd's per-member request limits, set by flag, against etcd 3.4 and Beacon alike:
//! the same requests through a Rust gRPC client (tonic), through `etcdctl` and through
//! the JSON gateway, and the same outcome from both (code, message, exit status).
//!
//! - `--max-request-bytes`: a write whose request, encoded, is larger is refused
//!   "etcdserver: request is too large" (InvalidArgument); a gRPC message larger than
//!   the flag plus 512 KiB is refused by the gRPC server itself (ResourceExhausted).

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::Duration;

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::PutRequest;
use beacon_testkit::{beacon_bin, etcd_bin, etcd_or_skip, ServerKind, ServerProcess};

/// etcd, then Beacon: each test runs the same steps against both.
fn both() -> [(ServerKind, std::path::PathBuf); 2] {
    [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ]
}

/// What a call came to: `Ok`, or its refusal's code and message.
fn outcome<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> String {
    match answer {
        Ok(_) => "ok".to_string(),
        Err(s) => format!("{:?}: {}", s.code(), s.message()),
    }
}

/// `etcdctl` (API 3) against `server` with `args`: its exit code and the last line of
/// its stderr (its client logs a retry before it, with a time and a port).
fn etcdctl(server: &ServerProcess, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", server.client_url()))
        .arg("--command-timeout=10s")
        .args(args)
        .output()
        .expect("etcdctl runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_string(),
    )
}

/// A JSON gateway call: the status line's code and the body.
fn gateway_post(server: &ServerProcess, path: &str, body: &str) -> String {
    let port = server.client_port();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        sock,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).expect("an answer");
    let status = answer.split(' ').nth(1).unwrap_or("").to_string();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // A chunked body's last chunk (grpc-gateway streams its error body).
    let body = body
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or(body)
        .to_string();
    format!("{status} {body}")
}

fn put(key: &str, value_bytes: usize) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: vec![b'v'; value_bytes],
        ..PutRequest::default()
    }
}

/// `--max-request-bytes=2048`: a 1 KiB put is taken; a 3 KiB one is refused by the
/// server's own check, through tonic, etcdctl and the gateway alike; a put larger than
/// 2048 + 512 KiB is refused by the gRPC server before any of etcd's code runs.
#[test]
fn max_request_bytes_refuses_larger_writes_alike() {
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut seen = Vec::new();
    for (kind, bin) in both() {
        let members = ServerProcess::cluster_with(kind, bin, 1, &["--max-request-bytes=2048"])
            .expect("a member");
        let server = &members[0];
        let mut answers = runtime.block_on(async {
            let mut kv = KvClient::new(beacon_testkit::grpc_channel(&server.client_url()).await);
            let mut answers = Vec::new();
            for bytes in [1024, 3 * 1024, 600 * 1024] {
                answers.push(outcome(kv.put(put("k", bytes)).await));
            }
            answers
        });
        let value = "v".repeat(3 * 1024);
        answers.push(format!("{:?}", etcdctl(server, &["put", "k", &value])));
        answers.push(format!("{:?}", etcdctl(server, &["put", "k", "small"])));
        let body = format!(r#"{{"key":"aw==","value":"{}"}}"#, "dnZ2".repeat(1024));
        answers.push(gateway_post(server, "/v3/kv/put", &body));
        let body = format!(
            r#"{{"key":"aw==","value":"{}"}}"#,
            "dnZ2".repeat(200 * 1024)
        );
        answers.push(gateway_post(server, "/v3/kv/put", &body));
        seen.push(answers);
    }
    let (etcd, beacon) = (&seen[0], &seen[1]);
    assert_eq!(etcd[0], "ok");
    assert_eq!(etcd[1], "InvalidArgument: etcdserver: request is too large");
    assert!(etcd[2].starts_with("ResourceExhausted: grpc: received message larger than max ("));
    assert!(etcd[2].ends_with(" vs. 526336)"), "{}", etcd[2]);
    assert_eq!(
        etcd[3],
        r#"(Some(1), "Error: etcdserver: request is too large")"#
    );
    assert!(etcd[6].starts_with("429 "), "{}", etcd[6]);
    assert_eq!(beacon, etcd, "Beacon's answers, then etcd's");
}
