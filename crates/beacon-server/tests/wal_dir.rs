//! `--wal-dir`, against etcd 3.4.23: the write-ahead log lives in the directory named,
//! not in the data directory, and what was written there survives a kill -9 and a
//! restart with the same flags. etcd puts its WAL files there; Beacon its log database
//! (which holds the v3 keyspace's tables too: its WAL and its backend are one).

use std::time::Duration;

use beacon_testkit::{beacon_bin, etcd_bin, etcd_or_skip, ServerKind, ServerProcess, TempDir};

/// `etcdctl` (API 3) against `server`: its exit code and output.
fn etcdctl(server: &ServerProcess, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", server.client_url()))
        .arg("--command-timeout=5s")
        .args(args)
        .output()
        .expect("etcdctl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

fn non_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

#[test]
fn the_log_lives_in_the_wal_dir_and_survives_a_kill_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let mut seen = Vec::new();
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let wal = TempDir::new("wal-dir").expect("temp dir");
        let wal_dir = wal.path().join("wal");
        let flag = format!("--wal-dir={}", wal_dir.display());
        let mut member = ServerProcess::cluster_with(kind, bin, 1, &[&flag])
            .expect("a member")
            .remove(0);
        assert_eq!(etcdctl(&member, &["put", "k", "v"]).0, 0);
        member.kill9();
        member.restart().expect("restarts on the same directories");
        let value = etcdctl(&member, &["get", "k", "--print-value-only"]);
        let member_dir = member.data_dir().join("member");
        let log_in_data_dir = member_dir.join("wal").exists() || member_dir.join("raft").exists();
        seen.push((value, non_empty(&wal_dir), log_in_data_dir));
        member.terminate(Duration::from_secs(10));
    }
    assert_eq!(seen[0], ((0, "v\n".to_string()), true, false), "etcd");
    assert_eq!(seen[1], seen[0], "beacon");
}
