//! The chunked transfer coding (RFC 9112 7.1), read as it arrives, in pieces of any size.
//!
//! One state machine serves both uses: decoding a client's chunked request body (the data
//! is kept, the framing and trailers dropped) and finding where an instance's chunked
//! answer ends while its bytes pass through unchanged. Chunk extensions and trailers are
//! bounded, so a peer cannot make the proxy read forever without data.

/// Longest chunk-size line (size and extensions).
const SIZE_LINE_MAX: usize = 4096;
/// Most trailer bytes after the last chunk.
const TRAILERS_MAX: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct ChunkError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk's size.
    Size,
    /// A chunk extension, up to the line's end.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// The start of a trailer line, or of the empty line that ends the body.
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// Where a chunked body is up to.
#[derive(Debug)]
pub struct Chunked {
    state: State,
    /// The current chunk's size while its line is read, then the data left in it.
    size: u64,
    digits: usize,
    /// Bytes of the current size line, or of all trailers.
    line: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: State::Size,
            size: 0,
            digits: 0,
            line: 0,
        }
    }
}

impl Chunked {
    /// Whether the body's end (last chunk and trailers) has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads `input` up to the body's end, handing each piece of chunk data to `data`;
    /// returns how many bytes of `input` belong to the body (all of them unless it ends
    /// inside `input`).
    pub fn feed(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let n = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                data(&input[i..i + n]);
                i += n;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match (self.state, b) {
                (State::Done, _) => return Ok(i - 1),
                (State::Size, _) if b.is_ascii_hexdigit() => {
                    // 16 hex digits hold any u64; more is no size a peer means.
                    if self.digits == 16 {
                        return Err(ChunkError);
                    }
                    self.digits += 1;
                    let d = (b as char).to_digit(16).expect("a hex digit") as u64;
                    self.size = self.size << 4 | d;
                    State::Size
                }
                (State::Size, b';' | b' ' | b'\t') if self.digits > 0 => State::Extension,
                (State::Size, b'\r') if self.digits > 0 => State::SizeLf,
                (State::Extension, b'\r') => State::SizeLf,
                (State::Extension, b'\n') => return Err(ChunkError),
                (State::Extension, _) => {
                    self.line += 1;
                    if self.line > SIZE_LINE_MAX {
                        return Err(ChunkError);
                    }
                    State::Extension
                }
                (State::SizeLf, b'\n') => {
                    self.digits = 0;
                    self.line = 0;
                    if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    }
                }
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => State::Size,
                (State::TrailerStart, b'\r') => State::EndLf,
                (State::TrailerStart | State::Trailer, _) => {
                    self.line += 1;
                    if self.line > TRAILERS_MAX {
                        return Err(ChunkError);
                    }
                    if b == b'\r' {
                        State::TrailerLf
                    } else {
                        State::Trailer
                    }
                }
                (State::TrailerLf, b'\n') => State::TrailerStart,
                (State::EndLf, b'\n') => {
                    self.state = State::Done;
                    return Ok(i);
                }
                _ => return Err(ChunkError),
            };
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes: the data, and the bytes the body took.
    fn decode(body: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut c = Chunked::default();
        let mut data = Vec::new();
        let mut used = 0;
        for piece in body.chunks(step) {
            used += c.feed(piece, |d| data.extend_from_slice(d))?;
            if c.is_done() {
                break;
            }
        }
        assert!(c.is_done(), "the body ended");
        Ok((data, used))
    }

    #[test]
    fn chunks_extensions_and_trailers_in_pieces_of_any_size() {
        let body = b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 64, body.len()] {
            let (data, used) = decode(body, step).expect("valid");
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert_eq!(
                used,
                body.len() - 4,
                "step {step}: the next message is not taken"
            );
        }
        let (data, used) = decode(b"0\r\n\r\n", 1).expect("empty body");
        assert!(data.is_empty());
        assert_eq!(used, 5);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"5\nhello\r\n",
            b"11111111111111111\r\n",
            b"0\r\n\r\r",
        ] {
            let mut c = Chunked::default();
            assert_eq!(c.feed(bad, |_| {}), Err(ChunkError), "{bad:?}");
        }
        let mut c = Chunked::default();
        let long = format!("1;{}\r\n", "e".repeat(SIZE_LINE_MAX + 1));
        assert_eq!(c.feed(long.as_bytes(), |_| {}), Err(ChunkError));
        let mut c = Chunked::default();
        let trailers = format!("0\r\nX: {}\r\n\r\n", "t".repeat(TRAILERS_MAX));
        assert_eq!(c.feed(trailers.as_bytes(), |_| {}), Err(ChunkError));
    }
}
