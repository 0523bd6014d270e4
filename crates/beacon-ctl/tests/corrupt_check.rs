//! `--experimental-initial-corrupt-check`, against etcd 3.4.23: a 3-member cluster
//! whose third member's data directory is replaced, while it is stopped, by a restore of
//! another cluster's backup (same member, same revision, other values). Restarted with
//! the check, it finds its hash differs from its peers' and stops, as etcd's does; an
//! untouched member restarted with the check passes it and serves.

use std::time::Duration;

use beacon_testkit::{ServerKind, ServerProcess, TempDir};

mod support;

use support::etcdctl_v3 as v3;

const CHECK: &str = "--experimental-initial-corrupt-check=true";

/// A backup of a one-member server of `kind` holding k1..k5 with values other than
/// the cluster's, saved into `dir`.
fn other_backup(kind: ServerKind, bin: &std::path::Path, dir: &std::path::Path) -> String {
    let other = ServerProcess::cluster(kind, bin.to_path_buf(), 1)
        .expect("a server starts")
        .remove(0);
    for i in 1..=5 {
        assert_eq!(v3(&other, &["put", &format!("k{i}"), "other"]).code, 0);
    }
    let path = dir.join("other.db").display().to_string();
    let saved = v3(&other, &["snapshot", "save", &path]);
    assert_eq!(saved.code, 0, "{saved:?}");
    path
}

/// Restores `backup` into `member`'s (removed) data directory, as the member it is.
fn restore(kind: ServerKind, member: &ServerProcess, initial_cluster: &str, backup: &str) {
    let data_dir = member.data_dir().display().to_string();
    let peer_url = member.peer_url();
    let args = [
        "snapshot",
        "restore",
        backup,
        "--name",
        member.name(),
        "--initial-cluster",
        initial_cluster,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--data-dir",
        &data_dir,
    ];
    let restored = match kind {
        ServerKind::Etcd => v3(member, &args),
        ServerKind::Beacon => support::ctl("http://127.0.0.1:1", &args),
    };
    assert_eq!(restored.code, 0, "{kind:?}: {restored:?}");
}

/// The story for one kind: whether the diverged member stopped (and what its log
/// says last), and whether the untouched one served.
fn story(kind: ServerKind) -> (bool, bool, bool) {
    let bin = match kind {
        ServerKind::Etcd => beacon_testkit::etcd_bin(),
        ServerKind::Beacon => beacon_testkit::beacon_bin(),
    };
    let dir = TempDir::new("corrupt-check").expect("temp dir");
    let backup = other_backup(kind, &bin, dir.path());
    let mut members = ServerProcess::cluster_with(kind, bin, 3, &[CHECK]).expect("3 members");
    for i in 1..=5 {
        assert_eq!(v3(&members[0], &["put", &format!("k{i}"), "ours"]).code, 0);
    }
    let initial_cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name(), m.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    // Member 1, untouched, restarts with the check and serves.
    members[1]
        .restart()
        .expect("an untouched member passes the check");
    let served = v3(&members[1], &["get", "k1", "--print-value-only"]).stdout == "ours\n";
    // Member 2 comes back on another cluster's data at the same revision.
    assert!(
        members[2].terminate(Duration::from_secs(10)),
        "member stops"
    );
    std::fs::remove_dir_all(members[2].data_dir()).expect("data dir removed");
    restore(kind, &members[2], &initial_cluster, &backup);
    members[2].restart_unready().expect("member starts");
    let exit = members[2].wait_exit(Duration::from_secs(30));
    let stopped = exit.is_some_and(|status| !status.success());
    let log = members[2].log_tail(40);
    let said = log.contains("found data inconsistency with peers");
    assert!(stopped && said, "{kind:?}: exit {exit:?}\n{log}");
    (stopped, said, served)
}

#[test]
fn a_member_whose_data_diverged_stops_at_the_initial_check_as_etcds() {
    if !beacon_testkit::etcd_or_skip() {
        return;
    }
    let etcd = story(ServerKind::Etcd);
    let beacon = story(ServerKind::Beacon);
    assert_eq!(etcd, (true, true, true));
    assert_eq!(beacon, etcd);
}

/// `--experimental-corrupt-check-time`: the leader of a healthy cluster compares every
/// follower's hash each interval and raises no alarm; the cluster goes on taking
/// writes. (A diverged member's CORRUPT alarm is `beacon_server::corrupt`'s unit
/// tests'.)
#[test]
fn the_periodic_check_finds_a_healthy_cluster_healthy_as_etcds() {
    if !beacon_testkit::etcd_or_skip() {
        return;
    }
    for (kind, bin) in [
        (ServerKind::Etcd, beacon_testkit::etcd_bin()),
        (ServerKind::Beacon, beacon_testkit::beacon_bin()),
    ] {
        let args = ["--experimental-corrupt-check-time=300ms"];
        let members = ServerProcess::cluster_with(kind, bin, 3, &args).expect("3 members");
        let checked =
            |m: &ServerProcess| m.log_tail(2000).contains("finished peer corruption check");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut round = 0;
        // A few checks with writes between them, on whichever member leads.
        while members.iter().filter(|m| checked(m)).count() == 0 || round < 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "{kind:?}: no check ran"
            );
            round += 1;
            assert_eq!(v3(&members[0], &["put", "k", &round.to_string()]).code, 0);
            std::thread::sleep(Duration::from_millis(100));
        }
        let alarms = v3(&members[1], &["alarm", "list"]);
        assert_eq!((alarms.code, alarms.stdout.as_str()), (0, ""), "{kind:?}");
    }
}
