//! Go `net/http` behaviour that etcd's clients can see: form parsing, path cleaning,
//! bounded body reading, and the plain-text and JSON error responses of `http.Error`
//! and etcd's `HTTPError`.

pub mod access;
pub mod body;
pub mod goform;
pub mod gohead;
pub mod gojson;
pub mod gopath;

use axum::body::Body;
use axum::response::Response;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::StatusCode;

/// `text/plain; charset=utf-8`, which Go sends for `http.Error` and sniffed text.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
/// etcd's JSON content type (no charset).
pub const APPLICATION_JSON: &str = "application/json";

/// A response with a complete body and the given content type.
pub fn full(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: impl Into<Body>,
) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    resp
}

/// Go's `http.Error`: plain text, `nosniff`, the message and a newline.
pub fn go_error(status: StatusCode, message: &str) -> Response {
    let mut resp = full(status, Some(TEXT_PLAIN), format!("{message}\n"));
    resp.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Go's 405 from etcd's `allowMethod`: `Allow` lists the methods, comma-separated.
pub fn method_not_allowed(allow: Option<&'static str>) -> Response {
    let mut resp = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    if let Some(allow) = allow {
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

/// Go's `http.NotFound`.
pub fn not_found() -> Response {
    go_error(StatusCode::NOT_FOUND, "404 page not found")
}

/// etcd's `httptypes.HTTPError`: JSON `{"message":...}` as Go marshals it (HTML
/// characters escaped), without a trailing newline.
pub fn json_message(status: StatusCode, message: &str) -> Response {
    let body = gojson::go_json(&serde_json::json!({ "message": message })).unwrap_or_default();
    full(status, Some(APPLICATION_JSON), body)
}

/// Go's `http.Redirect` with 301, as `ServeMux` sends for unclean paths: GET gets a
/// small HTML body (Go's `Fprintln` adds a second newline), HEAD only the type.
pub fn moved_permanently(method: &http::Method, location: &str) -> Response {
    let (ct, body) = if method == http::Method::GET {
        let body = format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            gopath::html_escape(location)
        );
        (Some("text/html; charset=utf-8"), Body::from(body))
    } else if method == http::Method::HEAD {
        (Some("text/html; charset=utf-8"), Body::empty())
    } else {
        (None, Body::empty())
    };
    let mut resp = full(StatusCode::MOVED_PERMANENTLY, ct, body);
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

/// Go's answer to a request line it cannot parse (e.g. a bad `%` escape in the path):
/// a bare 400 that closes the connection.
pub fn bad_request_close() -> Response {
    let mut resp = full(StatusCode::BAD_REQUEST, Some(TEXT_PLAIN), "400 Bad Request");
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// etcd's headers, named once: a name given as text is checked and looked up at every
/// use, and these go on every keys response.
pub const X_ETCD_INDEX: HeaderName = HeaderName::from_static("x-etcd-index");
/// See [`X_ETCD_INDEX`].
pub const X_RAFT_INDEX: HeaderName = HeaderName::from_static("x-raft-index");
/// See [`X_ETCD_INDEX`].
pub const X_RAFT_TERM: HeaderName = HeaderName::from_static("x-raft-term");
/// See [`X_ETCD_INDEX`].
pub const X_ETCD_CLUSTER_ID: HeaderName = HeaderName::from_static("x-etcd-cluster-id");

/// Sets one of etcd's numeric headers (an index, a term).
pub fn set_number(resp: &mut Response, name: HeaderName, value: u64) {
    resp.headers_mut().insert(name, HeaderValue::from(value));
}
