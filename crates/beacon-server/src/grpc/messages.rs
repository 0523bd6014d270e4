//! Counts of gRPC messages, as etcd's server counts them: per method
//! (`grpc_server_msg_received_total`, `grpc_server_msg_sent_total`, go-grpc-prometheus'
//! counters: each message a stream receives or sends, and a unary call's request and,
//! when it succeeds, its answer) and in all (`etcd_network_client_grpc_received_bytes_total`
//! and `..._sent_bytes_total`, which etcd's codec adds up: the bytes of each message,
//! without gRPC's 5-byte frame header). Read from gRPC's framing as the bodies pass
//! (`calls::CountedBody`), so every service is counted the same way and no handler has
//! to remember to; the JSON gateway counts the messages it hands over itself.

use std::sync::atomic::{AtomicU64, Ordering};

use super::calls::METHODS;

static RECEIVED: [AtomicU64; METHODS.len()] = [const { AtomicU64::new(0) }; METHODS.len()];
static SENT: [AtomicU64; METHODS.len()] = [const { AtomicU64::new(0) }; METHODS.len()];
static RECEIVED_BYTES: AtomicU64 = AtomicU64::new(0);
static SENT_BYTES: AtomicU64 = AtomicU64::new(0);

/// Messages of method `METHODS[method]` received so far.
pub fn received(method: usize) -> u64 {
    RECEIVED[method].load(Ordering::Relaxed)
}

/// Messages of method `METHODS[method]` sent so far.
pub fn sent(method: usize) -> u64 {
    SENT[method].load(Ordering::Relaxed)
}

/// Bytes of every message received from clients.
pub fn received_bytes() -> u64 {
    RECEIVED_BYTES.load(Ordering::Relaxed)
}

/// Bytes of every message sent to clients.
pub fn sent_bytes() -> u64 {
    SENT_BYTES.load(Ordering::Relaxed)
}

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    Received,
    Sent,
}

/// Counts one message of `method` (if it is one etcd has) of `bytes` bytes.
pub fn count(method: Option<usize>, way: Way, bytes: usize) {
    let (messages, total) = match way {
        Way::Received => (&RECEIVED, &RECEIVED_BYTES),
        Way::Sent => (&SENT, &SENT_BYTES),
    };
    if let Some(m) = method {
        messages[m].fetch_add(1, Ordering::Relaxed);
    }
    total.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Where a body is in gRPC's framing: each message is a flag byte, a 4-byte big-endian
/// length and that many bytes. A message counts once its last byte has passed, as grpc-go
/// counts one once it has read it whole.
#[derive(Debug, Default)]
pub struct Framing {
    /// The bytes of the current header seen so far.
    header: [u8; 5],
    header_seen: usize,
    /// The current message's length and the bytes of it still to come.
    length: usize,
    remaining: usize,
}

impl Framing {
    /// Reads `data`, calling `message(length)` for each message it completes.
    pub fn feed(&mut self, mut data: &[u8], mut message: impl FnMut(usize)) {
        while !data.is_empty() {
            if self.header_seen < self.header.len() {
                let take = (self.header.len() - self.header_seen).min(data.len());
                self.header[self.header_seen..self.header_seen + take]
                    .copy_from_slice(&data[..take]);
                self.header_seen += take;
                data = &data[take..];
                if self.header_seen < self.header.len() {
                    return;
                }
                let [_, a, b, c, d] = self.header;
                self.length = u32::from_be_bytes([a, b, c, d]) as usize;
                self.remaining = self.length;
            }
            let take = self.remaining.min(data.len());
            self.remaining -= take;
            data = &data[take..];
            if self.remaining == 0 {
                message(self.length);
                self.header_seen = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Framing;

    #[test]
    fn messages_are_found_however_the_bytes_are_cut() {
        let mut stream = Vec::new();
        for len in [0usize, 3, 70_000] {
            stream.push(0);
            stream.extend_from_slice(&(len as u32).to_be_bytes());
            stream.extend(std::iter::repeat_n(7u8, len));
        }
        for cut in [1, 2, 5, 6, 4096, stream.len()] {
            let mut framing = Framing::default();
            let mut seen = Vec::new();
            for piece in stream.chunks(cut) {
                framing.feed(piece, |len| seen.push(len));
            }
            assert_eq!(seen, [0, 3, 70_000], "cut in pieces of {cut}");
        }
    }
}
