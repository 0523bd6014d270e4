//! The etcd v2 store as a deterministic state machine.
//!
//! A tree of nodes (files and directories), the etcd index, per-node expiration, the
//! 1000-event history and the watchers it wakes. It changes only through
//! [`Store::apply`], fed from the committed log; everything it needs, time included,
//! arrives inside the [`Command`]. No clock, no I/O, no async runtime.

pub mod auth;
mod cluster;
mod command;
mod history;
mod lookup;
mod name;
mod node;
mod path;
mod snapshot;
mod stats;
mod store;
mod watch;

pub use cluster::ClusterWrite;
pub use command::{Command, Encoded, KeysRequest, Method};
pub use snapshot::{RecoverError, StoreView};
pub use stats::StoreStats;
pub use store::{Applied, Store};
pub use watch::{WatchSink, WatcherId};

/// How many events the history keeps for `waitIndex` watches (etcd's 1000).
pub const HISTORY_EVENTS_MAX: usize = 1000;
