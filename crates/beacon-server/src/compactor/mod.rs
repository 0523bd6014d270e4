//! The automatic compactor of the v3 keyspace (`--auto-compaction-mode`,
//! `--auto-compaction-retention`), as etcd 3.4's `v3compactor`: server-side policy
//! that decides when to compact and proposes an ordinary compaction, the entry
//! `KV.Compact` proposes, so every member compacts at the same log index whatever its
//! clock says. Every member runs it; only the leader compacts (etcd pauses the
//! compactor of a member that stops leading and resumes it when it leads again).
//! When and to which revision is `policy`'s; this module waits on tokio's clock (which
//! tests pause) and talks to the keyspace through [`Keyspace`].

pub mod policy;

use std::future::Future;
use std::sync::Arc;

use beacon_mvcc::MvccError;
use beacon_proto::etcdserverpb::CompactionRequest;
use tokio::sync::watch;
use tokio::time::Instant;

pub use policy::{Policy, Retention};

use crate::state::AppState;

/// What the compactor needs of the member it runs in.
pub trait Keyspace: Send + Sync + 'static {
    /// The keyspace's current revision on this member.
    fn revision(&self) -> i64;
    /// Whether this member leads now.
    fn leads(&self) -> bool;
    /// Compacts the keyspace to `revision` through the log; resolves once applied.
    fn compact(&self, revision: i64) -> impl Future<Output = Result<(), CompactError>> + Send;
}

/// Why a compaction did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The keyspace is already compacted at or past the revision: etcd's compactor
    /// counts this as a success (`mvcc.ErrCompacted`).
    #[error("{}", MvccError::Compacted)]
    AlreadyCompacted,
    /// Anything else (a future revision, no leader, a timeout): retried later.
    #[error("{0}")]
    Failed(String),
}

/// Runs the compactor for `retention` until `shutdown` turns true.
pub async fn run(
    keyspace: impl Keyspace,
    retention: Retention,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut policy = Policy::new(retention);
    loop {
        policy.sample(keyspace.revision());
        tokio::select! {
            () = tokio::time::sleep(policy.check_interval()) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        if !keyspace.leads() {
            continue;
        }
        let Some(revision) = policy.due(started.elapsed(), keyspace.revision()) else {
            continue;
        };
        // etcd's words (its capnslog logger's), which operators grep for.
        tracing::info!(
            revision,
            "Starting auto-compaction at revision {revision} (retention: {})",
            policy.retention()
        );
        match keyspace.compact(revision).await {
            Ok(()) | Err(CompactError::AlreadyCompacted) => {
                policy.compacted(started.elapsed(), revision);
                tracing::info!(revision, "Finished auto-compaction at revision {revision}");
            }
            Err(CompactError::Failed(why)) => {
                let retry =
                    crate::api_v2::stats::go_duration(policy.check_interval().as_nanos() as u64);
                tracing::warn!(
                    revision,
                    "Failed auto-compaction at revision {revision} ({why})"
                );
                tracing::warn!("Retry after {retry}");
            }
        }
    }
}

/// The member's own keyspace, compacted through `KV.Compact`'s path (as etcd's
/// compactor calls its server's `Compact`), as the server itself: no user to check.
pub struct ServerKeyspace(pub Arc<AppState>);

impl Keyspace for ServerKeyspace {
    fn revision(&self) -> i64 {
        self.0
            .consensus
            .mvcc()
            .read()
            .map_or(0, |m| m.current_revision())
    }

    fn leads(&self) -> bool {
        self.0.status().is_leader()
    }

    async fn compact(&self, revision: i64) -> Result<(), CompactError> {
        let req = CompactionRequest {
            revision,
            physical: false,
        };
        match crate::grpc::kv::compact(&self.0, None, req).await {
            Ok(_) => Ok(()),
            // The keyspace's refusal reaches here as the status a client would get;
            // its words are the variant's own.
            Err(status) if status.message() == MvccError::Compacted.to_string() => {
                Err(CompactError::AlreadyCompacted)
            }
            Err(status) => Err(CompactError::Failed(status.message().to_string())),
        }
    }
}

#[cfg(test)]
mod tests;
