//! One keep-alive HTTP/1.1 connection to a server (hyper 1's low-level client, no pool):
//! each benchmark worker owns exactly one, so "concurrency N" means N TCP connections.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long any single non-watch request may take before the run counts it as failed;
/// bounds every load loop even if a server stalls.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

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

/// A finished response: status, etcd's `X-Etcd-Index` header and the whole body.
pub struct Reply {
    pub status: u16,
    pub etcd_index: Option<u64>,
    pub body: Bytes,
}

/// One open connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    /// Opens a TCP connection and does the (trivial) HTTP/1 handshake.
    pub async fn open(target: &Target) -> Result<Conn> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(target.addr))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connect {}", target.addr))?;
        // Small requests on a keep-alive connection: Nagle would add 40 ms delayed-ACK stalls.
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection future drives the socket; it ends when the Conn is dropped.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            host: target.host.clone(),
        })
    }

    /// Sends a request and returns as soon as the response head arrives (watches send
    /// their head when the watcher is registered, the body only on an event).
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        form: Option<String>,
    ) -> Result<Response<Incoming>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, &self.host);
        let body = match form {
            Some(form) => {
                builder = builder.header(
                    hyper::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                );
                Full::new(Bytes::from(form))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body)?;
        self.sender.ready().await.context("connection closed")?;
        Ok(self.sender.send_request(request).await?)
    }

    /// Sends a request and reads the whole response, within [`REQUEST_TIMEOUT`].
    pub async fn call(
        &mut self,
        method: Method,
        path_and_query: &str,
        form: Option<String>,
    ) -> Result<Reply> {
        let exchange = async {
            let response = self.send(method, path_and_query, form).await?;
            read_reply(response).await
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(reply) => reply,
            Err(_) => bail!("request timed out after {REQUEST_TIMEOUT:?}"),
        }
    }

    /// GET of a path.
    pub async fn get(&mut self, path_and_query: &str) -> Result<Reply> {
        self.call(Method::GET, path_and_query, None).await
    }

    /// PUT with a form body, as etcd clients send it.
    pub async fn put(&mut self, path: &str, form: String) -> Result<Reply> {
        self.call(Method::PUT, path, Some(form)).await
    }
}

/// Reads a response's body to its end and keeps the parts the bench looks at.
pub async fn read_reply(response: Response<Incoming>) -> Result<Reply> {
    let status = response.status().as_u16();
    let etcd_index = response
        .headers()
        .get("x-etcd-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        etcd_index,
        body,
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
