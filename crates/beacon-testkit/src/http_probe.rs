//! A minimal blocking HTTP/1.1 GET over std's `TcpStream`, used to poll readiness without
//! needing an async runtime in `Drop`-friendly, synchronous process handles.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Status and body of a probe; the body is raw (chunked framing is not decoded).
#[derive(Debug, Clone)]
pub struct ProbeResponse {
    /// HTTP status code.
    pub status: u16,
    /// Everything after the header block.
    pub body: String,
}

impl ProbeResponse {
    /// The body's first JSON object, tolerating chunk-size lines around it.
    pub fn json(&self) -> Option<serde_json::Value> {
        let start = self.body.find('{')?;
        let end = self.body.rfind('}')?;
        serde_json::from_str(self.body.get(start..=end)?).ok()
    }
}

/// `GET path` on `127.0.0.1:port` with a short timeout.
pub fn http_get(port: u16, path: &str) -> std::io::Result<ProbeResponse> {
    let timeout = Duration::from_secs(2);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok(ProbeResponse {
        status,
        body: body.to_string(),
    })
}
