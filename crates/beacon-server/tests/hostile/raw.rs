//! One request as raw bytes on a fresh loopback connection, read back under a deadline:
//! the suite speaks to the socket itself, because a real client would refuse to send
//! most of what it sends.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What came back for one hostile request.
#[derive(Debug)]
pub struct Answer {
    /// The status code of the first response line, if one arrived.
    pub status: Option<u16>,
    /// Everything read (capped at `READ_BYTES_MAX`).
    pub bytes: Vec<u8>,
}

/// How much of an answer is kept; a hostile request earns no bigger one.
const READ_BYTES_MAX: usize = 1 << 20;

/// Sends `request` and reads until the connection closes, `wait` passes, or the first
/// response head is complete and nothing more arrives for a moment (keep-alive). A
/// write the server refuses part way (it closed on us) is not an error.
pub fn send(port: u16, request: &[u8], wait: Duration) -> std::io::Result<Answer> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_write_timeout(Some(wait))?;
    let _ = conn.write_all(request);
    read_answer(&mut conn, wait)
}

/// Like [`send`], but ends the sending half after the request, so that a request cut
/// short is seen to end at once instead of being waited for. (The server may then drop
/// even a whole request unanswered, as hyper does without half-close support.)
pub fn send_then_close(port: u16, request: &[u8], wait: Duration) -> std::io::Result<Answer> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_write_timeout(Some(wait))?;
    let _ = conn.write_all(request);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    read_answer(&mut conn, wait)
}

/// Reads an answer on an open connection, as [`send`] does.
pub fn read_answer(conn: &mut TcpStream, wait: Duration) -> std::io::Result<Answer> {
    let deadline = Instant::now() + wait;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let now = Instant::now();
        if now >= deadline || bytes.len() >= READ_BYTES_MAX {
            break;
        }
        // Once a head is in, a short lull means the server is done with this answer.
        let lull = if head_end(&bytes).is_some() {
            Duration::from_millis(50)
        } else {
            deadline - now
        };
        conn.set_read_timeout(Some(lull.min(deadline - now)))?;
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if head_end(&bytes).is_some() {
                    break;
                }
            }
            // A reset after the server answered and closed is an ordinary ending.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok(Answer {
        status: status_of(&bytes),
        bytes,
    })
}

fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

fn status_of(bytes: &[u8]) -> Option<u16> {
    let line_end = bytes.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&bytes[..line_end]).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// The value of the answer's first header called `name` (any case).
pub fn header(answer: &Answer, name: &str) -> Option<String> {
    let head = &answer.bytes[..head_end(&answer.bytes)?];
    String::from_utf8_lossy(head).lines().find_map(|l| {
        let (n, value) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// The body of a complete, non-chunked answer, as text.
pub fn body_text(answer: &Answer) -> String {
    let start = head_end(&answer.bytes).map_or(answer.bytes.len(), |i| i + 4);
    String::from_utf8_lossy(&answer.bytes[start..]).into_owned()
}

/// A well-formed request with a form body, the shape every mutation starts from.
pub fn form_request(method: &str, target: &str, form: &str) -> Vec<u8> {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .into_bytes()
}

/// A well-formed request without a body.
pub fn bare_request(method: &str, target: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}
