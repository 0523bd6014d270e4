//! The gateway's streaming calls (`Watch`, `LeaseKeepAlive`): the request body is a
//! series of JSON requests, each handed to the service as it arrives, and the answer a
//! chunked series of `{"result":...}` lines, as etcd's gateway streams them.
//!
//! As etcd's: the first request is read before the call (one that does not decode is
//! refused with 500, gRPC's UNKNOWN: grpc-gateway does not mark it a bad argument); a
//! later one that does not decode ends the requests, not the answers. The head goes
//! with the first answer. The answers end when the service's stream ends, the client
//! leaves (the body is dropped, and the service's stream with it) or the server stops,
//! which etcd's gateway reports as its connection's end ("transport is closing").
//!
//! One difference, on purpose: answers are streamed while the request body is still
//! arriving (a client may send a cancel later on the same request). etcd's Go 1.19
//! HTTP/1.1 server sends no answer until the request body has ended, so there a body
//! kept open gets nothing back.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::StatusCode;
use http_body::Frame;
use http_body_util::BodyExt as _;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tonic::codec::BufferSettings;
use tonic::{Code, Status};

use super::json::{self, DecodeError, Next};
use crate::grpc::calls::Call;
use crate::grpc::learner;
use crate::grpc::messages::{self, Way};
use crate::http::body::BodyError;
use crate::http::{full, APPLICATION_JSON};
use crate::limits::{GATEWAY_STREAM_REQUESTS_QUEUED_MAX, REQUEST_BODY_READ_TIMEOUT};
use crate::state::AppState;

/// Serves one streaming call of the gRPC `method`: reads the requests from `body`, calls
/// `call` with them as the service's request stream, and streams its answers back.
pub async fn serve<Req, Resp, S, F, Fut>(
    state: &AppState,
    method: &str,
    token: Option<&http::HeaderValue>,
    body: Body,
    call: F,
) -> Response
where
    Req: DeserializeOwned + Default + Message + 'static,
    Resp: Serialize + Message + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: FnOnce(tonic::Request<tonic::Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    let limits = state.request_bytes_max;
    let mut requests = Requests::new(body, limits.gateway_request());
    let first = tokio::time::timeout(REQUEST_BODY_READ_TIMEOUT, requests.next::<Req>()).await;
    let first = match first {
        Ok(Ok(first)) => first,
        Ok(Err(e)) => return json::not_called(&Status::unknown(e.0)),
        Err(_) => {
            let late = BodyError::TimedOut {
                timeout: REQUEST_BODY_READ_TIMEOUT,
            };
            return json::not_called(&Status::unknown(late.to_string()));
        }
    };
    let shutdown = state.shutdown.clone();
    let counted = Call::start(method);
    // etcd's gateway opens the stream at once; a refusal (the learner check, or its
    // server's message limit on the first request) comes as the stream's first answer.
    let refusal = match (learner::refuse_unserved(state, method), &first) {
        (Err(refused), _) => Some(refused),
        (Ok(()), Some(first)) => json::oversized(first, limits.grpc_message()),
        (Ok(()), None) => None,
    };
    if let Some(refused) = refusal {
        counted.end(refused.code());
        return stream_refused(&refused);
    }
    let (tx, rx) = mpsc::channel(GATEWAY_STREAM_REQUESTS_QUEUED_MAX);
    let failed = Arc::new(OnceLock::new());
    match first {
        Some(first) => {
            counted.message(Way::Received, first.encoded_len());
            let _ = tx.try_send(Ok(grpc_frame(&first)));
            let to = Forward {
                tx,
                shutdown: shutdown.clone(),
                failed: Arc::clone(&failed),
                method: counted.method(),
                message_max: limits.grpc_message(),
            };
            let forwarding = forward::<Req>(requests, to);
            tokio::spawn(forwarding);
        }
        // No request at all: the service's request stream ends at once.
        None => drop(tx),
    }
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let frame = rx.recv().await?;
        Some((frame.map(Frame::data), rx))
    });
    let streaming = tonic::Streaming::new_request(
        tonic_prost::ProstDecoder::<Req>::new(BufferSettings::default()),
        http_body_util::StreamBody::new(frames),
        None,
        Some(limits.grpc_message()),
    );
    let answers = match call(super::with_token(streaming, token)).await {
        Ok(answers) => answers.into_inner(),
        Err(status) => {
            counted.end(status.code());
            return stream_refused(&status);
        }
    };
    let ends = Ends { shutdown, failed };
    answer(Box::pin(answers), ends, counted).await
}

/// Serves one server-streaming call of the gRPC `method` (`Election.Observe`): its one
/// request read whole, as a unary call's, and its answers streamed back as a
/// bidirectional call's.
pub async fn serve_one<Req, Resp, S, F, Fut>(
    state: &AppState,
    method: &str,
    token: Option<&http::HeaderValue>,
    body: Body,
    call: F,
) -> Response
where
    Req: DeserializeOwned + Default + Message,
    Resp: Serialize + Message + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    let request: Req = match super::one_request(body, state.request_bytes_max).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let counted = Call::start(method);
    if let Err(refused) = learner::refuse_unserved(state, method) {
        counted.end(refused.code());
        return stream_refused(&refused);
    }
    let answers = match call(super::with_token(request, token)).await {
        Ok(answers) => answers.into_inner(),
        Err(status) => {
            counted.end(status.code());
            return stream_refused(&status);
        }
    };
    let ends = Ends {
        shutdown: state.shutdown.clone(),
        failed: Arc::new(OnceLock::new()),
    };
    answer(Box::pin(answers), ends, counted).await
}

/// A stream refused before its first answer: the status its code maps to, and the
/// refusal as the stream's one (chunked) error.
pub fn stream_refused(status: &Status) -> Response {
    let chunk = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(
        json::stream_error(status),
    )));
    full(
        json::http_status(status.code()),
        Some(APPLICATION_JSON),
        Body::from_stream(chunk),
    )
}

/// What may end a stream's answers other than the service itself.
struct Ends {
    shutdown: watch::Receiver<bool>,
    /// A later request its server refused (over the message limit): the service's
    /// request stream failed with it, which ends the service's answers.
    failed: Arc<OnceLock<Status>>,
}

impl Ends {
    /// Why the service's answers ended, when it is an error to report.
    fn why(&self) -> Option<Status> {
        // The service ends its streams when the server stops; etcd's gateway sees its
        // connection to the server close.
        if *self.shutdown.borrow() {
            return Some(closing());
        }
        self.failed.get().cloned()
    }
}

/// The answers as etcd's gateway writes them: nothing until the first one, then each
/// as a line; an error ends them. The call is counted handled when they end (and
/// `Canceled` if the client leaves first: the body, and `counted` in it, is dropped).
async fn answer<Resp, S>(mut answers: std::pin::Pin<Box<S>>, ends: Ends, counted: Call) -> Response
where
    Resp: Serialize + Message + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    let mut stopping = ends.shutdown.clone();
    let first = tokio::select! {
        first = answers.next() => first,
        _ = stopping.wait_for(|s| *s) => Some(Err(closing())),
    };
    let refusal = match first {
        Some(Ok(first)) => {
            counted.message(Way::Sent, first.encoded_len());
            Ok(json::stream_result(&first))
        }
        Some(Err(status)) => Err(Some(status)),
        None => Err(ends.why()),
    };
    let first = match refusal {
        Ok(first) => first,
        Err(Some(status)) => {
            counted.end(status.code());
            return stream_refused(&status);
        }
        // The service ended the stream before answering: etcd's gateway got no
        // headers to forward, and writes a chunked body with nothing in it.
        Err(None) => {
            counted.end(Code::Ok);
            let nothing = futures_util::stream::empty::<Result<Bytes, Infallible>>();
            return full(
                StatusCode::OK,
                Some(APPLICATION_JSON),
                Body::from_stream(nothing),
            );
        }
    };
    let open = Some((answers, ends, counted));
    let rest = futures_util::stream::unfold(open, |open| async move {
        let (mut answers, ends, counted) = open?;
        let ended = match answers.next().await {
            Some(Ok(answer)) => {
                counted.message(Way::Sent, answer.encoded_len());
                let line = json::stream_result(&answer);
                return Some((line, Some((answers, ends, counted))));
            }
            Some(Err(status)) => Some(status),
            None => ends.why(),
        };
        match ended {
            Some(status) => {
                counted.end(status.code());
                Some((json::stream_error(&status), None))
            }
            None => {
                counted.end(Code::Ok);
                None
            }
        }
    });
    let chunks = futures_util::stream::once(async { first })
        .chain(rest)
        .map(Ok::<_, Infallible>);
    json::stream_head(Body::from_stream(chunks))
}

/// What etcd's gateway reports when the server stops under a stream.
fn closing() -> Status {
    Status::unavailable("transport is closing")
}

/// Hands the body's later requests to the service's request stream, until the body
/// ends or holds something that is not a request, the service's stream ends or the
/// server stops.
async fn forward<Req>(mut requests: Requests, to: Forward)
where
    Req: DeserializeOwned + Default + Message,
{
    let Forward {
        tx,
        mut shutdown,
        failed,
        method,
        message_max,
    } = to;
    loop {
        let next = tokio::select! {
            next = requests.next::<Req>() => next,
            () = tx.closed() => return,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let Ok(Some(request)) = next else { return };
        if let Some(refused) = json::oversized(&request, message_max) {
            let _ = failed.set(refused.clone());
            let _ = tx.send(Err(refused)).await;
            return;
        }
        messages::count(method, Way::Received, request.encoded_len());
        if tx.send(Ok(grpc_frame(&request))).await.is_err() {
            return;
        }
    }
}

/// Where `forward` hands the requests, and the call they are counted for.
struct Forward {
    tx: mpsc::Sender<Result<Bytes, Status>>,
    shutdown: watch::Receiver<bool>,
    failed: Arc<OnceLock<Status>>,
    method: Option<usize>,
    /// The server's gRPC message limit, which each request is held to.
    message_max: usize,
}

/// A message in gRPC's framing: uncompressed, its length, its bytes.
fn grpc_frame<M: Message>(message: &M) -> Bytes {
    let len = message.encoded_len();
    let mut frame = Vec::with_capacity(5 + len);
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    message.encode_raw(&mut frame);
    Bytes::from(frame)
}

/// The JSON requests of a body that may still be arriving.
struct Requests {
    body: Body,
    /// The most bytes one request may take (`RequestBytesMax::gateway_request`).
    request_max: usize,
    buf: Vec<u8>,
    ended: bool,
    /// Whether `buf` may hold a whole value not looked at yet.
    fresh: bool,
}

impl Requests {
    fn new(body: Body, request_max: usize) -> Self {
        Requests {
            body,
            request_max,
            buf: Vec::new(),
            ended: false,
            fresh: false,
        }
    }

    /// The next request; `None` once the body has ended.
    async fn next<M: DeserializeOwned + Default>(&mut self) -> Result<Option<M>, DecodeError> {
        loop {
            if self.fresh || self.ended {
                self.fresh = false;
                match json::next_value(&self.buf)? {
                    Next::Value(value, end) => {
                        self.buf.drain(..end);
                        self.fresh = true;
                        return json::message(value).map(Some);
                    }
                    Next::End if self.ended => return Ok(None),
                    Next::Incomplete if self.ended => {
                        return Err(DecodeError("unexpected EOF".to_string()))
                    }
                    Next::End | Next::Incomplete => {}
                }
            }
            if self.buf.len() > self.request_max {
                return Err(DecodeError(format!(
                    "beacon: a request of more than {} bytes",
                    self.request_max
                )));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        // Every request is an object: a value can only have ended at a
                        // `}`, so a body trickled in bytes is not parsed at each one.
                        self.fresh = data.contains(&b'}');
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(DecodeError(e.to_string())),
                None => self.ended = true,
            }
        }
    }
}
