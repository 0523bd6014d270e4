//! A connection whose first request is a watch is answered by the lean path and then
//! goes on serving: a request sent after the watch, or pipelined behind it, is answered
//! on the same connection, as a Go server would. A watcher re-arms on its connection,
//! watch after watch, and each is answered in turn. A watcher that stops reading is
//! closed after CLIENT_WRITE_TIMEOUT on hyper's path too.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use beacon_testkit::ServerProcess;

/// The server's CLIENT_WRITE_TIMEOUT (30 s), and some slack for a loaded machine.
const CLIENT_WRITE_TIMEOUT_WITH_SLACK: Duration = Duration::from_secs(50);

#[test]
fn watch_then_more_requests_on_one_connection() {
    let server = ServerProcess::beacon_at(env!("CARGO_BIN_EXE_beacon")).expect("beacon starts");
    let port = server.client_port();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The watch, with a plain GET pipelined right behind it.
    write!(
        conn,
        "GET /v2/keys/conn/k?wait=true HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/keys/conn/k HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut conn);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("x-etcd-index: "),
        "{head}"
    );

    let mut writer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        writer,
        "PUT /v2/keys/conn/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nConnection: close\r\n\r\nvalue=v"
    )
    .unwrap();
    let mut sink = Vec::new();
    writer.read_to_end(&mut sink).unwrap();

    let event = read_chunked(&mut conn);
    assert!(
        event.starts_with(r#"{"action":"set","node":{"key":"/conn/k","value":"v""#),
        "{event}"
    );
    // The pipelined GET is answered next, on the same connection.
    let head = read_head(&mut conn);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    // And a request sent afterwards too.
    write!(
        conn,
        "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("\"etcdserver\":\"3.4.23\""), "{rest}");
}

#[test]
fn watch_after_watch_on_one_connection() {
    let server = ServerProcess::beacon_at(env!("CARGO_BIN_EXE_beacon")).expect("beacon starts");
    let port = server.client_port();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut wait_index = None::<u64>;
    for round in 0..3 {
        let query = match wait_index {
            Some(i) => format!("wait=true&recursive=true&waitIndex={i}"),
            None => "wait=true&recursive=true".to_string(),
        };
        write!(
            conn,
            "GET /v2/keys/again?{query} HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        let head = read_head(&mut conn);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        put(port, &format!("/v2/keys/again/k{round}"), "v");
        let event = read_chunked(&mut conn);
        let json: serde_json::Value = serde_json::from_str(&event).unwrap();
        assert_eq!(json["node"]["key"], format!("/again/k{round}"), "{event}");
        wait_index = Some(json["node"]["modifiedIndex"].as_u64().unwrap() + 1);
    }
    // A watch answered from the history at once, then a plain request, still on it.
    write!(
        conn,
        "GET /v2/keys/again?wait=true&recursive=true&waitIndex=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    read_head(&mut conn);
    let event = read_chunked(&mut conn);
    assert!(event.contains(r#""key":"/again/k0""#), "{event}");
    write!(
        conn,
        "GET /v2/keys/again/k2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
    assert!(rest.contains(r#""key":"/again/k2""#), "{rest}");
}

/// Issue 13, defect 7: a stream watcher served by hyper (its connection sent another
/// request first) that never reads its events used to hold its connection forever;
/// like the lean path's, it is now closed once a write stays blocked for
/// CLIENT_WRITE_TIMEOUT. `BEACON_BIN` runs it against another build.
#[test]
fn a_hyper_watcher_that_stops_reading_is_closed() {
    let server = ServerProcess::beacon().expect("beacon starts");
    let pid = server.pid().expect("running");
    let port = server.client_port();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // A plain request first hands the connection to hyper for good.
    write!(conn, "GET /version HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_head(&mut conn);
    let mut version = [0u8; 45];
    conn.read_exact(&mut version).unwrap();
    write!(
        conn,
        "GET /v2/keys/deaf?wait=true&stream=true&recursive=true HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut conn);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let server_socket = server_side_socket(port, conn.local_addr().unwrap().port());
    assert!(
        holds_socket(pid, &server_socket),
        "the server holds the watch"
    );

    // Events far larger than both sockets' buffers (the client's stays small while
    // it does not read; the server's grows to 4 MiB), which the client never reads.
    let value = "x".repeat(512 << 10);
    for i in 0..24 {
        put(port, &format!("/v2/keys/deaf/{i}"), &value);
    }
    let deadline = Instant::now() + CLIENT_WRITE_TIMEOUT_WITH_SLACK;
    while holds_socket(pid, &server_socket) {
        assert!(
            Instant::now() < deadline,
            "the server still holds a watcher that has not read for {CLIENT_WRITE_TIMEOUT_WITH_SLACK:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `socket:[inode]` of the server's end of the connection from `client_port`.
fn server_side_socket(server_port: u16, client_port: u16) -> String {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let (local, remote) = (format!(":{server_port:04X}"), format!(":{client_port:04X}"));
    let inode = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        // Fields: sl, local address, remote address, state, ..., inode (the 10th).
        .find(|f| f.len() > 9 && f[1].ends_with(&local) && f[2].ends_with(&remote))
        .map(|f| f[9].to_string())
        .expect("the server's end of the connection");
    format!("socket:[{inode}]")
}

/// Whether process `pid` still has `socket` open.
fn holds_socket(pid: u32, socket: &str) -> bool {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/<pid>/fd");
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|target| target.to_string_lossy() == socket)
}

/// A PUT on a connection of its own, read to its end.
fn put(port: u16, path: &str, value: &str) {
    let mut writer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let form = format!("value={value}");
    write!(
        writer,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut reply = Vec::new();
    writer.read_to_end(&mut reply).unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 201"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            conn.read(&mut byte).unwrap(),
            1,
            "connection closed in a head"
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads one chunked body to its end and returns it.
fn read_chunked(conn: &mut TcpStream) -> String {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(conn);
        let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
        let mut chunk = vec![0u8; size + 2];
        conn.read_exact(&mut chunk).unwrap();
        if size == 0 {
            return String::from_utf8(body).unwrap();
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn read_line(conn: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        assert_eq!(conn.read(&mut byte).unwrap(), 1);
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}
