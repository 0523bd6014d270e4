//! The peer port's fixed corpus and its mutation seeds. Every peer route gets messages
//! without headers, from another cluster, from a stranger, and in the member's own name
//! (which anyone who reads `GET /members` can forge), each with a well-formed body and
//! with truncated, garbage, wrongly typed and 100,000-deep JSON; then broken framing
//! (huge or overflowing lengths, bad chunk sizes), broken snapshots (header, checksum,
//! length) and forged removal notices. The member attacked is alone in its cluster, so
//! no sender but itself is a member, and a member never sends to itself: every POST
//! must be refused before Raft sees it, whatever its body.

use beacon_store::{Command, KeysRequest, Method};
use serde_json::json;

use super::cases::{case, Case};
use super::support::PeerIdentity;

/// An id no member has.
const STRANGER: u64 = 0xdead_beef;

/// A term far past the member's own, as a forger would claim to win leadership.
const FORGED_TERM: u64 = 1_000;

/// How deep the nested-JSON bodies go: serde_json refuses more than 128 levels (its
/// recursion limit, on unless the `unbounded_depth` feature is enabled; it is not), so
/// a decoder that recursed without that limit would overflow its stack long before.
pub const NESTING_DEPTH: usize = 100_000;

/// The routes that take a POST, every one a peer message.
const POST_ROUTES: &[&str] = &[
    "/raft/append",
    "/raft/vote",
    "/raft/pre-vote",
    "/raft/snapshot",
    "/raft/propose",
    "/raft/propose-batch",
    "/raft/members",
    "/raft/removed",
    "/raft/transfer-leader",
];

/// Paths no route serves, and routes asked with another method.
const UNROUTED: &[(&str, &str)] = &[
    ("POST", "/raft"),
    ("POST", "/raft/"),
    ("POST", "/raft/append/x"),
    ("POST", "/raft/unknown"),
    ("POST", "/raft//append"),
    ("POST", "/raft/%61ppend"),
    ("GET", "/raft/append"),
    ("PUT", "/raft/vote"),
    ("POST", "/members"),
    ("DELETE", "/members"),
    ("GET", "/members/1"),
    ("GET", "/"),
    ("GET", "/v2/keys/canary/a"),
    ("GET", "/raft/../members"),
];

/// Who a message claims to come from.
#[derive(Clone, Copy)]
enum Sender {
    Nobody,
    OtherCluster,
    Stranger,
    Itself,
}

const SENDERS: [Sender; 4] = [
    Sender::Nobody,
    Sender::OtherCluster,
    Sender::Stranger,
    Sender::Itself,
];

impl Sender {
    fn name(self) -> &'static str {
        match self {
            Sender::Nobody => "no headers",
            Sender::OtherCluster => "another cluster",
            Sender::Stranger => "a stranger",
            Sender::Itself => "its own id",
        }
    }

    /// The header lines naming the cluster and the sender.
    fn headers(self, ids: PeerIdentity) -> String {
        let (cluster, from) = match self {
            Sender::Nobody => return String::new(),
            Sender::OtherCluster => (ids.cluster_id ^ 1, ids.own_id),
            Sender::Stranger => (ids.cluster_id, STRANGER),
            Sender::Itself => (ids.cluster_id, ids.own_id),
        };
        format!("X-Etcd-Cluster-ID: {cluster:x}\r\nX-Server-From: {from:x}\r\n")
    }

    /// The member id the message's own vote names (a check the server also makes).
    fn id(self, ids: PeerIdentity) -> u64 {
        match self {
            Sender::Stranger => STRANGER,
            _ => ids.own_id,
        }
    }
}

/// A request with a `Content-Length` body; `headers` are whole lines.
pub fn with_body(method: &str, path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A request head whose framing lines (`framing`) come from the case, and a body as is.
fn framed(path: &str, headers: &str, framing: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes =
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}{framing}\r\n").into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn vote(from: u64, committed: bool) -> serde_json::Value {
    json!({"leader_id": {"term": FORGED_TERM, "node_id": from}, "committed": committed})
}

/// The snapshot's vote header, the only header a snapshot adds.
fn vote_header(from: u64) -> String {
    format!("X-Beacon-Vote: {}\r\n", vote(from, true))
}

/// The well-formed message of `route` in `from`'s name, as a member would send it
/// (the shapes openraft's and our types serialize to), and the headers it adds.
fn well_formed(route: &str, from: u64, ids: PeerIdentity, snapshot: &[u8]) -> (String, Vec<u8>) {
    let json = match route {
        "/raft/append" => json!({
            "vote": vote(from, true), "prev_log_id": null, "entries": [], "leader_commit": null,
        }),
        "/raft/vote" | "/raft/pre-vote" => json!({"vote": vote(from, false), "last_log_id": null}),
        "/raft/snapshot" => return (vote_header(from), snapshot.to_vec()),
        "/raft/propose" | "/raft/propose-batch" => {
            let mut put = KeysRequest::new(Method::Put, "/hostile/peer", 0);
            put.value = "forged".into();
            let command = serde_json::to_value(Command::Keys(put)).expect("a command encodes");
            if route == "/raft/propose" {
                command
            } else {
                json!([command])
            }
        }
        "/raft/members" => json!({"Remove": {"id": ids.own_id}}),
        "/raft/removed" => json!(ids.own_id),
        "/raft/transfer-leader" => json!({
            "from_leader": vote(from, true), "to_node_id": ids.own_id, "last_log_id": null,
        }),
        other => unreachable!("no message for {other}"),
    };
    (String::new(), json.to_string().into_bytes())
}

/// Bodies no member sends, for any route.
fn broken_bodies(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty body", Vec::new()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"\x00\xff{not json\x01".to_vec()),
        ("null", b"null".to_vec()),
        (
            "wrong types",
            br#"{"vote":"x","entries":{},"Remove":[]}"#.to_vec(),
        ),
        ("u64 overflow", b"18446744073709551616".to_vec()),
        ("nested arrays", "[".repeat(NESTING_DEPTH).into_bytes()),
        (
            "nested objects",
            r#"{"a":"#.repeat(NESTING_DEPTH).into_bytes(),
        ),
    ]
}

/// Framing a peer body may be sent with, none of it what a member sends.
const BROKEN_FRAMING: &[(&str, &str, &[u8])] = &[
    (
        "declared 1 TiB, sent 7 bytes",
        "Content-Length: 1099511627776\r\n",
        b"{\"a\":1}",
    ),
    (
        "content-length overflowing u64",
        "Content-Length: 99999999999999999999\r\n",
        b"{}",
    ),
    ("negative content-length", "Content-Length: -1\r\n", b"{}"),
    (
        "two content-lengths",
        "Content-Length: 2\r\nContent-Length: 3\r\n",
        b"{}",
    ),
    (
        "chunk size not hex",
        "Transfer-Encoding: chunked\r\n",
        b"zz\r\n{}\r\n0\r\n\r\n",
    ),
    (
        "chunk size of 2^64-1",
        "Transfer-Encoding: chunked\r\n",
        b"ffffffffffffffff\r\n{}",
    ),
    (
        "chunk size overflowing u64",
        "Transfer-Encoding: chunked\r\n",
        b"1ffffffffffffffff\r\n{}",
    ),
    (
        "chunk longer than its size",
        "Transfer-Encoding: chunked\r\n",
        b"1\r\n{}\r\n0\r\n\r\n",
    ),
    (
        "chunked, declared 1 GiB",
        "Transfer-Encoding: chunked\r\n",
        b"40000000\r\n{}",
    ),
    (
        "chunked and content-length",
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        b"2\r\n{}\r\n0\r\n\r\n",
    ),
];

/// Snapshot bodies broken in each way the receiver checks, from a real snapshot file.
fn broken_snapshots(snapshot: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let flipped = |at: usize| {
        let mut s = snapshot.to_vec();
        s[at] ^= 0x40;
        s
    };
    let mut huge_data_len = snapshot.to_vec();
    huge_data_len[16..24].copy_from_slice(&(u64::MAX - 7).to_be_bytes());
    vec![
        ("bad magic", flipped(0)),
        ("unknown version", flipped(11)),
        ("meta length past the end", flipped(12)),
        ("data length near u64 max", huge_data_len),
        ("bad checksum", flipped(snapshot.len() - 1)),
        ("a flipped store byte", flipped(snapshot.len() - 9)),
        ("truncated to half", snapshot[..snapshot.len() / 2].to_vec()),
        ("truncated to its header", snapshot[..24].to_vec()),
        ("padded", [snapshot, b"pad"].concat()),
        ("22 bytes of junk", b"0123456789abcdefghijkl".to_vec()),
    ]
}

/// The peer port's fixed cases, for the member `ids` names, `snapshot` being one of its
/// real snapshot files.
pub fn peer_cases(ids: PeerIdentity, snapshot: &[u8]) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut refused = |name: String, bytes: Vec<u8>| cases.push(refusal(name, bytes));
    for route in POST_ROUTES {
        for sender in SENDERS {
            let headers = sender.headers(ids);
            let (extra, good) = well_formed(route, sender.id(ids), ids, snapshot);
            let all = format!("{headers}{extra}");
            refused(
                format!("{route} from {}, well-formed", sender.name()),
                with_body("POST", route, &all, &good),
            );
            for (what, body) in broken_bodies(&good) {
                refused(
                    format!("{route} from {}, {what}", sender.name()),
                    with_body("POST", route, &all, &body),
                );
            }
        }
        for sender in [Sender::Stranger, Sender::Itself] {
            for (what, framing, body) in BROKEN_FRAMING {
                refused(
                    format!("{route} from {}, {what}", sender.name()),
                    framed(route, &sender.headers(ids), framing, body),
                );
            }
        }
    }
    for sender in [Sender::OtherCluster, Sender::Stranger, Sender::Itself] {
        let headers = format!("{}{}", sender.headers(ids), vote_header(sender.id(ids)));
        for (what, body) in broken_snapshots(snapshot) {
            refused(
                format!("snapshot from {}, {what}", sender.name()),
                with_body("POST", "/raft/snapshot", &headers, &body),
            );
        }
        let votes = [
            ("no vote header", String::new()),
            (
                "a garbage vote",
                "X-Beacon-Vote: {\"leader_id\":\r\n".into(),
            ),
            (
                "a nested vote",
                format!("X-Beacon-Vote: {}\r\n", "[".repeat(8 << 10)),
            ),
        ];
        for (what, vote) in votes {
            refused(
                format!("snapshot from {}, {what}", sender.name()),
                with_body(
                    "POST",
                    "/raft/snapshot",
                    &format!("{}{vote}", sender.headers(ids)),
                    snapshot,
                ),
            );
        }
    }
    // Removal notices, and the names a sender may be given in: ids that overflow, are
    // not hex, or are this member's own id spelled another way.
    let cluster = format!("X-Etcd-Cluster-ID: {:x}\r\n", ids.cluster_id);
    let own = ids.own_id.to_string();
    let forged_senders = [
        (
            "own id in upper case",
            format!("{cluster}X-Server-From: {:X}\r\n", ids.own_id),
        ),
        (
            "own id with leading zeros",
            format!("{cluster}X-Server-From: 0000{:x}\r\n", ids.own_id),
        ),
        (
            "sender overflowing u64",
            format!("{cluster}X-Server-From: 1ffffffffffffffff\r\n"),
        ),
        ("sender not hex", format!("{cluster}X-Server-From: zz\r\n")),
        ("negative sender", format!("{cluster}X-Server-From: -1\r\n")),
        ("empty sender", format!("{cluster}X-Server-From: \r\n")),
        ("sender zero", format!("{cluster}X-Server-From: 0\r\n")),
        (
            "two senders",
            format!(
                "{cluster}X-Server-From: {STRANGER:x}\r\nX-Server-From: {:x}\r\n",
                ids.own_id
            ),
        ),
        (
            "cluster id not hex",
            format!(
                "X-Etcd-Cluster-ID: xyz\r\nX-Server-From: {:x}\r\n",
                ids.own_id
            ),
        ),
        (
            "two cluster ids",
            format!(
                "{cluster}X-Etcd-Cluster-ID: 1\r\nX-Server-From: {:x}\r\n",
                ids.own_id
            ),
        ),
    ];
    for (what, headers) in &forged_senders {
        refused(
            format!("removal notice, {what}"),
            with_body("POST", "/raft/removed", headers, own.as_bytes()),
        );
        refused(
            format!("append, {what}"),
            with_body(
                "POST",
                "/raft/append",
                headers,
                well_formed("/raft/append", ids.own_id, ids, snapshot)
                    .1
                    .as_slice(),
            ),
        );
    }
    // The member list is public (a joining member reads it): answered, never broken.
    let mut listings = Vec::new();
    for sender in SENDERS {
        let headers = sender.headers(ids);
        for (method, path) in UNROUTED {
            refused(
                format!("{method} {path} from {}", sender.name()),
                with_body(method, path, &headers, b"{}"),
            );
        }
        listings.push(case(
            format!("GET /members from {} with a nested body", sender.name()),
            with_body(
                "GET",
                "/members",
                &headers,
                "[".repeat(NESTING_DEPTH).as_bytes(),
            ),
        ));
    }
    cases.extend(listings);
    cases
}

/// A case that must be refused (see [`Case::refused`]).
fn refusal(name: String, bytes: Vec<u8>) -> Case {
    Case {
        refused: true,
        ..case(name, bytes)
    }
}

/// Well-formed messages the mutator starts from: every route's message in the
/// member's own name (the forgery that gets furthest), and the member list.
pub fn peer_seeds(ids: PeerIdentity, snapshot: &[u8]) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = POST_ROUTES
        .iter()
        .map(|route| {
            let (extra, body) = well_formed(route, ids.own_id, ids, snapshot);
            let headers = format!("{}{extra}", Sender::Itself.headers(ids));
            with_body("POST", route, &headers, &body)
        })
        .collect();
    seeds.push(with_body("GET", "/members", "", b""));
    seeds
}

/// The nested bodies are refused by the JSON decoder itself, not by a stack overflow:
/// serde_json stops at its recursion limit (no crate in the build turns on its
/// `unbounded_depth` feature), so even a member's own message this deep is a 400.
#[test]
fn serde_json_refuses_the_nested_bodies_at_its_recursion_limit() {
    for nested in ["[".repeat(NESTING_DEPTH), r#"{"a":"#.repeat(NESTING_DEPTH)] {
        let e = serde_json::from_str::<serde_json::Value>(&nested).unwrap_err();
        assert!(e.to_string().contains("recursion limit exceeded"), "{e}");
    }
}
