//! A stream whose writes fail once they have made no progress for a while, so that
//! hyper gives up on a client that stopped reading (a stream watcher that never reads
//! would otherwise hold its connection, its watcher and its buffers forever). The lean
//! path bounds its own writes the same way, with the same limit. The clock itself,
//! [`Stall`], also bounds the v2 proxy's reads and writes to the members.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The clock of one direction of a stream: armed when an operation first waits,
/// disarmed as soon as one completes, and failing the operation with `TimedOut` once
/// it has waited `timeout`. The client port bounds its writes with it; the v2 proxy
/// bounds each read and write to a member (`proxy::transport`).
pub(crate) struct Stall {
    timeout: Duration,
    what: &'static str,
    armed: Option<Pin<Box<Sleep>>>,
}

impl Stall {
    /// A clock whose expiry says `what` happened.
    pub(crate) fn new(timeout: Duration, what: &'static str) -> Stall {
        Stall {
            timeout,
            what,
            armed: None,
        }
    }

    /// `polled`, or its failure once it has been pending for the whole timeout (the
    /// sleep wakes the task when it passes).
    pub(crate) fn settle<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .armed
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.armed = None;
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, self.what)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                self.armed = None;
                ready
            }
        }
    }
}

/// Wraps `inner`; a write that stays blocked for `timeout` fails with `TimedOut`.
pub struct WriteDeadline<S> {
    inner: S,
    write: Stall,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        WriteDeadline {
            inner,
            write: Stall::new(timeout, "client stopped reading"),
        }
    }

    fn settle<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        self.write.settle(cx, polled)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.settle(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.settle(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.settle(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.settle(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::WriteDeadline;

    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_past_the_deadline_fails() {
        let (near, mut far) = tokio::io::duplex(16);
        let mut stream = WriteDeadline::new(near, Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        // Nobody reads `far`: the duplex fills after 16 bytes and the write blocks.
        let err = stream.write_all(&[7u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        let mut first = [0u8; 16];
        far.read_exact(&mut first).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        let (near, mut far) = tokio::io::duplex(16);
        let mut stream = WriteDeadline::new(near, Duration::from_secs(30));
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while got.len() < 160 {
                // Each read comes 20 s after the last: every wait is under the deadline,
                // though the whole write takes far longer than it.
                tokio::time::sleep(Duration::from_secs(20)).await;
                let n = far.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        stream.write_all(&[1u8; 160]).await.unwrap();
        assert_eq!(reader.await.unwrap(), vec![1u8; 160]);
    }
}
