//! One HTTP call to a peer: hyper's pooled client over connections a [`PeerNet`]
//! opens, each call within its deadline, and its failure sorted by what it means to
//! the caller (nothing sent, no answer in time, an error answer, a broken connection,
//! this member removed).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::net::{Connecting, PeerNet, PeerStream};
use super::{CONNECT_TIMEOUT, POOL_IDLE_TIMEOUT};

/// A pooled HTTP/1.1 client for peer traffic, and the headers it puts on every
/// request. Clones share the pool.
#[derive(Clone)]
pub struct PeerHttp {
    client: Client<Connector, Full<Bytes>>,
    headers: Arc<HeaderMap>,
    /// The peer whose Raft messages this client carries, whose bytes it counts
    /// (`traffic`); `None` for a client shared by other calls.
    counted_to: Option<crate::types::NodeId>,
    /// The proxy's credentials, which a plain request through it carries.
    proxy_authorization: Option<http::HeaderValue>,
}

impl std::fmt::Debug for PeerHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerHttp")
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl PeerHttp {
    /// A client over `net` that sends `headers` on every request: keep-alive
    /// connections dropped after `POOL_IDLE_TIMEOUT` idle, each opened within
    /// `CONNECT_TIMEOUT` (an unreachable peer must fail fast so that openraft backs
    /// off). The pool's clock is tokio's, which a simulation drives.
    pub fn new(net: Arc<dyn PeerNet>, headers: HeaderMap) -> PeerHttp {
        let proxy_authorization = net.proxy().and_then(|p| p.authorization().cloned());
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(Connector { net });
        PeerHttp {
            client,
            headers: Arc::new(headers),
            counted_to: None,
            proxy_authorization,
        }
    }

    /// This client (the same pool), counting what it exchanges as Raft messages with
    /// `peer` (`traffic`).
    pub(crate) fn counted_to(&self, peer: crate::types::NodeId) -> PeerHttp {
        PeerHttp {
            counted_to: Some(peer),
            ..self.clone()
        }
    }

    /// Sends `request` with this client's headers and reads the whole answer, all
    /// within `timeout`.
    pub(crate) async fn call(
        &self,
        mut request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        for (name, value) in self.headers.iter() {
            request.headers_mut().insert(name, value.clone());
        }
        // Inside an https tunnel the target would read them: only the CONNECT has them.
        if let Some(auth) = &self.proxy_authorization {
            if request.uri().scheme_str() == Some("http") {
                let name = http::header::PROXY_AUTHORIZATION;
                request.headers_mut().insert(name, auth.clone());
            }
        }
        if let Some(peer) = self.counted_to {
            let bytes = hyper::body::Body::size_hint(request.body()).lower();
            super::traffic::sent(peer, usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        let exchange = async {
            let response = self.client.request(request).await.map_err(classify)?;
            let (head, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| CallError::Network(chain(&e)))?
                .to_bytes();
            if let Some(peer) = self.counted_to {
                super::traffic::received(peer, body.len());
            }
            Ok(Answer {
                status: head.status,
                headers: head.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(CallError::Timeout))
    }

    /// POSTs `body` to `url` as `content_type`, with `extra` headers, within `timeout`.
    pub(crate) async fn post(
        &self,
        url: &str,
        content_type: &'static str,
        extra: &[(&'static str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let mut builder = Request::post(url).header(http::header::CONTENT_TYPE, content_type);
        for (name, value) in extra {
            builder = builder.header(*name, value.as_str());
        }
        let request = finish(builder, url, Bytes::from(body))?;
        self.call(request, timeout).await
    }

    /// GETs `url` within `timeout`.
    pub(crate) async fn get(&self, url: &str, timeout: Duration) -> Result<Answer, CallError> {
        let request = finish(Request::get(url), url, Bytes::new())?;
        self.call(request, timeout).await
    }
}

/// The request `builder` makes with `body`; one it cannot make (a bad URL or header) is
/// never sent.
pub(crate) fn finish(
    builder: http::request::Builder,
    target: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, CallError> {
    builder
        .body(Full::new(body))
        .map_err(|e| CallError::NotSent {
            timed_out: false,
            message: format!("bad request to {target}: {e}"),
        })
}

/// A peer's whole answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Why a call to a peer failed, before openraft's (or the forwarder's) error types are
/// chosen.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No connection could be made, so nothing was sent.
    NotSent { timed_out: bool, message: String },
    /// No answer in time.
    Timeout,
    /// The peer answered with an error: back off.
    Unreachable(String),
    /// The connection broke mid-call: retry at once.
    Network(String),
    /// The peer refused: this member was removed from the cluster (etcd's 410).
    Removed,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent { message, .. } => write!(f, "not sent: {message}"),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Unreachable(m) | CallError::Network(m) => f.write_str(m),
            CallError::Removed => f.write_str("this member was removed"),
        }
    }
}

/// POSTs `request` as JSON to `url` and decodes the JSON answer, within `timeout`.
pub(crate) async fn post_json<Req: Serialize, Resp: DeserializeOwned>(
    http: &PeerHttp,
    url: &str,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, CallError> {
    let body = serde_json::to_vec(request).map_err(|e| CallError::Network(e.to_string()))?;
    let answer = http
        .post(url, "application/json", &[], body, timeout)
        .await?;
    read_answer(answer)
}

/// The peer answers 200 with the JSON of the result, or an error status with a text.
pub(crate) fn read_answer<Resp: DeserializeOwned>(answer: Answer) -> Result<Resp, CallError> {
    let Answer { status, body, .. } = answer;
    if status == StatusCode::GONE {
        return Err(CallError::Removed);
    }
    if !status.is_success() {
        return Err(CallError::Unreachable(format!(
            "answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)])
        )));
    }
    serde_json::from_slice(&body).map_err(|e| CallError::Network(format!("bad answer: {e}")))
}

/// A failed request: a connection that could not be made was never sent; anything
/// else broke on the way.
fn classify(e: hyper_util::client::legacy::Error) -> CallError {
    if e.is_connect() {
        let timed_out = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<ConnectError>())
            .is_some_and(|c| c.timed_out);
        CallError::NotSent {
            timed_out,
            message: chain(&e),
        }
    } else {
        CallError::Network(chain(&e))
    }
}

/// An error and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
#[error("connecting to {target}: {reason}")]
struct ConnectError {
    target: String,
    reason: String,
    timed_out: bool,
}

/// hyper's connector over a [`PeerNet`].
#[derive(Clone)]
struct Connector {
    net: Arc<dyn PeerNet>,
}

impl tower::Service<Uri> for Connector {
    type Response = PeerConnection;
    type Error = ConnectError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<PeerConnection, ConnectError>> + Send>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let target = uri.authority().map_or_else(String::new, |a| a.to_string());
        let refused = move |reason: String, timed_out| ConnectError {
            target: target.clone(),
            reason,
            timed_out,
        };
        let Some((secure, host, port)) = peer_host_port(&uri) else {
            let e = refused(format!("not an http or https URL: {uri}"), false);
            return Box::pin(async move { Err(e) });
        };
        let connecting: Connecting = super::net::dial(&self.net, secure, host, port);
        // hyper then writes an http request's target in absolute form, for the proxy.
        let proxied = !secure && self.net.proxy().is_some();
        Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                Ok(Ok(stream)) => Ok(PeerConnection {
                    io: TokioIo::new(stream),
                    proxied,
                }),
                Ok(Err(e)) => Err(refused(e.to_string(), false)),
                Err(_) => Err(refused(
                    format!("no connection within {CONNECT_TIMEOUT:?}"),
                    true,
                )),
            }
        })
    }
}

/// Whether a peer URL is `https`, its host (without an IPv6 address's brackets) and its
/// port (the scheme's by default); `None` for a URL of another scheme.
pub(crate) fn peer_host_port(uri: &Uri) -> Option<(bool, &str, u16)> {
    let (secure, default_port) = match uri.scheme_str()? {
        "http" => (false, 80),
        "https" => (true, 443),
        _ => return None,
    };
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    Some((secure, host, uri.port_u16().unwrap_or(default_port)))
}

/// A connection the client holds, in hyper's I/O traits.
struct PeerConnection {
    io: TokioIo<PeerStream>,
    /// A plain connection to an HTTP proxy, on which requests name their target.
    proxied: bool,
}

impl Connection for PeerConnection {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl hyper::rt::Read for PeerConnection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for PeerConnection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    // Vectored writes let hyper send a head and a body without copying them together,
    // where the stream supports them (TCP does).
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
