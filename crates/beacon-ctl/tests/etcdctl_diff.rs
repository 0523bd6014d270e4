//! The same command sequence run by the real `etcdctl` (ETCDCTL_API=2) and by `beaconctl`,
//! each against its own fresh etcd 3.4: stdout, stderr and exit codes must be equal once
//! the parts that differ between two servers (ports, member ids) are normalized. Both
//! servers start from the same state, so etcd indexes match without normalizing.

mod support;

use std::path::Path;

use beacon_testkit::ServerProcess;
use support::{etcd_comparison_possible, run, Output};

/// Commands whose output does not depend on timing. Unsorted listings and TTL-bearing
/// JSON (expiration times) are left out on purpose.
const SEQUENCE: &[&[&str]] = &[
    &["set", "/foo", "bar"],
    &["-o", "json", "set", "/foo", "baz"],
    &["-o", "extended", "get", "/foo"],
    &["-o", "json", "get", "/foo"],
    &["get", "/nope"],
    &["-o", "json", "get", "/nope"],
    &["-o", "extended", "get", "/nope"],
    &["mk", "/foo", "x"],
    &["mkdir", "/d"],
    &["mkdir", "/d"],
    &["-o", "json", "mkdir", "/d2"],
    &["-o", "extended", "mkdir", "/d3"],
    &["get", "/d"],
    &["ls", "--sort"],
    &["ls", "--sort", "-p"],
    &["ls", "-r", "--sort", "-p", "/"],
    &["-o", "json", "ls", "/d"],
    &["-o", "extended", "ls", "/"],
    &["-o", "json", "ls", "--sort", "-r", "/"],
    &["ls", "/foo"],
    &["ls", "/nope"],
    &["rm", "/foo"],
    &["-o", "json", "rm", "/d"],
    &["rmdir", "/d2"],
    &["-o", "extended", "rmdir", "/d3"],
    &["rm", "/nope"],
    &["update", "/nope", "v"],
    &["set", "/t", "v"],
    &["-o", "extended", "update", "/t", "w"],
    &["set", "--swap-with-value", "wrong", "/t", "v2"],
    &["set", "--swap-with-value", "w", "/t", "v2"],
    &["set", "--swap-with-index", "1", "/t", "v3"],
    &["rm", "--with-value", "nope", "/t"],
    &["rm", "--with-index", "1", "/t"],
    &["-o", "extended", "rm", "--with-value", "v2", "/t"],
    &["mk", "--in-order", "/q", "a"],
    &["-o", "json", "mk", "--in-order", "/q", "b"],
    &["-o", "extended", "mk", "--in-order", "/q", "c"],
    &["rmdir", "/q"],
    &["-o", "extended", "rm", "-r", "/q"],
    &["get"],
    &["set", "/k"],
    &["mk", "/k"],
    &["rm"],
    &["watch"],
    &["updatedir", "/nodir"],
    &["setdir", "/sd"],
    &["setdir", "/sd"],
    &["-o", "extended", "setdir", "/sd"],
    &["-o", "json", "updatedir", "/sd"],
    &["rm", "--dir", "/sd"],
    &["mkdir", "/a/b"],
    &["rm", "/a"],
    &["-o", "json", "rm", "-r", "/a"],
    &["set", "/x", "<a&b> \"q\" \\ \t"],
    &["-o", "json", "get", "/x"],
    &["-o", "bogus", "get", "/x"],
    &["-o", "bogus", "mkdir", "/y"],
    &["set", "--", "/dash", "-x"],
    &["get", "/dash"],
    &["watch", "--after-index", "1", "/x"],
    &["watch", "-r", "--after-index", "1", "/"],
    &["-o", "json", "watch", "--after-index", "4", "/foo"],
    &["-o", "extended", "watch", "-r", "--after-index", "5", "/"],
    &["member", "list"],
    &["member", "list", "extra"],
    // Membership changes that are refused, before or by the server.
    &["member", "add", "onlyname"],
    &["member", "add", "x", "notaurl"],
    &["member", "remove"],
    &["member", "remove", "1234abcd"],
    &["member", "remove", "default"],
    &["member", "update", "1234abcd"],
    &["member", "update", "1234abcd", "notaurl"],
    &["member", "update", "1234abcd", "http://127.0.0.1:1"],
    &["member", "update", "xyz", "http://127.0.0.1:1"],
    &["cluster-health"],
    &["--total-timeout", "1ns", "get", "/x"],
    &["--no-sync", "--timeout", "1ns", "get", "/x"],
];

#[test]
fn beaconctl_matches_etcdctl() {
    if !etcd_comparison_possible() {
        return;
    }
    let reference = ServerProcess::etcd().expect("etcd for etcdctl starts");
    let ours = ServerProcess::etcd().expect("etcd for beaconctl starts");
    let dead = format!("http://127.0.0.1:{}", beacon_testkit::free_port());

    let mut sequence: Vec<Vec<String>> = SEQUENCE
        .iter()
        .map(|c| c.iter().map(|s| s.to_string()).collect())
        .collect();
    for extra in [
        vec!["--endpoints", dead.as_str(), "get", "/x"],
        vec!["--no-sync", "--endpoints", dead.as_str(), "get", "/x"],
    ] {
        sequence.push(extra.into_iter().map(str::to_string).collect());
    }

    let mut differences = Vec::new();
    for args in &sequence {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let want = normalized(&support::etcdctl(), &reference, &args);
        let got = normalized(&support::beaconctl(), &ours, &args);
        if want != got {
            differences.push(format!(
                "{args:?}\n  etcdctl:   {want:?}\n  beaconctl: {got:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} commands differ:\n{}",
        differences.len(),
        sequence.len(),
        differences.join("\n")
    );
}

/// Runs `bin` against `server` and rewrites what differs between two servers.
fn normalized(bin: &Path, server: &ServerProcess, args: &[&str]) -> Output {
    let out = run(bin, &server.client_url(), args);
    let id = member_id(server);
    let fix = |s: &str| {
        s.replace(&server.client_url(), "<client-url>")
            .replace(&format!("127.0.0.1:{}", server.peer_port()), "<peer>")
            .replace(&id, "<member-id>")
    };
    Output {
        stdout: fix(&out.stdout),
        stderr: fix(&out.stderr),
        code: out.code,
    }
}

fn member_id(server: &ServerProcess) -> String {
    beacon_testkit::http_get(server.client_port(), "/v2/members/leader")
        .ok()
        .and_then(|r| r.json())
        .and_then(|j| j["id"].as_str().map(str::to_string))
        .expect("leader id")
}
