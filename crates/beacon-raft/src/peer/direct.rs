//! One HTTP/1.1 connection to one peer, driven by the task that calls on it: for the
//! replication stream's appends, which one task sends one at a time.
//!
//! The pooled client ([`PeerHttp`](super::PeerHttp)) runs each connection as a task of
//! its own: a call hands its request to that task over a channel and is woken by it
//! with the answer, two task switches per message on top of the socket's. Here the
//! caller polls the connection itself while it waits for its answer, and keeps it
//! for its next call.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::call::{Answer, CallError};
use super::net::{PeerNet, PeerStream};
use super::{CONNECT_TIMEOUT, POOL_IDLE_TIMEOUT};

/// A connection to one peer, opened at the first call and kept while calls succeed.
pub(crate) struct Direct {
    net: Arc<dyn PeerNet>,
    /// The peer's `host:port`, as the `Host` header and for connecting.
    authority: String,
    host: String,
    port: u16,
    /// An `https` peer URL: TLS over the connection.
    secure: bool,
    headers: Arc<HeaderMap>,
    /// Taken by a call for its duration, put back after a success. In a mutex only so
    /// that the client is `Sync`, as openraft wants: one task calls at a time.
    open: std::sync::Mutex<Option<Open>>,
}

struct Open {
    sender: http1::SendRequest<Full<Bytes>>,
    connection: Pin<Box<http1::Connection<TokioIo<PeerStream>, Full<Bytes>>>>,
    /// When its last call ended: an idle connection is not reused past
    /// `POOL_IDLE_TIMEOUT`, well before the receiver closes it.
    idle_since: Instant,
}

impl Direct {
    /// A connection to the peer at the http or https `url`, over `net`, sending
    /// `headers` on every request; `None` for any other URL.
    pub(crate) fn to(net: Arc<dyn PeerNet>, url: &str, headers: Arc<HeaderMap>) -> Option<Direct> {
        let uri: http::Uri = url.parse().ok()?;
        let (secure, host, port) = super::call::peer_host_port(&uri)?;
        let mut direct = Direct::new(net, host, port, headers);
        direct.secure = secure;
        Some(direct)
    }

    /// A plain connection to the peer at `host:port`, over `net`, sending `headers` on
    /// every request.
    pub(crate) fn new(
        net: Arc<dyn PeerNet>,
        host: &str,
        port: u16,
        headers: Arc<HeaderMap>,
    ) -> Direct {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Direct {
            net,
            authority,
            host: host.to_owned(),
            port,
            secure: false,
            headers,
            open: std::sync::Mutex::new(None),
        }
    }

    /// POSTs `body` as JSON to `path` and reads the whole answer, within `timeout`. Any
    /// failure drops the connection; the next call opens a new one.
    pub(crate) async fn post_json(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let mut builder = Request::post(path)
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in self.headers.iter() {
            builder = builder.header(name, value);
        }
        let request = super::call::finish(builder, path, Bytes::from(body))?;
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(result) => result,
            // The call's connection was dropped with it: an answer may still come on it,
            // so it is no longer in step.
            Err(_) => Err(CallError::Timeout),
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Answer, CallError> {
        let kept = self.slot().take();
        let open = match kept {
            Some(open)
                if open.idle_since.elapsed() < POOL_IDLE_TIMEOUT && !open.sender.is_closed() =>
            {
                open
            }
            _ => self.connect().await?,
        };
        let Open {
            mut sender,
            mut connection,
            ..
        } = open;
        let network = |e: hyper::Error| CallError::Network(e.to_string());
        let result = {
            let call = async {
                sender.ready().await.map_err(network)?;
                let response = sender.send_request(request).await.map_err(network)?;
                let (head, body) = response.into_parts();
                let body = body.collect().await.map_err(network)?.to_bytes();
                Ok(Answer {
                    status: head.status,
                    headers: head.headers,
                    body,
                })
            };
            // The answer first: a peer may close the connection right behind it.
            tokio::select! {
                biased;
                result = call => result,
                ended = connection.as_mut() => Err(CallError::Network(match ended {
                    Ok(()) => "the peer closed the connection".to_owned(),
                    Err(e) => e.to_string(),
                })),
            }
        };
        if result.is_ok() {
            *self.slot() = Some(Open {
                sender,
                connection,
                idle_since: Instant::now(),
            });
        }
        result
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        // Only ever left whole: a take or a put.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn connect(&self) -> Result<Open, CallError> {
        let not_sent = |timed_out, message: String| CallError::NotSent {
            timed_out,
            message: format!("connecting to {}: {message}", self.authority),
        };
        let dialing = super::net::dial(&self.net, self.secure, &self.host, self.port);
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, dialing).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(not_sent(false, e.to_string())),
            Err(_) => {
                return Err(not_sent(
                    true,
                    format!("no connection within {CONNECT_TIMEOUT:?}"),
                ))
            }
        };
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| not_sent(false, e.to_string()))?;
        Ok(Open {
            sender,
            connection: Box::pin(connection),
            idle_since: Instant::now(),
        })
    }
}
