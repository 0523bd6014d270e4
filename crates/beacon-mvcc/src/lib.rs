//! etcd's v3 keyspace as a deterministic state machine, tested without a network.
//!
//! Every write transaction that changes something takes the next *main* revision; its
//! changes are numbered within it by *sub* revision. Each key keeps its history (which
//! revisions put or deleted it, `index.rs`) and each revision its value, so a read at
//! any revision not yet compacted sees the keyspace as it was. Requests and responses
//! are etcd's own messages (`beacon-proto`); refusals are etcd's errors (`error.rs`).
//! The response headers carry only the revision; the server adds the member's ids and
//! Raft term.
//!
//! What is here: `Range` with every field, `Put`, `DeleteRange`, `Txn` (compares, nested
//! transactions, the duplicate-key and operation-count checks) and `Compact`. Only the
//! key index is in memory; values are read from a [`Values`] store and written back in
//! batches (`values.rs`). Leases (`lease.rs`) take their time from the log. A watcher
//! reads its events back from the stored history (`events.rs`); `hash.rs` hashes it as
//! etcd's corruption check does. Alarms (`alarm.rs`) are raised and cleared through the
//! log too, and refuse at apply time what etcd's refuse. So does auth (`auth.rs`, over
//! `beacon-auth`): the Auth service's entries are applied here, and every entry is
//! checked against the user it names.

mod alarm;
mod apply;
mod auth;
mod error;
mod events;
mod hash;
mod index;
mod lease;
mod store;
mod txn;
mod values;

pub use alarm::Alarms;
pub use apply::grpc_code;
pub use error::{Code, MvccError};
pub use index::REVISION_OVERHEAD_BYTES;
pub use lease::{
    lease_key, parse_lease_key, LeaseRecord, LEASES_EXPIRED_PER_CLOCK_MAX, LEASE_TTL_MAX,
};
pub use store::Mvcc;
pub use txn::{check_put_fields, check_txn, TXN_OPS_MAX};
pub use values::{parse_revision_key, revision_key, Changes, MemValues, StorageError, Values};

/// A point in the keyspace's history: the write transaction, and the change within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}
