//! The proxy's `/metrics`: etcd's proxy counters (`etcd_proxy_requests_total`,
//! `etcd_proxy_handled_total`, `etcd_proxy_dropped_total`) in Prometheus' text format.
//! Like Prometheus' counter vectors, a family shows once it has a sample.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use axum::response::Response;
use http::StatusCode;

/// Why a request was not forwarded, as etcd labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dropped {
    /// No endpoint was available.
    ZeroEndpoints,
    /// An endpoint could not be sent the request (it is then skipped for a while).
    FailedSendingRequest,
    /// No endpoint answered.
    FailedGettingResponse,
}

impl Dropped {
    fn label(self) -> &'static str {
        match self {
            Dropped::ZeroEndpoints => "zero_endpoints",
            Dropped::FailedSendingRequest => "failed_sending_request",
            Dropped::FailedGettingResponse => "failed_getting_response",
        }
    }
}

/// The counters, by their labels.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    incoming: BTreeMap<String, u64>,
    handled: BTreeMap<(String, u16), u64>,
    dropped: BTreeMap<(String, Dropped), u64>,
}

impl Metrics {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A request arrived.
    pub fn incoming(&self, method: &http::Method) {
        *self
            .counts()
            .incoming
            .entry(method.to_string())
            .or_default() += 1;
    }

    /// A member answered a request with `status`.
    pub fn handled(&self, method: &http::Method, status: StatusCode) {
        let key = (method.to_string(), status.as_u16());
        *self.counts().handled.entry(key).or_default() += 1;
    }

    /// A request, or one attempt at it, was dropped.
    pub fn dropped(&self, method: &http::Method, why: Dropped) {
        *self
            .counts()
            .dropped
            .entry((method.to_string(), why))
            .or_default() += 1;
    }

    /// The text Prometheus scrapes.
    pub fn render(&self) -> String {
        let counts = self.counts();
        let mut out = String::new();
        family(
            &mut out,
            "etcd_proxy_dropped_total",
            "Counter of requests dropped on the proxy.",
            counts.dropped.iter().map(|((method, why), n)| {
                (
                    format!("method=\"{method}\",proxying_error=\"{}\"", why.label()),
                    *n,
                )
            }),
        );
        family(
            &mut out,
            "etcd_proxy_handled_total",
            "Counter of requests fully handled (by authoratitave servers)",
            counts
                .handled
                .iter()
                .map(|((method, code), n)| (format!("code=\"{code}\",method=\"{method}\""), *n)),
        );
        family(
            &mut out,
            "etcd_proxy_requests_total",
            "Counter requests incoming by method.",
            counts
                .incoming
                .iter()
                .map(|(method, n)| (format!("method=\"{method}\""), *n)),
        );
        out
    }

    /// The `/metrics` answer.
    pub fn serve(&self) -> Response {
        crate::http::full(
            StatusCode::OK,
            Some("text/plain; version=0.0.4; charset=utf-8"),
            self.render(),
        )
    }
}

fn family(out: &mut String, name: &str, help: &str, samples: impl Iterator<Item = (String, u64)>) {
    let mut samples = samples.peekable();
    if samples.peek().is_none() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, n) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_show_once_counted() {
        let m = Metrics::default();
        assert_eq!(m.render(), "");
        m.incoming(&http::Method::GET);
        m.incoming(&http::Method::GET);
        m.dropped(&http::Method::PUT, Dropped::ZeroEndpoints);
        let text = m.render();
        assert!(
            text.contains("etcd_proxy_requests_total{method=\"GET\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "etcd_proxy_dropped_total{method=\"PUT\",proxying_error=\"zero_endpoints\"} 1\n"
            ),
            "{text}"
        );
        assert!(!text.contains("handled"), "{text}");
    }
}
