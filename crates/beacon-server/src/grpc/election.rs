//! `v3electionpb.Election`: etcd's election recipe run by the server
//! (`concurrency.rs`).
//!
//! A campaigner puts its key `<name>/<lease in hex>` with its value (or finds it, and
//! proclaims its value if another) and leads once every key under `<name>/` created
//! before it is deleted; the leader is the oldest key. Its `LeaderKey` (key and create
//! revision) is what Proclaim and Resign compare against, so a leader that lost its key
//! can neither post nor delete another's. Observe streams each leader and each value
//! it posts, as etcd's recipe finds them: the leader now (or the first key put under
//! the prefix), then that key's puts until it is deleted, then again.

use std::pin::Pin;
use std::sync::Arc;

use beacon_auth::Caller;
use beacon_proto::etcdserverpb::range_request::SortOrder;
use beacon_proto::etcdserverpb::TxnRequest;
use beacon_proto::v3electionpb::{
    election_server, CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse,
    ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::concurrency::{self as recipe, Cleanup, OnCancel, Recipes, WaitEnd, Waiter};
use super::kv;
use crate::state::AppState;

mod observe;

pub struct Election {
    recipes: Arc<Recipes>,
}

impl Election {
    pub fn new(recipes: Arc<Recipes>) -> Self {
        Election { recipes }
    }
}

/// etcd's refusal of a Proclaim or Resign without its `leader`.
fn missing_leader() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

/// etcd's answer when the key is not the leader's any more.
fn not_leader() -> Status {
    Status::unknown("election: not leader")
}

/// Puts `value` on the leader's key if it still has its create revision.
async fn proclaim(
    state: &AppState,
    caller: Option<&Caller>,
    leader: &Waiter,
    lease: i64,
    value: Vec<u8>,
) -> Result<beacon_proto::etcdserverpb::TxnResponse, Status> {
    let post = TxnRequest {
        compare: vec![recipe::created(&leader.key, leader.create_revision)],
        success: vec![recipe::put_op(&leader.key, &value, lease)],
        failure: Vec::new(),
    };
    let posted = kv::txn(state, caller, post)
        .await
        .map_err(recipe::relayed)?;
    if !posted.succeeded {
        return Err(not_leader());
    }
    Ok(posted)
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl election_server::Election for Election {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let state = &self.recipes.state;
        let caller = super::auth::caller(state, &request)?;
        let CampaignRequest { name, lease, value } = request.into_inner();
        let lease = self.recipes.session(lease).await?;
        let prefix = recipe::prefix_of(&name);
        let key = recipe::waiter_key(&prefix, lease);
        let enter = TxnRequest {
            compare: vec![recipe::created(&key, 0)],
            success: vec![recipe::put_op(&key, &value, lease)],
            failure: vec![recipe::range_op(recipe::get(&key))],
        };
        let entered = kv::txn(state, caller.as_ref(), enter)
            .await
            .map_err(recipe::relayed)?;
        let mut me = Waiter {
            key,
            create_revision: entered.header.as_ref().map_or(0, |h| h.revision),
        };
        if !entered.succeeded {
            // This lease campaigns already: the same candidacy, with this value.
            let found = recipe::range_answer(&entered, 0);
            let Some(kv) = found.first() else {
                return Err(not_leader());
            };
            me.create_revision = kv.create_revision;
            if kv.value != value {
                if let Err(e) = proclaim(state, caller.as_ref(), &me, lease, value).await {
                    let resign = Cleanup::Resign(me.key, me.create_revision);
                    let _ = resign.run(state, caller.as_ref()).await;
                    return Err(e);
                }
            }
        }
        let cancelled = OnCancel::new(
            Arc::clone(state),
            caller.clone(),
            Cleanup::Resign(me.key.clone(), me.create_revision),
        );
        let waited = self
            .recipes
            .wait_deletes(caller.as_ref(), &prefix, &me)
            .await;
        // Only a cancelled campaign resigns; one that failed keeps its key, as etcd's.
        cancelled.disarm();
        match waited {
            Ok(_) => Ok(Response::new(CampaignResponse {
                // The header of the put that entered the campaign, as etcd answers.
                header: entered.header,
                leader: Some(LeaderKey {
                    name,
                    key: me.key,
                    rev: me.create_revision,
                    lease,
                }),
            })),
            Err(WaitEnd::Failed(status)) => Err(status),
            Err(WaitEnd::Lost) => Err(Status::unknown("election: session is expired")),
            Err(WaitEnd::Stopped) => Err(super::stopped()),
        }
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let caller = super::auth::caller(&self.recipes.state, &request)?;
        let ProclaimRequest { leader, value } = request.into_inner();
        let leader = leader.ok_or_else(missing_leader)?;
        // etcd's session: a lease 0 gets a new lease, and the value is put with it.
        let lease = self.recipes.session(leader.lease).await?;
        let me = Waiter {
            key: leader.key,
            create_revision: leader.rev,
        };
        let posted = proclaim(&self.recipes.state, caller.as_ref(), &me, lease, value).await?;
        Ok(Response::new(ProclaimResponse {
            header: posted.header,
        }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let caller = super::auth::caller(&self.recipes.state, &request)?;
        let prefix = recipe::prefix_of(&request.into_inner().name);
        let first = recipe::top(&prefix, SortOrder::Ascend);
        let found = kv::range(&self.recipes.state, caller.as_ref(), first)
            .await
            .map_err(recipe::relayed)?;
        let Some(kv) = found.kvs.into_iter().next() else {
            return Err(Status::unknown("election: no leader"));
        };
        Ok(Response::new(LeaderResponse {
            header: found.header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let caller = super::auth::caller(&self.recipes.state, &request)?;
        let prefix = recipe::prefix_of(&request.into_inner().name);
        let (tx, mut rx) = mpsc::channel(crate::limits::OBSERVE_RESPONSES_QUEUED_MAX);
        let state = Arc::clone(&self.recipes.state);
        tokio::spawn(observe::run(state, caller, prefix, tx));
        // grpc-go sends a stream's headers with its first message, so etcd's Observe
        // call opens only once there is a leader to tell (etcd-client's `observe` waits
        // until then). A client that leaves meanwhile drops this, and the task ends.
        match rx.recv().await {
            Some(Err(status)) => Err(status),
            first => {
                let answers = futures_util::stream::iter(first).chain(super::queued(rx));
                Ok(Response::new(Box::pin(answers)))
            }
        }
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let caller = super::auth::caller(&self.recipes.state, &request)?;
        let leader = request.into_inner().leader.ok_or_else(missing_leader)?;
        // etcd opens a session here too: a lease 0 is granted a lease nobody uses.
        self.recipes.session(leader.lease).await?;
        let resign = recipe::resign_txn(&leader.key, leader.rev);
        let resigned = kv::txn(&self.recipes.state, caller.as_ref(), resign)
            .await
            .map_err(recipe::relayed)?;
        Ok(Response::new(ResignResponse {
            header: resigned.header,
        }))
    }
}
