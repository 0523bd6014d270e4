//! What a request's result says about the instance: fine, failing, or unreachable.
//!
//! HTTP servers report their own trouble in the status; gRPC reports it as an error (a
//! tonic `Status`), so its classifier only looks at errors. Unreachable (the connection
//! could not be made) is told apart because it ejects at once, as Finagle's fail-fast does:
//! a refused connection fails in microseconds, so waiting for five of them would let a
//! dead instance look like the least loaded one and draw every retry to itself.

use std::error::Error as StdError;
use std::io;

use tower::BoxError;

use super::message::HasStatus;

/// What one request's result says about the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The instance did its job.
    Success,
    /// The instance failed the request.
    Failure,
    /// The instance could not be reached at all: eject now.
    Unreachable,
}

/// Judges an instance's responses and errors.
pub trait Classify<Res, E>: Clone + Send + Sync + 'static {
    /// What a response says; by default every response is a success.
    fn response(&self, _response: &Res) -> Outcome {
        Outcome::Success
    }

    /// What an error says; by default every error is a failure.
    fn error(&self, _error: &E) -> Outcome {
        Outcome::Failure
    }
}

/// HTTP: a 5xx status is a failure, a connect error is unreachable.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrors;

impl<Res: HasStatus> Classify<Res, BoxError> for ServerErrors {
    fn response(&self, response: &Res) -> Outcome {
        if response.status().is_server_error() {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }

    fn error(&self, error: &BoxError) -> Outcome {
        error_outcome(error)
    }
}

/// Every response is a success and every error a failure (gRPC, where failures are errors).
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsOnly;

impl<Res, E> Classify<Res, E> for ErrorsOnly {}

/// What an error says: unreachable when nothing was sent, a failure otherwise.
pub(crate) fn error_outcome(error: &BoxError) -> Outcome {
    if never_sent(error.as_ref()) {
        Outcome::Unreachable
    } else {
        Outcome::Failure
    }
}

/// Whether an error surely happened before the request was sent: it could not connect.
pub(crate) fn never_sent(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<super::pool::ConnectError>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_and_errors() {
        let response = |code: u16| {
            let mut r = http::Response::new(());
            *r.status_mut() = http::StatusCode::from_u16(code).expect("valid status");
            r
        };
        assert_eq!(ServerErrors.response(&response(200)), Outcome::Success);
        assert_eq!(ServerErrors.response(&response(404)), Outcome::Success);
        assert_eq!(ServerErrors.response(&response(500)), Outcome::Failure);
        assert_eq!(ServerErrors.response(&response(503)), Outcome::Failure);
        let refused: BoxError =
            Box::new(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(
            Classify::<http::Response<()>, _>::error(&ServerErrors, &refused),
            Outcome::Unreachable
        );
        let reset: BoxError = Box::new(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(
            Classify::<http::Response<()>, _>::error(&ServerErrors, &reset),
            Outcome::Failure
        );
        assert_eq!(
            Classify::<http::Response<()>, BoxError>::response(&ErrorsOnly, &response(500)),
            Outcome::Success
        );
    }
}
