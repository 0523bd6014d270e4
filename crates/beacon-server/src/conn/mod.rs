//! Client connections. A connection that opens with HTTP/2's preface is gRPC, etcd's v3
//! API (`grpc`), as on etcd's client port; the rest is HTTP/1.1, which hyper serves,
//! except for one case: an idle long-poll
//! held by hyper keeps its read and write buffers (~20 KiB), and watches are the one
//! request that waits for minutes, by the ten thousand. So while a connection sends
//! plain watches they are answered by [`lean_watch`], which keeps only the socket and
//! the watch body while it waits; the first other request hands it to hyper for good.
//! On both paths a head Go would refuse before any handler (no `Host`, a transfer
//! coding other than `chunked`: `http::gohead`) gets Go's own answer and is closed,
//! and a write blocked for CLIENT_WRITE_TIMEOUT ends the connection.
//!
//! An HTTP/2 connection's requests reach h2 through [`h2_authority`], which mends the
//! scheme-qualified `:authority` grpc-go sends for an `http://` endpoint, and
//! [`ping_policy`], which holds a plain connection's client to etcd's minimum time
//! between pings.
//!
//! An `https` listener's connections make their TLS handshake first (within
//! HEADER_READ_TIMEOUT, on their own task) and are then told apart the same way, inside
//! TLS; a failed handshake is logged with the client's address, as etcd's "rejected
//! connection", and closed.

/// The `AsyncWrite` methods of a stream that changes only what is read: each writes
/// straight to the stream in `$inner`.
macro_rules! write_through {
    ($inner:ident) => {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.$inner).poll_write(cx, buf)
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.$inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.$inner).poll_shutdown(cx)
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.$inner).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.$inner.is_write_vectored()
        }
    };
}
use write_through;

mod h2_authority;
mod lean_watch;
mod ping_policy;
mod prefixed;
pub(crate) mod write_deadline;

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::http::gohead::{self, Rejection};
use crate::limits::{
    CLIENT_WRITE_TIMEOUT, HEADER_READ_TIMEOUT, REQUEST_HEADERS_MAX, REQUEST_HEAD_PEEK_BYTES_MAX,
};
use crate::Listener;
use h2_authority::H2Authority;
use ping_policy::PingPolicy;
use prefixed::Prefixed;
use write_deadline::WriteDeadline;

/// Accepts connections on `listener` until `stop` turns true, then waits for the open
/// ones to finish (the caller bounds that wait).
pub async fn serve_listener(
    listener: Listener,
    app: Router,
    grpc: crate::grpc::Routes,
    stop: watch::Receiver<bool>,
) {
    let Listener { tcp, tls } = listener;
    // etcd checks the Host of plain-HTTP requests only (`http::access`).
    let app = match tls {
        Some(_) => app.layer(axum::Extension(crate::http::access::Secure)),
        None => app,
    };
    let serve = {
        let stop = stop.clone();
        move |sock: TcpStream, remote| {
            let (app, grpc, stop, tls) = (app.clone(), grpc.clone(), stop.clone(), tls.clone());
            async move {
                let _ = sock.set_nodelay(true);
                match tls {
                    None => serve_connection(sock, app, grpc, stop).await,
                    // Boxed: inline, a TLS connection's state would size every plain
                    // connection's future too, and idle watchers come by the ten thousand.
                    Some(tls) => {
                        Box::pin(async move {
                            if let Some(secured) = handshake(&tls, sock, remote).await {
                                // A verified client certificate names the calls' user
                                // when they carry no token (etcd's AuthInfoFromTLS).
                                let certs = secured.get_ref().1.peer_certificates();
                                let cn = certs
                                    .and_then(|c| c.first())
                                    .and_then(beacon_tls::common_name);
                                let grpc = grpc.over_tls(cn);
                                let app = with_client_cert_names(app, &secured);
                                serve_connection(secured, app, grpc, stop).await;
                            }
                        })
                        .await
                    }
                }
            }
        }
    };
    accept_loop(tcp, stop, serve, usize::MAX).await;
}

/// [`serve_listener`] for a port that serves plain HTTP/1.1 alone (the metrics URLs):
/// no gRPC and no lean watch path, with the client port's timeouts and limits.
/// Each request carries its connection's [`RemoteAddr`].
pub async fn serve_http_listener(listener: Listener, app: Router, stop: watch::Receiver<bool>) {
    serve_http_listener_capped(listener, app, stop, usize::MAX).await;
}

/// [`serve_http_listener`] holding at most `connections_max` connections open: while
/// that many are, the next ones wait in the listen queue (the v2 proxy's bound).
pub async fn serve_http_listener_capped(
    listener: Listener,
    app: Router,
    stop: watch::Receiver<bool>,
    connections_max: usize,
) {
    let Listener { tcp, tls } = listener;
    let serve = {
        let stop = stop.clone();
        move |sock: TcpStream, remote| {
            let app = app.clone().layer(axum::Extension(RemoteAddr(remote)));
            let (stop, tls) = (stop.clone(), tls.clone());
            async move {
                let _ = sock.set_nodelay(true);
                match tls {
                    None => serve_with_hyper(Prefixed::new(Vec::new(), sock), app, stop).await,
                    Some(tls) => {
                        if let Some(secured) = handshake(&tls, sock, remote).await {
                            serve_with_hyper(Prefixed::new(Vec::new(), secured), app, stop).await;
                        }
                    }
                }
            }
        }
    };
    accept_loop(tcp, stop, serve, connections_max).await;
}

/// The address of the client a request came from (on the listeners of
/// [`serve_http_listener`]), which the v2 proxy names in `X-Forwarded-For`.
#[derive(Clone, Copy, Debug)]
pub struct RemoteAddr(pub std::net::SocketAddr);

/// `app` adding to each request the common name of the certificate the client
/// presented, which v2 auth and the gateway's check read
/// (`api_v2::auth::access::ClientCertNames`); `app` itself when it has none.
fn with_client_cert_names(app: Router, secured: &beacon_tls::ServerTlsStream<TcpStream>) -> Router {
    // The leaf's name: what etcd reads from each verified chain's first certificate.
    let names: Vec<String> = secured
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .first()
        .and_then(beacon_tls::common_name)
        .into_iter()
        .collect();
    if names.is_empty() {
        return app;
    }
    app.layer(axum::Extension(
        crate::api_v2::auth::access::ClientCertNames(names),
    ))
}

/// The content type of a TLS record that carries a handshake (RFC 8446 5.1), which a
/// client's first record is.
const TLS_HANDSHAKE_RECORD: u8 = 22;

/// The TLS handshake of a connection from `remote`, within [`HEADER_READ_TIMEOUT`];
/// `None`, logged, when it fails.
async fn handshake(
    tls: &beacon_tls::Acceptor,
    sock: TcpStream,
    remote: std::net::SocketAddr,
) -> Option<beacon_tls::ServerTlsStream<TcpStream>> {
    // Go's server closes a connection whose first record is not a handshake without a
    // word; rustls would answer with an alert, which an HTTP client reads as garbage.
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(HEADER_READ_TIMEOUT, sock.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) || first[0] != TLS_HANDSHAKE_RECORD {
        tracing::warn!(
            %remote,
            "rejected connection: first record does not look like a TLS handshake"
        );
        return None;
    }
    match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(sock, remote)).await {
        Ok(Ok(secured)) => Some(secured),
        Ok(Err(e)) => {
            tracing::warn!(%remote, error = %e, "rejected connection");
            None
        }
        Err(_) => {
            tracing::warn!(%remote, "rejected connection: no TLS handshake in time");
            None
        }
    }
}

/// Accepts connections and hands each to `serve` on a task of its own, at most
/// `connections_max` at once (the next wait in the listen queue), until `stop` turns
/// true; then waits for the open ones to finish.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    stop: watch::Receiver<bool>,
    mut serve: F,
    connections_max: usize,
) where
    F: FnMut(TcpStream, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    let mut stopped = std::pin::pin!(stopped(stop));
    loop {
        tokio::select! {
            accepted = listener.accept(), if conns.len() < connections_max => match accepted {
                Ok((sock, remote)) => {
                    conns.spawn(serve(sock, remote));
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

/// How a gRPC client's first bytes, HTTP/2's connection preface (RFC 9113 3.4), begin:
/// as a request head with a blank line after it, which `read_head` reads whole.
const HTTP2_PREFACE_HEAD: &[u8] = b"PRI * HTTP/2.0\r\n\r\n";

/// A client connection's byte stream: TCP, or TLS over it.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientIo for T {}

async fn serve_connection<S: ClientIo>(
    mut sock: S,
    app: Router,
    grpc: crate::grpc::Routes,
    stop: watch::Receiver<bool>,
) {
    let mut unread = Vec::with_capacity(1024);
    // Watch after watch stays on the lean path: a watcher re-arms on the same connection,
    // and handing each one to hyper after its first event would cost ~20 KiB of buffers
    // per watcher, allocated (and page-faulted in) just as an event wakes thousands.
    loop {
        if !read_head(&mut sock, &mut unread).await {
            return;
        }
        let Some(end) = head_end(&unread) else { break };
        if unread.starts_with(HTTP2_PREFACE_HEAD) {
            let io = H2Authority::new(Prefixed::new(unread, sock));
            let io = PingPolicy::new(io, grpc.ping_interval_min());
            let io = WriteDeadline::new(io, CLIENT_WRITE_TIMEOUT);
            Box::pin(crate::grpc::serve_connection(io, grpc, app, stop)).await;
            return;
        }
        if let Some(rejection) = go_rejection(&unread[..end]) {
            // Go writes these answers itself and closes, whatever follows the head.
            let _ = tokio::time::timeout(CLIENT_WRITE_TIMEOUT, async {
                let _ = sock.write_all(&rejection.raw()).await;
                let _ = sock.shutdown().await;
            })
            .await;
            return;
        }
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
async fn read_head<S: ClientIo>(sock: &mut S, head: &mut Vec<u8>) -> bool {
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
/// Lines may end in a bare LF: Go's reader (and so etcd) accepts them, and so does
/// hyper's parser, so `GET / HTTP/1.1\nHost: a\n\n` is a whole head.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(lf) = bytes[from..].iter().position(|b| *b == b'\n') {
        let after = from + lf + 1;
        match &bytes[after..] {
            [b'\n', ..] => return Some(after + 1),
            [b'\r', b'\n', ..] => return Some(after + 2),
            _ => from = after,
        }
    }
    None
}

/// Go's own refusal of a complete request head, if it refuses it (see
/// [`gohead`]). A head that does not even parse is left to hyper.
fn go_rejection(head: &[u8]) -> Option<Rejection> {
    let mut headers = [httparse::EMPTY_HEADER; REQUEST_HEADERS_MAX];
    let mut parsed = httparse::Request::new(&mut headers);
    if !matches!(parsed.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let http_11 = parsed.version == Some(1);
    gohead::check(http_11, parsed.headers.iter().map(|h| (h.name, h.value))).err()
}

/// Serves the rest of a connection with hyper until it closes or the server stops.
async fn serve_with_hyper<S: ClientIo>(
    stream: Prefixed<S>,
    app: Router,
    stop: watch::Receiver<bool>,
) {
    // A client that stops reading (a stream watcher that never reads) fails hyper's
    // next write after CLIENT_WRITE_TIMEOUT, as on the lean path, and so is closed.
    let io = TokioIo::new(WriteDeadline::new(stream, CLIENT_WRITE_TIMEOUT));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(REQUEST_HEADERS_MAX);
    // Heads the lean path never read are held to Go's rules here, before the router.
    let service = service_fn(move |req: http::Request<Incoming>| {
        let app = app.clone();
        async move {
            let http_11 = req.version() == http::Version::HTTP_11;
            let headers = req.headers().iter();
            let checked = gohead::check(http_11, headers.map(|(n, v)| (n.as_str(), v.as_bytes())));
            match checked {
                Err(rejection) => Ok::<_, Infallible>(rejection.response()),
                Ok(()) => app.oneshot(req).await,
            }
        }
    });
    let conn = builder.serve_connection(io, service);
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
