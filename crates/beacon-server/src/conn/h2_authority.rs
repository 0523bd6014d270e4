//! Mends the `:authority` of HTTP/2 requests that h2 would refuse, before h2 reads them.
//!
//! etcdctl 3.4 and clientv3 dial `--endpoints=http://127.0.0.1:2379` through grpc-go's
//! `passthrough` resolver, which sends the whole endpoint as the request's `:authority`:
//! `http://127.0.0.1:2379`. Go's HTTP/2 server (etcd's) takes any authority and gRPC
//! never reads it; h2 checks it is an authority and answers RST_STREAM PROTOCOL_ERROR
//! before hyper or tonic see the request (`etcdctl endpoint status` failed so).
//!
//! So the client's byte stream passes through here first. The frames up to the first
//! header block pass unchanged; that block is decoded (HPACK, with a table that mirrors
//! the client's encoder). If its `:authority` is a valid one, everything after it passes
//! unchanged too: grpc-go sends one authority per connection, its dial target's, so the
//! first request tells for the whole connection. Otherwise every header block of the
//! connection is decoded and encoded again with our own HPACK encoder (whose table is
//! then the one h2's decoder mirrors), with the authority of the URL given as
//! `:authority` (`127.0.0.1:2379`), or none when it has none; other frames pass
//! unchanged. A block that does not decode, or that is larger than
//! [`H2_HEADER_BLOCK_BYTES_MAX`], ends the mending: the rest of the connection passes
//! unchanged and h2 answers it as it would have.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ClientIo;
use crate::limits::H2_HEADER_BLOCK_BYTES_MAX;

/// HTTP/2's connection preface (RFC 9113 3.4), which precedes the first frame.
const PREFACE_BYTES: usize = 24;
const FRAME_HEAD_BYTES: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may announce: re-encoded blocks are cut
/// into frames no larger, whatever h2 announced.
const FRAME_PAYLOAD_BYTES_MAX: usize = 16_384;
/// h2's SETTINGS_HEADER_TABLE_SIZE (hyper does not change it), which bounds the
/// client's encoder table and so the table mirroring it.
const HEADER_TABLE_BYTES: usize = 4096;

/// The client's side of a connection, with header blocks mended as the module says.
pub struct H2Authority<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from the client and not yet looked at.
    unread: Vec<u8>,
    /// Bytes ready for h2, handed out before anything else.
    ready: Vec<u8>,
    ready_from: usize,
    preface_seen: bool,
    /// What is left of a frame passing unchanged.
    passing: usize,
}

enum Mode {
    /// Before the first header block.
    Looking(Box<loona_hpack::Decoder<'static>>),
    /// The first block's authority needed mending: every block is re-encoded.
    Mending(Box<Transcoder>),
    /// Nothing more to mend: bytes pass unchanged.
    Passing,
}

struct Transcoder {
    decoder: loona_hpack::Decoder<'static>,
    encoder: loona_hpack::Encoder<'static>,
}

fn decoder() -> loona_hpack::Decoder<'static> {
    let mut decoder = loona_hpack::Decoder::new();
    decoder.set_max_allowed_table_size(HEADER_TABLE_BYTES);
    decoder
}

impl<S> H2Authority<S> {
    /// `inner` is the client's stream from its very first byte (the preface).
    pub fn new(inner: S) -> Self {
        H2Authority {
            inner,
            mode: Mode::Looking(Box::new(decoder())),
            unread: Vec::new(),
            ready: Vec::new(),
            ready_from: 0,
            preface_seen: false,
            passing: 0,
        }
    }

    /// Moves what can be decided from `unread` to `ready`.
    fn process(&mut self) {
        loop {
            if matches!(self.mode, Mode::Passing) {
                self.ready.append(&mut self.unread);
                return;
            }
            if !self.preface_seen {
                if self.unread.len() < PREFACE_BYTES {
                    return;
                }
                self.take(PREFACE_BYTES);
                self.preface_seen = true;
            }
            if self.passing > 0 {
                let n = self.passing.min(self.unread.len());
                self.take(n);
                self.passing -= n;
                if self.passing > 0 {
                    return;
                }
            }
            let Some(head) = frame_head(&self.unread) else {
                return;
            };
            if head.kind != TYPE_HEADERS {
                self.take(FRAME_HEAD_BYTES);
                self.passing = head.len;
                continue;
            }
            match header_block(&self.unread) {
                Block::Incomplete => return,
                Block::Unusable => self.mode = Mode::Passing,
                Block::Complete(block) => self.mend(block),
            }
        }
    }

    /// Passes `block` on, mended if it must be; the mode follows what it held. A
    /// block left in `unread` passes unchanged.
    fn mend(&mut self, block: HeaderBlock) {
        let needs_mending =
            |(name, value): &(Vec<u8>, Vec<u8>)| name == b":authority" && mended(value).is_some();
        let (mut transcoder, fields) = match std::mem::replace(&mut self.mode, Mode::Passing) {
            Mode::Looking(mut decoder) => match decoder.decode(&block.fragment) {
                Ok(fields) if fields.iter().any(needs_mending) => {
                    let transcoder = Transcoder {
                        decoder: *decoder,
                        encoder: loona_hpack::Encoder::new(),
                    };
                    (Box::new(transcoder), fields)
                }
                _ => return,
            },
            Mode::Mending(mut transcoder) => match transcoder.decoder.decode(&block.fragment) {
                Ok(fields) => (transcoder, fields),
                Err(_) => return,
            },
            Mode::Passing => return,
        };
        let fields: Vec<_> = fields
            .into_iter()
            .filter_map(|(name, value)| {
                if name != b":authority" {
                    return Some((name, value));
                }
                match mended(&value) {
                    Some(authority) => authority.map(|a| (name, a)),
                    None => Some((name, value)),
                }
            })
            .collect();
        let encoded = transcoder
            .encoder
            .encode(fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        self.unread.drain(..block.raw_bytes);
        write_frames(&mut self.ready, &block, &encoded);
        self.mode = Mode::Mending(transcoder);
    }

    /// Moves `n` bytes of `unread` to `ready` unchanged.
    fn take(&mut self, n: usize) {
        self.ready.extend(self.unread.drain(..n));
    }
}

/// What an `:authority` value should become, if h2 would refuse it: the authority of
/// the URL it is (`Some(Some(..))`), or nothing when it holds none (`Some(None)`).
fn mended(value: &[u8]) -> Option<Option<Vec<u8>>> {
    if http::uri::Authority::try_from(value).is_ok() {
        return None;
    }
    let authority = http::Uri::try_from(value)
        .ok()
        .and_then(|uri| uri.authority().map(|a| a.as_str().as_bytes().to_vec()));
    Some(authority)
}

#[derive(Clone, Copy)]
struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    stream: [u8; 4],
}

fn frame_head(bytes: &[u8]) -> Option<FrameHead> {
    let head = bytes.get(..FRAME_HEAD_BYTES)?;
    Some(FrameHead {
        len: usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]),
        kind: head[3],
        flags: head[4],
        stream: [head[5], head[6], head[7], head[8]],
    })
}

/// One request's header block: a HEADERS frame and the CONTINUATION frames after it.
struct HeaderBlock {
    /// How many bytes of the stream its frames take.
    raw_bytes: usize,
    end_stream: bool,
    /// The HEADERS frame's priority fields, kept as they were.
    priority: Option<[u8; 5]>,
    stream: [u8; 4],
    fragment: Vec<u8>,
}

enum Block {
    Incomplete,
    /// Not a block we can re-encode (too large, malformed): h2 should judge it.
    Unusable,
    Complete(HeaderBlock),
}

/// The header block that `bytes` start with (a HEADERS frame's head first).
fn header_block(bytes: &[u8]) -> Block {
    let Some(head) = frame_head(bytes) else {
        return Block::Incomplete;
    };
    let mut at = 0;
    let mut fragment = Vec::new();
    let mut priority = None;
    let mut frame = head;
    loop {
        if at + FRAME_HEAD_BYTES + frame.len > H2_HEADER_BLOCK_BYTES_MAX {
            return Block::Unusable;
        }
        let Some(payload) = bytes.get(at + FRAME_HEAD_BYTES..at + FRAME_HEAD_BYTES + frame.len)
        else {
            return Block::Incomplete;
        };
        let mut payload = payload;
        if at == 0 {
            if frame.flags & FLAG_PADDED != 0 {
                let Some((&pad, rest)) = payload.split_first() else {
                    return Block::Unusable;
                };
                let Some(kept) = rest.len().checked_sub(usize::from(pad)) else {
                    return Block::Unusable;
                };
                payload = &rest[..kept];
            }
            if frame.flags & FLAG_PRIORITY != 0 {
                let Some((fields, rest)) = payload.split_first_chunk::<5>() else {
                    return Block::Unusable;
                };
                priority = Some(*fields);
                payload = rest;
            }
        }
        fragment.extend_from_slice(payload);
        at += FRAME_HEAD_BYTES + frame.len;
        if frame.flags & FLAG_END_HEADERS != 0 {
            return Block::Complete(HeaderBlock {
                raw_bytes: at,
                end_stream: head.flags & FLAG_END_STREAM != 0,
                priority,
                stream: head.stream,
                fragment,
            });
        }
        let Some(next) = frame_head(&bytes[at..]) else {
            return Block::Incomplete;
        };
        if next.kind != TYPE_CONTINUATION || next.stream != head.stream {
            return Block::Unusable;
        }
        frame = next;
    }
}

/// Writes `encoded` as `block`'s header block: a HEADERS frame, then CONTINUATIONs.
fn write_frames(out: &mut Vec<u8>, block: &HeaderBlock, encoded: &[u8]) {
    let first_room = FRAME_PAYLOAD_BYTES_MAX - if block.priority.is_some() { 5 } else { 0 };
    let (first, mut rest) = encoded.split_at(encoded.len().min(first_room));
    let mut flags = if block.end_stream { FLAG_END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    let priority = block.priority.as_ref().map_or(&[][..], |p| &p[..]);
    write_frame(out, TYPE_HEADERS, flags, block.stream, &[priority, first]);
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(FRAME_PAYLOAD_BYTES_MAX));
        let flags = if after.is_empty() {
            FLAG_END_HEADERS
        } else {
            0
        };
        write_frame(out, TYPE_CONTINUATION, flags, block.stream, &[chunk]);
        rest = after;
    }
}

fn write_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: [u8; 4], parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len).expect("a frame's payload is at most 16 KiB");
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream);
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// How much is read from the client at a time while frames are looked at.
const READ_CHUNK_BYTES: usize = 16 << 10;

impl<S: ClientIo> AsyncRead for H2Authority<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready_from < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_from);
                buf.put_slice(&this.ready[this.ready_from..this.ready_from + n]);
                this.ready_from += n;
                if this.ready_from == this.ready.len() {
                    this.ready.clear();
                    this.ready_from = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::Passing) && this.unread.is_empty() {
                // Free what looking took: a long-lived connection should not carry it.
                this.ready = Vec::new();
                this.unread = Vec::new();
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let filled = this.unread.len();
            this.unread.resize(filled + READ_CHUNK_BYTES, 0);
            let mut chunk = ReadBuf::new(&mut this.unread[filled..]);
            let read = Pin::new(&mut this.inner).poll_read(cx, &mut chunk);
            let got = chunk.filled().len();
            this.unread.truncate(filled + got);
            ready!(read)?;
            if got == 0 {
                // The client is done: what is left goes to h2 as it came.
                this.mode = Mode::Passing;
                this.ready.append(&mut this.unread);
                if this.ready.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.process();
        }
    }
}

impl<S: ClientIo> AsyncWrite for H2Authority<S> {
    super::write_through!(inner);
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const SETTINGS: &[u8] = &[0, 0, 0, 0x4, 0, 0, 0, 0, 0];

    /// A client's bytes: the preface, its SETTINGS, then one request per authority,
    /// encoded by one encoder as a client's (the second refers to its table).
    fn client_bytes(authorities: &[&str]) -> Vec<u8> {
        let mut out = [PREFACE, SETTINGS].concat();
        let mut encoder = loona_hpack::Encoder::new();
        for (i, authority) in authorities.iter().enumerate() {
            let fields: [(&[u8], &[u8]); 4] = [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", b"/etcdserverpb.Maintenance/Status"),
                (b":authority", authority.as_bytes()),
            ];
            let block = encoder.encode(fields);
            let stream = u32::try_from(2 * i + 1).unwrap().to_be_bytes();
            let head = HeaderBlock {
                raw_bytes: 0,
                end_stream: true,
                priority: None,
                stream,
                fragment: Vec::new(),
            };
            write_frames(&mut out, &head, &block);
        }
        out
    }

    async fn through(bytes: Vec<u8>) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(&bytes).await.unwrap();
        client.shutdown().await.unwrap();
        let mut mended = Vec::new();
        H2Authority::new(server)
            .read_to_end(&mut mended)
            .await
            .unwrap();
        mended
    }

    /// Every request's fields, as h2's decoder would read them.
    fn requests(bytes: &[u8]) -> Vec<Vec<(String, String)>> {
        let mut decoder = loona_hpack::Decoder::new();
        let mut at = PREFACE.len();
        let mut out = Vec::new();
        while let Some(head) = frame_head(&bytes[at..]) {
            let payload = &bytes[at + FRAME_HEAD_BYTES..at + FRAME_HEAD_BYTES + head.len];
            if head.kind == TYPE_HEADERS {
                let fields = decoder.decode(payload).unwrap();
                let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
                out.push(
                    fields
                        .into_iter()
                        .map(|(n, v)| (text(n), text(v)))
                        .collect(),
                );
            }
            at += FRAME_HEAD_BYTES + head.len;
        }
        out
    }

    fn authority(request: &[(String, String)]) -> Option<&str> {
        let field = request.iter().find(|(n, _)| n == ":authority");
        field.map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn a_valid_authority_passes_unchanged() {
        let bytes = client_bytes(&["127.0.0.1:2379", "127.0.0.1:2379"]);
        assert_eq!(through(bytes.clone()).await, bytes);
    }

    #[tokio::test]
    async fn a_url_as_authority_becomes_its_authority_on_every_request() {
        let url = "http://127.0.0.1:2379";
        let mended = through(client_bytes(&[url, url, "unix://"])).await;
        let requests = requests(&mended);
        assert_eq!(requests.len(), 3);
        assert_eq!(authority(&requests[0]), Some("127.0.0.1:2379"));
        assert_eq!(authority(&requests[1]), Some("127.0.0.1:2379"));
        assert_eq!(authority(&requests[2]), None, "no authority in the URL");
        let path = requests[1].iter().find(|(n, _)| n == ":path");
        assert_eq!(path.unwrap().1, "/etcdserverpb.Maintenance/Status");
    }

    #[test]
    fn a_block_in_pieces_waits_for_its_end() {
        let bytes = client_bytes(&["http://a:1"]);
        let block = &bytes[PREFACE.len() + SETTINGS.len()..];
        assert!(matches!(header_block(&block[..5]), Block::Incomplete));
        assert!(matches!(
            header_block(&block[..block.len() - 1]),
            Block::Incomplete
        ));
        assert!(matches!(header_block(block), Block::Complete(_)));
    }
}
