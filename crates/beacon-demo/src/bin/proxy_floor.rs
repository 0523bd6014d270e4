//! `proxy-floor`: the least an HTTP/1.1 proxy on tokio can cost, for `bench/proxy-cost`
//! and `bench/chaos`.
//!
//! Single-threaded workers (one by default; `--workers N` for N, each on its own
//! `SO_REUSEPORT` socket, as `beaconctl proxy` runs them); each client connection gets an
//! upstream connection of its own and sends every request through it, one at a time.
//! No balancing, pool, retry, timeout, limit or header rewrite. Two data paths: hyper's
//! server and client halves (the default, body streamed), and `--raw`, httparse on both
//! sockets in the connection's task, which is the data path `beaconctl proxy` has (it
//! adds everything this leaves out), as `beacon-bench null-server` is the floor under
//! the store benchmarks. Not a proxy to deploy: an upstream failure just closes the
//! client's connection, and `--raw` knows only bodies framed by `Content-Length`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use bytes::BytesMut;
use clap::Parser;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// Forwards every request on 127.0.0.1:LISTEN to UPSTREAM.
#[derive(Parser)]
struct Args {
    /// Where to accept clients (loopback only).
    #[arg(long)]
    listen: SocketAddr,
    /// The one server every request goes to (loopback only).
    #[arg(long)]
    upstream: SocketAddr,
    /// Worker threads, each with its own listening socket on LISTEN.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// httparse on the sockets instead of hyper (`Content-Length` bodies only).
    #[arg(long)]
    raw: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.listen.ip().is_loopback() && args.upstream.ip().is_loopback(),
        "loopback addresses only"
    );
    ensure!(
        (1..=64).contains(&args.workers),
        "--workers must be within 1..=64"
    );
    let listeners = reuse_port_listeners(args.listen, args.workers)?;
    let workers: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let upstream = args.upstream;
            let raw = args.raw;
            std::thread::spawn(move || -> Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(serve(listener, upstream, raw))
            })
        })
        .collect();
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
    }
    Ok(())
}

/// `count` listening sockets on the same address (`SO_REUSEPORT`; port 0 picks one port
/// for all), so the kernel spreads connections over the workers.
fn reuse_port_listeners(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>> {
    // tokio's TcpSocket registers with a runtime on listen; into_std undoes that.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let _guard = runtime.enter();
    let mut addr = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseport(true)?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr).with_context(|| format!("bind {addr}"))?;
        let listener = socket.listen(1024)?.into_std()?;
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

async fn serve(listener: std::net::TcpListener, upstream: SocketAddr, raw: bool) -> Result<()> {
    let listener = TcpListener::from_std(listener)?;
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let served = if raw {
                raw_connection(client, upstream).await
            } else {
                connection(client, upstream).await
            };
            if let Err(e) = served {
                eprintln!("proxy-floor: {e:#}");
            }
        });
    }
}

/// Serves one client connection through one upstream connection.
async fn connection(client: TcpStream, upstream: SocketAddr) -> Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(upstream)
        .await
        .with_context(|| format!("connect {upstream}"))?;
    server.set_nodelay(true)?;
    let (sender, upstream_conn) = hyper::client::conn::http1::handshake(TokioIo::new(server))
        .await
        .context("handshake")?;
    tokio::spawn(upstream_conn);
    // HTTP/1.1 answers requests in turn, so the lock is never contended.
    let sender: Arc<Mutex<SendRequest<Incoming>>> = Arc::new(Mutex::new(sender));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let sender = sender.clone();
        async move {
            let mut sender = sender.lock().await;
            sender.ready().await?;
            let response: Response<Incoming> = sender.send_request(request).await?;
            Ok::<_, hyper::Error>(response)
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await
        .context("client connection")
}

/// A head's `Content-Length`, 0 without one.
fn content_length(headers: &[httparse::Header<'_>]) -> usize {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads from `sock` into `buf` until it holds a whole message (head and `Content-Length`
/// body) as `parse` reads heads; returns its length, `None` at the end of the stream.
async fn read_message(
    sock: &mut TcpStream,
    buf: &mut BytesMut,
    parse: impl Fn(&[u8]) -> Result<Option<usize>>,
) -> Result<Option<usize>> {
    let mut total = None;
    loop {
        if total.is_none() && !buf.is_empty() {
            total = parse(buf)?;
        }
        if total.is_some_and(|t| buf.len() >= t) {
            return Ok(total);
        }
        buf.reserve(8192);
        if sock.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Serves one client connection through one upstream connection, copying each whole
/// message across unchanged.
async fn raw_connection(mut client: TcpStream, upstream: SocketAddr) -> Result<()> {
    client.set_nodelay(true)?;
    let mut server = TcpStream::connect(upstream)
        .await
        .with_context(|| format!("connect {upstream}"))?;
    server.set_nodelay(true)?;
    let mut from_client = BytesMut::with_capacity(8192);
    let mut from_server = BytesMut::with_capacity(8192);
    let request = |buf: &[u8]| -> Result<Option<usize>> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        Ok(match req.parse(buf)? {
            httparse::Status::Complete(n) => Some(n + content_length(req.headers)),
            httparse::Status::Partial => None,
        })
    };
    let response = |buf: &[u8]| -> Result<Option<usize>> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        Ok(match resp.parse(buf)? {
            httparse::Status::Complete(n) => Some(n + content_length(resp.headers)),
            httparse::Status::Partial => None,
        })
    };
    loop {
        let Some(n) = read_message(&mut client, &mut from_client, request).await? else {
            return Ok(());
        };
        server.write_all(&from_client.split_to(n)).await?;
        let Some(n) = read_message(&mut server, &mut from_server, response).await? else {
            return Ok(());
        };
        client.write_all(&from_server.split_to(n)).await?;
    }
}
