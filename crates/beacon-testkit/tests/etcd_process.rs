//! The testkit's own check: a reference etcd starts, answers, survives kill -9 and restart.

use beacon_testkit::{etcd_available, free_ports, http_get, ServerProcess};

#[test]
fn free_ports_are_distinct() {
    let mut ports = free_ports(8);
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 8);
}

#[test]
fn etcd_starts_restarts_and_keeps_data() {
    if !etcd_available() {
        eprintln!("skipped: etcd not found");
        return;
    }
    let mut etcd = ServerProcess::etcd().expect("start etcd");
    let port = etcd.client_port();
    assert_eq!(http_get(port, "/health").unwrap().status, 200);
    assert!(etcd.data_dir().is_dir());
    etcd.kill9();
    assert!(
        http_get(port, "/health").is_err(),
        "etcd still answers after kill9"
    );
    etcd.restart().expect("restart etcd");
    assert_eq!(http_get(port, "/version").unwrap().status, 200);
}
