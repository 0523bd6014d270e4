//! What a balanced request can fail with, beyond the instance's own errors.

use std::time::Duration;

use tower::BoxError;

/// A balanced request's failure; tower's layers carry it boxed as a [`BoxError`].
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    /// Discovery knows no instance, so the request was not sent anywhere.
    #[error("no instance of the service is known to discovery")]
    NoInstances,
    /// The attempt got no response head in time.
    #[error("no response within the attempt timeout of {0:?}")]
    Timeout(Duration),
    /// The instance (or the connection to it) failed the request.
    #[error("the instance failed the request: {0}")]
    Upstream(#[source] BoxError),
    /// Too many requests were already waiting for an instance to take them.
    #[error("{0} requests are already waiting for an instance")]
    Overloaded(usize),
    /// The client was built outside a tokio runtime, which its tasks need.
    #[error("the balancer must be built inside a tokio runtime")]
    NoRuntime,
    /// The configuration was rejected before anything started.
    #[error("invalid balance configuration: {0}")]
    InvalidConfig(&'static str),
}

impl BalanceError {
    /// Gives an attempt's error its place in this enum, keeping the original as source.
    pub(crate) fn from_attempt(error: BoxError) -> BoxError {
        if error.is::<BalanceError>() {
            return error;
        }
        Box::new(BalanceError::Upstream(error))
    }
}
