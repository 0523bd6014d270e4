//! Watches over a real socket: headers first, events as JSON lines, and the watcher
//! removed from the store as soon as the client goes away.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{harness, Harness};

async fn serve(h: &Harness) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.router.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn watcher_count(h: &Harness) -> usize {
    h.consensus_store().read().unwrap().watcher_count()
}

impl Harness {
    fn consensus_store(&self) -> &crate::consensus::SharedStore {
        use crate::consensus::Consensus;
        self.consensus.store()
    }
}

/// Reads until `needle` shows up (or panics after 5 s).
async fn read_until(conn: &mut TcpStream, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = tokio::time::timeout_at(deadline, conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {seen:?}"))
            .unwrap();
        assert!(n > 0, "closed before {needle:?}: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn open_watch(addr: std::net::SocketAddr, query: &str) -> (TcpStream, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /v2/keys/w?{query} HTTP/1.1\r\nHost: x\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut seen = String::new();
    read_until(&mut conn, &mut seen, "\r\n\r\n").await;
    (conn, seen)
}

#[tokio::test]
async fn headers_come_at_once_and_disconnect_removes_the_watcher() {
    let h = harness();
    let addr = serve(&h).await;
    let (conn, head) = open_watch(addr, "wait=true").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("x-etcd-index: 0\r\n"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    assert_eq!(watcher_count(&h), 1);
    drop(conn);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while watcher_count(&h) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watcher still registered after disconnect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn long_poll_gets_one_event_then_ends() {
    let h = harness();
    let addr = serve(&h).await;
    let (mut conn, _) = open_watch(addr, "wait=true").await;
    h.call("PUT", "/v2/keys/w", "value=1").await;
    let mut seen = String::new();
    read_until(&mut conn, &mut seen, "0\r\n\r\n").await;
    assert!(seen.contains("{\"action\":\"set\",\"node\":{\"key\":\"/w\",\"value\":\"1\",\"modifiedIndex\":1,\"createdIndex\":1}}\n"), "{seen}");
    assert_eq!(watcher_count(&h), 0);
}

#[tokio::test]
async fn stream_gets_every_event_and_shutdown_ends_it() {
    let h = harness();
    let addr = serve(&h).await;
    let (mut conn, _) = open_watch(addr, "wait=true&stream=true").await;
    h.call("PUT", "/v2/keys/w", "value=1").await;
    h.call("PUT", "/v2/keys/w", "value=2").await;
    let mut seen = String::new();
    read_until(&mut conn, &mut seen, "\"value\":\"2\"").await;
    assert!(seen.contains("\"value\":\"1\""));
    assert_eq!(watcher_count(&h), 1);
    h.stop.send(true).unwrap();
    read_until(&mut conn, &mut seen, "0\r\n\r\n").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while watcher_count(&h) != 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn wait_index_in_history_answers_at_once() {
    let h = harness();
    h.call("PUT", "/v2/keys/w", "value=1").await;
    h.call("PUT", "/v2/keys/w", "value=2").await;
    let r = h.call("GET", "/v2/keys/w?wait=true&waitIndex=1", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-etcd-index"), "2");
    assert!(r.body.contains("\"value\":\"1\""));
    assert_eq!(watcher_count(&h), 0);
}
