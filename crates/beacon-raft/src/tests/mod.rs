//! In-crate tests: openraft's storage suite on the fjall log store, snapshot file
//! encoding, whole-node restarts, snapshots and damaged data directories, and the
//! peer router against forged and mutated messages, and the peer transport over an
//! injected network.

mod backup;
mod clock;
mod coalesce;
mod connection_end;
mod direct;
mod disk;
mod forward;
mod keyspace;
mod log_reads;
mod net;
mod node;
mod peer;
mod purge;
mod snapshot_builder;
mod snapshot_file;
mod snapshot_mutations;
mod storage_suite;

use std::path::Path;

use beacon_store::{Command, KeysRequest, Method};

/// A PUT of `value` at `key`.
pub(crate) fn put(key: &str, value: &str) -> Command {
    let mut req = KeysRequest::new(Method::Put, key, 1_000);
    req.value = value.into();
    Command::Keys(req)
}

/// A node config on `dir` with fast timeouts.
pub(crate) fn config(dir: &Path) -> crate::RaftConfig {
    let mut c = crate::RaftConfig::new(dir, 1, "http://127.0.0.1:2380");
    c.heartbeat_interval_ms = 50;
    c.election_timeout_ms = 300;
    c
}
