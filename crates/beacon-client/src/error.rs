//! What can go wrong with a call: etcd said no, or no endpoint could be asked.

use std::fmt;

use beacon_api::EtcdError;

/// The failure of one call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// etcd answered with an error body; shown as etcd's Go client shows it.
    #[error("{}: {} ({}) [{}]", .error.code.code(), .error.code.message(), .error.cause, .error.index)]
    Etcd {
        /// The HTTP status of the answer.
        status: u16,
        /// The error etcd sent.
        error: EtcdError,
    },
    /// No endpoint gave an answer; one entry per endpoint tried, in order.
    #[error("{0}")]
    Unavailable(ClusterErrors),
    /// An endpoint answered with something that is not etcd's JSON.
    #[error("client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint")]
    InvalidResponse {
        /// The endpoint that answered.
        endpoint: String,
        /// Why the answer was rejected.
        reason: String,
    },
    /// The members API refused a change; its `message`, as etcd's client shows it.
    #[error("{message}")]
    Members {
        /// The HTTP status of the answer.
        status: u16,
        /// The `message` of the answer.
        message: String,
    },
    /// The members API answered with a status etcd's client does not expect.
    #[error("unexpected status code {0}")]
    UnexpectedStatus(u16),
    /// An endpoint URL could not be parsed.
    #[error("invalid endpoint {0:?}")]
    InvalidEndpoint(String),
    /// The TLS files could not make a client configuration.
    #[error("{0}")]
    Tls(String),
    /// The client was given no endpoints.
    #[error("client: no endpoints available")]
    NoEndpoints,
    /// A v3 member refused the call; shown as etcd's Go client shows it (its message,
    /// e.g. `etcdserver: requested lease not found`).
    #[error("{}", .0.message())]
    Grpc(tonic::Status),
}

impl Error {
    /// The etcd error, if etcd answered with one.
    pub fn etcd(&self) -> Option<&EtcdError> {
        match self {
            Error::Etcd { error, .. } => Some(error),
            _ => None,
        }
    }

    /// True when the failure is an etcd error with this code.
    pub fn is_code(&self, code: beacon_api::ErrorCode) -> bool {
        self.etcd().is_some_and(|e| e.code == code)
    }

    /// The gRPC status, if a v3 member refused the call.
    pub fn grpc(&self) -> Option<&tonic::Status> {
        match self {
            Error::Grpc(status) => Some(status),
            _ => None,
        }
    }

    /// True when every endpoint failed before sending a request (nothing reached etcd).
    pub fn is_connection_error(&self) -> bool {
        match self {
            Error::Unavailable(errs) => errs.0.iter().all(|e| {
                matches!(
                    e.kind,
                    EndpointErrorKind::ConnectionRefused | EndpointErrorKind::Connect(_)
                )
            }),
            _ => false,
        }
    }
}

/// The per-endpoint failures of a call that no endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterErrors(pub Vec<EndpointError>);

impl ClusterErrors {
    /// One line per endpoint, `error #i: ...`, as etcdctl prints under its error.
    pub fn detail(&self) -> String {
        self.0
            .iter()
            .enumerate()
            .map(|(i, e)| format!("error #{i}: {e}\n"))
            .collect()
    }
}

impl fmt::Display for ClusterErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // etcd's Go client puts a newline after every entry; etcdctl's output keeps it.
        f.write_str("client: etcd cluster is unavailable or misconfigured")?;
        for (i, e) in self.0.iter().enumerate() {
            writeln!(f, "; error #{i}: {e}")?;
        }
        Ok(())
    }
}

/// Why one endpoint gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError {
    /// The endpoint, e.g. `http://127.0.0.1:2379`.
    pub endpoint: String,
    /// `host:port` of the endpoint, as Go's dialer names it.
    pub authority: String,
    /// What happened.
    pub kind: EndpointErrorKind,
}

/// The kinds of per-endpoint failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointErrorKind {
    /// Nothing listens there.
    ConnectionRefused,
    /// Another failure to connect (no route, DNS, ...), with its text.
    Connect(String),
    /// No answer within the per-request timeout.
    Timeout,
    /// The member answered 5xx: it has no leader or failed internally.
    Server(u16),
    /// The request failed after it was sent, with the failure's text.
    Other(String),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Worded as etcd's Go client words the same failures, so etcdctl's output matches.
        match &self.kind {
            EndpointErrorKind::ConnectionRefused => {
                write!(
                    f,
                    "dial tcp {}: connect: connection refused",
                    self.authority
                )
            }
            EndpointErrorKind::Connect(text) => write!(f, "dial tcp {}: {text}", self.authority),
            EndpointErrorKind::Timeout => write!(
                f,
                "client: endpoint {} exceeded header timeout",
                self.endpoint
            ),
            EndpointErrorKind::Server(500 | 503) => {
                write!(f, "client: etcd member {} has no leader", self.endpoint)
            }
            EndpointErrorKind::Server(status) => write!(
                f,
                "client: etcd member {} returns server error [{}]",
                self.endpoint,
                reqwest::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Unknown")
            ),
            EndpointErrorKind::Other(text) => f.write_str(text),
        }
    }
}
