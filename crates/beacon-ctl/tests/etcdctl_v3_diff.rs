//! The real `etcdctl` 3.4 with `ETCDCTL_API=3` against a fresh etcd 3.4 and a fresh
//! Beacon: the same commands must print the same, once what differs between any two
//! servers is normalized (ports, member and cluster ids, Raft's term and indexes, which
//! count each implementation's internal entries, and the database's size on disk).
//!
//! v3 over gRPC is served on the client port beside v2; so far the membership and a
//! member's status (`member list`, `endpoint status`). The KV commands (`put`, `get`,
//! `del`, `txn`, `compaction`) have their own sequence, checked against etcd ahead of
//! Beacon serving them.

mod support;

use std::process::{Command, Stdio};

use beacon_testkit::ServerProcess;
use serde_json::Value;
use support::{etcd_comparison_possible, finish, finish_fed, Output};

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
    let steps: Vec<Step> = SEQUENCE.iter().map(|args| run(args)).collect();
    assert_same_as_etcd(&steps);
}

/// The v3 KV service as a story on an empty keyspace: writes (every `put` flag and its
/// errors), reads (every `get` flag), transactions, deletes, and compaction last. Both
/// servers start at revision 1 and count each write alike, so revisions, versions and
/// headers are compared as they are.
const KV_SEQUENCE: &[Step] = &[
    // An empty keyspace at revision 1.
    run(&["get", "k"]),
    run(&["get", "k", "-w", "json"]),
    // Writes refused: nothing to keep the value or lease of, no such lease, no key.
    run(&["put", "k", "--ignore-value"]),
    run(&["put", "k", "v", "--ignore-lease"]),
    run(&["put", "k", "v", "--lease", "1234"]),
    run(&["put", "", "v"]),
    // Client-side refusals: a missing value (stdin is empty).
    run(&["put", "k"]),
    // k: created at 2, then 3, 4, 5 (value kept), 6 (value kept), 7.
    run(&["put", "k", "v"]),
    run(&["put", "k", "v2", "--prev-kv"]),
    run(&["put", "k", "v3", "--prev-kv", "-w", "json"]),
    run(&["put", "k", "--ignore-value"]),
    run(&["put", "k", "--ignore-value", "--prev-kv", "-w", "json"]),
    run(&["put", "k", "v", "--ignore-lease", "-w", "fields"]),
    run(&["put", "e", ""]),
    run(&["put", "a", "1"]),
    run(&["put", "b", "2"]),
    run(&["put", "c", "3"]),
    run(&["put", "ab", "4"]),
    run(&["put", "d", "5"]),
    run(&["put", "b", "22", "-w", "json"]),
    // One key, every format; an empty value; a missing key; no key.
    run(&["get", "k"]),
    run(&["get", "k", "-w", "json"]),
    run(&["get", "k", "-w", "fields"]),
    run(&["get", "k", "--hex"]),
    run(&["get", "k", "-w", "table"]),
    run(&["get", "e"]),
    run(&["get", "e", "-w", "json"]),
    run(&["get", "nope"]),
    run(&["get", "nope", "-w", "json"]),
    run(&["get", "nope", "-w", "fields"]),
    run(&["get", ""]),
    // Ranges.
    run(&["get", "--prefix", "a"]),
    run(&["get", "--prefix", ""]),
    run(&["get", "--prefix", "", "-w", "json"]),
    run(&["get", "--from-key", "b"]),
    run(&["get", "--from-key", "", "--keys-only"]),
    run(&["get", "a", "c"]),
    run(&["get", "a", "c", "-w", "fields"]),
    run(&["get", "k", "a"]),
    run(&["get", "a", "b", "--prefix"]),
    run(&["get", "a", "--prefix", "--from-key"]),
    // Limits: `more` and the count of the whole range.
    run(&["get", "--prefix", "", "--limit", "2"]),
    run(&["get", "--prefix", "", "--limit", "2", "-w", "json"]),
    run(&["get", "--prefix", "", "--limit", "2", "-w", "fields"]),
    run(&["get", "--prefix", "", "--limit", "100", "-w", "json"]),
    run(&["get", "--from-key", "b", "--limit", "1", "-w", "json"]),
    // No --count-only in etcdctl 3.4.
    run(&["get", "--prefix", "", "--count-only"]),
    // Order and sort; ties (same version) keep the keys' order either way.
    run(&["get", "--prefix", "", "--order", "DESCEND"]),
    run(&["get", "--prefix", "", "--order", "ascend", "--keys-only"]),
    run(&["get", "--prefix", "", "--order", "bogus"]),
    run(&[
        "get",
        "--prefix",
        "",
        "--sort-by",
        "KEY",
        "--order",
        "DESCEND",
        "--keys-only",
        "-w",
        "json",
    ]),
    run(&["get", "--prefix", "", "--sort-by", "VERSION"]),
    run(&[
        "get",
        "--prefix",
        "",
        "--sort-by",
        "VERSION",
        "--order",
        "DESCEND",
        "--keys-only",
    ]),
    run(&[
        "get",
        "--prefix",
        "",
        "--sort-by",
        "CREATE",
        "--order",
        "DESCEND",
        "--print-value-only",
    ]),
    run(&["get", "--prefix", "", "--sort-by", "MODIFY", "--print-value-only"]),
    run(&[
        "get",
        "--prefix",
        "",
        "--sort-by",
        "VALUE",
        "--order",
        "DESCEND",
        "--keys-only",
    ]),
    run(&["get", "--prefix", "", "--sort-by", "bogus"]),
    // Sorted first, then limited.
    run(&[
        "get", "--prefix", "", "--sort-by", "VALUE", "--limit", "2", "-w", "json",
    ]),
    run(&[
        "get", "--prefix", "", "--sort-by", "MODIFY", "--order", "DESCEND", "--limit", "2",
    ]),
    // Keys or values only.
    run(&["get", "--prefix", "", "--keys-only"]),
    run(&["get", "--prefix", "", "--keys-only", "-w", "json"]),
    run(&["get", "--prefix", "", "--print-value-only"]),
    run(&["get", "--prefix", "", "--print-value-only", "-w", "json"]),
    // Past revisions; 0 and below are the current one; a future one is refused.
    run(&["get", "k", "--rev", "3"]),
    run(&["get", "k", "--rev", "3", "-w", "json"]),
    run(&["get", "--prefix", "", "--rev", "10", "-w", "json"]),
    run(&["get", "k", "--rev", "1"]),
    run(&["get", "k", "--rev", "0"]),
    run(&["get", "k", "--rev", "-1"]),
    run(&["get", "k", "--rev", "15"]),
    run(&["get", "k", "--rev", "1000", "-w", "json"]),
    // Serializable reads.
    run(&["get", "k", "--consistency", "s"]),
    run(&["get", "--prefix", "", "--consistency", "s", "-w", "json"]),
    run(&["get", "k", "--consistency", "x"]),
    // Transactions, at revision 14. Every compare target; both branches; one revision
    // for the whole of a txn that writes. Inside one, a request sees the writes before
    // it, and its header says so: a read before any write has the txn's start revision,
    // one after a write the new revision.
    txn(
        &["txn"],
        "value(\"k\") = \"v\"\nversion(\"k\") > \"0\"\nmod(\"k\") < \"100\"\ncreate(\"nope\") = \"0\"\n\n\
         put t1 yes\nget k\ndel a\n\n\
         put t1 no\n\n",
    ),
    txn(
        &["txn"],
        "value(\"k\") = \"zz\"\n\nput t2 yes\n\nput t2 no\nget t2\nget --prefix a\n\n",
    ),
    txn(
        &["txn", "-w", "json"],
        "value(\"k\") = \"zz\"\n\nput t2 yes\n\nput t2 no\nget t2\nget --prefix a\n\n",
    ),
    txn(
        &["txn", "-w", "json"],
        "ver(\"k\") = \"6\"\nc(\"k\") = \"2\"\nm(\"k\") > \"1\"\nval(\"k\") > \"a\"\nvalue(\"k\") != \"x\"\n\n\
         put t1 again --prev-kv\ndel t2 --prev-kv\nget --prefix t\n\n\
         put t1 no\n\n",
    ),
    txn(
        &["txn", "-w", "fields"],
        "create(\"nope\") = \"0\"\nversion(\"nope\") = \"0\"\nmod(\"nope\") = \"0\"\n\n\
         get nope\nput t4 x\n\n\n",
    ),
    // A value compare on a missing key never holds, not even against "".
    txn(&["txn"], "value(\"nope\") = \"\"\n\nput t4 y\n\nget k --keys-only\n\n"),
    // Reads only, or a delete of nothing: no new revision.
    txn(
        &["txn", "-w", "json"],
        "\nget --prefix \"\" --keys-only --limit 1\nget k --rev 3\n\n\n",
    ),
    txn(&["txn", "-w", "json"], "\ndel nope\n\n\n"),
    run(&["get", "k", "-w", "json"]),
    txn(&["txn"], "\n\n\n"),
    txn(&["txn", "-w", "json"], "value(\"k\") = \"v\"\n\n\n\n"),
    // A key written twice, in either branch; written and read is fine.
    txn(&["txn"], "\nput t3 a\nput t3 b\n\n\n"),
    txn(&["txn"], "\nput t3 a\ndel t3\n\n\n"),
    txn(&["txn"], "\nput t3 a\n\nput t3 a\nput t3 b\n\n"),
    txn(&["txn"], "\nput t5 a\nget t5\n\n\n"),
    // The errors of the requests inside.
    txn(&["txn"], "\nput nope --ignore-value\n\n\n"),
    txn(&["txn"], "\nget k --rev 1000\n\n\n"),
    // Client-side refusals of the input.
    txn(&["txn"], "bogus\n\n\n\n"),
    txn(&["txn"], "version(\"k\") > \"x\"\n\n\n\n"),
    txn(&["txn"], "\nfoo a\n\n\n"),
    txn(&["txn"], "value(\"k\") = \"v\"\n\nput t6 x\n"),
    // Deletes, at revision 20; deleting nothing makes no revision.
    run(&["del", "nope"]),
    run(&["del", "nope", "-w", "json"]),
    run(&["del", ""]),
    run(&["del", "a"]),
    run(&["del", "c", "--prev-kv"]),
    run(&["del", "--prefix", "a", "--prev-kv"]),
    run(&["del", "--prefix", "a", "-w", "json"]),
    run(&["del", "b", "d"]),
    run(&["del", "--prefix", "t", "--prev-kv", "-w", "json"]),
    run(&["del", "e", "-w", "fields"]),
    run(&["put", "x1", "1"]),
    run(&["put", "x2", "2"]),
    run(&["del", "--from-key", "x", "--prev-kv"]),
    run(&["del", "b", "--prefix", "--from-key"]),
    run(&["del"]),
    run(&["get", "--prefix", "", "-w", "json"]),
    // Compaction last, at revision 28: a revision below the compacted one is refused
    // (to compaction, get, and a get inside a txn alike); the one compacted at is not.
    run(&["compaction", "5"]),
    run(&["compaction", "5"]),
    run(&["compaction", "3"]),
    run(&["compaction", "0"]),
    run(&["compaction", "1000"]),
    run(&["compaction", "x"]),
    run(&["compaction"]),
    run(&["get", "k", "--rev", "4"]),
    run(&["get", "k", "--rev", "5"]),
    run(&["get", "--prefix", "", "--rev", "5", "-w", "json"]),
    txn(&["txn"], "\nget k --rev 4\n\n\n"),
    run(&["compaction", "--physical", "10"]),
    run(&["get", "--prefix", "", "--rev", "10"]),
    run(&["get", "k", "--rev", "9", "-w", "json"]),
    // Up to the current revision (28): what is live stays, and 28 is still readable.
    run(&["compaction", "28"]),
    run(&["get", "--prefix", "", "-w", "json"]),
    run(&["get", "k", "--rev", "27"]),
    // Everything, from the first key up; then the revision that deleted it.
    run(&["del", "--from-key", ""]),
    run(&["get", "--from-key", "", "-w", "json"]),
    run(&["get", "k", "--rev", "28", "-w", "json"]),
    run(&["compaction", "29"]),
    run(&["get", "k", "--rev", "28"]),
    run(&["compaction", "29"]),
];

#[test]
fn etcdctl_v3_kv_commands_print_as_against_etcd() {
    if !etcd_comparison_possible() {
        return;
    }
    assert_same_as_etcd(KV_SEQUENCE);
}

/// Runs `steps` top to bottom against a fresh etcd and a fresh Beacon; fails listing
/// every step whose normalized output differs.
fn assert_same_as_etcd(steps: &[Step]) {
    let etcd = ServerProcess::etcd().expect("etcd starts");
    let beacon = support::beacon();
    // Read once: no command in a sequence changes them.
    let (etcd_ids, beacon_ids) = (Ids::of(&etcd), Ids::of(&beacon));
    let mut differences = Vec::new();
    for step in steps {
        let want = normalized(&etcd, &etcd_ids, step);
        let got = normalized(&beacon, &beacon_ids, step);
        if want != got {
            let Step { args, stdin } = step;
            differences.push(format!(
                "{args:?} stdin {stdin:?}\n  etcd:   {want:?}\n  beacon: {got:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} commands differ:\n{}",
        differences.len(),
        steps.len(),
        differences.join("\n")
    );
}

/// One `etcdctl` run: its arguments and what it reads on stdin, if anything (`txn`).
#[derive(Clone, Copy, Debug)]
struct Step {
    args: &'static [&'static str],
    stdin: Option<&'static str>,
}

/// `etcdctl args...` with nothing on stdin.
const fn run(args: &'static [&'static str]) -> Step {
    Step { args, stdin: None }
}

/// `etcdctl txn` (non-interactive: it reads stdin) with `stdin`: compares one a line,
/// a blank line, the success requests, a blank line, the failure requests, a blank line.
const fn txn(args: &'static [&'static str], stdin: &'static str) -> Step {
    Step {
        args,
        stdin: Some(stdin),
    }
}

/// `etcdctl` (v3) `step` against `server`, with what differs between servers rewritten.
fn normalized(server: &ServerProcess, ids: &Ids, step: &Step) -> Output {
    let endpoint = format!("127.0.0.1:{}", server.client_port());
    let peer = format!("http://127.0.0.1:{}", server.peer_port());
    let args: Vec<String> = step
        .args
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
    let out = finish_fed(cmd, step.args, step.stdin);
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
