//! The proxy's listener: HTTP/1.1 with keep-alive, a bound on open connections and on
//! the time a client may take to send a request head, and a bounded graceful stop: on
//! the stop signal every connection finishes the request it is serving and closes (an
//! idle keep-alive connection closes at once), within the drain timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::{BoxError, Service};

use super::conn;
use super::upstream::{Answer, Outgoing};

/// The listener's limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's accept queue.
    pub connections_max: usize,
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
    /// How long a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// How long open connections may finish after the stop signal.
    pub drain_timeout: Duration,
}

/// Serves until `stop` resolves, then lets open connections finish within the drain
/// timeout.
pub async fn serve<S>(
    listener: TcpListener,
    client: S,
    service: String,
    limits: Limits,
    stop: impl Future<Output = ()>,
) where
    S: Service<Outgoing, Response = Answer, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    assert!(limits.connections_max > 0, "a proxy serves connections");
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let service: Arc<str> = service.into();
    let mut conns = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    // Tells open connections to finish their request and close.
    let (closing, closing_rx) = watch::channel(false);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (sock, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors or reset before accept: keep serving.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            () = &mut stop => break,
        };
        let _ = sock.set_nodelay(true);
        let client = client.clone();
        let service = service.clone();
        let limits = limits.clone();
        let closing = closing_rx.clone();
        conns.spawn(async move {
            conn::serve(sock, client, &service, &limits, closing).await;
            drop(permit);
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    closing.send_replace(true);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while conns.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::warn!(open = conns.len(), "stopping with connections still open");
    }
}
