//! Which failed HTTP requests are tried again, within a budget shared by all requests.
//!
//! A request is retried when it surely never reached an instance (the connection was
//! refused or could not be made: safe whatever the method), or when its method is
//! idempotent and the instance answered 503 (or another configured status), or failed
//! before answering (the attempt timed out, or the connection broke, as when the instance
//! is killed with the request in flight; nginx's `proxy_next_upstream error timeout` does
//! the same for idempotent requests). Each retry withdraws
//! from a `TpsBudget` that every first attempt deposits into, so retries stay under 20% of
//! traffic plus 10 a second: when an outage makes everything fail, retries cannot multiply
//! the load on what is left.

use std::future::{ready, Ready};
use std::sync::Arc;

use http::Method;
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::Policy;
use tower::BoxError;

use super::classify::never_sent;
use super::config::RetryConfig;
use super::error::BalanceError;
use super::message::{HasStatus, Replayable};

/// tower retry policy for HTTP requests (`http::Request<Bytes>` or any [`Replayable`]),
/// drawing on a shared budget.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    budget: Arc<TpsBudget>,
    attempts_max: usize,
    /// Statuses that retry an idempotent request (503 unless configured otherwise).
    statuses: Arc<[u16]>,
    /// Attempts made so far for this request; the policy is cloned per request.
    attempts: usize,
}

impl RetryPolicy {
    /// A policy with a fresh budget; `config` must be valid (see `BalanceConfig::validate`).
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            budget: Arc::new(TpsBudget::new(
                config.budget_ttl,
                config.budget_min_per_sec,
                config.budget_ratio,
            )),
            attempts_max: config.attempts_max,
            statuses: config.retry_statuses.as_slice().into(),
            attempts: 1,
        }
    }

    /// Whether this outcome may be retried at all, budget aside.
    fn is_retryable<Res: HasStatus>(
        &self,
        method: &Method,
        result: &Result<Res, BoxError>,
    ) -> bool {
        match result {
            Ok(response) => {
                method.is_idempotent() && self.statuses.contains(&response.status().as_u16())
            }
            Err(error) => {
                never_sent(error.as_ref())
                    || (method.is_idempotent()
                        && matches!(
                            error.downcast_ref(),
                            Some(BalanceError::Timeout(_) | BalanceError::Upstream(_))
                        ))
            }
        }
    }
}

impl<Req: Replayable, Res: HasStatus> Policy<Req, Res, BoxError> for RetryPolicy {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        request: &mut Req,
        result: &mut Result<Res, BoxError>,
    ) -> Option<Self::Future> {
        if self.attempts >= self.attempts_max || !self.is_retryable(request.method(), result) {
            return None;
        }
        // An empty budget means the fleet is failing broadly: answer now instead.
        if !self.budget.withdraw() {
            return None;
        }
        self.attempts += 1;
        Some(ready(()))
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        // tower calls this once on the shared policy before every first attempt, and on
        // this request's own clone (attempts > 1) before each retry.
        if self.attempts == 1 {
            self.budget.deposit();
        }
        if self.attempts >= self.attempts_max {
            return None;
        }
        Some(request.replay())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::io;

    use super::*;
    use bytes::Bytes;
    use http::{Request, Response, StatusCode};

    /// The policy's `clone_request` with the response type pinned for inference.
    fn clone_req(policy: &mut RetryPolicy, request: &Request<Bytes>) -> Option<Request<Bytes>> {
        Policy::<Request<Bytes>, Response<()>, BoxError>::clone_request(policy, request)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(&RetryConfig::default())
    }

    fn request(method: Method) -> Request<Bytes> {
        let mut request = Request::new(Bytes::from_static(b"body"));
        *request.method_mut() = method;
        request
    }

    fn status(code: u16) -> Result<Response<()>, BoxError> {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::from_u16(code).expect("valid status");
        Ok(response)
    }

    fn refused() -> Result<Response<()>, BoxError> {
        let io = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        Err(Box::new(BalanceError::Upstream(Box::new(io))))
    }

    fn broken() -> Result<Response<()>, BoxError> {
        let io = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        Err(Box::new(BalanceError::Upstream(Box::new(io))))
    }

    fn timeout() -> Result<Response<()>, BoxError> {
        Err(Box::new(BalanceError::Timeout(Duration::from_secs(2))))
    }

    fn retries(
        policy: &mut RetryPolicy,
        method: Method,
        mut result: Result<Response<()>, BoxError>,
    ) -> bool {
        let mut request = request(method);
        let mut attempt = policy.clone();
        clone_req(&mut attempt, &request);
        attempt.retry(&mut request, &mut result).is_some()
    }

    #[test]
    fn decisions_by_method_and_outcome() {
        let mut p = policy();
        assert!(retries(&mut p, Method::GET, status(503)));
        assert!(retries(&mut p, Method::PUT, status(503)));
        assert!(retries(&mut p, Method::DELETE, timeout()));
        assert!(
            !retries(&mut p, Method::POST, status(503)),
            "POST may have been applied"
        );
        assert!(
            !retries(&mut p, Method::POST, timeout()),
            "POST may have been applied"
        );
        assert!(
            retries(&mut p, Method::POST, refused()),
            "refused: never sent"
        );
        assert!(
            retries(&mut p, Method::GET, broken()),
            "an idempotent request on a broken connection"
        );
        assert!(
            !retries(&mut p, Method::POST, broken()),
            "a POST on a broken connection may have been applied"
        );
        assert!(!retries(&mut p, Method::GET, status(500)));
        assert!(!retries(&mut p, Method::GET, status(200)));
        let none: Result<Response<()>, BoxError> = Err(Box::new(BalanceError::NoInstances));
        assert!(!retries(&mut p, Method::GET, none));
    }

    #[test]
    fn configured_statuses_retry_idempotent_requests_only() {
        let config = RetryConfig {
            retry_statuses: vec![500, 503],
            ..RetryConfig::default()
        };
        let mut p = RetryPolicy::new(&config);
        assert!(retries(&mut p, Method::GET, status(500)));
        assert!(!retries(&mut p, Method::POST, status(500)));
        assert!(!retries(&mut p, Method::GET, status(502)));
    }

    #[test]
    fn at_most_three_attempts() {
        let mut p = policy();
        let mut request = request(Method::GET);
        let mut attempt = p.clone();
        assert!(clone_req(&mut attempt, &request).is_some());
        assert!(attempt.retry(&mut request, &mut status(503)).is_some());
        assert!(clone_req(&mut attempt, &request).is_some());
        assert!(attempt.retry(&mut request, &mut status(503)).is_some());
        assert!(
            clone_req(&mut attempt, &request).is_none(),
            "no copy needed for the last attempt"
        );
        assert!(attempt.retry(&mut request, &mut status(503)).is_none());
        // The shared policy still starts each new request at its first attempt.
        assert!(retries(&mut p, Method::GET, status(503)));
    }

    #[test]
    fn a_clone_keeps_method_uri_headers_and_body() {
        let mut original = Request::put("http://placeholder/v2/keys/a?x=1")
            .header("x-trace", "7")
            .body(Bytes::from_static(b"value=1"))
            .expect("valid request");
        *original.version_mut() = http::Version::HTTP_11;
        let clone = clone_req(&mut policy(), &original).expect("first attempt is cloned");
        assert_eq!(clone.method(), Method::PUT);
        assert_eq!(clone.uri(), original.uri());
        assert_eq!(clone.headers()["x-trace"], "7");
        assert_eq!(clone.body(), original.body());
    }

    #[test]
    fn the_budget_allows_a_fifth_of_traffic_plus_the_reserve_then_refuses() {
        let p = policy();
        let mut allowed = 0;
        for _ in 0..100 {
            let mut request = request(Method::GET);
            let mut attempt = p.clone();
            clone_req(&mut attempt, &request);
            // Every request fails and keeps asking, so the budget is the only limit.
            while attempt.retry(&mut request, &mut status(503)).is_some() {
                allowed += 1;
                attempt.attempts = 1;
            }
        }
        // 20% of 100 first attempts, plus 10/s over the 10 s window held in reserve.
        assert!((115..=125).contains(&allowed), "{allowed} retries allowed");
        assert!(!p.budget.withdraw(), "the budget is spent");
    }
}
