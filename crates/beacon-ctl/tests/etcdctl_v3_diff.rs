//! The real `etcdctl` 3.4 with `ETCDCTL_API=3` against a fresh etcd 3.4 and a fresh
//! Beacon: the same commands must print the same, once what differs between any two
//! servers is normalized (ports, member and cluster ids, Raft's term and indexes, which
//! count each implementation's internal entries, and the database's size on disk).
//!
//! v3 over gRPC is served on the client port beside v2; so far the membership and a
//! member's status (`member list`, `endpoint status`).

mod support;

use std::process::{Command, Stdio};

use beacon_testkit::ServerProcess;
use serde_json::Value;
use support::{etcd_comparison_possible, finish, Output};

/// `<self>` stands for the server's own member id (hex), `<peer>` for its peer URL.
const SEQUENCE: &[&[&str]] = &[
    &["member", "list"],
    &["member", "list", "-w", "json"],
    &["member", "list", "-w", "fields"],
    &["member", "list", "-w", "table"],
    &["endpoint", "status"],
    &["endpoint", "status", "-w", "json"],
    &["endpoint", "status", "-w", "fields"],
    &["alarm", "list"],
    &["alarm", "list", "-w", "json"],
    &["defrag"],
    // Membership changes the servers refuse, each with etcd's error.
    &["member", "add", "x", "--peer-urls", "notaurl"],
    &["member", "add", "x", "--peer-urls", "<peer>"],
    &["member", "remove", "1234abcd"],
    &[
        "member",
        "update",
        "1234abcd",
        "--peer-urls",
        "http://127.0.0.1:1",
    ],
    &["member", "update", "<self>", "--peer-urls", "notaurl"],
    &["member", "promote", "1234abcd"],
    &["member", "promote", "<self>"],
    &["move-leader", "1234abcd"],
    &["move-leader", "<self>"],
    // One the servers take: the member's own peer URL changes in the record.
    &[
        "member",
        "update",
        "<self>",
        "--peer-urls",
        "http://127.0.0.1:1",
    ],
    &["member", "list", "-w", "json"],
];

#[test]
fn etcdctl_v3_sees_beacon_as_it_sees_etcd() {
    if !etcd_comparison_possible() {
        return;
    }
    let etcd = ServerProcess::etcd().expect("etcd starts");
    let beacon = support::beacon();
    // Read once: no command in the sequence changes them.
    let (etcd_ids, beacon_ids) = (Ids::of(&etcd), Ids::of(&beacon));
    let mut differences = Vec::new();
    for args in SEQUENCE {
        let want = normalized(&etcd, &etcd_ids, args);
        let got = normalized(&beacon, &beacon_ids, args);
        if want != got {
            differences.push(format!("{args:?}\n  etcd:   {want:?}\n  beacon: {got:?}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} commands differ:\n{}",
        differences.len(),
        SEQUENCE.len(),
        differences.join("\n")
    );
}

/// `etcdctl` (v3) `args` against `server`, with what differs between servers rewritten.
fn normalized(server: &ServerProcess, ids: &Ids, args: &[&str]) -> Output {
    let endpoint = format!("127.0.0.1:{}", server.client_port());
    let peer = format!("http://127.0.0.1:{}", server.peer_port());
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("<self>", &ids.member_hex)
                .replace("<peer>", &peer)
        })
        .collect();
    let mut cmd = Command::new(support::etcdctl());
    for var in [
        "ETCDCTL_ENDPOINTS",
        "ETCDCTL_USER",
        "ETCDCTL_CACERT",
        "ETCDCTL_CERT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(&endpoint)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = finish(cmd, &[]);
    let fix = |text: &str| {
        // Values first (json must still parse), then the ids and ports.
        let lines: Vec<String> = text.lines().map(|l| normalize_line(l, &endpoint)).collect();
        lines
            .join("\n")
            .replace(&endpoint, "<client>")
            .replace(&format!("127.0.0.1:{}", server.peer_port()), "<peer>")
            .replace(&ids.member_hex, "<member-id>")
            .replace(&ids.member.to_string(), "<member-id>")
            .replace(&ids.cluster.to_string(), "<cluster-id>")
            .replace(&format!("{:x}", ids.cluster), "<cluster-id>")
    };
    Output {
        stdout: fix(&out.stdout),
        stderr: fix(&out.stderr),
        code: out.code,
    }
}

/// Fields whose values are each implementation's own: Raft's term and indexes (etcd's
/// log holds entries Beacon's does not, and the reverse) and the size on disk.
const OWN_VALUES: &[&str] = &[
    "raft_term",
    "raftTerm",
    "raftIndex",
    "raftAppliedIndex",
    "dbSize",
    "dbSizeInUse",
    "RaftTerm",
    "RaftIndex",
    "RaftAppliedIndex",
    "DBSize",
    // etcdctl's own log lines (a retry's warning): its time and its random client name.
    "ts",
    "target",
];

/// One output line with [`OWN_VALUES`] blanked, in whichever format it is.
fn normalize_line(line: &str, endpoint: &str) -> String {
    collapse(&own_values(line, endpoint))
}

/// Runs of spaces or dashes as one: etcdctl pads ids to 16 characters in some messages
/// (`%16x`) and sizes table columns to them, and an id may have fewer hex digits.
fn collapse(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if (c == ' ' || c == '-') && out.ends_with(c) {
            continue;
        }
        out.push(c);
    }
    out
}

fn own_values(line: &str, endpoint: &str) -> String {
    // json: a document on one line.
    if line.starts_with('{') || line.starts_with('[') {
        if let Ok(mut doc) = serde_json::from_str::<Value>(line) {
            blank(&mut doc);
            return doc.to_string();
        }
    }
    // fields: `"Name" : value`.
    if let Some((name, _)) = line.split_once(" : ") {
        if OWN_VALUES.contains(&name.trim_matches('"')) {
            return format!("{name} : <own>");
        }
        return line.to_string();
    }
    // simple `endpoint status`: endpoint, id, version, size, leader?, learner?, raft
    // term, raft index, applied index, errors.
    let cells: Vec<&str> = line.split(", ").collect();
    if cells.len() == 10 && cells[0] == endpoint {
        let mut cells: Vec<String> = cells.into_iter().map(str::to_string).collect();
        for i in [3, 6, 7, 8] {
            cells[i] = "<own>".into();
        }
        return cells.join(", ");
    }
    line.to_string()
}

fn blank(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if OWN_VALUES.contains(&key.as_str()) {
                    *value = Value::String("<own>".into());
                } else {
                    blank(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(blank),
        _ => {}
    }
}

/// A server's member and cluster ids: the member's as v2 reports it, the cluster's from
/// v3's own answer (v2 carries it only in a header).
struct Ids {
    member: u64,
    member_hex: String,
    cluster: u64,
}

impl Ids {
    fn of(server: &ServerProcess) -> Ids {
        let leader = beacon_testkit::http_get(server.client_port(), "/v2/members/leader")
            .expect("the leader");
        let member_hex = leader
            .json()
            .and_then(|j| j["id"].as_str().map(str::to_string));
        let member_hex = member_hex.expect("a member id");
        let mut cmd = Command::new(support::etcdctl());
        cmd.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(format!("127.0.0.1:{}", server.client_port()))
            .args(["member", "list", "-w", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let listed = finish(cmd, &["member", "list"]);
        let doc: Value = serde_json::from_str(&listed.stdout).expect("member list's json");
        Ids {
            member: u64::from_str_radix(&member_hex, 16).expect("hex member id"),
            member_hex,
            cluster: doc["header"]["cluster_id"].as_u64().expect("a cluster id"),
        }
    }
}
