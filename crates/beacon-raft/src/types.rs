//! The bottom layer: the openraft type configuration (what travels in the log, what
//! comes back from applying it), short aliases for the generic openraft types, and the
//! values that several layers pass each other (a proposal's outcome, a member change).
//! It imports nothing else of this crate.

use std::fmt;
use std::sync::{Arc, RwLock};

use beacon_store::{Applied, Command, Store};
use serde::{Deserialize, Serialize};

/// The store shared between the state machine (writes, under the write lock) and the
/// HTTP server (reads and watch registration).
pub type SharedStore = Arc<RwLock<Store>>;

/// A log payload: one store command.
///
/// A newtype because openraft requires `Display` on application data and the store's
/// `Command` has none. The command is shared: openraft clones entries (into the entry
/// cache, into the apply batch), and a value may be megabytes. On disk it is exactly
/// the command's own serde form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request(pub Arc<Command>);

impl Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Command::deserialize(deserializer).map(|c| Request(Arc::new(c)))
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Short on purpose: openraft logs payloads, and values can be large.
        match &*self.0 {
            Command::Keys(k) => write!(f, "keys {:?} {}", k.method, k.path),
            Command::Sync { time_ns } => write!(f, "sync {time_ns}"),
            Command::V3(v3) => write!(f, "v3 ({} bytes)", v3.0.len()),
            Command::Auth(a) => write!(f, "auth {}", a.describe()),
        }
    }
}

/// A member as the membership records it: what etcd keeps as a member's raft
/// attributes (peer URLs) and attributes (name and client URLs, which the member
/// publishes once it runs). Kept in openraft's membership, so that it is replicated,
/// snapshotted and changed by the same joint-consensus entries as the voter sets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `--name`; empty until the member publishes it.
    pub name: String,
    /// Where peers reach it, sorted; the first is the one used.
    pub peer_urls: Vec<String>,
    /// Its client URLs; empty until the member publishes them.
    pub client_urls: Vec<String>,
    /// Added as a learner (etcd's `member add --learner`): it stays a non-voter until
    /// promoted. Left out of the record when false, so records written before learners
    /// existed read the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub learner: bool,
    /// How many times it published its name and client URLs (once per start, as
    /// etcd's members do, whether or not they changed): each is a write etcd makes into
    /// its v2 store, which takes an etcd index (`beacon_store::ClusterWrite`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub published: u64,
    /// How many times its peer URLs or learner mark were updated (etcd's raft
    /// attributes), likewise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Member {
    /// A member known only by its peer URLs (not yet started, or not yet published).
    pub fn with_peer_urls(mut peer_urls: Vec<String>) -> Member {
        peer_urls.sort();
        Member {
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            learner: false,
            published: 0,
            updated: 0,
        }
    }

    /// The URL its peers send to.
    pub fn peer_url(&self) -> &str {
        self.peer_urls.first().map_or("", String::as_str)
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_urls.join(","))
    }
}

/// The outcome of a committed and applied proposal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposed {
    /// What the store returned when it applied the command.
    pub applied: Applied,
    /// The Raft index of the entry.
    pub raft_index: u64,
    /// The Raft term of the entry.
    pub raft_term: u64,
}

/// One member as listed: its id, its record, and whether it votes yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member id.
    pub id: NodeId,
    /// Name, peer and client URLs.
    pub member: Member,
    /// Still catching up: does not count toward the quorum.
    pub is_learner: bool,
}

/// A change to the member list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// A new member with these peer URLs; it joins as a non-voter, and votes once it
    /// has caught up unless it was added as a learner.
    Add {
        /// The id given to it.
        id: NodeId,
        /// Its peer URLs.
        peer_urls: Vec<String>,
        /// Added as a learner: it stays a non-voter until promoted.
        #[serde(default)]
        learner: bool,
    },
    /// Makes a learner a voter (etcd's `member promote`); it must have caught up.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// Removes a member (voter or learner).
    Remove {
        /// The member.
        id: NodeId,
    },
    /// Replaces a member's peer URLs.
    Update {
        /// The member.
        id: NodeId,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// A running member's name and client URLs (etcd's `publish`).
    Publish {
        /// The member.
        id: NodeId,
        /// `--name`.
        name: String,
        /// `--advertise-client-urls`.
        client_urls: Vec<String>,
    },
}

impl MemberChange {
    /// The member the change is about.
    pub fn member_id(&self) -> NodeId {
        match self {
            MemberChange::Add { id, .. }
            | MemberChange::Promote { id }
            | MemberChange::Remove { id }
            | MemberChange::Update { id, .. }
            | MemberChange::Publish { id, .. } => *id,
        }
    }
}

/// What applying an entry returns: `Some` for a store command, `None` for the blank and
/// membership entries openraft writes itself.
pub type Response = Option<Applied>;

openraft::declare_raft_types!(
    /// Beacon's openraft type configuration (u64 node ids, a [`Member`] per node).
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = Member,
        AsyncRuntime = crate::runtime::BeaconRuntime,
);

/// A member's id, as in etcd's member id.
pub type NodeId = u64;
/// A member's record in the membership.
pub type Node = Member;
/// A log position: (leader term and id, index).
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A log entry.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// A persisted vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// The membership config together with the log id that introduced it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// The bytes of a snapshot: exactly what `Store::save` produced.
pub type SnapshotData = Vec<u8>;
/// Which log position and membership a snapshot covers.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot: its meta plus the store bytes.
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;
/// The log state the log store reports to openraft.
pub type LogState = openraft::LogState<TypeConfig>;

/// Converts any error into the `io::Error` the openraft storage traits return.
pub(crate) fn io_other(e: impl fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Builds an `InvalidData` error: bytes on disk that do not decode.
pub(crate) fn invalid_data(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}
