//! `proxy-floor`: the least an HTTP/1.1 proxy built on hyper can cost, for
//! `bench/proxy-cost`.
//!
//! One single-threaded worker; each client connection gets an upstream connection of its
//! own and sends every request through it, one at a time, body streamed. No balancing,
//! pool, retry, timeout, limit or header rewrite: what is left is hyper's server and client
//! halves on tokio, the floor under `beaconctl proxy` (which adds everything this leaves
//! out), as `beacon-bench null-server` is the floor under the store benchmarks. Not a
//! proxy to deploy: an upstream failure just closes the client's connection.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
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
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.listen.ip().is_loopback() && args.upstream.ip().is_loopback(),
        "loopback addresses only"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = args.upstream;
        tokio::spawn(async move {
            if let Err(e) = connection(client, upstream).await {
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
