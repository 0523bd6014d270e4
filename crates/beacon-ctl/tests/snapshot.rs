//! `beaconctl snapshot status|restore` on a backup `etcdctl snapshot save` wrote from a
//! running Beacon: status says the saved revision and key count; one file restored into
//! three data directories starts a NEW 3-member cluster (its own member and cluster
//! ids) that serves the saved keys and leases at the saved revision; a damaged file (a
//! flipped bit, a truncation) is refused by both commands with its path and a checksum
//! error.

use std::path::Path;
use std::time::{Duration, Instant};

use beacon_testkit::{ServerKind, ServerProcess, TempDir};
use serde_json::Value;

mod support;

use support::{etcdctl_v3 as v3, Output};

/// How long the restored cluster may take to elect and serve.
const SERVE_DEADLINE: Duration = Duration::from_secs(30);

/// `beaconctl snapshot ...` (no endpoint: an offline command).
fn snapshot(args: &[&str]) -> Output {
    let mut full = vec!["snapshot"];
    full.extend_from_slice(args);
    support::ctl("http://127.0.0.1:1", &full)
}

fn json(out: &Output) -> Value {
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The member and cluster ids a member reports (in a response header).
fn ids(server: &ServerProcess) -> (u64, u64) {
    let status = json(&v3(server, &["get", "a", "-w", "json"]));
    let header = &status["header"];
    (
        header["member_id"].as_u64().expect("member id"),
        header["cluster_id"].as_u64().expect("cluster id"),
    )
}

/// Saves a backup of a one-member Beacon holding a few keys (and a lease) into `dir`;
/// returns its path, the revision it was saved at, and the member's ids.
fn saved_backup(dir: &Path) -> (String, i64, (u64, u64)) {
    let source = ServerProcess::cluster(ServerKind::Beacon, beacon_testkit::beacon_bin(), 1)
        .expect("beacon starts")
        .remove(0);
    let lease = json(&v3(&source, &["lease", "grant", "600", "-w", "json"]));
    let lease = format!("{:x}", lease["ID"].as_i64().expect("lease id"));
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
        assert_eq!(v3(&source, &["put", key, value]).code, 0);
    }
    assert_eq!(
        v3(&source, &["put", "leased", "x", "--lease", &lease]).code,
        0
    );
    let revision = json(&v3(&source, &["get", "a", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .expect("revision");
    let path = dir.join("backup.db").display().to_string();
    let saved = v3(&source, &["snapshot", "save", &path]);
    assert_eq!(
        saved.stdout,
        format!("Snapshot saved at {path}\n"),
        "{saved:?}"
    );
    (path, revision, ids(&source))
}

/// Waits until `server` answers a linearizable get of `a` with the restored value.
fn serves(server: &ServerProcess) -> Value {
    let deadline = Instant::now() + SERVE_DEADLINE;
    loop {
        let out = v3(server, &["get", "a", "-w", "json", "--command-timeout=2s"]);
        if out.code == 0 {
            return json(&out);
        }
        assert!(
            Instant::now() < deadline,
            "the restored member does not serve: {out:?}\n{}",
            server.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn restore_into_a_new_three_member_cluster() {
    let dir = TempDir::new("snapshot-restore").expect("temp dir");
    let (backup, revision, source_ids) = saved_backup(dir.path());

    let status = json(&snapshot(&["status", &backup, "-w", "json"]));
    assert_eq!(status["revision"].as_i64(), Some(revision), "{status}");
    // a twice, b, leased: four revisions of keys, and one lease.
    assert_eq!(status["totalKey"].as_u64(), Some(5), "{status}");
    let size = std::fs::metadata(&backup).expect("backup").len();
    assert_eq!(status["totalSize"].as_u64(), Some(size));
    let table = snapshot(&["status", &backup, "-w", "table"]);
    assert!(
        table.stdout.contains("| REVISION |") && table.code == 0,
        "{table:?}"
    );

    // Three members on ports of their own; stopped, their directories replaced by
    // restores of the one file, and started again with the same flags.
    let mut members = ServerProcess::cluster(ServerKind::Beacon, beacon_testkit::beacon_bin(), 3)
        .expect("cluster starts");
    let initial_cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name(), m.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    for m in &mut members {
        assert!(m.terminate(Duration::from_secs(10)), "member stops");
        std::fs::remove_dir_all(m.data_dir()).expect("old data dir removed");
        let data_dir = m.data_dir().display().to_string();
        let restored = snapshot(&[
            "restore",
            &backup,
            "--name",
            m.name(),
            "--initial-cluster",
            &initial_cluster,
            "--initial-cluster-token",
            "restored-token",
            "--initial-advertise-peer-urls",
            &m.peer_url(),
            "--data-dir",
            &data_dir,
        ]);
        assert_eq!(
            (restored.code, restored.stdout.as_str()),
            (0, ""),
            "{restored:?}"
        );
        // etcdctl's restore refuses a directory that exists.
        let again = snapshot(&["restore", &backup, "--data-dir", &data_dir]);
        assert_eq!(again.code, 1, "{again:?}");
        assert!(again.stderr.contains("exists"), "{again:?}");
    }
    for m in &mut members {
        m.restart_unready().expect("member starts");
    }
    let mut member_ids = Vec::new();
    for m in &members {
        let got = serves(m);
        assert_eq!(got["kvs"][0]["value"], "Mw==", "a's last value, 3: {got}");
        assert_eq!(got["header"]["revision"].as_i64(), Some(revision), "{got}");
        let (member, cluster) = ids(m);
        assert_ne!(cluster, source_ids.1, "a new cluster id");
        member_ids.push(member);
    }
    member_ids.sort_unstable();
    member_ids.dedup();
    assert_eq!(member_ids.len(), 3);
    assert!(!member_ids.contains(&source_ids.0), "new member ids");
    let leases = v3(&members[0], &["lease", "list"]);
    assert!(leases.stdout.contains("found 1 leases"), "{leases:?}");
    let leased = json(&v3(&members[1], &["get", "leased", "-w", "json"]));
    assert_eq!(leased["kvs"][0]["value"], "eA==", "{leased}");
    // The new cluster takes writes past the saved revision.
    assert_eq!(v3(&members[2], &["put", "after", "restore"]).code, 0);
}

#[test]
fn a_damaged_backup_is_refused_with_its_path() {
    let dir = TempDir::new("snapshot-damaged").expect("temp dir");
    let (backup, _, _) = saved_backup(dir.path());
    let bytes = std::fs::read(&backup).expect("backup");

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x10;
    let flipped_path = dir.path().join("flipped.db").display().to_string();
    std::fs::write(&flipped_path, &flipped).expect("write");
    let truncated_path = dir.path().join("truncated.db").display().to_string();
    std::fs::write(&truncated_path, &bytes[..bytes.len() - 100]).expect("write");

    for path in [&flipped_path, &truncated_path] {
        let data_dir = dir.path().join("never").display().to_string();
        for out in [
            snapshot(&["status", path]),
            snapshot(&["restore", path, "--data-dir", &data_dir]),
        ] {
            assert_eq!(out.code, 1, "{out:?}");
            assert!(
                out.stderr.starts_with(&format!("Error: snapshot {path}: ")),
                "{out:?}"
            );
            assert!(out.stderr.contains("sha256 checksum"), "{out:?}");
            assert!(!Path::new(&data_dir).exists(), "nothing restored");
        }
    }
    // --skip-hash-check skips the sha256, not the snapshot's own checksum.
    let data_dir = dir.path().join("never").display().to_string();
    let skipped = snapshot(&[
        "restore",
        &flipped_path,
        "--skip-hash-check",
        "--data-dir",
        &data_dir,
    ]);
    assert_eq!(skipped.code, 1, "{skipped:?}");
    assert!(skipped.stderr.contains("checksum"), "{skipped:?}");
    assert!(!Path::new(&data_dir).exists(), "nothing restored");
    // A wrong argument count, as etcdctl.
    let none = snapshot(&["status"]);
    assert_eq!(
        (none.code, none.stderr.as_str()),
        (
            128,
            "Error: snapshot status requires exactly one argument\n"
        )
    );
}
