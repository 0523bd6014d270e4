//! `etcdserverpb.Maintenance`: this member's status.

use std::sync::Arc;

use beacon_proto::etcdserverpb::{maintenance_server, StatusRequest, StatusResponse};
use tonic::{Request, Response, Status};

use crate::api::version::ETCD_SERVER_VERSION;
use crate::state::AppState;

pub struct Maintenance {
    state: Arc<AppState>,
}

impl Maintenance {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl maintenance_server::Maintenance for Maintenance {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let status = self.state.status();
        // etcd's database is one file; Beacon's is its data directory (the log and
        // snapshots), all of it in use: there are no free pages to reclaim by defrag.
        let db_size = i64::try_from(self.state.consensus.disk_bytes()).unwrap_or(i64::MAX);
        Ok(Response::new(StatusResponse {
            header: Some(super::header(&self.state)),
            version: ETCD_SERVER_VERSION.to_string(),
            db_size,
            leader: status.leader_id.unwrap_or(0),
            raft_index: status.commit_index,
            raft_term: status.term,
            raft_applied_index: status.applied_index,
            // etcd lists its alarms here too; Beacon raises none yet.
            errors: match status.leader_id {
                Some(_) => Vec::new(),
                None => vec!["etcdserver: no leader".to_string()],
            },
            db_size_in_use: db_size,
            is_learner: false,
        }))
    }
}
