//! The peer listener's accept loop: at most [`PEER_CONNECTIONS_MAX`] connections at
//! once (the rest wait in the kernel's accept queue, holding none of this process's
//! descriptors), each closed after [`PEER_IDLE_TIMEOUT`] without a request head, as
//! etcd closes idle peer connections. So a flood of peer connections can neither use up
//! the descriptors the client port needs nor stay forever. The connections come from a
//! [`PeerAccept`]: production's `TcpListener`, or a simulation's listener.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use super::net::PeerAccept;
use super::{PEER_CONNECTIONS_MAX, PEER_IDLE_TIMEOUT};

/// How long to pause accepting after an accept error (out of descriptors, say), so the
/// loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `router` on the connections `listener` accepts until the task is dropped.
pub async fn serve_listener(listener: impl PeerAccept, router: Router) {
    serve_listener_with(listener, router, PEER_CONNECTIONS_MAX, PEER_IDLE_TIMEOUT).await
}

/// [`serve_listener`] with its limits given (tests use small ones).
pub(crate) async fn serve_listener_with(
    mut listener: impl PeerAccept,
    router: Router,
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
        let sock = match PeerAccept::accept(&mut listener).await {
            Ok((sock, _)) => sock,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a peer connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            // hyper's head timer runs from the moment it waits for a request head, so
            // it closes a connection that sits idle between requests too.
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(idle_timeout)
                .auto_date_header(dated);
            let _ = builder.serve_connection(TokioIo::new(sock), service).await;
            drop(slot);
        });
    }
}
