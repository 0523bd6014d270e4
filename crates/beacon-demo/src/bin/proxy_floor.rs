//! `proxy-floor`: the least an HTTP/1.1 proxy built on hyper can cost, for
//! `bench/proxy-cost`.
//!
//! Single-threaded workers (one by default; `--workers N` for N, each on its own
//! `SO_REUSEPORT` socket, as `beaconctl proxy` runs them); each client connection gets an
//! upstream connection of its own and sends every request through it, one at a time,
//! body streamed. No balancing, pool, retry, timeout, limit or header rewrite: what is
//! left is hyper's server and client halves on tokio, the floor under `beaconctl proxy`
//! (which adds everything this leaves out), as `beacon-bench null-server` is the floor
//! under the store benchmarks. Not a proxy to deploy: an upstream failure just closes the
//! client's connection.

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
    /// Worker threads, each with its own listening socket on LISTEN.
    #[arg(long, default_value_t = 1)]
    workers: usize,
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
            std::thread::spawn(move || -> Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(serve(listener, upstream))
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

async fn serve(listener: std::net::TcpListener, upstream: SocketAddr) -> Result<()> {
    let listener = TcpListener::from_std(listener)?;
    loop {
        let (client, _) = listener.accept().await?;
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
