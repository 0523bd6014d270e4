//! `etcdserverpb.Maintenance`: this member's status, the cluster's alarms (raised,
//! cleared and listed through the log), a defragmentation that has nothing to do, the keyspace's hashes (etcd's corruption
//! checks), handing leadership to another member, and a backup (`snapshot.rs`).

use std::sync::Arc;

use beacon_proto::beaconpb::{v3_request, v3_response};
use beacon_proto::etcdserverpb::{
    maintenance_server, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest,
    DefragmentResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use crate::api::version::ETCD_SERVER_VERSION;
use crate::state::AppState;

/// Raises the CORRUPT alarm for `member` through the log, as the server itself (etcd's
/// periodic corruption check does: `crate::corrupt`).
pub(crate) async fn raise_corrupt(state: &AppState, member: u64) -> Result<(), Status> {
    use beacon_proto::etcdserverpb::alarm_request::AlarmAction;
    let raise = AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id: member,
        alarm: AlarmType::Corrupt as i32,
    };
    super::propose(state, None, v3_request::Request::Alarm(raise))
        .await
        .map(|_| ())
}

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
    type SnapshotStream = super::snapshot::SnapshotStream;

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        super::auth::check_maintenance_admin(&self.state, &request)?;
        super::snapshot::stream(Arc::clone(&self.state))
            .await
            .map(Response::new)
    }

    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        // Every action goes through the log, a listing too, as in etcd; its answer
        // carries no header. Since etcd 3.4.45 a listing needs a user, a change root.
        use beacon_proto::etcdserverpb::alarm_request::AlarmAction;
        if request.get_ref().action == AlarmAction::Get as i32 {
            super::auth::require_caller(&self.state, &request)?;
        } else {
            super::auth::check_admin(&self.state, &request)?;
        }
        match super::propose(
            &self.state,
            None,
            v3_request::Request::Alarm(request.into_inner()),
        )
        .await?
        {
            v3_response::Response::Alarm(resp) => Ok(Response::new(resp)),
            _ => Err(super::unexpected()),
        }
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        use beacon_raft::MoveLeaderError;
        // Root's alone since etcd 3.4.45.
        super::auth::check_admin(&self.state, &request)?;
        let target = request.into_inner().target_id;
        let moved = self
            .state
            .consensus
            .move_leader(target, self.state.request_timeout)
            .await;
        match moved {
            Ok(()) => Ok(Response::new(MoveLeaderResponse {
                header: Some(super::header(&self.state)),
            })),
            Err(e @ (MoveLeaderError::NotLeader | MoveLeaderError::BadTransferee)) => {
                Err(Status::failed_precondition(e.to_string()))
            }
            Err(e @ MoveLeaderError::Stopped) => Err(Status::unavailable(e.to_string())),
            // Not among etcd's gRPC errors: it answers Unknown with the text.
            Err(e @ MoveLeaderError::Timeout) => Err(Status::unknown(e.to_string())),
        }
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        super::auth::check_maintenance_admin(&self.state, &request)?;
        let mvcc = super::read_mvcc(&self.state)?;
        let mut resp = mvcc.hash().map_err(|e| super::refused(&e))?;
        drop(mvcc);
        resp.header = super::header_with(&self.state, resp.header);
        Ok(Response::new(resp))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        super::auth::check_maintenance_admin(&self.state, &request)?;
        let revision = request.into_inner().revision;
        let mvcc = super::read_mvcc(&self.state)?;
        let mut resp = mvcc.hash_kv(revision).map_err(|e| super::refused(&e))?;
        drop(mvcc);
        resp.header = super::header_with(&self.state, resp.header);
        Ok(Response::new(resp))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        super::auth::check_maintenance_admin(&self.state, &request)?;
        // Nothing to do: Beacon's storage reclaims space online as it compacts, so there
        // is no pause to take (etcd's answer carries no header either).
        Ok(Response::new(DefragmentResponse::default()))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        // Root's alone since etcd 3.4.45.
        super::auth::check_admin(&self.state, &request)?;
        let status = self.state.status();
        // etcd's database is one file; Beacon's size is its data directory's (the log
        // database, whose journal is preallocated, and snapshots), and what is in use
        // is what the keyspace's revisions take; defrag has nothing to reclaim.
        let db_size = i64::try_from(self.state.consensus.disk_bytes()).unwrap_or(i64::MAX);
        let (stored, alarms) = {
            let mvcc = super::read_mvcc(&self.state)?;
            (mvcc.stored_bytes(), mvcc.alarms().clone())
        };
        // etcd lists a missing leader, then each alarm as its protobuf text form.
        let mut errors = Vec::new();
        if status.leader_id.is_none() {
            errors.push("etcdserver: no leader".to_string());
        }
        errors.extend(alarms.iter().map(|(member, alarm)| {
            let name = AlarmType::try_from(*alarm).map_or("NONE", |a| a.as_str_name());
            format!("memberID:{member} alarm:{name} ")
        }));
        Ok(Response::new(StatusResponse {
            header: Some(super::header(&self.state)),
            version: ETCD_SERVER_VERSION.to_string(),
            db_size,
            leader: status.leader_id.unwrap_or(0),
            raft_index: status.commit_index,
            raft_term: status.term,
            raft_applied_index: status.applied_index,
            errors,
            // What the keyspace's revisions take, by the space quota's count.
            db_size_in_use: i64::try_from(stored).unwrap_or(i64::MAX),
            is_learner: self.state.consensus.is_learner(),
        }))
    }
}
