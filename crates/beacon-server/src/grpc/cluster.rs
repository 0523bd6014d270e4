//! `etcdserverpb.Cluster`: the membership v2's `/v2/members` shows and changes, in v3's
//! shape and with v3's errors.

use std::sync::Arc;

use beacon_proto::etcdserverpb::{
    cluster_server, Member, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
};
use beacon_raft::{MemberChange, MembershipError};
use tonic::{Request, Response, Status};

use crate::cluster::added_member_id;
use crate::state::AppState;

pub struct Cluster {
    state: Arc<AppState>,
}

impl Cluster {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    /// etcd's cluster calls leave the header's revision out (0).
    fn header(&self) -> Option<ResponseHeader> {
        Some(super::header_at(&self.state, 0))
    }

    /// The members as this member knows them, sorted by id (as etcd lists them).
    fn members(&self) -> Vec<Member> {
        self.state
            .consensus
            .members()
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: m.name,
                peer_ur_ls: m.peer_urls,
                client_ur_ls: m.client_urls,
                // Added as a learner and not promoted yet. A member that joined as a
                // voter and is still catching up is a non-voter to Raft but a voter
                // here, as etcd lists it.
                is_learner: m.is_learner,
            })
            .collect()
    }

    async fn change(&self, change: MemberChange) -> Result<(), Status> {
        self.state
            .consensus
            .change_members(change)
            .await
            .map_err(|e| membership_status(&e))
    }
}

/// Peer URLs as etcd's `types.NewURLs` accepts them (at least one), sorted; any bad one
/// is etcd's one answer for all.
fn peer_urls(urls: &[String]) -> Result<Vec<String>, Status> {
    let bad = || Status::invalid_argument("etcdserver: given member URLs are invalid");
    if urls.is_empty() {
        return Err(bad());
    }
    let mut checked = urls
        .iter()
        .map(|u| beacon_api::peer_url::check(u).map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    checked.sort();
    Ok(checked)
}

/// etcd's gRPC answer to a membership error (its `toGRPCErrorMap`).
fn membership_status(e: &MembershipError) -> Status {
    match e {
        MembershipError::IdExists => {
            Status::failed_precondition("etcdserver: member ID already exist")
        }
        MembershipError::PeerUrlExists => {
            Status::failed_precondition("etcdserver: Peer URLs already exists")
        }
        MembershipError::IdNotFound | MembershipError::IdRemoved => {
            Status::not_found("etcdserver: member not found")
        }
        MembershipError::TooManyLearners | MembershipError::NotLearner => {
            Status::failed_precondition(e.to_string())
        }
        MembershipError::LearnerNotReady | MembershipError::NotEnoughStartedMembers => {
            Status::failed_precondition(e.to_string())
        }
        MembershipError::Unhealthy => Status::unavailable(e.to_string()),
        MembershipError::Timeout => Status::unavailable("etcdserver: request timed out"),
        MembershipError::Stopped => Status::unavailable("etcdserver: server stopped"),
        // Errors etcd has no gRPC code for come back as Unknown with their text.
        other => Status::unknown(other.to_string()),
    }
}

#[tonic::async_trait]
impl cluster_server::Cluster for Cluster {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        super::auth::check_admin(&self.state, &request)?;
        let req = request.into_inner();
        let peer_urls = peer_urls(&req.peer_ur_ls)?;
        let id = added_member_id(&peer_urls, self.state.now_ns() / 1_000_000_000);
        self.change(MemberChange::Add {
            id,
            peer_urls: peer_urls.clone(),
            learner: req.is_learner,
        })
        .await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(Member {
                id,
                peer_ur_ls: peer_urls,
                is_learner: req.is_learner,
                ..Member::default()
            }),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        super::auth::check_admin(&self.state, &request)?;
        let id = request.into_inner().id;
        self.change(MemberChange::Remove { id }).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        super::auth::check_admin(&self.state, &request)?;
        let req = request.into_inner();
        let peer_urls = peer_urls(&req.peer_ur_ls)?;
        self.change(MemberChange::Update {
            id: req.id,
            peer_urls,
        })
        .await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        // Any user's since etcd 3.4.45, which first made it root's and then gave it
        // back, so that clients can find moved members.
        super::auth::require_caller(&self.state, &request)?;
        // etcd answers from its local view of the membership, as `/v2/members` does.
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        super::auth::check_admin(&self.state, &request)?;
        let id = request.into_inner().id;
        self.change(MemberChange::Promote { id }).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: self.members(),
        }))
    }
}
