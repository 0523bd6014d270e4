//! The real `etcdctl` 3.4 with `ETCDCTL_API=3` against a fresh etcd 3.4 and a fresh
//! Beacon: the same commands must print the same, once what differs between any two
//! servers is normalized (ports, member and cluster ids, Raft's term and indexes, which
//! count each implementation's internal entries, and the database's size on disk).
//!
//! Four sequences: the membership and a member's status (`member list`, `endpoint
//! status`, ...), the KV commands (`put`, `get`, `del`, `txn`, `compaction`), the
//! lease commands, and `watch` (over history, and interactive with `-i`). The runner
//! and the normalization are `support::v3`.

mod support;

use support::etcd_comparison_possible;
use support::v3::{assert_same_as_etcd, run, txn, watch, watch_interactive, Step};

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
    // A learner that never starts: one at a time, not promoted until in sync, removed.
    // (How a list orders it depends on its id, which is derived from the time:
    // `tests/learners.rs` checks listings.)
    &[
        "member",
        "add",
        "y",
        "--peer-urls",
        "http://127.0.0.1:2",
        "--learner",
    ],
    &[
        "member",
        "add",
        "z",
        "--peer-urls",
        "http://127.0.0.1:3",
        "--learner",
    ],
    &["member", "promote", "<added-1>"],
    &["member", "remove", "<added-1>"],
    &["member", "list"],
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
    // etcd's corruption check hashes the history as its database stores it: equal
    // hashes mean Beacon's history is etcd's, byte for byte.
    run(&["endpoint", "hashkv"]),
    run(&["endpoint", "hashkv", "--rev", "7", "-w", "json"]),
    run(&["endpoint", "hashkv", "--rev", "100"]),
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
    run(&["endpoint", "hashkv"]),
    run(&["endpoint", "hashkv", "--rev", "10"]),
    run(&["endpoint", "hashkv", "--rev", "11", "-w", "json"]),
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
    run(&["endpoint", "hashkv", "-w", "json"]),
    // It reads the key `health`: any answer, even "not found", is healthy.
    run(&["endpoint", "health"]),
    run(&["endpoint", "health", "-w", "json"]),
];

#[test]
fn etcdctl_v3_kv_commands_print_as_against_etcd() {
    if !etcd_comparison_possible() {
        return;
    }
    assert_same_as_etcd(KV_SEQUENCE);
}

/// The lease commands, on leases of each server's own ids (`<lease-N>`, see
/// `support::v3`). No lease here expires during the sequence: the 2 s one is revoked at
/// once, and remaining TTLs are read within a second of their grant.
const LEASE_SEQUENCE: &[Step] = &[
    run(&["lease", "grant", "60"]),
    run(&["lease", "grant", "1"]),
    run(&["lease", "revoke", "<lease-2>"]),
    run(&["lease", "grant", "30", "-w", "json"]),
    run(&["put", "k1", "v", "--lease", "<lease-1>"]),
    run(&["put", "k2", "v", "--lease", "<lease-3>"]),
    run(&["put", "k3", "v", "--lease", "1234"]),
    run(&["lease", "timetolive", "<lease-1>"]),
    run(&["lease", "timetolive", "<lease-1>", "--keys"]),
    run(&["lease", "timetolive", "<lease-3>", "--keys", "-w", "json"]),
    run(&["lease", "timetolive", "1234"]),
    run(&["lease", "timetolive", "1234", "-w", "json"]),
    run(&["lease", "list"]),
    run(&["lease", "list", "-w", "json"]),
    run(&["lease", "keep-alive", "--once", "<lease-1>"]),
    run(&["lease", "keep-alive", "--once", "1234"]),
    run(&["get", "k", "--prefix"]),
    run(&["lease", "revoke", "<lease-1>"]),
    run(&["lease", "revoke", "<lease-1>"]),
    run(&["get", "k", "--prefix", "-w", "json"]),
    run(&["lease", "revoke", "<lease-3>", "-w", "json"]),
    run(&["lease", "list"]),
];

#[test]
fn etcdctl_v3_lease_commands_print_as_against_etcd() {
    if !etcd_comparison_possible() {
        return;
    }
    assert_same_as_etcd(LEASE_SEQUENCE);
}

/// `etcdctl watch` over history (`--rev`), each read until the last write's value
/// (`end`, base64 `ZW5k` in json) or until etcdctl gives up (a compacted revision).
const WATCH_SEQUENCE: &[Step] = &[
    run(&["put", "a", "1"]),
    run(&["put", "a", "2"]),
    run(&["put", "b", "3"]),
    run(&["del", "a"]),
    txn(&["txn"], "\nput c 4\nput d 5\ndel b\n\n\n"),
    run(&["put", "zz", "end"]),
    watch(&["watch", "--prefix", "", "--rev", "1"], "end"),
    watch(&["watch", "--prefix", "", "--rev", "1", "--prev-kv"], "end"),
    watch(&["watch", "a", "zzz", "--rev", "2", "-w", "json"], "ZW5k"),
    watch(
        &[
            "watch",
            "--prefix",
            "",
            "--rev",
            "5",
            "-w",
            "json",
            "--prev-kv",
        ],
        "ZW5k",
    ),
    watch(
        &["watch", "--prefix", "z", "--rev", "4", "-w", "fields"],
        "end",
    ),
    // Interactive: one watch a line, read from stdin; a line that is no watch is
    // refused and the rest still read, the end of input ends it.
    watch_interactive("watch --rev 1 --prefix \"\"\n", "end"),
    watch_interactive("watch --rev 2 --prev-kv a zzz\n", "end"),
    watch_interactive("bogus\nwatch --rev 6 zz\n", "end"),
    Step {
        args: &["watch", "-i"],
        stdin: Some("bogus\n"),
        until: None,
    },
    run(&["compaction", "4"]),
    watch(&["watch", "--prefix", "", "--rev", "4"], "end"),
    watch(&["watch", "--prefix", "", "--rev", "2"], "end"),
    watch_interactive("watch --rev 2 a\n", "compacted"),
];

#[test]
fn etcdctl_v3_watch_commands_print_as_against_etcd() {
    if !etcd_comparison_possible() {
        return;
    }
    assert_same_as_etcd(WATCH_SEQUENCE);
}
