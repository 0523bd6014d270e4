//! What the framework's HTTP policies read of a request and of a response.
//!
//! The retry policy and the `ServerErrors` classifier need only a request's method (and a
//! copy to send again) and a response's status. Asking for that through these traits
//! rather than for `http::Request`/`http::Response` lets a caller balance its own message
//! types with the same policies: `beaconctl proxy` forwards raw HTTP/1 heads it parsed
//! itself, which copy in two reference counts where an `http::Request` copies its headers.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

/// A request the retry policy can judge and send again.
pub trait Replayable: Sized {
    /// Its method: after a request may have reached an instance, only an idempotent one
    /// is sent again.
    fn method(&self) -> &Method;

    /// A copy to send on a retry.
    fn replay(&self) -> Self;
}

/// A response whose status the classifier and the retry policy read.
pub trait HasStatus {
    fn status(&self) -> StatusCode;
}

impl Replayable for Request<Bytes> {
    fn method(&self) -> &Method {
        Request::method(self)
    }

    fn replay(&self) -> Self {
        let mut copy = Request::new(self.body().clone());
        *copy.method_mut() = self.method().clone();
        *copy.uri_mut() = self.uri().clone();
        *copy.version_mut() = self.version();
        *copy.headers_mut() = self.headers().clone();
        copy
    }
}

impl<B> HasStatus for Response<B> {
    fn status(&self) -> StatusCode {
        Response::status(self)
    }
}
