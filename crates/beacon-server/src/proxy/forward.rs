//! The proxy's HTTP handler, in the order etcd's proxy stacks its handlers: `/metrics`
//! on the port itself; Go's `ServeMux` redirect of unclean paths; the readonly
//! refusal (`--proxy readonly`: any method but GET gets a bare 501); CORS
//! (`--cors`, `OPTIONS` answered at once); `/v2/config/local/proxy`; and for
//! everything else etcd's reverse proxy: the body read whole, hop-by-hop headers
//! dropped both ways, `X-Forwarded-For` extended, the request sent to each available
//! endpoint in turn until one answers (an endpoint that cannot be sent it is skipped
//! for `--proxy-failure-wait`), and the answer streamed back as it arrives, so that
//! a streamed watch's events pass at once.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use http::{HeaderMap, Method, StatusCode};
use tokio::time::Instant;

use super::director::Director;
use super::metrics::{Dropped, Metrics};
use super::relay::Relayed;
use super::transport::Upstream;
use crate::conn::RemoteAddr;
use crate::http::access::AccessControl;
use crate::http::gopath::{escape_path, mux_clean, unescape};
use crate::http::{bad_request_close, full, go_error, json_message, moved_permanently};
use crate::limits::{REQUEST_BODY_BYTES_MAX, REQUEST_BODY_READ_TIMEOUT};

/// The headers that concern one connection, never forwarded (etcd's list; the
/// headers a `Connection` header names are forwarded, as etcd does).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// What the handler serves with.
pub struct Proxy {
    /// The endpoints.
    pub director: Arc<Director>,
    /// The client that reaches them.
    pub upstream: Upstream,
    /// `--proxy readonly`.
    pub readonly: bool,
    /// `--cors` (the proxy checks no Host: etcd's proxy has no `--host-whitelist`).
    pub access: AccessControl,
    /// The counters `/metrics` shows.
    pub metrics: Metrics,
}

/// The router of the proxy's client URLs.
pub fn router(proxy: Arc<Proxy>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(proxy)
}

async fn handle(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    if req.uri().path() == "/metrics" {
        return proxy.metrics.serve();
    }
    if req.method() != Method::CONNECT {
        let Ok(path) = unescape(req.uri().path(), false) else {
            return bad_request_close();
        };
        let clean = mux_clean(&path);
        if clean != path[..] {
            let mut location = escape_path(&clean);
            if let Some(query) = req.uri().query() {
                location.push('?');
                location.push_str(query);
            }
            return moved_permanently(req.method(), &location);
        }
    }
    if proxy.readonly && req.method() != Method::GET {
        return full(StatusCode::NOT_IMPLEMENTED, None, Body::empty());
    }
    let origin = proxy
        .access
        .cors_origin(req.headers().get(http::header::ORIGIN));
    let mut resp = if req.method() == Method::OPTIONS {
        full(StatusCode::OK, None, Body::empty())
    } else if req.uri().path() == "/v2/config/local/proxy" {
        local_config(&proxy, req.method())
    } else {
        forward(&proxy, req).await
    };
    if let Some(origin) = origin {
        prepend_cors(resp.headers_mut(), origin);
    }
    resp
}

/// etcd's CORS headers, set before the member's answer's own are added after them.
fn prepend_cors(headers: &mut HeaderMap, origin: HeaderValue) {
    let ours = [
        (
            "access-control-allow-methods",
            HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
        ),
        ("access-control-allow-origin", origin),
        (
            "access-control-allow-headers",
            HeaderValue::from_static("accept, content-type, authorization"),
        ),
    ];
    for (name, value) in ours {
        let name = HeaderName::from_static(name);
        let theirs: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        headers.insert(name.clone(), value);
        for v in theirs {
            headers.append(name.clone(), v);
        }
    }
}

/// `GET /v2/config/local/proxy`: the available endpoints, as etcd's proxy lists them.
fn local_config(proxy: &Proxy, method: &Method) -> Response {
    if method != Method::GET {
        let mut resp = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET"));
        return resp;
    }
    let endpoints = proxy.director.available(Instant::now());
    let mut body =
        serde_json::to_vec(&serde_json::json!({ "endpoints": endpoints })).unwrap_or_default();
    body.push(b'\n');
    full(StatusCode::OK, Some("text/plain; charset=utf-8"), body)
}

/// etcd's reverse proxy, for one request.
async fn forward(proxy: &Proxy, req: Request) -> Response {
    let method = req.method().clone();
    let started = Instant::now();
    proxy.metrics.incoming(&method);
    let remote = req.extensions().get::<RemoteAddr>().map(|r| r.0.ip());
    let (parts, body) = req.into_parts();
    let body = match crate::http::body::read_capped(
        body,
        REQUEST_BODY_BYTES_MAX,
        REQUEST_BODY_READ_TIMEOUT,
    )
    .await
    {
        Ok(body) => body,
        Err(e) => {
            let msg = format!("failed to read request body: {e}");
            tracing::info!("{msg}");
            return json_message(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("httpproxy: {msg}"),
            );
        }
    };
    let headers = forwarded_headers(&parts.headers, remote, body.len());
    let endpoints = proxy.director.available(Instant::now());
    if endpoints.is_empty() {
        proxy.metrics.dropped(&method, Dropped::ZeroEndpoints);
        let msg = "zero endpoints currently available";
        tracing::info!("{msg}");
        return json_message(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("httpproxy: {msg}"),
        );
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    for endpoint in &endpoints {
        let Ok(uri) = format!("{endpoint}{target}").parse::<http::Uri>() else {
            continue;
        };
        let mut upstream_req = http::Request::new(Body::from(Bytes::clone(&body)));
        *upstream_req.method_mut() = method.clone();
        *upstream_req.uri_mut() = uri;
        *upstream_req.headers_mut() = headers.clone();
        match proxy.upstream.request(upstream_req).await {
            Ok(resp) => {
                proxy
                    .metrics
                    .handled(&method, resp.status(), started.elapsed());
                let (mut parts, incoming) = resp.into_parts();
                drop_hop_by_hop(&mut parts.headers);
                let body = Relayed::new(incoming);
                return Response::from_parts(parts, Body::new(body));
            }
            Err(e) => {
                proxy
                    .metrics
                    .dropped(&method, Dropped::FailedSendingRequest);
                // Its causes on one line: hyper-util's own words say little.
                let e = anyhow::Error::new(e);
                tracing::info!("failed to direct request to {endpoint}: {e:#}");
                proxy.director.failed(endpoint, Instant::now());
            }
        }
    }
    proxy
        .metrics
        .dropped(&method, Dropped::FailedGettingResponse);
    let msg = format!(
        "unable to get response from {} endpoint(s)",
        endpoints.len()
    );
    tracing::info!("{msg}");
    json_message(StatusCode::BAD_GATEWAY, &format!("httpproxy: {msg}"))
}

/// The client's headers as the member gets them: hop-by-hop ones dropped, the client's
/// address appended to `X-Forwarded-For`, the length the body read whole has.
fn forwarded_headers(
    client: &HeaderMap,
    remote: Option<std::net::IpAddr>,
    body_len: usize,
) -> HeaderMap {
    let mut headers = client.clone();
    drop_hop_by_hop(&mut headers);
    headers.remove(CONTENT_LENGTH);
    if body_len > 0 || client.contains_key(CONTENT_LENGTH) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body_len));
    }
    if let Some(ip) = remote {
        let prior: Vec<&str> = client
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let value = if prior.is_empty() {
            ip.to_string()
        } else {
            format!("{}, {ip}", prior.join(", "))
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert("x-forwarded-for", value);
        }
    }
    // An HTTP/1.0 request may name no host; the client then names the member's.
    if headers.get(HOST).is_some_and(HeaderValue::is_empty) {
        headers.remove(HOST);
    }
    headers
}

fn drop_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_and_the_client_is_named() {
        let mut client = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("x-private", "kept, as etcd keeps it"),
            ("x-forwarded-for", "10.0.0.1"),
            ("host", "proxy:2379"),
        ] {
            client.append(name, HeaderValue::from_static(value));
        }
        let ip = "127.0.0.9".parse().ok();
        let out = forwarded_headers(&client, ip, 3);
        for gone in ["connection", "keep-alive", "te", "transfer-encoding"] {
            assert!(!out.contains_key(gone), "{gone}");
        }
        assert_eq!(out["x-private"], "kept, as etcd keeps it");
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(out["content-length"], "3");
        assert_eq!(out["host"], "proxy:2379");
        let out = forwarded_headers(&HeaderMap::new(), ip, 0);
        assert_eq!(out["x-forwarded-for"], "127.0.0.9");
        assert!(!out.contains_key("content-length"));
    }

    /// A proxy over `urls` in that order, every endpoint skipped for a minute after a
    /// failure.
    fn proxy_over(urls: &[String]) -> Arc<Proxy> {
        let director = Arc::new(Director::new(std::time::Duration::from_secs(60)));
        // The order is the shuffle's: find a seed that keeps the given one.
        let seed = (0..1000)
            .find(|&seed| {
                director.set(urls, seed);
                director.available(Instant::now()) == urls
            })
            .expect("a seed keeping the order");
        director.set(urls, seed);
        Arc::new(Proxy {
            director,
            upstream: super::super::transport::client(Default::default(), None),
            readonly: false,
            access: AccessControl::default(),
            metrics: Metrics::default(),
        })
    }

    async fn send(proxy: &Arc<Proxy>, method: Method) -> (StatusCode, String) {
        use tower::ServiceExt as _;
        let req = http::Request::builder()
            .method(method)
            .uri("/v2/keys/a")
            .body(Body::from("value=1"))
            .unwrap();
        let resp = router(Arc::clone(proxy)).oneshot(req).await.unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_request_goes_on_to_the_next_endpoint_and_the_failed_one_is_skipped() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_url = format!("http://{}", live.local_addr().unwrap());
        let app = axum::Router::new().fallback(|body: Bytes| async move {
            format!("member got {}", String::from_utf8_lossy(&body))
        });
        tokio::spawn(async move { axum::serve(live, app).await });
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_url = format!("http://{}", dead.local_addr().unwrap());
        drop(dead);
        let proxy = proxy_over(&[dead_url.clone(), live_url.clone()]);
        let answered = send(&proxy, Method::PUT).await;
        assert_eq!(answered, (StatusCode::OK, "member got value=1".to_string()));
        assert_eq!(proxy.director.available(Instant::now()), [live_url]);
        let text = proxy.metrics.render();
        assert!(
            text.contains("proxying_error=\"failed_sending_request\"} 1"),
            "{text}"
        );
        // With no endpoint left that answers: etcd's 502, then its 503.
        let proxy = proxy_over(&[dead_url]);
        let (status, body) = send(&proxy, Method::GET).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            body,
            r#"{"message":"httpproxy: unable to get response from 1 endpoint(s)"}"#
        );
        let (status, body) = send(&proxy, Method::GET).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            r#"{"message":"httpproxy: zero endpoints currently available"}"#
        );
    }

    #[test]
    fn cors_headers_come_before_the_members() {
        let mut headers = HeaderMap::new();
        headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        prepend_cors(&mut headers, HeaderValue::from_static("http://o"));
        let origins: Vec<_> = headers
            .get_all("access-control-allow-origin")
            .iter()
            .collect();
        assert_eq!(origins, ["http://o", "*"]);
    }
}
