//! etcd's answer to a gRPC client that pings too often (`--grpc-keepalive-min-time`).
//!
//! grpc-go, which serves etcd's plain client port, holds each connection to a policy:
//! a client PING that comes sooner than the minimum time after the previous one is a
//! strike, and the third strike in a row gets GOAWAY ENHANCE_YOUR_CALM with the debug
//! data `too_many_pings`, and the connection closes. While no call is open the
//! minimum is two hours (grpc-go's "PermitWithoutStream: false", which etcd sets).
//! Any HEADERS or DATA the server sent since the last ping forgives the strikes.
//! grpc-go clients read that GOAWAY as "ping half as often" and adapt.
//!
//! h2 answers every ping itself and has no hook to count them, so this stream sits
//! between the socket and h2 and follows the frames both ways, reading only their
//! 9-byte heads: the client's PINGs, new streams and resets on the way in; the
//! server's HEADERS, DATA, ends of streams, resets and PING acknowledgements on the
//! way out. When a ping breaks the policy, h2 still acknowledges it (grpc-go does
//! too); right after that acknowledgement, at a frame boundary, this stream writes the
//! GOAWAY itself, closes the socket, and from then on reads as the client's end and
//! fails every write, so hyper drops the connection.
//!
//! etcd serves gRPC over TLS through Go's HTTP/2 server instead, which has no such
//! policy: a TLS connection's stream is built without one, as etcd's.

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::ClientIo;
use crate::limits::{GRPC_IDLE_PING_INTERVAL_MIN, GRPC_PING_STRIKES_MAX};

/// HTTP/2's connection preface (RFC 9113 3.4), which precedes the client's frames.
const PREFACE_BYTES: usize = 24;
const FRAME_HEAD_BYTES: usize = 9;
const TYPE_DATA: u8 = 0x0;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_RST_STREAM: u8 = 0x3;
const TYPE_PING: u8 = 0x6;
const TYPE_GOAWAY: u8 = 0x7;
/// END_STREAM on DATA and HEADERS, ACK on PING.
const FLAG_END_STREAM_OR_ACK: u8 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;
const TOO_MANY_PINGS: &[u8] = b"too_many_pings";

/// A client's connection held to the ping policy when `min_time` is given.
pub struct PingPolicy<S> {
    inner: S,
    /// `None`: bytes pass unlooked-at (a TLS connection).
    policy: Option<Box<Policy>>,
}

struct Policy {
    from_client: Frames,
    from_server: Frames,
    state: State,
}

/// What the policy knows of the connection's frames so far.
struct State {
    min_time: Duration,
    last_ping: Option<Instant>,
    strikes: u8,
    /// The server sent HEADERS or DATA since the last ping.
    forgiven: bool,
    /// The client's streams the server has not ended. h2 bounds them: a stream past
    /// `--max-concurrent-streams` is refused with RST_STREAM, which removes it.
    open: HashSet<u32>,
    last_stream: u32,
    pings: u64,
    acks: u64,
    calm: Calm,
}

enum Calm {
    Serving,
    /// The `n`th ping broke the policy: the GOAWAY follows its acknowledgement.
    OwedAfterAck(u64),
    /// The GOAWAY, `at` bytes of it written.
    Sending {
        frame: Vec<u8>,
        at: usize,
    },
    Closed,
}

/// The type and flags of a frame, and its stream.
#[derive(Clone, Copy)]
struct Head {
    kind: u8,
    flags: u8,
    stream: u32,
}

/// Follows one direction's frame boundaries, a head at a time.
struct Frames {
    /// Bytes still to pass before the first frame (the client's preface).
    skip: usize,
    head: [u8; FRAME_HEAD_BYTES],
    head_filled: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: usize,
}

impl Frames {
    fn new(skip: usize) -> Self {
        Frames {
            skip,
            head: [0; FRAME_HEAD_BYTES],
            head_filled: 0,
            payload_left: 0,
        }
    }

    /// Passes `bytes`, calling `on_head` with each frame head completed in them.
    fn pass(&mut self, mut bytes: &[u8], mut on_head: impl FnMut(Head)) {
        while !bytes.is_empty() {
            let skipped = self.skip.min(bytes.len());
            self.skip -= skipped;
            let payload = self.payload_left.min(bytes.len() - skipped);
            self.payload_left -= payload;
            bytes = &bytes[skipped + payload..];
            if bytes.is_empty() {
                return;
            }
            let n = (FRAME_HEAD_BYTES - self.head_filled).min(bytes.len());
            self.head[self.head_filled..self.head_filled + n].copy_from_slice(&bytes[..n]);
            self.head_filled += n;
            bytes = &bytes[n..];
            if self.head_filled == FRAME_HEAD_BYTES {
                self.head_filled = 0;
                let h = &self.head;
                self.payload_left =
                    usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                on_head(Head {
                    kind: h[3],
                    flags: h[4],
                    stream,
                });
            }
        }
    }

    fn at_boundary(&self) -> bool {
        self.skip == 0 && self.head_filled == 0 && self.payload_left == 0
    }

    /// How many bytes may pass before the next frame boundary is known to come: the
    /// rest of the current head, or of the current payload.
    fn to_next_step(&self) -> usize {
        if self.head_filled > 0 || self.payload_left == 0 {
            FRAME_HEAD_BYTES - self.head_filled
        } else {
            self.payload_left
        }
    }
}

impl State {
    fn client_frame(&mut self, head: Head) {
        match head.kind {
            TYPE_HEADERS if head.stream > self.last_stream => {
                self.last_stream = head.stream;
                self.open.insert(head.stream);
            }
            TYPE_RST_STREAM => {
                self.open.remove(&head.stream);
            }
            TYPE_PING if head.flags & FLAG_END_STREAM_OR_ACK == 0 => {
                self.pings += 1;
                if self.ping_breaks_policy() && matches!(self.calm, Calm::Serving) {
                    tracing::debug!(
                        "a gRPC client pinged more often than --grpc-keepalive-min-time \
                         allows: GOAWAY too_many_pings"
                    );
                    self.calm = Calm::OwedAfterAck(self.pings);
                }
            }
            _ => {}
        }
    }

    /// grpc-go's handlePing, but for the acknowledgement h2 sends.
    fn ping_breaks_policy(&mut self) -> bool {
        let now = Instant::now();
        let last = self.last_ping.replace(now);
        if std::mem::take(&mut self.forgiven) {
            self.strikes = 0;
            return false;
        }
        let min_time = if self.open.is_empty() {
            GRPC_IDLE_PING_INTERVAL_MIN
        } else {
            self.min_time
        };
        if last.is_some_and(|last| now < last + min_time) {
            self.strikes = self.strikes.saturating_add(1);
        }
        self.strikes > GRPC_PING_STRIKES_MAX
    }

    fn server_frame(&mut self, head: Head) {
        match head.kind {
            TYPE_DATA | TYPE_HEADERS => {
                self.forgiven = true;
                if head.flags & FLAG_END_STREAM_OR_ACK != 0 {
                    self.open.remove(&head.stream);
                }
            }
            TYPE_RST_STREAM => {
                self.open.remove(&head.stream);
            }
            TYPE_PING if head.flags & FLAG_END_STREAM_OR_ACK != 0 => self.acks += 1,
            _ => {}
        }
    }

    fn goaway(&self) -> Vec<u8> {
        let len = 8 + TOO_MANY_PINGS.len();
        let mut frame = Vec::with_capacity(FRAME_HEAD_BYTES + len);
        frame.extend_from_slice(&u32::try_from(len).expect("short").to_be_bytes()[1..]);
        frame.extend_from_slice(&[TYPE_GOAWAY, 0]);
        frame.extend_from_slice(&0u32.to_be_bytes());
        frame.extend_from_slice(&self.last_stream.to_be_bytes());
        frame.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
        frame.extend_from_slice(TOO_MANY_PINGS);
        frame
    }
}

impl Policy {
    /// Whether the GOAWAY is due now: the offending ping's acknowledgement is written
    /// whole, and nothing after it.
    fn goaway_due(&self) -> bool {
        matches!(self.state.calm, Calm::OwedAfterAck(n) if self.state.acks >= n)
            && self.from_server.at_boundary()
    }

    fn read(&mut self, bytes: &[u8]) {
        let state = &mut self.state;
        self.from_client
            .pass(bytes, |head| state.client_frame(head));
    }

    fn written(&mut self, bytes: &[u8]) {
        let state = &mut self.state;
        self.from_server
            .pass(bytes, |head| state.server_frame(head));
    }
}

impl<S> PingPolicy<S> {
    /// `min_time`: the least time between pings while a call is open, or `None` for
    /// no policy.
    pub fn new(inner: S, min_time: Option<Duration>) -> Self {
        let policy = min_time.map(|min_time| {
            Box::new(Policy {
                from_client: Frames::new(PREFACE_BYTES),
                from_server: Frames::new(0),
                state: State {
                    min_time,
                    last_ping: None,
                    strikes: 0,
                    forgiven: false,
                    open: HashSet::new(),
                    last_stream: 0,
                    pings: 0,
                    acks: 0,
                    calm: Calm::Serving,
                },
            })
        });
        PingPolicy { inner, policy }
    }
}

impl<S: ClientIo> PingPolicy<S> {
    /// Writes the GOAWAY once it is due, then closes; `Ready(true)` once closed.
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let Some(policy) = self.policy.as_deref_mut() else {
            return Poll::Ready(Ok(false));
        };
        if policy.goaway_due() {
            let frame = policy.state.goaway();
            policy.state.calm = Calm::Sending { frame, at: 0 };
        }
        let calm = &mut policy.state.calm;
        loop {
            match calm {
                Calm::Serving | Calm::OwedAfterAck(_) => return Poll::Ready(Ok(false)),
                Calm::Closed => return Poll::Ready(Ok(true)),
                Calm::Sending { frame, at } if *at < frame.len() => {
                    let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &frame[*at..]))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    *at += n;
                }
                Calm::Sending { .. } => {
                    ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
                    // The socket closes whatever shutdown says: the GOAWAY was sent.
                    let _ = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
                    *calm = Calm::Closed;
                    // A read may be parked: it must now see the end.
                    cx.waker().wake_by_ref();
                }
            }
        }
    }

    fn closed() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "closed: too many pings")
    }
}

impl<S: ClientIo> AsyncRead for PingPolicy<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(policy) = this.policy.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if matches!(policy.state.calm, Calm::Closed) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        policy.read(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: ClientIo> AsyncWrite for PingPolicy<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if ready!(this.poll_goaway(cx))? {
            return Poll::Ready(Err(Self::closed()));
        }
        let Some(policy) = this.policy.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        // Once a GOAWAY is owed, frames go out a step at a time so that it can
        // follow the acknowledgement at once.
        let allowed = match policy.state.calm {
            Calm::OwedAfterAck(_) => buf.len().min(policy.from_server.to_next_step()),
            _ => buf.len(),
        };
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..allowed]))?;
        policy.written(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let serving = match this.policy.as_deref() {
            None => true,
            Some(policy) => matches!(policy.state.calm, Calm::Serving),
        };
        if !serving {
            // A step at a time, as `poll_write` takes them.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        if let Some(policy) = this.policy.as_deref_mut() {
            let mut left = n;
            for buf in bufs {
                let taken = left.min(buf.len());
                policy.written(&buf[..taken]);
                left -= taken;
                if left == 0 {
                    break;
                }
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if ready!(this.poll_goaway(cx))? {
            return Poll::Ready(Err(Self::closed()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const MIN_TIME: Duration = Duration::from_secs(5);

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn ping(ack: bool) -> Vec<u8> {
        frame(TYPE_PING, u8::from(ack), 0, &[7; 8])
    }

    /// The client's end of a connection, and the server's end as h2 would hold it.
    struct Rig {
        client: DuplexStream,
        server: PingPolicy<DuplexStream>,
    }

    impl Rig {
        async fn new(min_time: Option<Duration>) -> Rig {
            let (client, server) = tokio::io::duplex(1 << 16);
            let mut rig = Rig {
                client,
                server: PingPolicy::new(server, min_time),
            };
            rig.client_sends(PREFACE).await;
            rig
        }

        /// The client writes `bytes`; h2 reads them all.
        async fn client_sends(&mut self, bytes: &[u8]) {
            self.client.write_all(bytes).await.unwrap();
            let mut got = vec![0; bytes.len()];
            self.server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, bytes);
        }

        /// A ping from the client, and h2's acknowledgement of it.
        async fn ping(&mut self) -> io::Result<()> {
            self.client_sends(&ping(false)).await;
            self.server_sends(&ping(true)).await
        }

        async fn server_sends(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.server.write_all(bytes).await?;
            self.server.flush().await
        }

        /// Everything the client has been sent so far, and whether the server closed.
        async fn client_receives(&mut self) -> (Vec<u8>, bool) {
            let mut got = Vec::new();
            let mut chunk = [0; 1024];
            loop {
                let read = tokio::time::timeout(Duration::from_millis(10), async {
                    self.client.read(&mut chunk).await.unwrap()
                });
                match read.await {
                    Ok(0) => return (got, true),
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                    Err(_) => return (got, false),
                }
            }
        }
    }

    fn goaway(last_stream: u32) -> Vec<u8> {
        let mut payload = last_stream.to_be_bytes().to_vec();
        payload.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
        payload.extend_from_slice(b"too_many_pings");
        frame(TYPE_GOAWAY, 0, 0, &payload)
    }

    #[tokio::test(start_paused = true)]
    async fn the_fourth_ping_without_a_call_gets_goaway_after_its_ack() {
        let mut rig = Rig::new(Some(MIN_TIME)).await;
        for _ in 0..3 {
            rig.ping().await.unwrap();
            // Not even an hour apart: without a call, two hours is the minimum.
            tokio::time::advance(Duration::from_secs(3600)).await;
        }
        assert_eq!(rig.client_receives().await, (ping(true).repeat(3), false));
        rig.client_sends(&ping(false)).await;
        // h2 writes its acknowledgement and a frame after it in one go: only the
        // acknowledgement goes out before the GOAWAY.
        let ack_then_more = [ping(true), frame(TYPE_DATA, 0, 1, b"x")].concat();
        assert!(rig.server_sends(&ack_then_more).await.is_err());
        let (sent, closed) = rig.client_receives().await;
        assert_eq!(sent, [ping(true), goaway(0)].concat());
        assert!(closed, "the connection ends after the GOAWAY");
        let mut rest = Vec::new();
        rig.server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "h2 reads the end of the connection");
    }

    #[tokio::test(start_paused = true)]
    async fn pings_min_time_apart_during_a_call_are_welcome() {
        let mut rig = Rig::new(Some(MIN_TIME)).await;
        rig.client_sends(&frame(TYPE_HEADERS, 0x4, 1, b"")).await;
        for _ in 0..10 {
            tokio::time::advance(MIN_TIME).await;
            rig.ping().await.unwrap();
        }
        assert_eq!(rig.client_receives().await, (ping(true).repeat(10), false));
        // Three sooner in a row are too many.
        for _ in 0..3 {
            tokio::time::advance(MIN_TIME / 2).await;
            rig.client_sends(&ping(false)).await;
        }
        assert!(rig.server_sends(&ping(true).repeat(3)).await.is_err());
        let (sent, closed) = rig.client_receives().await;
        assert_eq!(sent, [ping(true).repeat(3), goaway(1)].concat());
        assert!(closed);
    }

    #[tokio::test(start_paused = true)]
    async fn headers_or_data_from_the_server_forgive_the_strikes() {
        let mut rig = Rig::new(Some(MIN_TIME)).await;
        for round in 0..5 {
            // The first ping is free, the next two are strikes...
            for _ in 0..3 {
                rig.ping().await.unwrap();
            }
            // ...and an answer to a call (stream 2k+1, opened and ended) forgives them.
            let stream = 2 * round + 1;
            rig.client_sends(&frame(TYPE_HEADERS, 0x5, stream, b""))
                .await;
            let answer = [
                frame(TYPE_HEADERS, 0x4, stream, b""),
                frame(TYPE_DATA, 0, stream, b"answer"),
                frame(TYPE_HEADERS, 0x5, stream, b""),
            ];
            rig.server_sends(&answer.concat()).await.unwrap();
        }
        let (_, closed) = rig.client_receives().await;
        assert!(!closed);
        // The calls all ended: without one, pings are strikes again.
        for _ in 0..3 {
            rig.ping().await.unwrap();
        }
        rig.client_sends(&ping(false)).await;
        assert!(rig.server_sends(&ping(true)).await.is_err());
        let (sent, closed) = rig.client_receives().await;
        assert!(sent.ends_with(&goaway(9)), "{sent:?}");
        assert!(closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_reset_by_either_side_is_no_longer_open() {
        for reset_by_client in [true, false] {
            let mut rig = Rig::new(Some(MIN_TIME)).await;
            rig.client_sends(&frame(TYPE_HEADERS, 0x4, 1, b"")).await;
            let reset = frame(TYPE_RST_STREAM, 0, 1, &8u32.to_be_bytes());
            if reset_by_client {
                rig.client_sends(&reset).await;
            } else {
                rig.server_sends(&reset).await.unwrap();
            }
            for _ in 0..3 {
                rig.ping().await.unwrap();
                tokio::time::advance(MIN_TIME).await;
            }
            rig.client_sends(&ping(false)).await;
            assert!(rig.server_sends(&ping(true)).await.is_err());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_policy_any_ping_rate_is_welcome() {
        let mut rig = Rig::new(None).await;
        for _ in 0..100 {
            rig.ping().await.unwrap();
        }
        assert_eq!(rig.client_receives().await, (ping(true).repeat(100), false));
    }

    #[test]
    fn frame_heads_are_found_in_any_split_of_the_bytes() {
        let bytes = [
            PREFACE.to_vec(),
            frame(TYPE_HEADERS, 0x4, 1, &[1; 300]),
            ping(false),
            frame(TYPE_DATA, 0x1, 1, b""),
            frame(TYPE_RST_STREAM, 0, 3, &[0; 4]),
        ]
        .concat();
        let want = [
            (TYPE_HEADERS, 1),
            (TYPE_PING, 0),
            (TYPE_DATA, 1),
            (TYPE_RST_STREAM, 3),
        ];
        for chunk in [1, 2, 5, 9, 10, 64, bytes.len()] {
            let mut frames = Frames::new(PREFACE.len());
            let mut heads = Vec::new();
            for piece in bytes.chunks(chunk) {
                frames.pass(piece, |head| heads.push((head.kind, head.stream)));
            }
            assert_eq!(heads, want, "in pieces of {chunk}");
            assert!(frames.at_boundary());
        }
    }
}
