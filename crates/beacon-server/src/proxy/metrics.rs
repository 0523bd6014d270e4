//! The proxy's `/metrics`: etcd's proxy counters (`etcd_proxy_requests_total`,
//! `etcd_proxy_handled_total`, `etcd_proxy_dropped_total`) and its histogram of the
//! time until a member's answer began (`etcd_proxy_handling_duration_seconds`), in
//! Prometheus' text format. Like Prometheus' vectors, a family shows once it has a
//! sample.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use axum::response::Response;
use http::StatusCode;

/// Why a request was not forwarded, as etcd labels it. Declared in the order of the
/// labels, which is the order Prometheus lists samples in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dropped {
    /// No endpoint answered.
    FailedGettingResponse,
    /// An endpoint could not be sent the request (it is then skipped for a while).
    FailedSendingRequest,
    /// No endpoint was available.
    ZeroEndpoints,
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
    /// By code, then method: Prometheus orders samples by their labels' names.
    handled: BTreeMap<(u16, String), u64>,
    dropped: BTreeMap<(String, Dropped), u64>,
    handling: BTreeMap<String, Histogram>,
}

/// etcd's buckets: 0.5 ms doubling 13 times, in seconds.
const BUCKETS: usize = 13;

fn bucket_bound(i: usize) -> f64 {
    0.0005 * f64::from(1u32 << i)
}

/// One method's handling times.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations at or under each bound (not cumulated).
    buckets: [u64; BUCKETS],
    count: u64,
    sum_seconds: f64,
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

    /// A member answered a request with `status`, `took` after it arrived.
    pub fn handled(&self, method: &http::Method, status: StatusCode, took: Duration) {
        let mut counts = self.counts();
        let key = (status.as_u16(), method.to_string());
        *counts.handled.entry(key).or_default() += 1;
        let h = counts.handling.entry(method.to_string()).or_default();
        let seconds = took.as_secs_f64();
        if let Some(i) = (0..BUCKETS).find(|&i| seconds <= bucket_bound(i)) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum_seconds += seconds;
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
                .map(|((code, method), n)| (format!("code=\"{code}\",method=\"{method}\""), *n)),
        );
        if !counts.handling.is_empty() {
            let name = "etcd_proxy_handling_duration_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Bucketed histogram of handling time of successful events \
                 (non-watches), by method (GET/PUT etc.).\n# TYPE {name} histogram"
            );
            for (method, h) in &counts.handling {
                histogram_samples(&mut out, method, h);
            }
        }
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

fn histogram_samples(out: &mut String, method: &str, h: &Histogram) {
    let name = "etcd_proxy_handling_duration_seconds";
    let mut cumulated = 0;
    for (i, n) in h.buckets.iter().enumerate() {
        cumulated += n;
        let le = bucket_bound(i);
        let _ = writeln!(
            out,
            "{name}_bucket{{method=\"{method}\",le=\"{le}\"}} {cumulated}"
        );
    }
    let count = h.count;
    let _ = writeln!(
        out,
        "{name}_bucket{{method=\"{method}\",le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(out, "{name}_sum{{method=\"{method}\"}} {}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count{{method=\"{method}\"}} {count}");
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
        m.handled(&http::Method::GET, StatusCode::OK, Duration::from_millis(3));
        let text = m.render();
        let bucket = "etcd_proxy_handling_duration_seconds_bucket{method=\"GET\",le=";
        assert!(text.contains(&format!("{bucket}\"0.002\"}} 0\n")), "{text}");
        assert!(text.contains(&format!("{bucket}\"0.004\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("{bucket}\"2.048\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("{bucket}\"+Inf\"}} 1\n")), "{text}");
    }
}
