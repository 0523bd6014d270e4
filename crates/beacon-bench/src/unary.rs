//! One HTTP/2 connection for unary gRPC calls, driven by the task that calls: the v3
//! load's client, for the reason `client.rs` gives for v2.
//!
//! tonic's `Channel` puts a buffer task and a connection task between the caller and
//! the socket, so each call crosses three tasks, often on both runtime threads. At one
//! connection that client spent more CPU per Range (about 116 µs) than Beacon did
//! serving it (95 µs), on the same 2 CPUs, so both servers' results were mostly the
//! load generator's own cost. Here the worker polls h2's connection itself while its
//! call is in flight: the only wake-up is the socket's.

use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::net::TcpStream;

use crate::client::REQUEST_TIMEOUT;

/// An answer larger than this is refused (the bench's answers are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// One gRPC method of one server: the request line every call of it sends.
#[derive(Clone)]
pub struct Method(http::Uri);

impl Method {
    /// `path` as gRPC names it, e.g. `/etcdserverpb.KV/Range`, on the server at `url`
    /// (`http://HOST:PORT`).
    pub fn new(url: &str, path: &str) -> Result<Self> {
        let uri = format!("{}{path}", url.trim_end_matches('/'));
        Ok(Self(
            uri.parse().with_context(|| format!("gRPC method {uri}"))?,
        ))
    }
}

/// One HTTP/2 connection; calls on it run one at a time.
pub struct UnaryConn {
    send: h2::client::SendRequest<Bytes>,
    conn: h2::client::Connection<TcpStream, Bytes>,
    answer: BytesMut,
}

impl UnaryConn {
    /// Connects to `url` (`http://HOST:PORT`) and opens HTTP/2 (prior knowledge, as
    /// gRPC clients do on a plain connection).
    pub async fn connect(url: &str) -> Result<Self> {
        let addr = crate::client::Target::parse(url)?.addr;
        let sock = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {url}: timed out"))?
            .with_context(|| format!("connecting to {url}"))?;
        sock.set_nodelay(true)?;
        let (send, conn) = h2::client::handshake(sock)
            .await
            .with_context(|| format!("HTTP/2 handshake with {url}"))?;
        Ok(Self {
            send,
            conn,
            answer: BytesMut::new(),
        })
    }

    /// Calls `method` with `request`; an error for anything but grpc-status 0, or after
    /// [`REQUEST_TIMEOUT`].
    pub async fn call<Q: prost::Message, A: prost::Message + Default>(
        &mut self,
        method: &Method,
        request: &Q,
    ) -> Result<A> {
        let Self { send, conn, answer } = self;
        let call = call(send, &method.0, request, answer);
        let raced = async {
            tokio::select! {
                biased;
                answered = call => answered,
                ended = &mut *conn => match ended {
                    Ok(()) => Err(anyhow!("the server closed the connection")),
                    Err(e) => Err(anyhow!("HTTP/2 connection failed: {e}")),
                },
            }
        };
        let message = tokio::time::timeout(REQUEST_TIMEOUT, raced)
            .await
            .map_err(|_| anyhow!("no answer within {REQUEST_TIMEOUT:?}"))??;
        Ok(A::decode(message)?)
    }
}

/// One call: the request's headers and its one message, then the answer's message and
/// trailers. Returns the answer's message without gRPC's 5-byte prefix.
async fn call<Q: prost::Message>(
    send: &mut h2::client::SendRequest<Bytes>,
    uri: &http::Uri,
    request: &Q,
    answer: &mut BytesMut,
) -> Result<Bytes> {
    std::future::poll_fn(|cx| send.poll_ready(cx)).await?;
    let head = http::Request::post(uri.clone())
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(())?;
    let (response, mut body) = send.send_request(head, false)?;
    let len = request.encoded_len();
    let mut framed = BytesMut::with_capacity(5 + len);
    framed.put_u8(0);
    framed.put_u32(u32::try_from(len)?);
    request.encode(&mut framed)?;
    body.send_data(framed.freeze(), true)?;

    let response = response.await?;
    ensure!(
        response.status() == http::StatusCode::OK,
        "HTTP status {}",
        response.status()
    );
    // A refusal may come as headers alone ("trailers-only").
    grpc_ok(response.headers())?;
    let mut incoming = response.into_body();
    answer.clear();
    while let Some(data) = incoming.data().await {
        let data = data?;
        incoming.flow_control().release_capacity(data.len())?;
        ensure!(
            answer.len() + data.len() <= MAX_ANSWER_BYTES,
            "answer over {MAX_ANSWER_BYTES} bytes"
        );
        answer.extend_from_slice(&data);
    }
    match incoming.trailers().await? {
        Some(trailers) => grpc_ok(&trailers)?,
        None => bail!("answer without trailers"),
    }
    ensure!(answer.len() >= 5, "answer without a message");
    let mut prefix = &answer[..5];
    ensure!(prefix.get_u8() == 0, "compressed answer");
    let len = prefix.get_u32() as usize;
    ensure!(
        answer.len() == 5 + len,
        "answer of {} bytes, not {len}",
        answer.len() - 5
    );
    answer.advance(5);
    Ok(answer.split().freeze())
}

/// `Ok` when `headers` say grpc-status 0 or do not say; the status and message otherwise.
fn grpc_ok(headers: &http::HeaderMap) -> Result<()> {
    match headers.get("grpc-status").map(|s| s.as_bytes()) {
        None | Some(b"0") => Ok(()),
        Some(status) => bail!(
            "grpc-status {}: {}",
            String::from_utf8_lossy(status),
            headers
                .get("grpc-message")
                .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                .unwrap_or_default()
        ),
    }
}
