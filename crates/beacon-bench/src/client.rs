//! One keep-alive HTTP/1.1 connection to a server, spoken directly on the socket: each
//! benchmark worker owns exactly one, so "concurrency N" means N TCP connections.
//!
//! Why not hyper's client: the load generator shares the machine's CPUs with the server
//! it measures, and hyper's client (a connection task beside each caller, a `Request`
//! built per call) cost about 12 µs of CPU per GET, as much as Beacon spent serving it.
//! Every microsecond here is taken from the server under test, so this client does what
//! `wrk` does: one formatted write per request and a parse of the head with `httparse`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single non-watch request may take before the run counts it as failed;
/// bounds every load loop even if a server stalls.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A response head larger than this is refused: both servers send a few hundred bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A response body larger than this is refused (the bench's bodies are small JSON).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Headers parsed per response; etcd sends about ten.
const MAX_HEADERS: usize = 32;

/// Where the server listens, parsed once from `http://127.0.0.1:PORT`.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    host: String,
}

impl Target {
    /// Parses an `http://host:port` URL with a literal IP (the bench runs on loopback only).
    pub fn parse(url: &str) -> Result<Target> {
        let host = url
            .strip_prefix("http://")
            .with_context(|| format!("{url}: only http:// URLs"))?
            .trim_end_matches('/');
        let addr = host
            .parse()
            .with_context(|| format!("{url}: expected http://IP:PORT"))?;
        Ok(Target {
            addr,
            host: host.to_string(),
        })
    }
}

/// A response head: the status, etcd's `X-Etcd-Index` header and how the body is framed.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub etcd_index: Option<u64>,
    /// The server said `Connection: close`: no further request may use this connection
    /// (nginx, for one, closes a keep-alive connection after 1,000 requests).
    pub close: bool,
    framing: Framing,
}

#[derive(Clone, Copy, Debug)]
enum Framing {
    Length(usize),
    Chunked,
}

/// A finished response: status, etcd's `X-Etcd-Index` header and the whole body.
pub struct Reply {
    pub status: u16,
    pub etcd_index: Option<u64>,
    /// See [`Head::close`].
    pub close: bool,
    pub body: Bytes,
}

/// One open connection.
pub struct Conn {
    stream: TcpStream,
    host: String,
    /// Bytes read from the socket and not yet consumed.
    buf: BytesMut,
    /// The request being formatted, reused between requests.
    out: Vec<u8>,
}

impl Conn {
    /// Opens a TCP connection.
    pub async fn open(target: &Target) -> Result<Conn> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(target.addr))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connect {}", target.addr))?;
        // Small requests on a keep-alive connection: Nagle would add 40 ms delayed-ACK stalls.
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            host: target.host.clone(),
            buf: BytesMut::with_capacity(4096),
            out: Vec::with_capacity(512),
        })
    }

    /// Sends a request and returns as soon as the response head arrives (watches send
    /// their head when the watcher is registered, the body only on an event). The body
    /// must then be read with [`Conn::body`] before the next request.
    pub async fn send(
        &mut self,
        method: &str,
        path_and_query: &str,
        form: Option<&str>,
    ) -> Result<Head> {
        self.out.clear();
        let out = &mut self.out;
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(path_and_query.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(form) = form {
            out.extend_from_slice(b"Content-Type: application/x-www-form-urlencoded\r\n");
            // Into the reused buffer: no string allocated per request.
            let _ = write!(out, "Content-Length: {}\r\n\r\n", form.len());
            out.extend_from_slice(form.as_bytes());
        } else {
            out.extend_from_slice(b"\r\n");
        }
        self.stream
            .write_all(&self.out)
            .await
            .context("sending a request")?;
        self.read_head().await
    }

    /// Reads the body that follows `head`.
    pub async fn body(&mut self, head: &Head) -> Result<Bytes> {
        match head.framing {
            Framing::Length(n) => {
                ensure!(n <= MAX_BODY_BYTES, "body of {n} bytes");
                self.fill_to(n).await?;
                Ok(self.buf.split_to(n).freeze())
            }
            Framing::Chunked => self.chunked_body().await,
        }
    }

    /// Sends a request and reads the whole response, within [`REQUEST_TIMEOUT`].
    pub async fn call(
        &mut self,
        method: &str,
        path_and_query: &str,
        form: Option<&str>,
    ) -> Result<Reply> {
        let exchange = async {
            let head = self.send(method, path_and_query, form).await?;
            let body = self.body(&head).await?;
            Ok(Reply {
                status: head.status,
                etcd_index: head.etcd_index,
                close: head.close,
                body,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(reply) => reply,
            Err(_) => bail!("request timed out after {REQUEST_TIMEOUT:?}"),
        }
    }

    /// GET of a path.
    pub async fn get(&mut self, path_and_query: &str) -> Result<Reply> {
        self.call("GET", path_and_query, None).await
    }

    /// PUT with a form body, as etcd clients send it.
    pub async fn put(&mut self, path: &str, form: &str) -> Result<Reply> {
        self.call("PUT", path, Some(form)).await
    }

    async fn read_head(&mut self) -> Result<Head> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = response.parse(&self.buf)? {
                let head = head_of(&response)?;
                self.buf.advance(len);
                return Ok(head);
            }
            ensure!(
                self.buf.len() < MAX_HEAD_BYTES,
                "response head over {MAX_HEAD_BYTES} bytes"
            );
            self.read_more().await?;
        }
    }

    async fn chunked_body(&mut self) -> Result<Bytes> {
        let mut body = BytesMut::new();
        loop {
            let line = self.line().await?;
            let size = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size)?.trim();
            let size =
                usize::from_str_radix(size, 16).with_context(|| format!("chunk size {size:?}"))?;
            ensure!(
                body.len() + size <= MAX_BODY_BYTES,
                "chunked body over {MAX_BODY_BYTES} bytes"
            );
            if size == 0 {
                // Trailers (none are sent) end with an empty line.
                while !self.line().await?.is_empty() {}
                return Ok(body.freeze());
            }
            self.fill_to(size + 2).await?;
            body.extend_from_slice(&self.buf[..size]);
            ensure!(
                &self.buf[size..size + 2] == b"\r\n",
                "chunk not followed by CRLF"
            );
            self.buf.advance(size + 2);
        }
    }

    /// The next CRLF-terminated line, without its CRLF.
    async fn line(&mut self) -> Result<Bytes> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(at).freeze();
                self.buf.advance(2);
                return Ok(line);
            }
            ensure!(
                self.buf.len() < MAX_HEAD_BYTES,
                "chunk header over {MAX_HEAD_BYTES} bytes"
            );
            self.read_more().await?;
        }
    }

    async fn fill_to(&mut self, n: usize) -> Result<()> {
        while self.buf.len() < n {
            self.read_more().await?;
        }
        Ok(())
    }

    async fn read_more(&mut self) -> Result<()> {
        self.buf.reserve(4096);
        let read = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .context("reading a response")?;
        ensure!(read > 0, "connection closed by the server");
        Ok(())
    }
}

fn head_of(response: &httparse::Response) -> Result<Head> {
    let status = response.code.context("no status")?;
    let mut etcd_index = None;
    let mut framing = None;
    let mut close = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(header.value)?.trim().parse()?;
            framing = Some(Framing::Length(n));
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            ensure!(
                header.value.eq_ignore_ascii_case(b"chunked"),
                "transfer-encoding {:?}",
                header.value
            );
            framing = Some(Framing::Chunked);
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = header.value.eq_ignore_ascii_case(b"close");
        } else if header.name.eq_ignore_ascii_case("x-etcd-index") {
            etcd_index = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        }
    }
    let framing = match (status, framing) {
        (204 | 304, _) | (100..=199, _) => Framing::Length(0),
        (_, Some(framing)) => framing,
        (_, None) => bail!("status {status} response without a length (keep-alive needs one)"),
    };
    Ok(Head {
        status,
        etcd_index,
        close,
        framing,
    })
}

/// Opens `n` connections, at most `parallel` handshakes at a time so that the server's
/// accept backlog never overflows (a dropped SYN costs a 1 s retransmit and skews setup).
pub async fn open_many(target: &Target, n: usize, parallel: usize) -> Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..n {
        if pending.len() >= parallel {
            conns.push(pending.join_next().await.expect("non-empty")??);
        }
        let target = target.clone();
        pending.spawn(async move { Conn::open(&target).await });
    }
    while let Some(conn) = pending.join_next().await {
        conns.push(conn??);
    }
    Ok(conns)
}
