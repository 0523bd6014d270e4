//! One proxied request: read the body (bounded), strip hop-by-hop headers, call the
//! balanced client, and stream the chosen instance's answer back.
//!
//! The body is read whole because a retry must be able to send it again; the limit
//! keeps that from being a way to exhaust memory. Failures become short plain-text
//! answers: `503` when no instance can take the request (none listed, or too many
//! requests already waiting for one), `504` when the instance did not answer in time,
//! `502` for any other upstream failure.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tower::{BoxError, Service, ServiceExt};

use beacon_client::balance::BalanceError;

/// What the proxy answers with: the instance's body, streamed, or a short text of its
/// own. An enum rather than a boxed body, which cost an allocation per request.
pub enum ProxyBody {
    Upstream(Incoming),
    Text(Full<Bytes>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ProxyBody::Text(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(body) => body.is_end_stream(),
            ProxyBody::Text(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(body) => body.size_hint(),
            ProxyBody::Text(body) => body.size_hint(),
        }
    }
}

/// Headers that describe one connection, not the message; never forwarded (RFC 9110
/// 7.6.1), along with any header the `Connection` header names.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Forwards `req` through `client`; never fails, failures are answers.
pub async fn forward<S>(
    client: S,
    req: Request<Incoming>,
    max_body: usize,
    service: &str,
) -> Response<ProxyBody>
where
    S: Service<Request<Bytes>, Response = Response<Incoming>, Error = BoxError>,
{
    let (mut parts, body) = req.into_parts();
    // Most requests (GETs) have no body: nothing to read, and no reader to set up.
    let body = if body.is_end_stream() {
        Bytes::new()
    } else {
        match read_whole(body, max_body).await {
            Ok(body) => body,
            Err(answer) => return answer,
        }
    };
    strip_hop_by_hop(&mut parts.headers);
    // The instance is the new authority; the client sets Host from it.
    parts.headers.remove(header::HOST);
    // The body was read whole: its length is now known, whatever the framing was.
    parts.headers.remove(header::TRANSFER_ENCODING);
    if !body.is_empty() || parts.headers.contains_key(header::CONTENT_LENGTH) {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let upstream = Request::from_parts(parts, body);
    match client.oneshot(upstream).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, ProxyBody::Upstream(body))
        }
        Err(e) => failure(&e, service),
    }
}

/// Reads a request body whole, within `max_body` bytes; a failure is the answer to give.
async fn read_whole(body: Incoming, max_body: usize) -> Result<Bytes, Response<ProxyBody>> {
    match Limited::new(body, max_body).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {max_body} bytes\n"),
        )),
        Err(e) => Err(text(
            StatusCode::BAD_REQUEST,
            format!("reading the request: {e}\n"),
        )),
    }
}

/// The answer for a request no instance answered.
fn failure(e: &BoxError, service: &str) -> Response<ProxyBody> {
    match e.downcast_ref::<BalanceError>() {
        Some(BalanceError::NoInstances) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no instance of {service} is available\n"),
        ),
        Some(BalanceError::Overloaded(waiting)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{service}: {waiting} requests are already waiting for an instance\n"),
        ),
        Some(BalanceError::Timeout(_)) => text(
            StatusCode::GATEWAY_TIMEOUT,
            format!("{service}: the instance did not answer in time\n"),
        ),
        _ => text(StatusCode::BAD_GATEWAY, format!("{service}: {e}\n")),
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the few headers present is much
    // cheaper than looking up (hashing) every hop-by-hop name.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::Text(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-trace"),
        );
        h.insert("x-trace", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
        // Without any, nothing goes.
        let mut plain = HeaderMap::new();
        plain.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        plain.insert("x-trace", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 2);
    }

    #[test]
    fn failures_map_to_gateway_statuses() {
        let none: BoxError = Box::new(BalanceError::NoInstances);
        assert_eq!(
            failure(&none, "web").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let busy: BoxError = Box::new(BalanceError::Overloaded(1024));
        assert_eq!(
            failure(&busy, "web").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let other: BoxError = "connection reset".into();
        assert_eq!(failure(&other, "web").status(), StatusCode::BAD_GATEWAY);
    }
}
