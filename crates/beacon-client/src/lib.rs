//! An async client for etcd's v2 HTTP API, as Beacon and etcd 3.4 serve it, and the
//! parts of the v3 gRPC API that service discovery needs ([`V3Client`]).
//!
//! [`Client`] holds a list of endpoints and tries them in turn, as etcd's own Go client
//! does, when one cannot be reached. Every call but a watch has a deadline. Answers are
//! a [`Response`] (the [`Event`] plus `X-Etcd-Index`); failures are an [`Error`] that
//! tells an etcd error (parsed from the body, with its HTTP status) from a transport one.
//!
//! [`balance`] is the caller's side of service discovery: a balancing, failure-accruing,
//! retrying client over a tower `Discover` of instances. [`Registration`] and
//! [`Discovery`] work through either API: give them a [`Client`] or a [`V3Client`].

pub mod balance;
mod client;
pub mod discovery;
mod error;
mod health;
mod keys;
mod members;
mod options;
mod registration;
mod response;
mod tls_connect;
mod transport;
mod url;
pub mod v3;
mod watch;

pub use beacon_api::{Action, ErrorCode, EtcdError, Event, NodeExtern};
pub use beacon_tls::TlsInfo;
pub use client::Client;
pub use discovery::{Discovery, DiscoveryConfig, Instance, InstanceInfo};
pub use error::{ClusterErrors, EndpointError, EndpointErrorKind, Error};
pub use health::Health;
pub use members::Member;
pub use options::{DeleteOptions, GetOptions, PrevExist, SetOptions, WatchOptions};
pub use registration::{Registration, RegistrationConfig, Registry};
pub use response::Response;
pub use v3::V3Client;
pub use watch::Watcher;
