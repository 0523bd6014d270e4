//! grpc-gateway's JSON, as etcd 3.4's gateway reads and writes it.
//!
//! Messages come and go through the serde impls `beacon-proto` generates from the
//! .proto files (proto3's JSON mapping: the .proto's field names, 64-bit integers as
//! strings, bytes as base64, default values left out, enums by name). A request body is
//! read as Go's `json.Decoder` reads it: one JSON value, whatever follows it ignored; an
//! empty body or `null` is the empty request; anything but an object is refused with
//! Go's own words. Errors are grpc-gateway's bodies, with the HTTP status its table
//! gives the gRPC code.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Code, Status};

use crate::http::gojson::go_json;
use crate::http::{full, APPLICATION_JSON};

/// The header grpc-gateway forwards from the gRPC answer's own headers.
const GRPC_METADATA_CONTENT_TYPE: HeaderName =
    HeaderName::from_static("grpc-metadata-content-type");
/// The trailer grpc-gateway forwards from a refused call's trailers.
const GRPC_TRAILER_CONTENT_TYPE: HeaderName = HeaderName::from_static("grpc-trailer-content-type");
const APPLICATION_GRPC: HeaderValue = HeaderValue::from_static("application/grpc");

/// Why a JSON request could not be read, in the words of Go's decoders.
#[derive(Debug)]
pub struct DecodeError(pub String);

/// What the front of a body holds.
pub enum Next {
    /// A JSON value, and the offset just after it.
    Value(serde_json::Value, usize),
    /// Only whitespace.
    End,
    /// The start of a value: more bytes may complete it.
    Incomplete,
}

/// The next JSON value in `bytes`.
pub fn next_value(bytes: &[u8]) -> Result<Next, DecodeError> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    match values.next() {
        None => Ok(Next::End),
        Some(Ok(value)) => Ok(Next::Value(value, values.byte_offset())),
        Some(Err(e)) if e.is_eof() => Ok(Next::Incomplete),
        Some(Err(e)) => Err(DecodeError(go_syntax_error(&e, bytes))),
    }
}

/// A request from one JSON value, as grpc-gateway's decoder makes it.
pub fn message<M: DeserializeOwned + Default>(
    mut value: serde_json::Value,
) -> Result<M, DecodeError> {
    let kind = match &mut value {
        serde_json::Value::Null => return Ok(M::default()),
        serde_json::Value::Object(fields) => {
            drop_nulls(fields);
            return serde_json::from_value(value).map_err(|e| DecodeError(go_data_error(&e)));
        }
        serde_json::Value::Array(_) => "array",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Bool(_) => "bool",
    };
    Err(DecodeError(format!(
        "json: cannot unmarshal {kind} into Go value of type map[string]json.RawMessage"
    )))
}

/// Leaves out the fields set to `null`, in nested messages too: Go's decoder takes a
/// `null` as the field's default, where the generated serde impls refuse it for a
/// number or an enum.
fn drop_nulls(fields: &mut serde_json::Map<String, serde_json::Value>) {
    fields.retain(|_, v| !v.is_null());
    let mut nested: Vec<&mut serde_json::Value> = fields.values_mut().collect();
    // A stack, not recursion: a body of deeply nested objects must not overflow it.
    while let Some(value) = nested.pop() {
        match value {
            serde_json::Value::Object(inner) => {
                inner.retain(|_, v| !v.is_null());
                nested.extend(inner.values_mut());
            }
            serde_json::Value::Array(items) => nested.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// A unary call's request from its whole body: the first JSON value, the rest ignored.
pub fn request<M: DeserializeOwned + Default>(body: &[u8]) -> Result<M, DecodeError> {
    match next_value(body)? {
        Next::End => Ok(M::default()),
        Next::Value(value, _) => message(value),
        Next::Incomplete => Err(DecodeError("unexpected EOF".to_string())),
    }
}

/// Go's `encoding/json` syntax error for what serde_json stopped at.
fn go_syntax_error(e: &serde_json::Error, bytes: &[u8]) -> String {
    let Some(found) = byte_at(bytes, e.line(), e.column()) else {
        return "unexpected EOF".to_string();
    };
    let what = e.to_string();
    let context = if what.starts_with("expected `:`") {
        "after object key"
    } else if what.starts_with("expected `,` or `}`") {
        "after object key:value pair"
    } else if what.starts_with("expected `,` or `]`") {
        "after array element"
    } else if what.starts_with("key must be a string")
        || (what.starts_with("trailing comma") && found == b'}')
    {
        "looking for beginning of object key string"
    } else if what.starts_with("invalid escape") {
        "in string escape code"
    } else if what.starts_with("control character") {
        "in string literal"
    } else {
        "looking for beginning of value"
    };
    format!("invalid character {} {context}", go_quote_char(found))
}

/// The byte at serde_json's 1-based line and column (the one it stopped at).
fn byte_at(bytes: &[u8], line: usize, column: usize) -> Option<u8> {
    let line_start = if line <= 1 {
        0
    } else {
        let newlines = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n');
        newlines.map(|(i, _)| i + 1).nth(line - 2)?
    };
    bytes.get(line_start + column.checked_sub(1)?).copied()
}

/// Go's `quoteChar`: a character in single quotes, escaped as `strconv.Quote` would.
fn go_quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        0x20..=0x7e => format!("'{}'", c as char),
        b'\n' => "'\\n'".to_string(),
        b'\t' => "'\\t'".to_string(),
        b'\r' => "'\\r'".to_string(),
        _ => format!("'\\x{c:02x}'"),
    }
}

/// A message's fields that do not fit: a JSON value of the wrong kind for a boolean,
/// string or bytes field, and bad base64, in Go's words; the rest in serde's.
fn go_data_error(e: &serde_json::Error) -> String {
    let what = e.to_string();
    if let Some(go) = go_type_error(&what) {
        return go;
    }
    if let Some(at) = what.find(", offset ") {
        let digits: String = what[at + ", offset ".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if what.starts_with("Invalid") && !digits.is_empty() {
            return format!("illegal base64 data at input byte {digits}");
        }
    }
    what
}

/// Go's "cannot unmarshal" for serde's "invalid type: <found>, expected <wanted>".
fn go_type_error(what: &str) -> Option<String> {
    let (found, wanted) = what
        .strip_prefix("invalid type: ")?
        .split_once(", expected ")?;
    let go_type = match wanted.split(" at line ").next()? {
        "a boolean" => "bool",
        "a string" => "string",
        "a base64 string" => "[]uint8",
        _ => return None,
    };
    let kinds = [
        ("boolean", "bool"),
        ("integer", "number"),
        ("floating point", "number"),
        ("string", "string"),
        ("sequence", "array"),
        ("map", "object"),
    ];
    let kind = kinds.iter().find(|(serde, _)| found.starts_with(serde))?.1;
    Some(format!(
        "json: cannot unmarshal {kind} into Go value of type {go_type}"
    ))
}

/// The HTTP status grpc-gateway (as etcd 3.4.23 is built) answers a gRPC code with.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// grpc-go's refusal of a request over its server's message limit, `limit` bytes, if
/// it is: etcd's gateway hands the request to its gRPC server, whose limit refuses it.
pub fn oversized<M: prost::Message>(request: &M, limit: usize) -> Option<Status> {
    let encoded_bytes = request.encoded_len();
    (encoded_bytes > limit).then(|| too_large(encoded_bytes.to_string(), limit))
}

/// grpc-go's refusal of a message `found` bytes long over the server's `limit`.
pub fn too_large(found: String, limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "grpc: received message larger than max ({found} vs. {limit})"
    ))
}

/// grpc-gateway's error body: the message twice and the gRPC code, in this order.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    code: i32,
}

fn error_body(status: &Status) -> Vec<u8> {
    let body = ErrorBody {
        error: status.message(),
        message: status.message(),
        code: status.code() as i32,
    };
    go_json(&body).unwrap_or_default()
}

/// A call answered: the message, and the gRPC answer's content type as grpc-gateway
/// forwards it.
pub fn answered<M: Serialize>(message: &M) -> Response {
    match go_json(message) {
        Ok(body) => {
            let mut resp = full(StatusCode::OK, Some(APPLICATION_JSON), body);
            resp.headers_mut()
                .insert(GRPC_METADATA_CONTENT_TYPE, APPLICATION_GRPC);
            resp
        }
        Err(e) => not_called(&Status::internal(e.to_string())),
    }
}

/// A call the service refused. etcd's gateway forwards the refusal's trailers: a
/// `Trailer` header announces them, so the body is chunked and they follow it.
pub fn refused(status: &Status) -> Response {
    let mut trailers = HeaderMap::new();
    trailers.insert(GRPC_TRAILER_CONTENT_TYPE, APPLICATION_GRPC);
    let frames = [
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(error_body(status)))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let body = Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )));
    let mut resp = full(http_status(status.code()), Some(APPLICATION_JSON), body);
    resp.headers_mut().insert(
        http::header::TRAILER,
        HeaderValue::from_static("Grpc-Trailer-Content-Type"),
    );
    resp
}

/// A request refused before any call (it did not decode): a plain body.
pub fn not_called(status: &Status) -> Response {
    full(
        http_status(status.code()),
        Some(APPLICATION_JSON),
        error_body(status),
    )
}

/// One answer of a stream, as a line: `{"result":...}`.
pub fn stream_result<M: Serialize>(message: &M) -> Bytes {
    #[derive(Serialize)]
    struct Chunk<'a, M> {
        result: &'a M,
    }
    let mut line = go_json(&Chunk { result: message }).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// How a stream ends on an error: `{"error":{...}}` with the gRPC and HTTP codes, and
/// no newline after it.
pub fn stream_error(status: &Status) -> Bytes {
    #[derive(Serialize)]
    struct StreamError<'a> {
        grpc_code: i32,
        http_code: u16,
        message: &'a str,
        http_status: &'a str,
    }
    #[derive(Serialize)]
    struct Chunk<'a> {
        error: StreamError<'a>,
    }
    let http = http_status(status.code());
    let chunk = Chunk {
        error: StreamError {
            grpc_code: status.code() as i32,
            http_code: http.as_u16(),
            message: status.message(),
            http_status: http.canonical_reason().unwrap_or_default(),
        },
    };
    Bytes::from(go_json(&chunk).unwrap_or_default())
}

/// A stream's answer head: etcd's gateway sends it with the first answer.
pub fn stream_head(body: Body) -> Response {
    let mut resp = full(StatusCode::OK, Some(APPLICATION_JSON), body);
    resp.headers_mut()
        .insert(GRPC_METADATA_CONTENT_TYPE, APPLICATION_GRPC);
    resp
}

#[cfg(test)]
mod tests {
    use beacon_proto::etcdserverpb::{PutRequest, RangeRequest};

    use super::*;

    fn err<M: DeserializeOwned + Default + std::fmt::Debug>(body: &str) -> String {
        request::<M>(body.as_bytes()).unwrap_err().0
    }

    #[test]
    fn bodies_decode_as_gos_decoder_reads_them() {
        let range: RangeRequest = request(br#"{"key":"Zm9v","limit":"2"} trailing"#).unwrap();
        assert_eq!((range.key.as_slice(), range.limit), (&b"foo"[..], 2));
        assert_eq!(
            request::<RangeRequest>(b"").unwrap(),
            RangeRequest::default()
        );
        assert_eq!(
            request::<RangeRequest>(b" null").unwrap(),
            RangeRequest::default()
        );
        let unknown: PutRequest = request(br#"{"key":"YQ==","bogus":1}"#).unwrap();
        assert_eq!(unknown.key, b"a");
        let nulls: RangeRequest =
            request(br#"{"key":"YQ==","limit":null,"sort_order":null}"#).unwrap();
        assert_eq!((nulls.limit, nulls.sort_order), (0, 0));
    }

    #[test]
    fn refusals_are_in_gos_words() {
        assert_eq!(err::<RangeRequest>(r#"{"key":"Zm9v""#), "unexpected EOF");
        assert_eq!(
            err::<RangeRequest>(r#"{"key":"Zm9v","limit":x}"#),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            err::<RangeRequest>("[]"),
            "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"
        );
        assert_eq!(
            err::<RangeRequest>(r#"{"key":"!!!"}"#),
            "illegal base64 data at input byte 0"
        );
        assert_eq!(
            err::<RangeRequest>(r#"{"key":"YQ==","keys_only":"true"}"#),
            "json: cannot unmarshal string into Go value of type bool"
        );
        assert_eq!(
            err::<RangeRequest>(r#"{"key":123}"#),
            "json: cannot unmarshal number into Go value of type []uint8"
        );
    }

    #[test]
    fn error_bodies_are_grpc_gateways() {
        let body = error_body(&Status::not_found("etcdserver: requested lease not found"));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#
        );
        assert_eq!(
            http_status(Code::FailedPrecondition),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            &stream_error(&Status::unavailable("transport is closing"))[..],
            br#"{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}}"#
        );
    }
}
