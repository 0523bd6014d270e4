//! What etcd 3.4.23 takes that its `--help` does not list, and how it ends on a
//! command line it refuses, against Beacon: `--version` prints etcd's lines;
//! `--unsafe-no-fsync` starts a member that never syncs its log (etcd's WAL fsync count
//! stays 0 on both); `--experimental-enable-lease-checkpoint-persist` (with the
//! checkpoint flag, which it needs) and a bcrypt cost out of range start as etcd starts
//! them; a value Go's flag package cannot parse ends with 2, a configuration etcd's
//! checks refuse with 1.

use std::process::Command;

use beacon_testkit::{
    beacon_bin, etcd_bin, etcd_or_skip, http_get, Https, ServerKind, ServerProcess,
};

fn bins() -> [(ServerKind, std::path::PathBuf); 2] {
    [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ]
}

#[test]
fn version_prints_etcds_lines() {
    if !etcd_or_skip() {
        return;
    }
    let mut said = Vec::new();
    for (_, bin) in bins() {
        let out = Command::new(bin).arg("--version").output().expect("runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let heads: Vec<String> = text
            .lines()
            .map(|l| l.split(':').next().unwrap_or_default().to_string())
            .collect();
        let first = text.lines().next().unwrap_or_default().to_string();
        let arch = text.lines().last().unwrap_or_default().to_string();
        said.push((out.status.code(), first, heads, arch));
    }
    assert_eq!(said[0], said[1], "etcd, then beacon");
}

/// `server`'s WAL fsync count.
fn fsyncs(server: &ServerProcess) -> u64 {
    let metrics = http_get(server.client_port(), "/metrics").expect("/metrics");
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix("etcd_disk_wal_fsync_duration_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{:?}: no WAL fsync count", server.kind()))
}

/// Starts `kind` with `args`, puts ten keys, and answers how many WAL fsyncs they
/// took (etcd's WAL syncs twice as it is created, before the flag applies).
fn fsyncs_of_writes(kind: ServerKind, bin: std::path::PathBuf, args: &[&str]) -> u64 {
    let server = ServerProcess::start_https(kind, bin, Https::default(), args)
        .unwrap_or_else(|e| panic!("{kind:?} {args:?} starts: {e}"));
    let before = fsyncs(&server);
    for i in 0..10 {
        let put = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", server.client_url()))
            .args(["put", &format!("k{i}"), "v"])
            .output()
            .expect("etcdctl runs");
        assert!(put.status.success(), "{kind:?}: {put:?}");
    }
    fsyncs(&server) - before
}

#[test]
fn unsafe_no_fsync_syncs_no_log_write_as_in_etcd() {
    if !etcd_or_skip() {
        return;
    }
    for (kind, bin) in bins() {
        assert_eq!(
            fsyncs_of_writes(kind, bin.clone(), &["--unsafe-no-fsync"]),
            0,
            "{kind:?}"
        );
        assert!(fsyncs_of_writes(kind, bin, &[]) >= 10, "{kind:?}");
    }
}

#[test]
fn flags_etcd_takes_quietly_start_both() {
    if !etcd_or_skip() {
        return;
    }
    for (kind, bin) in bins() {
        for args in [
            &[
                "--experimental-enable-lease-checkpoint",
                "--experimental-enable-lease-checkpoint-persist",
            ][..],
            &["--bcrypt-cost=100"][..],
        ] {
            let started = ServerProcess::start_https(kind, bin.clone(), Https::default(), args);
            assert!(started.is_ok(), "{kind:?} {args:?}: {:?}", started.err());
        }
    }
}

/// A refused start: its arguments, and a variable of the environment.
type Refused = (
    &'static [&'static str],
    Option<(&'static str, &'static str)>,
);

#[test]
fn refused_command_lines_end_with_etcds_exit_codes() {
    if !etcd_or_skip() {
        return;
    }
    let cases: [Refused; 6] = [
        (&["--listen-client-urls=notaurl"], None),
        (&["--proxy=weird"], None),
        (&["--heartbeat-interval=0"], None),
        (&["--auto-compaction-mode=weird"], None),
        (&[], Some(("ETCD_LISTEN_CLIENT_URLS", "notaurl"))),
        (&["--experimental-enable-lease-checkpoint-persist"], None),
    ];
    let mut said = Vec::new();
    for (_, bin) in bins() {
        let dir = beacon_testkit::TempDir::new("refused").expect("a directory");
        let mut codes = Vec::new();
        for (args, env) in &cases {
            let mut cmd = Command::new(&bin);
            cmd.arg(format!("--data-dir={}", dir.path().join("d").display()))
                .args(*args);
            if let Some((var, value)) = env {
                cmd.env(var, value);
            }
            codes.push(cmd.output().expect("runs").status.code());
        }
        said.push(codes);
    }
    assert_eq!(said[0], said[1], "etcd, then beacon");
    assert_eq!(
        said[1],
        [Some(2), Some(2), Some(1), Some(1), Some(1), Some(1)]
    );
}
