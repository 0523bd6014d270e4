//! Every etcdctl-compatible command of `beaconctl`, run as a process against a real
//! `beacon`: output, error text and exit code.

mod support;

use support::{beacon, ctl, extended_index, Background, Output};

fn ok(stdout: &str) -> Output {
    Output {
        stdout: stdout.to_string(),
        stderr: String::new(),
        code: 0,
    }
}

fn err(code: i32, stderr: &str) -> Output {
    Output {
        stdout: String::new(),
        stderr: stderr.to_string(),
        code,
    }
}

#[test]
fn keys_commands() {
    let server = beacon();
    let ep = server.client_url();
    assert_eq!(ctl(&ep, &["set", "/foo", "bar"]), ok("bar\n"));
    assert_eq!(ctl(&ep, &["get", "/foo"]), ok("bar\n"));
    let json = ctl(&ep, &["-o", "json", "get", "/foo"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json output");
    assert_eq!(v["action"], "get");
    assert_eq!(v["node"]["value"], "bar");
    assert_eq!(v["node"]["nodes"], serde_json::Value::Null);
    assert_eq!(v["prevNode"], serde_json::Value::Null);

    let missing = ctl(&ep, &["get", "/nope"]);
    assert_eq!(missing.code, 4);
    assert!(
        missing
            .stderr
            .starts_with("Error:  100: Key not found (/nope) ["),
        "{missing:?}"
    );
    let exists = ctl(&ep, &["mk", "/foo", "x"]);
    assert_eq!(exists.code, 4);
    assert!(exists
        .stderr
        .starts_with("Error:  105: Key already exists (/foo) ["));
    assert_eq!(ctl(&ep, &["mk", "/new", "v"]), ok("v\n"));
    assert_eq!(ctl(&ep, &["update", "/new", "w"]), ok("w\n"));
    assert_eq!(ctl(&ep, &["update", "/absent", "w"]).code, 4);

    // Compare-and-swap and compare-and-delete.
    let cas = ctl(&ep, &["set", "--swap-with-value", "wrong", "/new", "z"]);
    assert!(cas
        .stderr
        .starts_with("Error:  101: Compare failed ([wrong != w]) ["));
    assert_eq!(
        ctl(&ep, &["set", "--swap-with-value", "w", "/new", "z"]),
        ok("z\n")
    );
    let index = extended_index(&ctl(&ep, &["-o", "extended", "get", "/new"]));
    let idx = index.to_string();
    assert_eq!(
        ctl(&ep, &["set", "--swap-with-index", &idx, "/new", "y"]),
        ok("y\n")
    );
    assert_eq!(ctl(&ep, &["rm", "--with-value", "nope", "/new"]).code, 4);
    // etcdctl prints the node's (empty) value for a compareAndDelete, not the old one.
    assert_eq!(ctl(&ep, &["rm", "--with-value", "y", "/new"]), ok("\n"));

    // TTLs and in-order keys.
    let ttl = ctl(&ep, &["-o", "extended", "set", "--ttl", "100", "/t", "v"]);
    assert!(ttl.stdout.contains("\nTTL: 100\n"), "{ttl:?}");
    let ordered = ctl(&ep, &["-o", "json", "mk", "--in-order", "/q", "a"]);
    let v: serde_json::Value = serde_json::from_str(&ordered.stdout).expect("json");
    assert!(v["node"]["key"]
        .as_str()
        .unwrap_or("")
        .starts_with("/q/000"));

    // Directories.
    assert_eq!(ctl(&ep, &["mkdir", "/d"]), ok(""));
    assert_eq!(ctl(&ep, &["mkdir", "/d"]).code, 4);
    assert_eq!(ctl(&ep, &["get", "/d"]), err(1, "/d: is a directory\n"));
    assert_eq!(ctl(&ep, &["setdir", "/d"]).code, 4);
    assert_eq!(ctl(&ep, &["setdir", "/sd"]), ok(""));
    assert_eq!(ctl(&ep, &["updatedir", "--ttl", "50", "/sd"]), ok(""));
    assert_eq!(ctl(&ep, &["updatedir", "/nodir"]).code, 4);
    assert_eq!(ctl(&ep, &["set", "/d/a/b", "1"]), ok("1\n"));
    assert_eq!(ctl(&ep, &["ls", "--sort", "/d"]), ok("/d/a\n"));
    assert_eq!(ctl(&ep, &["ls", "--sort", "-p", "/d"]), ok("/d/a/\n"));
    assert_eq!(
        ctl(&ep, &["ls", "-r", "--sort", "-p", "/d"]),
        ok("/d/a/\n/d/a/b\n")
    );
    let qkey = v["node"]["key"].as_str().unwrap_or_default().to_string();
    let all = format!("/d\n/d/a\n/d/a/b\n/foo\n/q\n{qkey}\n/sd\n/t\n");
    assert_eq!(ctl(&ep, &["ls", "--recursive", "--sort"]), ok(&all));
    let not_empty = ctl(&ep, &["rmdir", "/d"]);
    assert!(not_empty
        .stderr
        .starts_with("Error:  108: Directory not empty (/d) ["));
    assert_eq!(ctl(&ep, &["rm", "/d"]).code, 4);
    assert_eq!(ctl(&ep, &["rm", "-r", "/d"]), ok(""));
    assert_eq!(ctl(&ep, &["rmdir", "/sd"]), ok(""));
    assert_eq!(ctl(&ep, &["rm", "--dir", "/t"]), ok("PrevNode.Value: v\n"));

    // Arguments etcdctl checks itself.
    assert_eq!(ctl(&ep, &["get"]), err(1, "Error:  key required\n"));
    assert_eq!(ctl(&ep, &["set", "/k"]), err(1, "Error:  value required\n"));
    assert_eq!(
        ctl(&ep, &["-o", "bogus", "get", "/foo"]),
        err(0, "Unsupported output format: bogus\n")
    );
}

#[test]
fn value_from_stdin() {
    let server = beacon();
    let mut cmd = support::command(&support::beaconctl(), &server.client_url(), &["set", "/in"]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"from stdin").expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from stdin\n");
}

#[test]
fn watch_and_exec_watch() {
    let server = beacon();
    let ep = server.client_url();
    ctl(&ep, &["set", "/w/first", "f"]);
    let index = extended_index(&ctl(&ep, &["-o", "extended", "set", "/w/seed", "s"]));
    let after = index.to_string();

    // One event, from history.
    assert_eq!(
        ctl(
            &ep,
            &[
                "watch",
                "--after-index",
                &(index - 1).to_string(),
                "/w/seed"
            ]
        ),
        ok("s\n")
    );

    // Forever and recursive: every change under /w until Ctrl-C, which exits 0.
    let mut watch = Background::start(
        &ep,
        &["watch", "--forever", "-r", "--after-index", &after, "/w"],
    );
    ctl(&ep, &["set", "/w/a", "1"]);
    ctl(&ep, &["mkdir", "/w/dir"]);
    ctl(&ep, &["rm", "/w/a"]);
    assert_eq!(
        watch.lines(4),
        ["[set] /w/a", "1", "[delete] /w/a", "PrevNode.Value: 1"]
    );
    let (code, _) = watch.stop("INT");
    assert_eq!(code, 0);

    // exec-watch runs the command with the event in ETCD_WATCH_* variables.
    let script =
        "echo \"$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE $ETCD_WATCH_MODIFIED_INDEX\"";
    let now = extended_index(&ctl(&ep, &["-o", "extended", "set", "/w/x", "0"])).to_string();
    let mut exec = Background::start(
        &ep,
        &[
            "exec-watch",
            "--after-index",
            &now,
            "/w/x",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    let set = extended_index(&ctl(&ep, &["-o", "extended", "set", "/w/x", "1"]));
    assert_eq!(exec.next_line(), format!("set /w/x 1 {set}"));
    let (code, _) = exec.stop("INT");
    assert_eq!(code, 0);
    assert_eq!(
        ctl(&ep, &["exec-watch", "/w/x"]),
        err(1, "Error:  key and command to exec required\n")
    );

    // A watch from an index the history no longer holds fails as etcdctl's does.
    for i in 0..1005 {
        ctl_quiet(&ep, i);
    }
    let cleared = ctl(&ep, &["watch", "--after-index", "1", "/w"]);
    assert_eq!(cleared.code, 4);
    assert!(
        cleared
            .stderr
            .starts_with("Error:  401: The event in requested index is outdated and cleared"),
        "{cleared:?}"
    );
}

/// Moves the etcd index on without a process per write.
fn ctl_quiet(ep: &str, i: usize) {
    let port = ep
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let path = format!("/v2/keys/fill?value={i}");
    // The testkit's probe only GETs; a PUT goes through a tiny raw request.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

#[test]
fn member_list_and_cluster_health() {
    let server = beacon();
    let ep = server.client_url();
    let members = ctl(&ep, &["member", "list"]);
    assert_eq!(members.code, 0, "{members:?}");
    let line = members.stdout.trim_end();
    assert!(
        line.ends_with(&format!(
            ": name=default peerURLs=http://127.0.0.1:{} clientURLs={ep} isLeader=true",
            server.peer_port()
        )),
        "{line}"
    );
    assert_eq!(
        ctl(&ep, &["member", "list", "x"]),
        err(1, "No arguments accepted\n")
    );
    let id = line.split(':').next().unwrap_or_default();
    assert_eq!(
        ctl(&ep, &["cluster-health"]),
        ok(&format!(
            "member {id} is healthy: got healthy result from {ep}\ncluster is healthy\n"
        ))
    );
}

/// A member added to a one-member Beacon joins as a learner, so the cluster keeps its
/// quorum while the new member is not running, and it can be removed again.
#[test]
fn member_add_update_and_remove() {
    let server = beacon();
    let ep = server.client_url();
    let new_peer = format!("http://127.0.0.1:{}", beacon_testkit::free_port());
    let added = ctl(&ep, &["member", "add", "newbie", &new_peer]);
    assert_eq!(added.code, 0, "{added:?}");
    let id = added
        .stdout
        .strip_prefix("Added member named newbie with ID ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{added:?}"))
        .to_string();
    assert!(
        added.stdout.contains("\n\nETCD_NAME=\"newbie\"\n"),
        "{added:?}"
    );
    assert!(
        added.stdout.contains(&format!("newbie={new_peer}")),
        "{added:?}"
    );
    assert!(
        added
            .stdout
            .ends_with("ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"),
        "{added:?}"
    );
    let list = ctl(&ep, &["member", "list"]);
    let unstarted = format!("{id}[unstarted]: peerURLs={new_peer}\n");
    assert!(list.stdout.contains(&unstarted), "{list:?}");
    // Still writable: the learner does not count toward the quorum.
    assert_eq!(ctl(&ep, &["set", "/after-add", "x"]).code, 0);
    let again = ctl(&ep, &["member", "add", "again", &new_peer]);
    assert_eq!(again.code, 1, "{again:?}");
    let moved = format!("http://127.0.0.1:{}", beacon_testkit::free_port());
    assert_eq!(
        ctl(&ep, &["member", "update", &id, &moved]),
        ok(&format!("Updated member with ID {id} in cluster\n"))
    );
    assert_eq!(
        ctl(&ep, &["member", "remove", &id]),
        ok(&format!("Removed member {id} from cluster\n"))
    );
    let list = ctl(&ep, &["member", "list"]);
    assert_eq!(list.stdout.lines().count(), 1, "{list:?}");
}

#[test]
fn endpoints_are_tried_in_turn() {
    let server = beacon();
    let dead = format!("http://127.0.0.1:{}", beacon_testkit::free_port());
    let both = format!("{dead},{}", server.client_url());
    assert_eq!(ctl(&both, &["--no-sync", "set", "/e", "1"]), ok("1\n"));
    assert_eq!(ctl(&both, &["get", "/e"]), ok("1\n"));
    let port = dead.rsplit(':').next().unwrap_or_default();
    let refused = format!("dial tcp 127.0.0.1:{port}: connect: connection refused");
    assert_eq!(
        ctl(&dead, &["get", "/e"]),
        err(
            2,
            &format!(
                "Error:  client: etcd cluster is unavailable or misconfigured; error #0: {refused}\n\nerror #0: {refused}\n\n"
            )
        )
    );
    assert_eq!(ctl(&dead, &["--no-sync", "get", "/e"]).code, 4);
    // The flag wins over the environment.
    let out = support::finish(
        {
            let mut c = support::command(
                &support::beaconctl(),
                &dead,
                &["--endpoints", &server.client_url(), "get", "/e"],
            );
            c.env("ETCDCTL_ENDPOINTS", &dead);
            c
        },
        &["--endpoints"],
    );
    assert_eq!(out, ok("1\n"));
}
