//! `beaconctl proxy`: a local HTTP/1.1 reverse proxy over a discovered service, so a
//! service in any language gets the client framework (balancing, failure accrual,
//! retries, pooled connections) without linking it.
//!
//! [`server`] accepts connections and bounds them; [`forward`] turns one request into
//! a call on the balanced client and its answer (or failure) into a response.

pub mod forward;
pub mod server;
