//! Go's checks of a request head, made before any handler runs, and the raw answers
//! Go writes when one fails. Go writes these itself, bypassing etcd's handlers (so
//! no CORS headers, no `Date`), and closes the connection. Observed on etcd 3.4.23:
//! - a second `Host` header: `400 Bad Request` (checked while reading the head);
//! - a `Transfer-Encoding` other than one `chunked` on HTTP/1.1 (`gzip, chunked`,
//!   `gzip`, `identity`, two header lines, an empty value): `501 Not Implemented`,
//!   body `Unsupported transfer encoding`; HTTP/1.0 ignores the header;
//! - HTTP/1.1 without `Host` (even with an absolute URL): `400 Bad Request: missing
//!   required Host header`, with the reason in the status line too;
//! - a `Host` with a byte outside Go's `httpguts.ValidHostHeader`: `... malformed Host
//!   header`.
//!
//! The connection layer applies them to the heads it reads itself (written raw, as Go
//! does) and to the requests hyper parsed (as a response that closes), before the
//! router sees them.

use axum::body::Body;
use axum::response::Response;
use http::header::{HeaderValue, CONNECTION};
use http::StatusCode;

use super::{full, TEXT_PLAIN};

/// One of Go's own answers to a head it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    /// The status line after the code: Go puts its error text there too.
    pub reason: &'static str,
    pub body: &'static str,
}

const TOO_MANY_HOSTS: Rejection = Rejection {
    status: StatusCode::BAD_REQUEST,
    reason: "Bad Request",
    body: "400 Bad Request",
};

const UNSUPPORTED_TRANSFER_ENCODING: Rejection = Rejection {
    status: StatusCode::NOT_IMPLEMENTED,
    reason: "Not Implemented",
    body: "Unsupported transfer encoding",
};

const MISSING_HOST: Rejection = Rejection {
    status: StatusCode::BAD_REQUEST,
    reason: "Bad Request: missing required Host header",
    body: "400 Bad Request: missing required Host header",
};

const MALFORMED_HOST: Rejection = Rejection {
    status: StatusCode::BAD_REQUEST,
    reason: "Bad Request: malformed Host header",
    body: "400 Bad Request: malformed Host header",
};

/// Checks a head as Go does, in Go's order. `headers` are (name, value) pairs in any
/// case; `http_11` is whether the request line says HTTP/1.1.
pub fn check<'a>(
    http_11: bool,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), Rejection> {
    let mut hosts: Vec<&[u8]> = Vec::new();
    let mut transfer_encodings: Vec<&[u8]> = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("host") {
            hosts.push(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encodings.push(value);
        }
    }
    if hosts.len() > 1 {
        return Err(TOO_MANY_HOSTS);
    }
    // Like nginx, Go accepts exactly one Transfer-Encoding line saying `chunked`: the
    // rest is request-smuggling ground. HTTP/1.0 has no transfer codings; Go drops it.
    if http_11 && !transfer_encodings.is_empty() {
        let single_chunked = match transfer_encodings.as_slice() {
            [one] => one.trim_ascii().eq_ignore_ascii_case(b"chunked"),
            _ => false,
        };
        if !single_chunked {
            return Err(UNSUPPORTED_TRANSFER_ENCODING);
        }
    }
    match hosts.first() {
        None if http_11 => Err(MISSING_HOST),
        Some(host) if !host.iter().all(|b| valid_host_byte(*b)) => Err(MALFORMED_HOST),
        _ => Ok(()),
    }
}

/// Go's `httpguts.ValidHostHeader`: letters, digits, and what a host, an IPv6 literal
/// with its zone, or a port may hold (RFC 3986's unreserved and sub-delims).
fn valid_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=[]_~".contains(&b)
}

impl Rejection {
    /// The bytes Go writes, status line to body, before closing the connection.
    pub fn raw(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {TEXT_PLAIN}\r\nConnection: close\r\n\r\n{}",
            self.status.as_str(),
            self.reason,
            self.body
        )
        .into_bytes()
    }

    /// The same answer as a response, for a request hyper already parsed; hyper adds
    /// `Date` and `Content-Length`, which Go leaves out, and closes after it.
    pub fn response(&self) -> Response {
        let mut resp = full(self.status, Some(TEXT_PLAIN), Body::from(self.body));
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        resp.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(
                self.reason.as_bytes(),
            ));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::{
        check, MALFORMED_HOST, MISSING_HOST, TOO_MANY_HOSTS, UNSUPPORTED_TRANSFER_ENCODING,
    };

    fn head(
        http_11: bool,
        headers: &[(&'static str, &'static str)],
    ) -> Result<(), super::Rejection> {
        check(http_11, headers.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    #[test]
    fn heads_go_refuses() {
        assert_eq!(head(true, &[]), Err(MISSING_HOST));
        assert_eq!(head(true, &[("Host", "a b")]), Err(MALFORMED_HOST));
        assert_eq!(
            head(false, &[("host", "a"), ("HOST", "b")]),
            Err(TOO_MANY_HOSTS)
        );
        for te in ["gzip, chunked", "gzip", "identity", "chunked, chunked", ""] {
            let got = head(true, &[("Host", "a"), ("Transfer-Encoding", te)]);
            assert_eq!(got, Err(UNSUPPORTED_TRANSFER_ENCODING), "{te:?}");
        }
        let twice = [
            ("Host", "a"),
            ("Transfer-Encoding", "chunked"),
            ("transfer-encoding", "chunked"),
        ];
        assert_eq!(head(true, &twice), Err(UNSUPPORTED_TRANSFER_ENCODING));
        // Go reads the transfer coding before it looks for Host.
        assert_eq!(
            head(true, &[("Transfer-Encoding", "gzip")]),
            Err(UNSUPPORTED_TRANSFER_ENCODING)
        );
    }

    #[test]
    fn heads_go_accepts() {
        assert_eq!(head(false, &[]), Ok(()));
        assert_eq!(head(true, &[("Host", "")]), Ok(()));
        assert_eq!(head(true, &[("Host", "[::1%25lo]:2379")]), Ok(()));
        assert_eq!(
            head(true, &[("Host", "a"), ("Transfer-Encoding", " Chunked ")]),
            Ok(())
        );
        assert_eq!(head(false, &[("Transfer-Encoding", "gzip")]), Ok(()));
    }
}
