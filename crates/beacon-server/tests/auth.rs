//! v3 auth and RBAC against etcd 3.4 and Beacon: the same `etcdctl` commands (users,
//! roles, permissions, auth enable and disable, calls as users with and without the
//! permission, admin-only calls) must print the same and exit alike on both.

use std::time::Duration;

use beacon_testkit::ServerProcess;

mod support;

/// How long one etcdctl command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(20);

/// Runs `etcdctl` with `args` against `server`: its exit code and its output, with the
/// server's URL blanked.
async fn ctl(server: &ServerProcess, args: &[&str]) -> String {
    // Without the scheme: etcdctl dials such an endpoint as its other commands do.
    let url = server.client_url().replace("http://", "");
    let run = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={url}"))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=10s")
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(COMMAND_DEADLINE, run)
        .await
        .expect("etcdctl ends in time")
        .expect("etcdctl runs");
    // clientv3's retry warnings are JSON log lines with times and ids: left out.
    let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|line| !line.starts_with("{\"level\""))
        .map(str::to_string)
        .collect();
    let text = format!(
        "{} -> {} | {} | {}",
        args.join(" "),
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim(),
        stderr.join(" / ")
    );
    // Lease ids are each server's own.
    let text: Vec<&str> = text
        .split(' ')
        .map(|word| {
            let hex = word.len() >= 12 && word.chars().all(|c| c.is_ascii_hexdigit());
            if hex {
                "ID"
            } else {
                word
            }
        })
        .collect();
    text.join(" ").replace(&url, "URL")
}

/// Sets up users and roles, turns auth on, and tries what each user may and may not do.
async fn auth_story(server: &ServerProcess) -> Vec<String> {
    let root = ["--user", "root:rootpw"];
    let alice = ["--user", "alice:alicepw"];
    let with = |who: &[&'static str; 2], args: &[&'static str]| -> Vec<&'static str> {
        who.iter().chain(args).copied().collect()
    };
    let mut out = Vec::new();
    for args in [
        // Refused before auth is on: no root user.
        vec!["auth", "enable"],
        vec!["user", "add", "root:rootpw"],
        vec!["user", "add", "root:again"],
        vec!["user", "add", "alice:alicepw"],
        vec!["role", "add", "reader"],
        vec!["role", "add", "reader"],
        vec![
            "role",
            "grant-permission",
            "reader",
            "read",
            "/a/",
            "--prefix",
        ],
        vec!["role", "grant-permission", "reader", "readwrite", "/w"],
        vec!["role", "grant-permission", "nobody", "read", "/a/"],
        vec!["user", "grant-role", "alice", "reader"],
        vec!["user", "grant-role", "alice", "nobody"],
        vec!["user", "get", "root"],
        vec!["user", "list"],
        vec!["user", "get", "alice"],
        vec!["user", "get", "nobody"],
        vec!["role", "list"],
        vec!["role", "get", "reader"],
        vec!["put", "/a/x", "1"],
        vec!["auth", "enable"],
        // Auth is on.
        vec!["put", "/a/x", "2"],
        vec!["get", "/a/x"],
        with(&root, &["put", "/a/x", "3"]),
        with(&alice, &["get", "/a/x"]),
        with(&alice, &["get", "/a/", "--prefix"]),
        with(&alice, &["get", "/a", "--prefix"]),
        with(&alice, &["put", "/a/x", "4"]),
        with(&alice, &["put", "/w", "4"]),
        with(&alice, &["get", "/w"]),
        with(&alice, &["del", "/a/x"]),
        with(&alice, &["txn"]),
        with(&["--user", "alice:wrong"], &["get", "/a/x"]),
        with(&["--user", "nobody:pw"], &["get", "/a/x"]),
        with(&alice, &["user", "list"]),
        with(&alice, &["user", "get", "alice"]),
        with(&alice, &["user", "get", "root"]),
        with(&alice, &["role", "get", "reader"]),
        with(&alice, &["role", "get", "root"]),
        with(&alice, &["user", "add", "mallory:pw"]),
        with(&alice, &["defrag"]),
        with(
            &alice,
            &["member", "add", "x", "--peer-urls=http://127.0.0.1:1"],
        ),
        with(&root, &["defrag"]),
        with(&alice, &["lease", "grant", "60"]),
        with(
            &root,
            &["role", "revoke-permission", "reader", "/a/", "--prefix"],
        ),
        with(
            &root,
            &["role", "revoke-permission", "reader", "/a/", "--prefix"],
        ),
        with(&alice, &["get", "/a/x"]),
        with(&root, &["user", "delete", "root"]),
        with(&root, &["role", "delete", "root"]),
        with(&root, &["user", "revoke-role", "root", "root"]),
        with(&root, &["user", "revoke-role", "alice", "root"]),
        with(&root, &["user", "passwd", "alice", "--interactive=false"]),
        with(&root, &["user", "delete", "alice"]),
        with(&alice, &["get", "/a/x"]),
        with(&root, &["role", "delete", "reader"]),
        with(&root, &["auth", "disable"]),
        vec!["get", "/a/x"],
        vec!["user", "list"],
        vec!["auth", "disable"],
    ] {
        out.push(ctl(server, &args).await);
    }
    out
}

#[tokio::test]
async fn etcdctl_auth_works_as_on_etcd() {
    if let Some((want, got)) = support::told_by_both(auth_story).await {
        beacon_testkit::assert_same_answers(&want, &got);
    }
}
