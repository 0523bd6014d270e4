//! One instance as the balancer sees it: a tower `Service` that sends a request head (and
//! body) the proxy parsed on one of the instance's keep-alive connections and resolves
//! when the answer's head has arrived, handing over the connection with it, so the body
//! streams to the client from the same task with no channel or connection task between.
//!
//! The connections are the instance's own list (newest used first; the oldest age out).
//! A connection goes back on it only once its answer has been read to the end, by
//! [`Answer::finish`]; an answer dropped early closes its connection. One the instance
//! closed while idle is noticed at checkout from the readiness tokio already holds (no
//! system call), and a sweep task, which runs while the list is not empty, closes those
//! unused for the idle timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::uri::Authority;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{BoxError, Service};

use beacon_client::balance::{self, ConnectError, HasStatus, Replayable};

use super::h1::{self, HeadError, ResponseHead};

/// Bodies up to this size go out in the same write as the head; larger ones on their own.
const INLINE_BODY_MAX: usize = 16 * 1024;
/// What a connection's read buffer holds at least before each read.
const READ_CHUNK: usize = 16 * 1024;

/// A request as the proxy forwards it; copies share the bytes, so a retry copies nothing.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub method: Method,
    /// Request line and headers to pass on (see `h1::parse_request`).
    pub head: Bytes,
    /// The whole body, read before the first attempt so that a retry can send it again.
    pub body: Bytes,
    /// Whether the client framed a body, even an empty one: then the instance gets a
    /// `Content-Length`.
    pub framed: bool,
}

impl Replayable for Outgoing {
    fn method(&self) -> &Method {
        &self.method
    }

    fn replay(&self) -> Self {
        self.clone()
    }
}

/// An instance's answer whose head has arrived: the head, and the connection its body
/// (already partly read, perhaps) comes on.
pub struct Answer {
    pub head: ResponseHead,
    pub conn: Conn,
    pool: Arc<Pool>,
}

impl HasStatus for Answer {
    fn status(&self) -> StatusCode {
        self.head.status
    }
}

impl Answer {
    /// The status line and headers to pass on (see `h1::parse_response`).
    pub fn head_bytes(&self) -> &[u8] {
        &self.conn.scratch
    }

    /// The body has been read to its end: the connection goes back to the instance's
    /// list if the answer allowed that and nothing more arrived on it.
    pub fn finish(self) {
        if self.head.keep_alive && self.conn.read.is_empty() {
            self.pool.give_back(self.conn);
        }
    }
}

/// A connection to an instance, with its buffers.
pub struct Conn {
    pub stream: TcpStream,
    /// Bytes read from the instance and not yet passed on.
    pub read: BytesMut,
    /// The request on its way out; then the answer's head to pass on.
    scratch: BytesMut,
}

impl Conn {
    /// Reads more of the answer into `read`; `Ok(0)` at the end of the stream.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        self.read.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.read).await
    }

    /// Whether the instance has not closed it, judged from the readiness tokio already
    /// holds: a connection with nothing to read costs no system call.
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        // Anything readable on an idle connection (its end, or stray bytes) rules it out.
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Why an attempt failed after it may have reached the instance.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the instance closed the connection before answering")]
    Closed,
    #[error("the instance's answer: {0}")]
    Head(#[from] HeadError),
    #[error("the instance switched protocols")]
    Upgrade,
    #[error("talking to the instance: {0}")]
    Io(#[from] io::Error),
}

/// One instance: its connections, shared by every clone.
#[derive(Clone)]
pub struct Upstream {
    pool: Arc<Pool>,
}

struct Pool {
    authority: Authority,
    /// The `Host` header line for it, made once.
    host_line: Bytes,
    idle_max: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    /// Sweeps so far: an idle connection's age in sweeps, without reading the clock.
    epoch: AtomicU64,
    list: Mutex<List>,
}

#[derive(Default)]
struct List {
    /// Oldest first; checkouts take from the end, so the oldest age out.
    idle: Vec<Idle>,
    /// Whether a sweep task runs; set and cleared under the lock, so a connection put
    /// on the list always has one.
    sweeping: bool,
}

struct Idle {
    conn: Conn,
    /// The sweep epoch it was put back in.
    epoch: u64,
}

impl Upstream {
    /// An instance at `authority` (plain HTTP; port 80 when it names none).
    pub fn new(
        authority: Authority,
        idle_max: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        let host_line = Bytes::from(format!("Host: {authority}\r\n"));
        Self {
            pool: Arc::new(Pool {
                authority,
                host_line,
                idle_max,
                idle_timeout,
                connect_timeout,
                epoch: AtomicU64::new(0),
                list: Mutex::new(List::default()),
            }),
        }
    }
}

type AnswerFuture = Pin<Box<dyn Future<Output = Result<Answer, BoxError>> + Send>>;

impl Service<Outgoing> for Upstream {
    type Response = Answer;
    type Error = BoxError;
    type Future = AnswerFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Always ready: a connection is taken or made inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Outgoing) -> AnswerFuture {
        Box::pin(self.pool.clone().send(request))
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, List> {
        // The list is whole between any two statements that touch it.
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn send(self: Arc<Self>, request: Outgoing) -> Result<Answer, BoxError> {
        // A connection the instance closed while it sat idle fails a write; the
        // instance did not get the request whole, so it cannot have acted on it, and
        // the next connection gets it. Each pass takes a connection off the list for
        // good, so the loop ends.
        let mut conn = loop {
            let Some(mut conn) = self.checkout() else {
                let mut conn = self.connect().await?;
                self.write_request(&mut conn, &request).await?;
                break conn;
            };
            if self.write_request(&mut conn, &request).await.is_ok() {
                break conn;
            }
        };
        let to_head = request.method == Method::HEAD;
        loop {
            conn.scratch.clear();
            if !conn.read.is_empty() {
                if let Some((len, head)) =
                    h1::parse_response(&conn.read, to_head, &mut conn.scratch)?
                {
                    conn.read.advance(len);
                    if head.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(UpstreamError::Upgrade.into());
                    }
                    // `100 Continue` and the like: the final answer follows.
                    if head.status.is_informational() {
                        continue;
                    }
                    return Ok(Answer {
                        head,
                        conn,
                        pool: self,
                    });
                }
            }
            if conn.read_more().await.map_err(UpstreamError::Io)? == 0 {
                return Err(UpstreamError::Closed.into());
            }
        }
    }

    /// Writes the request: its head, this instance's `Host`, the body's length, the body.
    async fn write_request(&self, conn: &mut Conn, request: &Outgoing) -> io::Result<()> {
        let out = &mut conn.scratch;
        out.clear();
        out.put_slice(&request.head);
        out.put_slice(&self.host_line);
        if request.framed || !request.body.is_empty() {
            out.put_slice(b"Content-Length: ");
            out.put_slice(itoa(request.body.len() as u64, &mut [0; 20]));
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        let inline = request.body.len() <= INLINE_BODY_MAX;
        if inline {
            out.put_slice(&request.body);
        }
        conn.stream.write_all(out).await?;
        if !inline {
            conn.stream.write_all(&request.body).await?;
        }
        Ok(())
    }

    /// The newest open idle connection, closing the closed ones on the way.
    fn checkout(&self) -> Option<Conn> {
        let mut list = self.lock();
        while let Some(idle) = list.idle.pop() {
            if idle.conn.is_open() {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Puts `conn` back on the list, unless the list is full.
    fn give_back(self: &Arc<Self>, conn: Conn) {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let mut list = self.lock();
        if list.idle.len() >= self.idle_max {
            return;
        }
        list.idle.push(Idle { conn, epoch });
        if !list.sweeping {
            list.sweeping = true;
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }

    async fn connect(&self) -> Result<Conn, ConnectError> {
        Ok(Conn {
            stream: balance::connect(&self.authority, self.connect_timeout).await?,
            read: BytesMut::with_capacity(READ_CHUNK),
            scratch: BytesMut::with_capacity(1024),
        })
    }
}

/// Every half idle timeout, closes the connections of `pool` idle for at least the idle
/// timeout (at most one and a half), until the list is empty or the pool is gone.
async fn sweep(pool: Weak<Pool>) {
    loop {
        let Some(period) = pool.upgrade().map(|p| p.idle_timeout / 2) else {
            return;
        };
        tokio::time::sleep(period.max(Duration::from_millis(1))).await;
        let Some(pool) = pool.upgrade() else { return };
        let epoch = pool.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        let mut list = pool.lock();
        // Put back in epoch e: by the sweep that makes the epoch e+3, two whole periods
        // (one idle timeout) have passed since, and less than three.
        list.idle
            .retain(|c| epoch - c.epoch < 3 && c.conn.is_open());
        if list.idle.is_empty() {
            list.sweeping = false;
            return;
        }
    }
}

/// `n` in decimal, written at the end of `buf`.
pub fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}
