//! How the proxy reaches the members' client URLs: hyper's pooled HTTP/1.1 client over
//! connections dialed within `--proxy-dial-timeout`, on which each read and each write
//! must finish within `--proxy-read-timeout` and `--proxy-write-timeout` (etcd's
//! timeout transport sets a deadline on every read and write, not on the request; 0 is
//! none). An `https` endpoint is dialed with the client TLS, or the peer TLS when the
//! client side has none, as etcd's proxy does.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::conn::write_deadline::Stall;

use crate::limits::{PROXY_IDLE_CONNECTIONS_PER_HOST_MAX, PROXY_POOL_IDLE_TIMEOUT};

/// The forwarding client; clones share the pool.
pub type Upstream = Client<Dialer, Body>;

/// The proxy's transport timings, from the `--proxy-*` flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timeouts {
    /// `--proxy-dial-timeout`.
    pub dial: Option<Duration>,
    /// `--proxy-read-timeout`.
    pub read: Option<Duration>,
    /// `--proxy-write-timeout`.
    pub write: Option<Duration>,
}

/// A client that forwards to members with `timeouts`, and `tls` for `https` ones.
pub fn client(timeouts: Timeouts, tls: Option<beacon_tls::Connector>) -> Upstream {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(PROXY_POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(PROXY_IDLE_CONNECTIONS_PER_HOST_MAX)
        .build(Dialer { timeouts, tls })
}

/// Opens connections to members (hyper-util's connector).
#[derive(Clone)]
pub struct Dialer {
    timeouts: Timeouts,
    tls: Option<beacon_tls::Connector>,
}

/// A byte stream to a member, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connection to a member, each read and write under its deadline.
pub struct UpstreamConnection {
    io: TokioIo<Deadlines<Box<dyn Io>>>,
}

impl Connection for UpstreamConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for UpstreamConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

type Dialing = Pin<Box<dyn Future<Output = io::Result<UpstreamConnection>> + Send>>;

impl tower::Service<Uri> for Dialer {
    type Response = UpstreamConnection;
    type Error = io::Error;
    type Future = Dialing;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Dialing {
        let (timeouts, tls) = (self.timeouts, self.tls.clone());
        Box::pin(async move {
            let secure = match uri.scheme_str() {
                Some("http") => false,
                Some("https") => true,
                _ => return Err(invalid(format!("unsupported protocol scheme in {uri}"))),
            };
            let host = uri.host().unwrap_or_default();
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
            let dial = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                let _ = tcp.set_nodelay(true);
                let stream: Box<dyn Io> = if secure {
                    let tls = tls.ok_or_else(|| {
                        invalid(format!(
                            "{uri}: an https endpoint, and the proxy has no client or peer TLS"
                        ))
                    })?;
                    Box::new(tls.connect(&host, tcp).await?)
                } else {
                    Box::new(tcp)
                };
                Ok::<_, io::Error>(stream)
            };
            let stream = match timeouts.dial {
                None => dial.await?,
                Some(limit) => tokio::time::timeout(limit, dial).await.map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, format!("dial {uri}: i/o timeout"))
                })??,
            };
            Ok(UpstreamConnection {
                io: TokioIo::new(Deadlines::new(stream, timeouts)),
            })
        })
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// A stream whose every read and write fails with `TimedOut` when it has waited past
/// its limit: the clock starts when the operation first waits and stops when it
/// completes, as Go's deadline set before each `Read` and `Write`.
pub(crate) struct Deadlines<S> {
    inner: S,
    read: Option<Stall>,
    write: Option<Stall>,
}

impl<S> Deadlines<S> {
    pub(crate) fn new(inner: S, timeouts: Timeouts) -> Deadlines<S> {
        Deadlines {
            inner,
            read: timeouts.read.map(|t| Stall::new(t, "read: i/o timeout")),
            write: timeouts.write.map(|t| Stall::new(t, "write: i/o timeout")),
        }
    }
}

/// `polled`, held to `stall` when there is one.
fn settle<T>(
    stall: &mut Option<Stall>,
    cx: &mut Context<'_>,
    polled: Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    match stall {
        Some(stall) => stall.settle(cx, polled),
        None => polled,
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadlines<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        settle(&mut this.read, cx, polled)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadlines<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        settle(&mut this.write, cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        settle(&mut this.write, cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test(start_paused = true)]
    async fn a_read_that_waits_past_its_limit_fails_and_one_in_time_does_not() {
        let (near, mut far) = tokio::io::duplex(64);
        let timeouts = Timeouts {
            read: Some(Duration::from_millis(100)),
            ..Timeouts::default()
        };
        let mut near = Deadlines::new(near, timeouts);
        let feeder = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            far.write_all(b"a").await.unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
            far.write_all(b"b").await.unwrap();
            far
        });
        let mut byte = [0u8; 1];
        near.read_exact(&mut byte).await.unwrap();
        near.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"b", "each read has its own 100ms");
        let _far = feeder.await.unwrap();
        let err = near.read_exact(&mut byte).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_member_does_not_take_in_time_fails() {
        let (near, _far) = tokio::io::duplex(16);
        let timeouts = Timeouts {
            write: Some(Duration::from_millis(5000)),
            ..Timeouts::default()
        };
        let mut near = Deadlines::new(near, timeouts);
        let started = tokio::time::Instant::now();
        let err = near.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_millis(5000));
    }

    #[tokio::test]
    async fn a_dial_that_is_not_answered_in_time_fails() {
        // A listener that never accepts, its queue filled: the next SYN goes unanswered.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..8 {
            let connecting = TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_millis(100), connecting).await {
                Ok(Ok(stream)) => queued.push(stream),
                _ => break,
            }
        }
        let timeouts = Timeouts {
            dial: Some(Duration::from_millis(200)),
            ..Timeouts::default()
        };
        let mut dialer = Dialer {
            timeouts,
            tls: None,
        };
        let uri: Uri = format!("http://{addr}/").parse().unwrap();
        let started = std::time::Instant::now();
        let failed = tower::Service::call(&mut dialer, uri).await.err().unwrap();
        assert_eq!(failed.kind(), io::ErrorKind::TimedOut, "{failed}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_limit_a_read_waits() {
        let (near, _far) = tokio::io::duplex(64);
        let mut near = Deadlines::new(near, Timeouts::default());
        let mut byte = [0u8; 1];
        let waited = tokio::time::timeout(Duration::from_secs(3600), near.read(&mut byte)).await;
        assert!(waited.is_err(), "still waiting after an hour");
    }
}
