//! `beaconctl proxy`: a local HTTP/1.1 reverse proxy over a discovered service, so a
//! service in any language gets the client framework (balancing, failure accrual,
//! retries, pooled connections) without linking it.
//!
//! The framework's balancer, accrual and retries decide where each request goes; the
//! bytes move on the proxy's own data path, httparse on both sockets as nginx works,
//! because hyper's server and client halves alone cost more instructions per request
//! than all of nginx (`bench/proxy-cost`). [`server`] accepts connections and bounds
//! them; [`conn`] serves one client connection; [`upstream`] is one instance's service
//! (its keep-alive connections) under the balancer; [`h1`] and [`chunked`] are the
//! HTTP/1.1 rules, tested without sockets.

pub mod chunked;
pub mod conn;
pub mod h1;
pub mod server;
pub mod upstream;
