//! `etcdserverpb.Cluster`: the membership v2's `/v2/members` shows, in v3's shape.

use std::sync::Arc;

use beacon_proto::etcdserverpb::{cluster_server, Member, MemberListRequest, MemberListResponse};
use tonic::{Request, Response, Status};

use crate::state::AppState;

pub struct Cluster {
    state: Arc<AppState>,
}

impl Cluster {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl cluster_server::Cluster for Cluster {
    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        // etcd answers from its local view of the membership, as `/v2/members` does.
        let members = self
            .state
            .consensus
            .members()
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: m.name,
                peer_ur_ls: m.peer_urls,
                client_ur_ls: m.client_urls,
                // Beacon has no learners.
                is_learner: false,
            })
            .collect();
        // etcd's cluster calls leave the header's revision out (0).
        let header = super::ResponseHeader {
            revision: 0,
            ..super::header(&self.state)
        };
        Ok(Response::new(MemberListResponse {
            header: Some(header),
            members,
        }))
    }
}
