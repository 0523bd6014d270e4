//! etcd's v2 API: keys, watches, members, machines and stats.

pub mod error;
pub mod keys;
pub mod members;
pub mod params;
pub mod stats;
pub mod watch;
