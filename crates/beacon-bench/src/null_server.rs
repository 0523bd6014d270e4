//! A server that does nothing: it answers every HTTP/1.1 request at once with the same
//! small JSON body. Run by the same load generator, it shows the floor of this machine
//! (client, kernel and loopback) under every PUT and GET figure: no server can go
//! faster than it, so `floor / etcd` is the best ratio any server could reach here.
//!
//! Blocking I/O with a thread per connection, which is the quickest way to answer one
//! connection (no poll, no task hand-off); the bench opens at most 64.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

/// Connections served at once; more are closed at accept.
const CONNECTIONS_MAX: usize = 256;
/// A request head or body larger than this closes the connection.
const REQUEST_BYTES_MAX: usize = 64 * 1024;

/// About the size of a GET answer of the bench; `"true"` satisfies the readiness probe.
const BODY: &str =
    r#"{"action":"get","node":{"key":"/null","value":"true","modifiedIndex":1,"createdIndex":1}}"#;

/// Serves on `listen` (a loopback address) until killed.
pub fn run(listen: SocketAddr) -> Result<()> {
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "{listen}: loopback addresses only"
    );
    let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Index: 1\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let response: Arc<[u8]> = response.into_bytes().into();
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
            open.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (response, open) = (Arc::clone(&response), Arc::clone(&open));
        std::thread::spawn(move || {
            let _ = serve(stream, &response);
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

fn serve(mut stream: TcpStream, response: &[u8]) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // One whole request (head and Content-Length body) in `buf`, then the answer.
        while request_len(&buf).is_none() {
            if buf.len() > REQUEST_BYTES_MAX {
                return Err(ErrorKind::InvalidData.into());
            }
            match stream.read(&mut chunk)? {
                0 => return Ok(()),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let len = request_len(&buf).expect("checked above");
        buf.drain(..len);
        stream.write_all(response)?;
    }
}

/// The length of the first complete request in `buf` (head plus body), if complete.
fn request_len(buf: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let head = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        // A malformed request is answered as if it were whole; the bench sends none.
        Err(_) => return Some(buf.len()),
        Ok(httparse::Status::Partial) => return None,
    };
    let body = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0);
    (buf.len() >= head + body).then_some(head + body)
}
