//! etcd's v2 API: keys, watches, members, machines, stats and auth.

pub mod auth;
pub mod error;
pub mod keys;
pub mod members;
pub mod params;
pub mod stats;
pub mod v2v3;
pub mod watch;
