//! The top-level dispatcher, behaving as etcd's Go stack does before any handler:
//! a plain-HTTP request naming a Host that `--host-whitelist` does not list refused
//! (`http::access`), CORS headers on every answer, `OPTIONS` answered at once, the path percent-decoded
//! (a bad escape is a bare 400), unclean paths redirected with 301 (`ServeMux`), then
//! exact and subtree routes as etcd registers them; everything else is a 404.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use http::header::{HeaderValue, CONTENT_LENGTH};
use http::StatusCode;
use http_body::Body as _;

use crate::api;
use crate::api_v2::auth::access::ClientCertNames;
use crate::api_v2::{auth, keys, members, stats};
use crate::gateway;
use crate::grpc::Services;
use crate::http::access::Secure;
use crate::http::gopath::{clean_rooted, escape_path, mux_clean, unescape};
use crate::http::{bad_request_close, full, go_error, moved_permanently, not_found};
use crate::state::AppState;

/// What the client API's handlers are served with: the state, and the v3 services the
/// JSON gateway calls.
#[derive(Clone)]
struct Client {
    state: Arc<AppState>,
    services: Services,
    apis: Apis,
}

/// Which of the client port's HTTP APIs are served.
#[derive(Clone, Copy, Debug)]
pub struct Apis {
    /// `--enable-v2`: with it off, etcd registers none of the `/v2/` handlers, so its
    /// mux answers Go's 404 there.
    pub v2: bool,
    /// `--enable-grpc-gateway`: with it off, etcd registers no `/v3/` handler, so its
    /// mux answers Go's 404 there (`/v3` included, which it otherwise redirects).
    pub gateway: bool,
}

impl Apis {
    /// Every API, as the tests of the handlers serve them.
    pub const ALL: Apis = Apis {
        v2: true,
        gateway: true,
    };
}

/// The router serving the client API over `state`: the `apis` asked for, the v3 JSON
/// gateway over `services`.
pub fn router(state: Arc<AppState>, services: Services, apis: Apis) -> Router {
    Router::new().fallback(dispatch).with_state(Client {
        state,
        services,
        apis,
    })
}

/// The router of `--listen-metrics-urls`: `/metrics` and `/health` only, as etcd's
/// metrics listener (its `ServeMux` answers anything else with Go's 404).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new().fallback(dispatch_metrics).with_state(state)
}

async fn dispatch_metrics(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match req.uri().path() {
        "/metrics" => api::metrics::serve(&state),
        "/health" => api::health::serve(&state, req.method()).await,
        _ => not_found(),
    }
}

async fn dispatch(State(client): State<Client>, req: Request) -> Response {
    let access = &client.state.access;
    let secure = req.extensions().get::<Secure>().is_some();
    if secure && gateway_would_ignore_common_name(&client, &req) {
        return go_error(
            StatusCode::BAD_REQUEST,
            "CommonName of client sending a request against gateway will be ignored and not \
             used as expected",
        );
    }
    if !secure {
        // Go's `Request.Host`: the Host header, or an absolute URL's authority.
        let host = match req.uri().authority() {
            Some(authority) => authority.as_str(),
            None => req
                .headers()
                .get(http::header::HOST)
                .map_or("", |h| h.to_str().unwrap_or("")),
        };
        if let Some(refusal) = access.refusal(host) {
            return refusal;
        }
    }
    let head = req.method() == http::Method::HEAD;
    let origin = access.cors_origin(req.headers().get(http::header::ORIGIN));
    let mut resp = route(&client, req).await;
    // Go rejects a bad request line before etcd's CORS handler runs.
    if let Some(origin) = origin.filter(|_| resp.headers().get(http::header::CONNECTION).is_none())
    {
        add_cors(&mut resp, origin);
    }
    if head {
        strip_body_for_head(&mut resp);
    }
    resp
}

/// etcd refuses a gateway request over TLS whose client certificate names a user when
/// `--client-cert-auth` and auth are on: the gateway's own connection would not carry
/// that name, so the request would not run as that user.
fn gateway_would_ignore_common_name(client: &Client, req: &Request) -> bool {
    let path = req.uri().path();
    client.apis.gateway
        && client.state.client_cert_auth
        && (path.starts_with("/v3/") || path.starts_with("/v3beta/"))
        && req.extensions().get::<ClientCertNames>().is_some()
        && client
            .state
            .consensus
            .mvcc()
            .read()
            .is_ok_and(|mvcc| mvcc.auth().is_enabled())
}

async fn route(client: &Client, req: Request) -> Response {
    let state = client.state.as_ref();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    if method == http::Method::OPTIONS {
        return full(StatusCode::OK, None, Body::empty());
    }
    let raw_path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or("");
    // The decoded path is bytes: a key may hold any of them, as a Go string does.
    let path = match unescape(raw_path, false) {
        Ok(p) => p,
        Err(_) => return bad_request_close(),
    };
    let clean = mux_clean(&path);
    if clean != path[..] {
        let mut location = escape_path(&clean);
        if !raw_query.is_empty() {
            location.push('?');
            location.push_str(raw_query);
        }
        return moved_permanently(&method, &location);
    }
    if let Some(rpc) = gateway::route(clean.as_bytes()).filter(|_| client.apis.gateway) {
        let token = parts.headers.get(http::header::AUTHORIZATION);
        return gateway::serve(state, &client.services, &method, rpc, token, body).await;
    }
    if !client.apis.v2 && clean.as_bytes().starts_with(b"/v2/") {
        return not_found();
    }
    match clean.as_bytes() {
        b"/version" => api::version::serve(&method),
        b"/health" => api::health::serve(state, &method).await,
        b"/metrics" => api::metrics::serve(state),
        b"/v2/stats/store" => stats::serve(state, &method, "store").await,
        b"/v2/stats/self" => stats::serve(state, &method, "self").await,
        b"/v2/stats/leader" => stats::serve(state, &method, "leader").await,
        b"/v2/machines" => members::serve_machines(state, &method),
        b"/v2/members" => members::serve_members(state, &method, &parts, "", body).await,
        p if p.starts_with(b"/v2/members/") => {
            // Member ids are hex: other bytes only make an id that is not found.
            let rest = String::from_utf8_lossy(&p[b"/v2/members/".len()..]);
            members::serve_members(state, &method, &parts, &rest, body).await
        }
        p if p.starts_with(b"/v2/auth/") => {
            auth::serve(state, &method, &parts, &p[b"/v2/auth".len()..], body).await
        }
        // etcd's `ServeMux` serves the gateway's subtree at `/v3/`.
        b"/v3" if client.apis.gateway => moved_permanently(&method, "/v3/"),
        p if p == b"/v2/keys" || p.starts_with(b"/v2/keys/") => {
            let sent = &p[b"/v2/keys".len()..];
            let key = clean_rooted(sent);
            keys::serve(&client.state, method, &parts, raw_query, (key, sent), body).await
        }
        _ => not_found(),
    }
}

/// etcd's CORS headers, naming `origin` (`*` by default, see `http::access`).
fn add_cors(resp: &mut Response, origin: HeaderValue) {
    let h = resp.headers_mut();
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    h.insert("access-control-allow-origin", origin);
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
}

/// Go answers HEAD with the headers of the GET, including the length the body would
/// have had, and no body.
fn strip_body_for_head(resp: &mut Response) {
    if let Some(len) = resp.body().size_hint().exact() {
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    *resp.body_mut() = Body::empty();
}
