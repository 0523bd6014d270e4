//! The peer listener's accept loop: at most [`PEER_CONNECTIONS_MAX`] connections at
//! once (the rest wait in the kernel's accept queue, holding none of this process's
//! descriptors), each closed after [`PEER_IDLE_TIMEOUT`] without a request head, as
//! etcd closes idle peer connections. So a flood of peer connections can neither use up
//! the descriptors the client port needs nor stay forever. The connections come from a
//! [`PeerAccept`]: production's `TcpListener`, or a simulation's listener.
//!
//! Each request carries its connection's [`ConnectionEnd`] (an extension), where a
//! handler may leave something to run when the connection closes: the append handler
//! leaves word that the leader's connection is gone, which is how a follower learns at
//! once that its leader's process died (`election`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::net::PeerAccept;
use super::{PEER_CONNECTIONS_MAX, PEER_IDLE_TIMEOUT};

/// How long to pause accepting after an accept error (out of descriptors, say), so the
/// loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// What runs when a connection closes, left by a handler of one of its requests; the
/// first left stays (each is the same for every request of a connection).
#[derive(Clone, Default)]
pub(crate) struct ConnectionEnd(Arc<Mutex<Option<OnClose>>>);

type OnClose = Box<dyn FnOnce() + Send>;

impl ConnectionEnd {
    /// Leaves `f` to run when the connection closes, unless something already is.
    /// Called for every append, so it builds `f` only the first time.
    pub(crate) fn on_close_once<F: FnOnce() + Send + 'static>(&self, f: impl FnOnce() -> F) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(Box::new(f()));
        }
    }

    /// The connection closed: runs what was left.
    fn closed(&self) {
        let left = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(f) = left {
            f();
        }
    }
}

/// Serves `router` on the connections `listener` accepts until the task is dropped.
pub async fn serve_listener(listener: impl PeerAccept, router: Router) {
    serve_listener_with(
        listener,
        router,
        None,
        PEER_CONNECTIONS_MAX,
        PEER_IDLE_TIMEOUT,
    )
    .await
}

/// [`serve_listener`] for an `https` peer URL: each connection's TLS handshake (within
/// [`PEER_IDLE_TIMEOUT`], on its own task) with `tls` before its first request; one that
/// fails is logged with its address and closed, as etcd's "rejected connection".
pub async fn serve_tls_listener(
    listener: impl PeerAccept,
    router: Router,
    tls: beacon_tls::Acceptor,
) {
    serve_listener_with(
        listener,
        router,
        Some(tls),
        PEER_CONNECTIONS_MAX,
        PEER_IDLE_TIMEOUT,
    )
    .await
}

/// [`serve_listener`] with its TLS and limits given (tests use small limits).
pub(crate) async fn serve_listener_with(
    mut listener: impl PeerAccept,
    router: Router,
    tls: Option<beacon_tls::Acceptor>,
    connections_max: usize,
    idle_timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(connections_max));
    let dated = listener.dates_answers();
    loop {
        // A slot first: while every slot is taken, connections wait unaccepted.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (sock, remote) = match PeerAccept::accept(&mut listener).await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a peer connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let end = ConnectionEnd::default();
        let on_request = end.clone();
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(on_request.clone());
                req
            },
        ));
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(sock, service, idle_timeout, dated).await,
                Some(tls) => {
                    match tokio::time::timeout(idle_timeout, tls.accept(sock, remote)).await {
                        Ok(Ok(secured)) => {
                            serve_connection(secured, service, idle_timeout, dated).await
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(%remote, error = %e, "rejected peer connection")
                        }
                        Err(_) => tracing::warn!(
                            %remote,
                            "rejected peer connection: no TLS handshake within {idle_timeout:?}"
                        ),
                    }
                }
            }
            end.closed();
            drop(slot);
        });
    }
}

/// Serves one connection's requests until it closes or sits idle for `idle_timeout`.
async fn serve_connection<IO, S>(io: IO, service: S, idle_timeout: Duration, dated: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's head timer runs from the moment it waits for a request head, so it
    // closes a connection that sits idle between requests too.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .auto_date_header(dated);
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}
