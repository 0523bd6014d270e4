//! One client connection, served in its own task: read a request, send it through the
//! balanced client, pass the answer back, and again while the connection stays open.
//!
//! This is the whole data path; nothing runs between the two sockets but this task (the
//! instance's connection comes with its answer, see `upstream.rs`), which is what makes
//! a request cost about what it costs nginx. The request body is read whole before the
//! first attempt, within the body limit, because a retry must be able to send it again;
//! the answer's body streams. Failures of the balanced client become short plain-text
//! answers: `503` when no instance can take the request (none listed, or too many
//! requests already waiting for one), `504` when the instance did not answer in time,
//! `502` for any other failure.
//!
//! Bounds: a client has the header read timeout to send each request head (which also
//! closes a keep-alive connection idle that long), and again for each piece of a body
//! and each write of an answer that does not go out at once. A connection that is idle
//! when the proxy stops closes at once; one serving a request closes after the answer.
//! A connection refused before its request was read whole lingers (`LINGER_TIMEOUT`,
//! `LINGER_BYTES_MAX`) so that the refusal reaches the client.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::{BoxError, Service};

use beacon_client::balance::BalanceError;

use super::chunked::Chunked;
use super::h1::{self, Framing, RequestHead};
use super::server::Limits;
use super::upstream::{itoa, Answer, Outgoing};

/// What a connection's read buffer holds at least before each read.
const READ_CHUNK: usize = 8 * 1024;

/// How long, at most, a connection that answered a request it did not read whole goes on
/// reading (and dropping) what the client still sends, and how much of it. Closing a
/// socket with unread input makes the kernel send a reset, which can destroy the answer
/// before the client has read it (what nginx's lingering close avoids, with 5 s and 30 s).
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);
const LINGER_BYTES_MAX: usize = 1024 * 1024;

/// Whether the connection carries another request.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Request,
    Close,
    /// Close, but the client may still be sending the request the proxy refused.
    Linger,
}

/// A client connection and its buffers, reused by every request on it.
struct Client<'a> {
    sock: TcpStream,
    /// Bytes read from the client and not yet used.
    read: BytesMut,
    /// The request head to forward, then the answer on its way out.
    forward: BytesMut,
    out: BytesMut,
    /// The deadline of whatever the connection waits for now.
    timer: Pin<&'a mut Sleep>,
    limits: &'a Limits,
    /// Changed once the proxy stops.
    stopping: watch::Receiver<bool>,
}

/// Serves `sock` until the client closes it, it breaks, or the proxy stops.
pub async fn serve<S>(
    sock: TcpStream,
    mut client: S,
    service: &str,
    limits: &Limits,
    closing: watch::Receiver<bool>,
) where
    S: Service<Outgoing, Response = Answer, Error = BoxError>,
{
    let stopping = closing.clone();
    let mut closing = closing;
    // Made once and polled whenever the connection waits for a request: a wait made
    // anew for every request cost a waiter list's insertion and removal each time.
    let mut stop = pin!(closing.changed());
    let timer = pin!(tokio::time::sleep(limits.header_read_timeout));
    let mut conn = Client {
        sock,
        read: BytesMut::with_capacity(READ_CHUNK),
        forward: BytesMut::with_capacity(1024),
        out: BytesMut::with_capacity(READ_CHUNK),
        timer,
        limits,
        stopping,
    };
    loop {
        match conn.exchange(&mut client, service, stop.as_mut()).await {
            Next::Request => {}
            Next::Close => return,
            Next::Linger => return conn.linger().await,
        }
    }
}

impl Client<'_> {
    /// One request and its answer.
    async fn exchange<S, F: Future>(
        &mut self,
        client: &mut S,
        service: &str,
        stop: Pin<&mut F>,
    ) -> Next
    where
        S: Service<Outgoing, Response = Answer, Error = BoxError>,
    {
        let head = match self.read_head(stop).await {
            Ok(head) => head,
            Err(next) => return next,
        };
        let body = match self.read_body(&head).await {
            Ok(body) => body,
            Err(Some((status, text))) => {
                // The rest of the body is still on its way: the connection cannot go on.
                self.answer_text(status, &text, &head, true).await;
                return Next::Linger;
            }
            Err(None) => return Next::Close,
        };
        let request = Outgoing {
            method: head.method.clone(),
            head: self.forward.split().freeze(),
            body,
            framed: head.body != Framing::Empty,
        };
        // Stopping: this answer is the connection's last.
        let stopping = self.stopping.has_changed().unwrap_or(true);
        let keep_alive = head.keep_alive && !stopping;
        let answered = match poll_fn(|cx| client.poll_ready(cx)).await {
            Ok(()) => client.call(request).await,
            Err(e) => Err(e),
        };
        match answered {
            Ok(answer) => self.relay(answer, &head, keep_alive).await,
            Err(e) => {
                let (status, text) = failure(&e, service);
                self.answer_text(status, &text, &head, !keep_alive).await
            }
        }
    }

    /// Waits for a request head, within the header read timeout; `Err` when the
    /// connection is to close (the client closed it, sent garbage, or was too slow, or
    /// the proxy stops while it is idle).
    async fn read_head<F: Future>(&mut self, mut stop: Pin<&mut F>) -> Result<RequestHead, Next> {
        let limit = self.limits.header_read_timeout;
        self.timer.as_mut().reset(Instant::now() + limit);
        loop {
            if !self.read.is_empty() {
                match h1::parse_request(&self.read, &mut self.forward) {
                    Ok(Some((len, head))) => {
                        self.read.advance(len);
                        return Ok(head);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.forward.clear();
                        let text = format!("{e}\n");
                        put_text(&mut self.out, e.status(), &text);
                        put_connection(&mut self.out, true, false);
                        self.out.put_slice(b"\r\n");
                        self.out.put_slice(text.as_bytes());
                        self.flush().await;
                        return Err(Next::Linger);
                    }
                }
            }
            self.read.reserve(READ_CHUNK);
            let idle = self.read.is_empty();
            let read = tokio::select! {
                biased;
                read = self.sock.read_buf(&mut self.read) => read,
                () = &mut self.timer => return Err(Next::Close),
                // Fires once; the connection closes, so it is never polled again.
                _ = stop.as_mut(), if idle => return Err(Next::Close),
            };
            match read {
                Ok(0) | Err(_) => return Err(Next::Close),
                Ok(_) => {}
            }
        }
    }

    /// Reads the request's body whole. `Err(Some(answer))`: refuse the request with it;
    /// `Err(None)`: the client is gone.
    async fn read_body(
        &mut self,
        head: &RequestHead,
    ) -> Result<Bytes, Option<(StatusCode, String)>> {
        let max = self.limits.body_bytes_max;
        let too_large = || {
            Some((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {max} bytes\n"),
            ))
        };
        match head.body {
            Framing::Empty | Framing::UntilClose => Ok(Bytes::new()),
            Framing::Length(n) => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= max)
                    .ok_or_else(too_large)?;
                if head.expect_continue && self.read.len() < n {
                    self.send_continue().await?;
                }
                while self.read.len() < n {
                    self.read_more().await?;
                }
                Ok(self.read.split_to(n).freeze())
            }
            Framing::Chunked => {
                if head.expect_continue && self.read.is_empty() {
                    self.send_continue().await?;
                }
                let mut chunked = Chunked::default();
                let mut body = BytesMut::new();
                loop {
                    let used = chunked
                        .feed(&self.read, |data| body.put_slice(data))
                        .map_err(|e| Some((StatusCode::BAD_REQUEST, format!("{e}\n"))))?;
                    self.read.advance(used);
                    if body.len() > max {
                        return Err(too_large());
                    }
                    if chunked.is_done() {
                        return Ok(body.freeze());
                    }
                    self.read_more().await?;
                }
            }
        }
    }

    async fn send_continue(&mut self) -> Result<(), Option<(StatusCode, String)>> {
        let write = self.sock.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        match bounded(write, self.timer.as_mut(), self.limits.header_read_timeout).await {
            Some(Ok(())) => Ok(()),
            _ => Err(None),
        }
    }

    /// More of a request body, within the header read timeout.
    async fn read_more(&mut self) -> Result<(), Option<(StatusCode, String)>> {
        self.read.reserve(READ_CHUNK);
        let read = self.sock.read_buf(&mut self.read);
        match bounded(read, self.timer.as_mut(), self.limits.header_read_timeout).await {
            Some(Ok(n)) if n > 0 => Ok(()),
            _ => Err(None),
        }
    }

    /// Passes `answer` to the client: its head, then its body as it arrives.
    async fn relay(&mut self, mut answer: Answer, request: &RequestHead, keep_alive: bool) -> Next {
        let mut close = !keep_alive;
        let out = &mut self.out;
        out.clear();
        out.put_slice(answer.head_bytes());
        let body = answer.head.body;
        match body {
            // A HEAD's or a 304's length describes the body the client did not ask for.
            Framing::Empty => {
                if let Some(n) = answer.head.length {
                    put_length(out, n);
                }
            }
            Framing::Length(n) => put_length(out, n),
            Framing::Chunked if !request.http10 => out.put_slice(b"Transfer-Encoding: chunked\r\n"),
            // An HTTP/1.0 client knows no chunks: the data alone, ended by closing.
            Framing::Chunked | Framing::UntilClose => close = true,
        }
        if !answer.head.has_date {
            put_date(out);
        }
        put_connection(out, close, request.http10);
        out.put_slice(b"\r\n");

        let mut body_left = match body {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut chunked = Chunked::default();
        let mut done = body == Framing::Empty;
        // What the head's read brought of the body goes out with the head.
        let mut read_first = answer.conn.read.is_empty();
        while !done {
            if read_first {
                match answer.conn.read_more().await {
                    Ok(0) if body == Framing::UntilClose => done = true,
                    // The instance broke off the body: so must the client's connection.
                    Ok(0) | Err(_) => return Next::Close,
                    Ok(_) => {}
                }
            }
            read_first = true;
            let read = &mut answer.conn.read;
            let out = &mut self.out;
            match body {
                Framing::Length(_) => {
                    let n = read
                        .len()
                        .min(usize::try_from(body_left).unwrap_or(usize::MAX));
                    out.put_slice(&read[..n]);
                    read.advance(n);
                    body_left -= n as u64;
                    done = body_left == 0;
                }
                Framing::Chunked => {
                    let decode = request.http10;
                    let fed = chunked.feed(read, |data| {
                        if decode {
                            out.put_slice(data);
                        }
                    });
                    let Ok(used) = fed else { return Next::Close };
                    if !decode {
                        out.put_slice(&read[..used]);
                    }
                    read.advance(used);
                    done = chunked.is_done();
                }
                Framing::UntilClose => {
                    out.put_slice(read);
                    read.clear();
                }
                Framing::Empty => {}
            }
            if !self.flush().await {
                return Next::Close;
            }
        }
        if !self.flush().await {
            return Next::Close;
        }
        answer.finish();
        if close {
            Next::Close
        } else {
            Next::Request
        }
    }

    /// A plain-text answer of the proxy's own; `close` ends the connection after it.
    async fn answer_text(
        &mut self,
        status: StatusCode,
        text: &str,
        request: &RequestHead,
        close: bool,
    ) -> Next {
        let close = close || !request.keep_alive;
        put_text(&mut self.out, status, text);
        put_connection(&mut self.out, close, request.http10);
        self.out.put_slice(b"\r\n");
        // An answer to HEAD has the length of the text, not the text.
        if request.method != http::Method::HEAD {
            self.out.put_slice(text.as_bytes());
        }
        if self.flush().await && !close {
            Next::Request
        } else {
            Next::Close
        }
    }

    /// Ends the connection after an answer to a request that was not read whole: sends
    /// the end of the stream, then drops what the client still sends until it closes too,
    /// within `LINGER_TIMEOUT` and `LINGER_BYTES_MAX`, so that closing resets nothing.
    async fn linger(mut self) {
        let Client { sock, timer, .. } = &mut self;
        if sock.shutdown().await.is_err() {
            return;
        }
        timer.as_mut().reset(Instant::now() + LINGER_TIMEOUT);
        let mut scratch = [0; 4096];
        let mut dropped = 0;
        while dropped < LINGER_BYTES_MAX {
            tokio::select! {
                biased;
                read = sock.read(&mut scratch) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => dropped += n,
                },
                () = timer.as_mut() => return,
            }
        }
    }

    /// Writes out `out`, within the header read timeout if it does not go at once.
    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let write = self.sock.write_all(&self.out);
        let written = bounded(write, self.timer.as_mut(), self.limits.header_read_timeout).await;
        self.out.clear();
        matches!(written, Some(Ok(())))
    }
}

/// The status line and headers of a plain-text answer, up to the connection header.
fn put_text(out: &mut BytesMut, status: StatusCode, text: &str) {
    out.clear();
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\nContent-Type: text/plain; charset=utf-8\r\n");
    put_length(out, text.len() as u64);
    put_date(out);
}

/// The connection header an answer needs: `close` when the connection ends after it,
/// `keep-alive` for an HTTP/1.0 client whose connection goes on (it would assume not).
fn put_connection(out: &mut BytesMut, close: bool, http10: bool) {
    if close {
        out.put_slice(b"Connection: close\r\n");
    } else if http10 {
        out.put_slice(b"Connection: keep-alive\r\n");
    }
}

fn put_length(out: &mut BytesMut, n: u64) {
    out.put_slice(b"Content-Length: ");
    out.put_slice(itoa(n, &mut [0; 20]));
    out.put_slice(b"\r\n");
}

/// A `Date` header for now, formatted once a second per worker thread.
fn put_date(out: &mut BytesMut) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.put_slice(b"Date: ");
        out.put_slice(text.as_bytes());
        out.put_slice(b"\r\n");
    });
}

/// Runs `fut` within `limit`, reading the clock only if it does not finish at once (most
/// writes do); `None` if the limit passed first.
async fn bounded<F: Future>(
    fut: F,
    mut timer: Pin<&mut Sleep>,
    limit: Duration,
) -> Option<F::Output> {
    let mut fut = pin!(fut);
    if let Poll::Ready(out) = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        return Some(out);
    }
    timer.as_mut().reset(Instant::now() + limit);
    tokio::select! {
        biased;
        out = fut => Some(out),
        () = timer => None,
    }
}

/// The status and text for a request no instance answered.
fn failure(e: &BoxError, service: &str) -> (StatusCode, String) {
    match e.downcast_ref::<BalanceError>() {
        Some(BalanceError::NoInstances) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no instance of {service} is available\n"),
        ),
        Some(BalanceError::Overloaded(waiting)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{service}: {waiting} requests are already waiting for an instance\n"),
        ),
        Some(BalanceError::Timeout(_)) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!("{service}: the instance did not answer in time\n"),
        ),
        _ => (StatusCode::BAD_GATEWAY, format!("{service}: {e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_gateway_statuses() {
        let none: BoxError = Box::new(BalanceError::NoInstances);
        assert_eq!(failure(&none, "web").0, StatusCode::SERVICE_UNAVAILABLE);
        let busy: BoxError = Box::new(BalanceError::Overloaded(1024));
        assert_eq!(failure(&busy, "web").0, StatusCode::SERVICE_UNAVAILABLE);
        let late: BoxError = Box::new(BalanceError::Timeout(Duration::from_secs(1)));
        assert_eq!(failure(&late, "web").0, StatusCode::GATEWAY_TIMEOUT);
        let other: BoxError = "connection reset".into();
        assert_eq!(failure(&other, "web").0, StatusCode::BAD_GATEWAY);
    }
}
