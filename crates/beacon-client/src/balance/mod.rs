//! The caller's side of service discovery: balance requests over discovered instances.
//!
//! Finagle's client stack, on tower's interfaces. Discovery (a tower `Discover` of
//! `Change<key, target>`) feeds a power-of-two-choices balancer over peak-EWMA load; failure
//! accrual ejects an instance that fails too often and probes it back after a backoff; panic
//! mode uses every instance when most are ejected; each attempt has a timeout; failed requests
//! that are safe to repeat are retried within a budget so retries cannot snowball into an
//! outage. [`HttpClient`] puts it together over HTTP/1, each instance with its own
//! keep-alive connections; [`Balanced`] is the protocol-free stack a gRPC channel can reuse.

mod accrual;
mod backoff;
mod board;
mod bulletin;
mod classify;
mod config;
mod error;
mod feed;
#[cfg(feature = "grpc")]
mod grpc;
mod health;
mod http;
mod message;
mod p2c;
mod pool;
mod retry;
mod shared;
mod stack;
mod untried;
mod window;

pub use board::{Board, HealthState, InstanceState};
pub use bulletin::{Bulletin, PROBE_GRACE};
pub use classify::{Classify, ErrorsOnly, Outcome, ServerErrors};
pub use config::{AccrualConfig, BackoffConfig, BalanceConfig, RetryConfig};
pub use error::BalanceError;
#[cfg(feature = "grpc")]
pub use grpc::GrpcChannel;
pub use http::HttpClient;
pub use message::{HasStatus, Replayable};
pub use pool::{connect, ConnectError};
pub use retry::RetryPolicy;
pub use stack::Balanced;
