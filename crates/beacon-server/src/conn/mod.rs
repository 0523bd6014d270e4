//! Client connections. hyper serves HTTP/1.1, except for one case: an idle long-poll
//! held by hyper keeps its read and write buffers (~20 KiB), and watches are the one
//! request that waits for minutes, by the ten thousand. So while a connection sends
//! plain watches they are answered by [`lean_watch`], which keeps only the socket and
//! the watch body while it waits; the first other request hands it to hyper for good.

mod lean_watch;
mod prefixed;

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::limits::{HEADER_READ_TIMEOUT, REQUEST_HEAD_PEEK_BYTES_MAX};
use prefixed::Prefixed;

/// Accepts connections on `listener` until `stop` turns true, then waits for the open
/// ones to finish (the caller bounds that wait).
pub async fn serve_listener(listener: TcpListener, app: Router, stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    let mut stopped = std::pin::pin!(stopped(stop.clone()));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, _)) => {
                    conns.spawn(serve_connection(sock, app.clone(), stop.clone()));
                }
                // Out of descriptors or a connection reset before accept: keep serving.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a client connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn serve_connection(mut sock: TcpStream, app: Router, stop: watch::Receiver<bool>) {
    let _ = sock.set_nodelay(true);
    let mut unread = Vec::with_capacity(1024);
    // Watch after watch stays on the lean path: a watcher re-arms on the same connection,
    // and handing each one to hyper after its first event would cost ~20 KiB of buffers
    // per watcher, allocated (and page-faulted in) just as an event wakes thousands.
    loop {
        if !read_head(&mut sock, &mut unread).await {
            return;
        }
        let Some(end) = head_end(&unread) else { break };
        let Some(lean) = lean_watch::recognize(&unread[..end]) else {
            break;
        };
        let rest = unread.split_off(end);
        drop(unread);
        let stopping = {
            let stop = stop.clone();
            move || *stop.borrow()
        };
        match lean_watch::answer(&mut sock, lean, app.clone(), stopping).await {
            Some(pipelined) => unread = [rest, pipelined].concat(),
            None => return,
        }
    }
    // Boxed: inline, hyper's connection state would size every lean watcher's future.
    Box::pin(serve_with_hyper(Prefixed::new(unread, sock), app, stop)).await;
}

/// Reads into `head` until it holds a whole request head or
/// [`REQUEST_HEAD_PEEK_BYTES_MAX`] bytes; `false` when the client left or took longer
/// than [`HEADER_READ_TIMEOUT`].
async fn read_head(sock: &mut TcpStream, head: &mut Vec<u8>) -> bool {
    let complete =
        |head: &Vec<u8>| head_end(head).is_some() || head.len() >= REQUEST_HEAD_PEEK_BYTES_MAX;
    if complete(head) {
        return true;
    }
    let read = tokio::time::timeout(HEADER_READ_TIMEOUT, async {
        loop {
            match sock.read_buf(head).await {
                Ok(0) | Err(_) => return false,
                Ok(_) if complete(head) => return true,
                Ok(_) => {}
            }
        }
    })
    .await;
    matches!(read, Ok(true))
}

/// Where the first request head in `bytes` ends (after its blank line), if it does.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

/// Serves the rest of a connection with hyper until it closes or the server stops.
async fn serve_with_hyper(stream: Prefixed, app: Router, stop: watch::Receiver<bool>) {
    let io = TokioIo::new(stream);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(io, TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let stopping = tokio::select! {
        _ = conn.as_mut() => false,
        _ = stopped(stop) => true,
    };
    if stopping {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// Resolves once the server is stopping. Owning the receiver keeps its borrow guard
/// out of the callers' futures, which must stay `Send`.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
