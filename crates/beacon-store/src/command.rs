//! What travels through the Raft log: a v2 keys write, the leader's clock, a v2 auth
//! write, or a v3 request for the other store (the MVCC keyspace), which this one never
//! applies.

use beacon_api::ByteString;
use serde::{Deserialize, Serialize};

/// One entry of the replicated log, applied to the store in log order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A v2 keys request that goes through consensus (etcd's `RequestV2`).
    Keys(KeysRequest),
    /// The leader's wall clock: every key whose expiration is at or before `time_ns`
    /// expires when this entry is applied, so all replicas expire the same keys at
    /// the same index (etcd's `SYNC` request).
    Sync {
        /// Unix nanoseconds on the proposing leader.
        time_ns: i64,
    },
    /// A v3 request (`beacon-proto`'s `V3Request`, encoded): applied by the MVCC
    /// keyspace, not by this store (etcd 3.4 keeps the two keyspaces apart too).
    V3(Encoded),
    /// A v2 auth write (etcd's writes under `/2`): users, roles, the switch. Passwords
    /// in it are hashed already; the log never holds one in the clear.
    Auth(crate::auth::AuthWrite),
}

/// A protobuf message carried as bytes, which the log's JSON holds as base64.
#[derive(Clone, PartialEq, Eq)]
pub struct Encoded(pub Vec<u8>);

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoded({} bytes)", self.0.len())
    }
}

impl Serialize for Encoded {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Encoded {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Encoded)
            .map_err(serde::de::Error::custom)
    }
}

/// The HTTP method a keys request came with; it decides which store operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// PUT: set, create, update or compare-and-swap.
    Put,
    /// POST: create an in-order key under the path.
    Post,
    /// DELETE: delete or compare-and-delete.
    Delete,
    /// GET with `quorum=true`: a read ordered through the log.
    QuorumGet,
}

/// A v2 keys request, already parsed and validated at the edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysRequest {
    /// Which operation.
    pub method: Method,
    /// The key, as the client sent it (the store cleans it). Bytes, as in etcd: in the
    /// log a JSON string when UTF-8, as before (see `ByteString`).
    pub path: ByteString,
    /// `value`, bytes as well.
    pub value: ByteString,
    /// `dir`.
    pub dir: bool,
    /// `prevValue`; empty means absent, as in etcd.
    pub prev_value: ByteString,
    /// `prevIndex`; 0 means absent, as in etcd.
    pub prev_index: u64,
    /// `prevExist`, when given.
    pub prev_exist: Option<bool>,
    /// Absolute expiration in Unix nanoseconds, stamped by the server that received
    /// the request (`now + ttl`); `None` makes the node permanent.
    pub expiration_ns: Option<i64>,
    /// `refresh`: only the TTL changes and watchers are not woken.
    pub refresh: bool,
    /// `recursive`.
    pub recursive: bool,
    /// `sorted` (quorum reads).
    pub sorted: bool,
    /// Wall clock of the receiving server, used to render `ttl` in the response.
    pub time_ns: i64,
}

impl KeysRequest {
    /// A request with every option absent, for `method` on `path`.
    pub fn new(method: Method, path: impl Into<ByteString>, time_ns: i64) -> Self {
        KeysRequest {
            method,
            path: path.into(),
            value: ByteString::new(),
            dir: false,
            prev_value: ByteString::new(),
            prev_index: 0,
            prev_exist: None,
            expiration_ns: None,
            refresh: false,
            recursive: false,
            sorted: false,
            time_ns,
        }
    }
}
