//! Which responses count as an instance's failure, besides errors.
//!
//! HTTP servers report their own trouble in the status; gRPC reports it as an error (a
//! tonic `Status`), so its classifier only counts errors.

/// Decides whether a response (not an error) is the instance failing.
pub trait Classify<Res>: Clone + Send + Sync + 'static {
    /// True when the response should count against the instance.
    fn is_failure(&self, response: &Res) -> bool;
}

/// HTTP: any 5xx status is the instance failing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrors;

impl<B> Classify<http::Response<B>> for ServerErrors {
    fn is_failure(&self, response: &http::Response<B>) -> bool {
        response.status().is_server_error()
    }
}

/// Only errors count; every response is a success (gRPC, where failures are errors).
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsOnly;

impl<Res> Classify<Res> for ErrorsOnly {
    fn is_failure(&self, _: &Res) -> bool {
        false
    }
}

/// A plain function as a classifier.
impl<Res: 'static> Classify<Res> for fn(&Res) -> bool {
    fn is_failure(&self, response: &Res) -> bool {
        self(response)
    }
}
