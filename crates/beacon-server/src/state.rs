//! What every handler shares: consensus, the cluster, counters for `/v2/stats/self`,
//! and the shutdown signal that ends open watches.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::consensus::{Consensus, ConsensusStatus};

/// Shared state of one server.
pub struct AppState {
    /// Consensus and the store behind it.
    pub consensus: Arc<dyn Consensus>,
    /// Members and ids.
    pub cluster: Cluster,
    /// How long a request waits for consensus.
    pub request_timeout: Duration,
    /// Flips to `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// When this server started, and the leader it last saw, for `/v2/stats/self`.
    pub leader_seen: Mutex<LeaderSeen>,
    /// Start time, Unix nanoseconds.
    pub start_ns: i64,
    /// The v3 keyspace's space quota in bytes (`--quota-backend-bytes`), `None` when off.
    pub space_quota: Option<u64>,
    /// How often watchers that asked for progress notifications hear the revision
    /// (`--experimental-watch-progress-notify-interval`).
    pub watch_progress_notify_interval: Duration,
    /// How gRPC connections are kept (streams at once, keep-alive pings).
    pub http2: crate::grpc::Http2Settings,
    /// How large a request may be (`--max-request-bytes`): a proposal, a gRPC message,
    /// a gateway request.
    pub request_bytes_max: crate::limits::RequestBytesMax,
    /// Most compares, or operations in a branch, of a transaction this member proposes
    /// (`--max-txn-ops`).
    pub txn_ops_max: usize,
    /// `--metrics extensive`: `/metrics` shows the gRPC handling times too.
    pub metrics_extensive: bool,
    /// How long a `simple` auth token lives unused (`--auth-token-ttl`).
    pub auth_token_ttl: Duration,
    /// The bcrypt cost of the password hashes the Auth service makes (`--bcrypt-cost`).
    pub bcrypt_cost: u32,
    /// `--auth-token jwt,...`: tokens are signed claims; `None`: `simple` tokens.
    pub jwt: Option<Arc<beacon_auth::jwt::JwtTokens>>,
    /// This member's own v2 auth bookkeeping (not replicated).
    pub v2_auth: crate::api_v2::auth::AuthMember,
    /// `--client-cert-auth`: with v2 auth on, a request without credentials is the
    /// user its TLS client certificate names, if any.
    pub client_cert_auth: bool,
    /// `--cors` and `--host-whitelist`.
    pub access: crate::http::access::AccessControl,
    /// `--experimental-enable-v2v3`: the v2 keys API is served from the v3 keyspace.
    pub v2v3: Option<Arc<crate::api_v2::v2v3::V2v3>>,
    /// `X-Etcd-Cluster-Id`, formatted once: every keys response carries it.
    cluster_id_header: HeaderValue,
}

/// The last leader observed and since when (etcd's `leaderInfo`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LeaderSeen {
    /// The leader id, if any was seen.
    pub leader: Option<u64>,
    /// When it was first seen, Unix nanoseconds.
    pub since_ns: i64,
    /// The term it was last seen leading.
    pub term: u64,
    /// How many times a leader was seen that was not the one seen before, or the same
    /// one in a new term (`etcd_server_leader_changes_seen_total`).
    pub changes: u64,
}

impl AppState {
    /// State for a server over `consensus`.
    pub fn new(
        consensus: Arc<dyn Consensus>,
        cluster: Cluster,
        request_timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let now = consensus.now_ns();
        AppState {
            cluster_id_header: HeaderValue::from_str(&crate::cluster::id_hex(cluster.id))
                .expect("hex digits are header text"),
            consensus,
            cluster,
            request_timeout,
            shutdown,
            leader_seen: Mutex::new(LeaderSeen {
                since_ns: now,
                ..LeaderSeen::default()
            }),
            start_ns: now,
            space_quota: Some(crate::limits::QUOTA_BACKEND_BYTES_DEFAULT),
            watch_progress_notify_interval: crate::limits::WATCH_PROGRESS_NOTIFY_INTERVAL,
            http2: crate::grpc::Http2Settings::default(),
            request_bytes_max: crate::limits::RequestBytesMax::default(),
            txn_ops_max: beacon_mvcc::TXN_OPS_MAX,
            metrics_extensive: false,
            auth_token_ttl: crate::limits::AUTH_TOKEN_TTL_DEFAULT,
            bcrypt_cost: beacon_auth::password::DEFAULT_COST,
            jwt: None,
            v2_auth: Default::default(),
            client_cert_auth: false,
            access: Default::default(),
            v2v3: None,
        }
    }

    /// The consensus status. Lock-free: every response reads it for its headers.
    pub fn status(&self) -> ConsensusStatus {
        self.consensus.status()
    }

    /// The consensus status, noting a leader change for `/v2/stats/self`. Only the
    /// `leader_seen` ticker (every tick) and that endpoint call it, keeping the lock off the
    /// request path.
    pub fn status_noting_leader(&self) -> ConsensusStatus {
        let status = self.consensus.status();
        let mut seen = self.leader_seen.lock().unwrap_or_else(|p| p.into_inner());
        if status.leader_id.is_some() {
            if status.leader_id != seen.leader {
                seen.leader = status.leader_id;
                seen.since_ns = self.now_ns();
                seen.changes += 1;
            } else if status.term != seen.term {
                seen.changes += 1;
            }
            seen.term = status.term;
        }
        status
    }

    /// The wall clock of consensus, in Unix nanoseconds: the time TTLs are stamped
    /// with and the leader's expiry ticker proposes.
    pub fn now_ns(&self) -> i64 {
        self.consensus.now_ns()
    }

    /// The cluster id as etcd prints it in `X-Etcd-Cluster-Id`.
    pub fn cluster_id_header(&self) -> HeaderValue {
        self.cluster_id_header.clone()
    }
}
