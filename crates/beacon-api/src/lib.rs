//! Beacon's wire vocabulary: etcd v2's error codes and JSON shapes.
//!
//! No logic and no I/O live here; the store, the server and (later) the client and
//! `beaconctl` all speak these types, so that etcd's JSON is defined in one place.

pub mod byte_string;
pub mod error;
pub mod go_duration;
pub mod go_json;
pub mod node_list;
pub mod peer_url;
pub mod time;
pub mod v2;

pub use byte_string::ByteString;
pub use error::{ErrorCode, EtcdError};
pub use node_list::{NodeExtern, NodeList};
pub use v2::{Action, Event};
