//! Sending one request: endpoints tried in turn from the pinned one, failures classified.

use std::error::Error as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, Url};

use crate::client::Client;
use crate::error::{ClusterErrors, EndpointError, EndpointErrorKind, Error};

/// A request before an endpoint is chosen.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) method: Method,
    /// Builds the URL (without query) for an endpoint.
    pub(crate) url: fn(&Url, &str) -> Url,
    /// The argument of `url`: a key or a path.
    pub(crate) target: String,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) form: Option<Vec<(&'static str, String)>>,
    /// A JSON body (the members API); `form` takes precedence.
    pub(crate) json: Option<String>,
    /// `None`: no deadline (watches).
    pub(crate) timeout: Option<Duration>,
    /// A request that may have changed the store is not sent again to another endpoint
    /// once it may have arrived, lest it apply twice (etcd's client calls it one-shot).
    pub(crate) one_shot: bool,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) endpoint: String,
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Client {
    /// Sends `req` to the pinned endpoint, then to the others in turn while they fail.
    pub(crate) async fn send(&self, req: &Request) -> Result<RawResponse, Error> {
        let endpoints = self.read_endpoints();
        if endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let pinned = self.inner.pinned.load(Ordering::Relaxed) % endpoints.len();
        let mut errors = Vec::new();
        for step in 0..endpoints.len() {
            let k = (pinned + step) % endpoints.len();
            let endpoint = &endpoints[k];
            match self.send_to(endpoint, req).await {
                Ok(raw) if raw.status >= 500 => {
                    errors.push(endpoint_error(
                        endpoint,
                        EndpointErrorKind::Server(raw.status),
                    ));
                    if req.one_shot {
                        break;
                    }
                }
                Ok(raw) => {
                    self.inner.pinned.store(k, Ordering::Relaxed);
                    return Ok(raw);
                }
                Err(kind) => {
                    let sent = !matches!(
                        kind,
                        EndpointErrorKind::ConnectionRefused | EndpointErrorKind::Connect(_)
                    );
                    errors.push(endpoint_error(endpoint, kind));
                    if sent && req.one_shot {
                        self.inner
                            .pinned
                            .store((k + 1) % endpoints.len(), Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
        Err(Error::Unavailable(ClusterErrors(errors)))
    }

    /// Sends `req` to `endpoint` only, whatever the client's endpoints are.
    pub(crate) async fn send_one(
        &self,
        endpoint: &Url,
        req: &Request,
    ) -> Result<RawResponse, Error> {
        self.send_to(endpoint, req)
            .await
            .map_err(|kind| Error::Unavailable(ClusterErrors(vec![endpoint_error(endpoint, kind)])))
    }

    async fn send_to(
        &self,
        endpoint: &Url,
        req: &Request,
    ) -> Result<RawResponse, EndpointErrorKind> {
        let mut url = (req.url)(endpoint, &req.target);
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(req.query.iter());
        }
        let mut builder = self.inner.http.request(req.method.clone(), url);
        if let Some(form) = &req.form {
            let body = form_body(form);
            builder = builder
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body);
        } else if let Some(json) = &req.json {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json.clone());
        }
        if let Some(timeout) = req.timeout {
            builder = builder.timeout(timeout);
        }
        let start = std::time::Instant::now();
        let resp = builder.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(classify)?.to_vec();
        // The timer may miss a deadline shorter than its resolution; a late answer is
        // still a timeout, as it is for Go's client.
        if req.timeout.is_some_and(|t| start.elapsed() > t) {
            return Err(EndpointErrorKind::Timeout);
        }
        Ok(RawResponse {
            endpoint: endpoint.as_str().trim_end_matches('/').to_string(),
            status,
            headers,
            body,
        })
    }
}

fn form_body(form: &[(&'static str, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish()
}

fn endpoint_error(endpoint: &Url, kind: EndpointErrorKind) -> EndpointError {
    let host = endpoint.host_str().unwrap_or_default();
    let port = endpoint.port_or_known_default().unwrap_or(80);
    EndpointError {
        endpoint: endpoint.as_str().trim_end_matches('/').to_string(),
        authority: format!("{host}:{port}"),
        kind,
    }
}

/// Sorts a reqwest failure into the kinds etcdctl tells apart.
fn classify(err: reqwest::Error) -> EndpointErrorKind {
    if err.is_timeout() {
        return EndpointErrorKind::Timeout;
    }
    let mut source = err.source();
    let mut innermost = err.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return EndpointErrorKind::ConnectionRefused;
            }
            if io.kind() == std::io::ErrorKind::TimedOut {
                return EndpointErrorKind::Timeout;
            }
        }
        innermost = s.to_string();
        source = s.source();
    }
    if err.is_connect() {
        EndpointErrorKind::Connect(innermost)
    } else {
        EndpointErrorKind::Other(innermost)
    }
}
