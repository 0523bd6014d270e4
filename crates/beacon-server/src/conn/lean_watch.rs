//! The lean path for a connection's plain watches: the router answers
//! it as usual, but the response is written here, so that while the watch waits the
//! connection holds only its socket and the watch body, not hyper's buffers.

use std::io;
use std::time::SystemTime;

use axum::body::Body;
use axum::Router;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::ClientIo;
use tower::ServiceExt as _;

use crate::http::goform;
use crate::limits::{CLIENT_WRITE_TIMEOUT, PIPELINED_BYTES_MAX};

/// The end of a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A parsed watch request that the lean path will answer.
pub struct LeanRequest {
    request: http::Request<Body>,
    keep_alive: bool,
}

/// Recognizes a body-less HTTP/1.1 `GET /v2/keys/...?wait=true` in a complete request
/// head. Anything else (or anything odd) is left to hyper.
pub fn recognize(head: &[u8]) -> Option<LeanRequest> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    if !matches!(parsed.parse(head), Ok(httparse::Status::Complete(n)) if n == head.len()) {
        return None;
    }
    if parsed.method != Some("GET") || parsed.version != Some(1) {
        return None;
    }
    let target = parsed.path?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !path.starts_with("/v2/keys") {
        return None;
    }
    let (form, bad_query) = goform::parse_query(query);
    if bad_query.is_some() || goform::parse_bool(form.value("wait")) != Some(true) {
        return None;
    }
    let mut keep_alive = true;
    let mut builder = http::Request::builder()
        .method(http::Method::GET)
        .uri(target);
    for h in parsed.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" if h.value != b"0" => return None,
            "transfer-encoding" | "expect" | "upgrade" => return None,
            "connection" if h.value.eq_ignore_ascii_case(b"close") => keep_alive = false,
            _ => {}
        }
        builder = builder.header(name, h.value);
    }
    let request = builder.body(Body::empty()).ok()?;
    Some(LeanRequest {
        request,
        keep_alive,
    })
}

/// Answers the request on `sock`. Returns the bytes the client sent meanwhile (a
/// pipelined next request) when the connection should go on, `None` when it is done.
pub async fn answer<S: ClientIo>(
    sock: &mut S,
    lean: LeanRequest,
    app: Router,
    stopping: impl Fn() -> bool,
) -> Option<Vec<u8>> {
    let response = match app.oneshot(lean.request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let length = body.size_hint().exact();
    let chunked = length.is_none() && !parts.headers.contains_key(CONTENT_LENGTH);
    let keep_alive = lean.keep_alive && !parts.headers.contains_key(CONNECTION);
    let head = encode_head(&parts, length, chunked, keep_alive);
    // Nothing but the socket and the body may outlive the head: watches wait for long.
    drop(parts);
    write(sock, &head).await.ok()?;
    drop(head);

    // axum's body is boxed, hence Unpin: `frame()` can borrow it directly.
    let mut body = body;
    let mut pending = Vec::new();
    let mut scratch = [0u8; 64];
    let (mut ended, mut terminated) = (false, false);
    while !ended {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    let mut bytes = if chunked { chunk(&data) } else { data.to_vec() };
                    // A long poll's one event and the end of its body go in one write.
                    if chunked && body.is_end_stream() {
                        bytes.extend_from_slice(LAST_CHUNK);
                        (ended, terminated) = (true, true);
                    }
                    write(sock, &bytes).await.ok()?;
                }
                Some(Err(_)) => return None,
                None => ended = true,
            },
            // The client going away ends the watch: dropping the body unregisters it.
            read = sock.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    pending.extend_from_slice(&scratch[..n]);
                    if pending.len() > PIPELINED_BYTES_MAX {
                        return None;
                    }
                }
            },
        }
    }
    if chunked && !terminated {
        write(sock, LAST_CHUNK).await.ok()?;
    }
    if !keep_alive || stopping() {
        let _ = sock.shutdown().await;
        return None;
    }
    Some(pending)
}

fn encode_head(
    parts: &http::response::Parts,
    length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let reason = parts.status.canonical_reason().unwrap_or("");
    out.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", parts.status.as_str()).as_bytes());
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(DATE) {
        out.extend_from_slice(
            format!("date: {}\r\n", httpdate::fmt_http_date(SystemTime::now())).as_bytes(),
        );
    }
    match (chunked, length) {
        (true, _) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        (false, Some(n)) if !parts.headers.contains_key(CONTENT_LENGTH) => {
            out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes())
        }
        _ => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

async fn write<S: ClientIo>(sock: &mut S, bytes: &[u8]) -> io::Result<()> {
    match tokio::time::timeout(CLIENT_WRITE_TIMEOUT, sock.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client stopped reading",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::recognize;

    #[test]
    fn only_plain_watches_take_the_lean_path() {
        let watch = b"GET /v2/keys/a?wait=true&recursive=true HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(recognize(watch).is_some());
        assert!(recognize(b"GET /v2/keys/a?wait=1 HTTP/1.1\r\n\r\n").is_some());
        for other in [
            &b"GET /v2/keys/a HTTP/1.1\r\n\r\n"[..],
            b"GET /v2/keys/a?wait=false HTTP/1.1\r\n\r\n",
            b"PUT /v2/keys/a?wait=true HTTP/1.1\r\n\r\n",
            b"GET /v2/keys/a?wait=true HTTP/1.0\r\n\r\n",
            b"GET /v2/keys/a?wait=true HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            b"GET /v2/keys/a?wait=true HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /v2/stats/store?wait=true HTTP/1.1\r\n\r\n",
            b"GET /v2/keys/a?wait=true HTTP/1.1\r\n",
        ] {
            assert!(
                recognize(other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        let close =
            recognize(b"GET /v2/keys/a?wait=true HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!close.keep_alive);
    }
}
