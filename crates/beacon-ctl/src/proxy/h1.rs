//! HTTP/1.1 heads for the proxy's own data path: parsed with httparse, framed by RFC 9112's
//! rules, and written back out without the headers that describe one connection.
//!
//! Pure functions over byte buffers, so every rule is tested here without a socket. A
//! request head becomes the head the proxy sends to an instance (origin-form target,
//! HTTP/1.1, no hop-by-hop header, no `Host`: the instance's own is added per attempt);
//! a response head becomes the status line and headers the proxy sends to its client,
//! with the framing and connection headers left for the caller, which knows the client.

use std::mem::MaybeUninit;

use bytes::{BufMut, BytesMut};
use http::{Method, StatusCode};

/// Longest request or response head; a longer one is refused (431 or 502).
pub const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Most header lines in a head; more are refused like a head too long.
pub const HEADERS_MAX: usize = 100;

/// How a message's body ends (RFC 9112 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding: the body ends with its last chunk and trailers.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilClose,
}

/// A request head the proxy can forward.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    /// Whether the client spoke HTTP/1.0 (no chunked answers, keep-alive only if asked).
    pub http10: bool,
    /// Whether the client's connection may carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before its body.
    pub expect_continue: bool,
    /// How the body the client sends ends (never `UntilClose`).
    pub body: Framing,
}

/// A response head from an instance.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    /// How its body ends, given the request it answers.
    pub body: Framing,
    /// Its `Content-Length`, also where the body is empty (an answer to HEAD, a 304).
    pub length: Option<u64>,
    /// Whether the instance's connection may carry another request after this answer.
    pub keep_alive: bool,
    /// Whether it carries a `Date` (a proxy adds one when it does not, RFC 9110 6.6.1).
    pub has_date: bool,
}

/// A head that cannot be forwarded; for a request, the status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed head: {0}")]
    Malformed(&'static str),
    #[error("head longer than {HEAD_BYTES_MAX} bytes or {HEADERS_MAX} headers")]
    TooLarge,
    #[error("unsupported HTTP version")]
    Version,
    #[error("method not supported by the proxy")]
    Method,
}

impl HeadError {
    /// The answer to a client whose request head this is.
    pub fn status(&self) -> StatusCode {
        match self {
            HeadError::Malformed(_) => StatusCode::BAD_REQUEST,
            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadError::Version => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            HeadError::Method => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl From<httparse::Error> for HeadError {
    fn from(e: httparse::Error) -> Self {
        match e {
            httparse::Error::TooManyHeaders => HeadError::TooLarge,
            httparse::Error::Version => HeadError::Version,
            httparse::Error::HeaderName => HeadError::Malformed("header name"),
            httparse::Error::HeaderValue => HeadError::Malformed("header value"),
            httparse::Error::NewLine => HeadError::Malformed("line ending"),
            httparse::Error::Status => HeadError::Malformed("status"),
            httparse::Error::Token => HeadError::Malformed("method or target"),
        }
    }
}

/// The headers the proxy treats itself; everything else passes through as it came.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Other,
    /// Describes one connection (RFC 9110 7.6.1): never forwarded.
    HopByHop,
    Connection,
    ContentLength,
    TransferEncoding,
    Host,
    Expect,
    Date,
    /// Names the trailer fields: true of a chunked answer passed on as it came (trailers
    /// and all), false of a request body the proxy de-chunks (its trailers dropped).
    Trailer,
}

fn kind(name: &str) -> Kind {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    // By length first: most headers are compared with nothing.
    match name.len() {
        2 if is("te") => Kind::HopByHop,
        4 if is("host") => Kind::Host,
        4 if is("date") => Kind::Date,
        6 if is("expect") => Kind::Expect,
        7 if is("trailer") => Kind::Trailer,
        7 if is("upgrade") => Kind::HopByHop,
        10 if is("connection") => Kind::Connection,
        10 if is("keep-alive") => Kind::HopByHop,
        14 if is("content-length") => Kind::ContentLength,
        17 if is("transfer-encoding") => Kind::TransferEncoding,
        18 if is("proxy-authenticate") => Kind::HopByHop,
        19 if is("proxy-authorization") => Kind::HopByHop,
        _ => Kind::Other,
    }
}

/// What a head's framing and connection headers said, gathered in one pass.
#[derive(Default)]
struct Semantics<'b> {
    length: Option<u64>,
    /// A `Transfer-Encoding` was present; `chunked` whether its last coding is chunked.
    transfer_encoding: bool,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    has_date: bool,
    /// Headers a `Connection` header named, also dropped; rarely any.
    named: Vec<&'b str>,
}

fn comma_tokens(value: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(value)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Reads the framing and connection headers; `kinds` gets each header's kind.
fn semantics<'b>(
    headers: &[httparse::Header<'b>],
    kinds: &mut [Kind; HEADERS_MAX],
) -> Result<Semantics<'b>, HeadError> {
    let mut s = Semantics::default();
    for (i, h) in headers.iter().enumerate() {
        let k = kind(h.name);
        kinds[i] = k;
        match k {
            Kind::ContentLength => {
                let n = parse_length(h.value).ok_or(HeadError::Malformed("content-length"))?;
                // Repeated lengths must agree (RFC 9112 6.3, rule 5).
                if s.length.is_some_and(|m| m != n) {
                    return Err(HeadError::Malformed("conflicting content-length"));
                }
                s.length = Some(n);
            }
            Kind::TransferEncoding => {
                s.transfer_encoding = true;
                if let Some(last) = comma_tokens(h.value).last() {
                    s.chunked = last.eq_ignore_ascii_case("chunked");
                }
            }
            Kind::Connection => {
                // The tokens borrow the head's bytes; `value` is valid UTF-8 only if
                // they are to be honoured at all.
                let value: &'b [u8] = h.value;
                for token in comma_tokens(value) {
                    if token.eq_ignore_ascii_case("close") {
                        s.close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        s.keep_alive = true;
                    } else {
                        s.named.push(token);
                    }
                }
            }
            Kind::Expect => s.expect_continue |= h.value.eq_ignore_ascii_case(b"100-continue"),
            Kind::Date => s.has_date = true,
            Kind::Other | Kind::HopByHop | Kind::Host | Kind::Trailer => {}
        }
    }
    if !s.named.is_empty() {
        for (i, h) in headers.iter().enumerate() {
            if kinds[i] == Kind::Other && s.named.iter().any(|n| n.eq_ignore_ascii_case(h.name)) {
                kinds[i] = Kind::HopByHop;
            }
        }
    }
    Ok(s)
}

/// A `Content-Length` value: digits only (no sign, no spaces inside), no overflow.
fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// Writes a header line as it came in `buf` (name, colon and value in one copy: a head's
/// copying is mostly small copies, each a call), ended by CRLF.
fn put_header(out: &mut BytesMut, buf: &[u8], h: &httparse::Header<'_>) {
    // httparse's slices point into `buf`; where they do, the line between them is there too.
    let base = buf.as_ptr() as usize;
    let start = (h.name.as_ptr() as usize).wrapping_sub(base);
    let end = (h.value.as_ptr() as usize).wrapping_sub(base) + h.value.len();
    match buf.get(start..end) {
        Some(line) if !h.value.is_empty() => out.put_slice(line),
        _ => {
            out.put_slice(h.name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(h.value);
        }
    }
    out.put_slice(b"\r\n");
}

/// A parsed head's length; `None` while more may complete it, an error once `buf` holds
/// more than a head may be without one.
fn head_length(parsed: httparse::Status<usize>, buf: &[u8]) -> Result<Option<usize>, HeadError> {
    match parsed {
        httparse::Status::Complete(len) => Ok(Some(len)),
        httparse::Status::Partial if buf.len() >= HEAD_BYTES_MAX => Err(HeadError::TooLarge),
        httparse::Status::Partial => Ok(None),
    }
}

/// Parses a request head at the start of `buf`. `Ok(None)`: not all of it has arrived.
/// On success returns the head's length and writes to `forward` the head to send an
/// instance: request line and the headers to pass on, without `Host`, the body's framing
/// headers and the final empty line, which the sender adds.
pub fn parse_request(
    buf: &[u8],
    forward: &mut BytesMut,
) -> Result<Option<(usize, RequestHead)>, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, &mut slots)?;
    let Some(len) = head_length(parsed, buf)? else {
        return Ok(None);
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("request line"));
    };
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed("method"))?;
    // A tunnel is not a request an instance can answer.
    if method == Method::CONNECT {
        return Err(HeadError::Method);
    }
    let mut kinds = [Kind::Other; HEADERS_MAX];
    let s = semantics(req.headers, &mut kinds)?;
    let http10 = minor == 0;
    let body = if s.transfer_encoding {
        // A request body must end with chunked, or its end is unknowable (RFC 9112 6.3).
        if !s.chunked {
            return Err(HeadError::Malformed("transfer-encoding"));
        }
        Framing::Chunked
    } else {
        // `Length(0)`, not `Empty`: the instance is told the length the client gave.
        s.length.map_or(Framing::Empty, Framing::Length)
    };
    // With both framings the length is a lie someone may rely on: serve, then close.
    let ambiguous = s.transfer_encoding && s.length.is_some();
    let keep_alive = !ambiguous && if http10 { s.keep_alive } else { !s.close };

    forward.put_slice(method.as_str().as_bytes());
    forward.put_u8(b' ');
    forward.put_slice(origin_form(target).as_bytes());
    forward.put_slice(b" HTTP/1.1\r\n");
    for (h, k) in req.headers.iter().zip(kinds) {
        // `Expect` is answered here: the instance gets the whole body at once.
        if matches!(k, Kind::Other | Kind::Date) {
            put_header(forward, buf, h);
        }
    }
    Ok(Some((
        len,
        RequestHead {
            method,
            http10,
            keep_alive,
            expect_continue: s.expect_continue,
            body,
        },
    )))
}

/// The target as an instance is asked for it: an absolute-form target (`http://host/p?q`,
/// as sent to a forward proxy) loses its scheme and authority.
fn origin_form(target: &str) -> &str {
    if target.starts_with('/') || target == "*" {
        return target;
    }
    let Some((_, rest)) = target.split_once("://") else {
        return target;
    };
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
        // `http://host?q`: the path is empty, which is `/` (RFC 9112 3.2.1).
        _ => "/",
    }
}

/// Parses a response head at the start of `buf`, answering a request whose method was
/// HEAD if `to_head`. `Ok(None)`: not all of it has arrived. On success returns the head's
/// length and writes to `out` the status line and the headers to pass on, without the
/// framing and connection headers and the final empty line, which the caller adds.
pub fn parse_response(
    buf: &[u8],
    to_head: bool,
    out: &mut BytesMut,
) -> Result<Option<(usize, ResponseHead)>, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADERS_MAX];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)?;
    let Some(len) = head_length(parsed, buf)? else {
        return Ok(None);
    };
    let (Some(code), Some(minor)) = (resp.code, resp.version) else {
        return Err(HeadError::Malformed("status line"));
    };
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Malformed("status"))?;
    let mut kinds = [Kind::Other; HEADERS_MAX];
    let s = semantics(resp.headers, &mut kinds)?;
    let body = if to_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if s.transfer_encoding {
        if s.chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match s.length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let reusable = if minor == 0 { s.keep_alive } else { !s.close };
    let keep_alive = reusable && body != Framing::UntilClose;

    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    let reason = resp
        .reason
        .filter(|r| !r.is_empty())
        .or_else(|| status.canonical_reason())
        .unwrap_or("");
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\n");
    for (h, k) in resp.headers.iter().zip(kinds) {
        if matches!(
            k,
            Kind::Other | Kind::Date | Kind::Host | Kind::Expect | Kind::Trailer
        ) {
            put_header(out, buf, h);
        }
    }
    Ok(Some((
        len,
        ResponseHead {
            status,
            body,
            length: s.length.filter(|_| !s.transfer_encoding),
            keep_alive,
            has_date: s.has_date,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> Result<Option<(usize, RequestHead, String)>, HeadError> {
        let mut out = BytesMut::new();
        Ok(parse_request(raw.as_bytes(), &mut out)?
            .map(|(n, head)| (n, head, String::from_utf8(out.to_vec()).expect("utf-8"))))
    }

    fn response(raw: &str, to_head: bool) -> (usize, ResponseHead, String) {
        let mut out = BytesMut::new();
        let (n, head) = parse_response(raw.as_bytes(), to_head, &mut out)
            .expect("valid")
            .expect("complete");
        (n, head, String::from_utf8(out.to_vec()).expect("utf-8"))
    }

    #[test]
    fn a_request_is_forwarded_without_hop_by_hop_headers_or_host() {
        let raw = "GET http://proxy:80/a/b?x=1 HTTP/1.1\r\nHost: proxy\r\nConnection: x-drop, keep-alive\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-A: 1\r\nX-A: 2\r\nProxy-Authorization: secret\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\nleft";
        let (n, head, forward) = request(raw).unwrap().expect("complete");
        assert_eq!(n, raw.len() - "left".len());
        assert_eq!(
            forward,
            "GET /a/b?x=1 HTTP/1.1\r\nX-A: 1\r\nX-A: 2\r\nAccept: */*\r\n"
        );
        assert_eq!(head.method, Method::GET);
        assert!(head.keep_alive && !head.http10 && !head.expect_continue);
        assert_eq!(head.body, Framing::Empty);
    }

    #[test]
    fn request_framing_and_keep_alive_follow_rfc_9112() {
        let framing = |raw: &str| request(raw).unwrap().expect("complete").1;
        let h = framing("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.body, Framing::Length(12));
        let h = framing(
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n",
        );
        assert_eq!(h.body, Framing::Chunked);
        assert!(h.expect_continue && h.keep_alive);
        let h =
            framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(h.body, Framing::Chunked);
        assert!(!h.keep_alive, "both framings: close after answering");
        assert!(!framing("GET / HTTP/1.0\r\n\r\n").keep_alive);
        let h = framing("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.keep_alive && h.http10);
        assert!(!framing("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert_eq!(
            framing("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body,
            Framing::Length(0)
        );
    }

    #[test]
    fn bad_requests_get_their_status() {
        let status = |raw: &str| request(raw).expect_err("refused").status().as_u16();
        assert_eq!(status("GET / HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(
            status("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400
        );
        assert_eq!(status("CONNECT a:443 HTTP/1.1\r\n\r\n"), 501);
        assert_eq!(status("GET / HTTP/2.0\r\n\r\n"), 505);
        let many: String = (0..=HEADERS_MAX).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(HEAD_BYTES_MAX));
        assert_eq!(status(&long), 431);
        assert!(
            request("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none(),
            "partial"
        );
    }

    #[test]
    fn absolute_targets_become_origin_form() {
        assert_eq!(origin_form("/p?q"), "/p?q");
        assert_eq!(origin_form("*"), "*");
        assert_eq!(origin_form("http://h:1/p?q"), "/p?q");
        assert_eq!(origin_form("http://h:1"), "/");
        assert_eq!(origin_form("http://h?q=/x"), "/");
    }

    #[test]
    fn response_framing_follows_status_method_and_headers() {
        let body = |raw: &str, to_head| response(raw, to_head).1.body;
        assert_eq!(
            body("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            Framing::Length(5)
        );
        assert_eq!(
            body("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            Framing::Empty
        );
        assert_eq!(
            body("HTTP/1.1 204 No Content\r\n\r\n", false),
            Framing::Empty
        );
        assert_eq!(
            body(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            ),
            Framing::Empty
        );
        assert_eq!(
            body(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            Framing::Chunked
        );
        assert_eq!(
            body("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Framing::UntilClose
        );
        assert_eq!(body("HTTP/1.1 200 OK\r\n\r\n", false), Framing::UntilClose);
        let (_, head, _) = response("HTTP/1.1 200 OK\r\n\r\n", false);
        assert!(
            !head.keep_alive,
            "a close-delimited body ends the connection"
        );
        let (_, head, _) = response(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
            false,
        );
        assert!(!head.keep_alive);
        let (_, head, _) = response("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false);
        assert!(!head.keep_alive);
        let (_, head, _) = response(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            false,
        );
        assert!(head.keep_alive);
        assert_eq!(head.length, Some(9), "kept for the client");
    }

    #[test]
    fn a_response_is_passed_on_without_hop_by_hop_or_framing_headers() {
        let raw = "HTTP/1.1 201 Made\r\nConnection: x-foo\r\nX-Foo: 1\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\nDate: Sat, 05 Dec 2026 19:00:00 GMT\r\n\r\nok";
        let (n, head, out) = response(raw, false);
        assert_eq!(n, raw.len() - 2);
        assert_eq!(
            out,
            "HTTP/1.1 201 Made\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nDate: Sat, 05 Dec 2026 19:00:00 GMT\r\n"
        );
        assert!(head.has_date);
        assert_eq!(head.status, StatusCode::CREATED);
        // No reason phrase: the standard one.
        let (_, _, out) = response("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", false);
        assert_eq!(out, "HTTP/1.1 404 Not Found\r\n");
    }

    #[test]
    fn bad_responses_are_errors() {
        let mut out = BytesMut::new();
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n", false, &mut out).is_err());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            false,
            &mut out
        )
        .is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n", false, &mut out)
            .unwrap()
            .is_none());
    }
}
