//! A demo service for Beacon's client framework.
//!
//! `beacon-instance` is one instance of a service: an HTTP server that registers itself
//! in the registry with [`beacon_client::Registration`] and answers every request with
//! its id, optionally slowly or failing some requests. The README's demo, the client
//! framework's integration tests and the chaos bench start several of them.
