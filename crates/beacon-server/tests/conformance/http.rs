//! A deliberately raw HTTP/1.1 client: the corpus's bytes go on the wire unchanged (a URL
//! library would clean `/./` and `/../` before etcd ever sees them), and chunked stream
//! watches can be read event by event.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long any single request may take before it counts as hung.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One request as it goes on the wire.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// HTTP method, sent verbatim.
    pub method: String,
    /// Request target (path and query), sent verbatim.
    pub target: String,
    /// Body and its content type, if any.
    pub body: Option<(Option<String>, String)>,
    /// For stream watches: stop after this many JSON events.
    pub events: Option<usize>,
}

/// A response: status, headers (lowercased names) and either the whole body or the events.
#[derive(Debug, Clone, Default)]
pub struct RawResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header values by lowercased name; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The decoded body (empty for HEAD).
    pub body: Vec<u8>,
    /// The events read from a stream watch.
    pub events: Vec<serde_json::Value>,
}

/// Sends `req` to 127.0.0.1:`port` with a deadline.
pub async fn send(port: u16, req: &RawRequest) -> Result<RawResponse, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, send_inner(port, req)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {REQUEST_TIMEOUT:?}")),
    }
}

async fn send_inner(port: u16, req: &RawRequest) -> Result<RawResponse, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = BufReader::new(stream);
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n",
        req.method, req.target
    );
    if let Some((content_type, body)) = &req.body {
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    if let Some((_, body)) = &req.body {
        head.push_str(body);
    }
    stream
        .get_mut()
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;

    let mut resp = RawResponse::default();
    let status_line = read_line(&mut stream).await?;
    resp.status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    loop {
        let line = read_line(&mut stream).await?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            resp.headers
                .entry(name.trim().to_ascii_lowercase())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value.trim());
                })
                .or_insert_with(|| value.trim().to_string());
        }
    }
    if req.method == "HEAD" || resp.status == 204 || resp.status == 304 {
        return Ok(resp);
    }
    let chunked = resp
        .headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        read_chunked(&mut stream, &mut resp, req.events).await?;
    } else if let Some(len) = resp.headers.get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len}"))?;
        resp.body.resize(len, 0);
        stream
            .read_exact(&mut resp.body)
            .await
            .map_err(|e| e.to_string())?;
    } else {
        stream
            .read_to_end(&mut resp.body)
            .await
            .map_err(|e| e.to_string())?;
    }
    if let Some(n) = req.events {
        if resp.events.len() < n {
            take_events(&mut resp);
        }
    }
    Ok(resp)
}

async fn read_line(stream: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut line = String::new();
    let n = stream
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed in the header block".to_string());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Decodes a chunked body; with `events`, stops once that many JSON values arrived.
async fn read_chunked(
    stream: &mut BufReader<TcpStream>,
    resp: &mut RawResponse,
    events: Option<usize>,
) -> Result<(), String> {
    loop {
        let size_line = read_line(stream).await?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_line:?}"))?;
        if size == 0 {
            return Ok(());
        }
        let mut chunk = vec![0; size + 2];
        stream
            .read_exact(&mut chunk)
            .await
            .map_err(|e| e.to_string())?;
        chunk.truncate(size);
        resp.body.extend_from_slice(&chunk);
        if let Some(n) = events {
            take_events(resp);
            if resp.events.len() >= n {
                return Ok(());
            }
        }
    }
}

/// Moves complete JSON values from the front of `resp.body` into `resp.events`.
fn take_events(resp: &mut RawResponse) {
    let mut de = serde_json::Deserializer::from_slice(&resp.body).into_iter::<serde_json::Value>();
    let mut consumed = 0;
    while let Some(Ok(value)) = de.next() {
        consumed = de.byte_offset();
        resp.events.push(value);
    }
    resp.body.drain(..consumed);
    while resp.body.first().is_some_and(u8::is_ascii_whitespace) {
        resp.body.remove(0);
    }
}
