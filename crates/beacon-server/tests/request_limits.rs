//! etcd's per-member request limits, set by flag, against etcd 3.4 and Beacon alike:
//! the same requests through a Rust gRPC client (tonic), through `etcdctl` and through
//! the JSON gateway, and the same outcome from both (code, message, exit status).
//!
//! - `--max-request-bytes`: a write whose request, encoded, is larger is refused
//!   "etcdserver: request is too large" (InvalidArgument); a gRPC message larger than
//!   the flag plus 512 KiB is refused by the gRPC server itself (ResourceExhausted).
//! - `--max-txn-ops`: a transaction with more compares, or more operations in a branch,
//!   is refused "etcdserver: too many operations in txn request" (InvalidArgument); a
//!   nested transaction gets what its parent's largest count left. Above the default
//!   (128) it is the member's flag that counts, not a limit of the keyspace.

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::Duration;

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{Compare, PutRequest, RequestOp, TxnRequest};
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

/// etcdctl's `txn` reading its three blocks (compares, successes, failures) from stdin.
fn etcdctl_txn(server: &ServerProcess, script: &str) -> (Option<i32>, String) {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", server.client_url()))
        .args(["--command-timeout=10s", "txn"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("etcdctl runs");
    let mut stdin = child.stdin.take().expect("a stdin");
    stdin.write_all(script.as_bytes()).expect("the script");
    drop(stdin);
    let out = child.wait_with_output().expect("etcdctl ends");
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said.lines().last().unwrap_or("").to_string();
    (out.status.code(), said)
}

fn put_op(i: usize) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(put(&format!("k{i}"), 1))),
    }
}

/// A transaction of `n` puts (of keys from `k{first}` on) in its success branch.
fn puts_from(first: usize, n: usize) -> TxnRequest {
    TxnRequest {
        success: (first..first + n).map(put_op).collect(),
        ..TxnRequest::default()
    }
}

fn puts(n: usize) -> TxnRequest {
    puts_from(0, n)
}

/// A transaction whose success branch is `outer` puts and a nested transaction of
/// `inner` puts of other keys (a key written twice is refused for that alone).
fn nested(outer: usize, inner: usize) -> TxnRequest {
    let mut txn = puts(outer);
    txn.success.push(RequestOp {
        request: Some(Op::RequestTxn(puts_from(100, inner))),
    });
    txn
}

/// The length of a protobuf varint.
fn varint_bytes(mut n: u64) -> usize {
    let mut bytes = 1;
    while n >= 0x80 {
        n >>= 7;
        bytes += 1;
    }
    bytes
}

/// The bytes of the entry etcd proposes for a put of a one-byte key and `value_bytes`
/// without auth: an `InternalRaftRequest` of a header (field 100: a request id of the
/// member id's low 16 bits over 48 bits of time and count) and the put (field 4).
fn etcd_put_entry_bytes(member_id: u64, value_bytes: usize) -> usize {
    let id = ((member_id & 0xffff) << 48) | (1 << 47);
    let header = 1 + varint_bytes(id);
    let put = 1 + 1 + 1 + 1 + varint_bytes(value_bytes as u64) + value_bytes;
    2 + 1 + header + 1 + varint_bytes(put as u64) + put
}

fn put(key: &str, value_bytes: usize) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: vec![b'v'; value_bytes],
        ..PutRequest::default()
    }
}

/// `--max-request-bytes=2048`: a 1 KiB put is taken; a 3 KiB one is refused by the
/// server's own check, through tonic, etcdctl and the gateway alike, at the very byte
/// where etcd's entry (with its member-dependent request id) passes 2048; a put larger
/// than 2048 + 512 KiB is refused by the gRPC server before any of etcd's code runs.
#[test]
fn max_request_bytes_refuses_larger_writes_alike() {
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut seen = Vec::new();
    for (kind, bin) in both() {
        // 2048, in Go's syntax for unsigned flags, which both take.
        let members = ServerProcess::cluster_with(kind, bin, 1, &["--max-request-bytes=0x800"])
            .expect("a member");
        let server = &members[0];
        let mut answers = runtime.block_on(async {
            let mut kv = KvClient::new(beacon_testkit::grpc_channel(&server.client_url()).await);
            let mut answers = Vec::new();
            for bytes in [1024, 3 * 1024, 600 * 1024] {
                answers.push(outcome(kv.put(put("k", bytes)).await));
            }
            // The largest put taken is the one whose entry, as etcd encodes it, fits.
            let member_id = kv.put(put("k", 1)).await.expect("a put").into_inner();
            let member_id = member_id.header.expect("a header").member_id;
            let mut taken = 2000;
            while kv.put(put("k", taken + 1)).await.is_ok() {
                taken += 1;
            }
            let fits = (2000..).take_while(|&n| etcd_put_entry_bytes(member_id, n) <= 2048);
            assert_eq!(Some(taken), fits.last(), "{kind:?}: member {member_id:x}");
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

/// `--max-txn-ops=4`: four operations in a branch are taken, five are refused, through
/// tonic, etcdctl and the gateway alike; so are five compares; a nested transaction
/// beside one put (a branch of two) may hold two operations, not three.
/// `--max-txn-ops=200`: a transaction of 150 operations is taken by both.
#[test]
fn max_txn_ops_refuses_larger_transactions_alike() {
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let five_compares = TxnRequest {
        compare: (0..5)
            .map(|i| Compare {
                key: format!("k{i}").into_bytes(),
                ..Compare::default()
            })
            .collect(),
        ..TxnRequest::default()
    };
    let mut seen = Vec::new();
    for (kind, bin) in both() {
        let members = ServerProcess::cluster_with(kind, bin.clone(), 1, &["--max-txn-ops=4"])
            .expect("a member");
        let server = &members[0];
        let mut answers = runtime.block_on(async {
            let mut kv = KvClient::new(beacon_testkit::grpc_channel(&server.client_url()).await);
            let mut answers = Vec::new();
            for txn in [
                puts(4),
                puts(5),
                five_compares.clone(),
                nested(1, 2),
                nested(1, 3),
            ] {
                answers.push(outcome(kv.txn(txn).await));
            }
            answers
        });
        let five = "put a 1\nput b 1\nput c 1\nput d 1\nput e 1\n";
        answers.push(format!(
            "{:?}",
            etcdctl_txn(server, &format!("\n{five}\n\n"))
        ));
        let ops = r#"{"requestPut":{"key":"aw==","value":"dg=="}}"#;
        let body = format!(r#"{{"success":[{}]}}"#, [ops; 5].join(","));
        answers.push(gateway_post(server, "/v3/kv/txn", &body));
        drop(members);
        let members =
            ServerProcess::cluster_with(kind, bin, 1, &["--max-txn-ops=200"]).expect("a member");
        answers.push(runtime.block_on(async {
            let mut kv =
                KvClient::new(beacon_testkit::grpc_channel(&members[0].client_url()).await);
            outcome(kv.txn(puts(150)).await)
        }));
        seen.push(answers);
    }
    let (etcd, beacon) = (&seen[0], &seen[1]);
    let too_many = "InvalidArgument: etcdserver: too many operations in txn request";
    assert_eq!(etcd[..5], ["ok", too_many, too_many, "ok", too_many]);
    assert_eq!(
        etcd[5],
        r#"(Some(1), "Error: etcdserver: too many operations in txn request")"#
    );
    assert!(etcd[6].starts_with("400 "), "{}", etcd[6]);
    assert_eq!(etcd[7], "ok");
    assert_eq!(beacon, etcd, "Beacon's answers, then etcd's");
}
