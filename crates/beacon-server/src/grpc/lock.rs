//! `v3lockpb.Lock`: etcd's mutex recipe run by the server (`concurrency.rs`).
//!
//! Lock puts the caller's key `<name>/<lease in hex>` (with the lease, empty) unless
//! it exists, and answers once every key under `<name>/` created before it is
//! deleted; a second Lock with the same lease finds its key and holds the lock as the
//! first did. A wait that fails, or that its client cancels, deletes the key. Unlock is
//! a plain delete of whatever key it is given.

use std::sync::Arc;

use beacon_proto::etcdserverpb::range_request::SortOrder;
use beacon_proto::etcdserverpb::TxnRequest;
use beacon_proto::v3lockpb::{
    lock_server, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};
use tonic::{Request, Response, Status};

use super::concurrency::{self as recipe, Cleanup, OnCancel, Recipes, WaitEnd, Waiter};
use super::kv;

pub struct Lock {
    recipes: Arc<Recipes>,
}

impl Lock {
    pub fn new(recipes: Arc<Recipes>) -> Self {
        Lock { recipes }
    }
}

#[tonic::async_trait]
impl lock_server::Lock for Lock {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let state = &self.recipes.state;
        let caller = super::auth::caller(state, &request)?;
        let LockRequest { name, lease } = request.into_inner();
        let lease = self.recipes.session(lease).await?;
        let prefix = recipe::prefix_of(&name);
        let key = recipe::waiter_key(&prefix, lease);
        // The current holder comes with the put, so an uncontended lock is one request.
        let holder = recipe::top(&prefix, SortOrder::Ascend);
        let take = TxnRequest {
            compare: vec![recipe::created(&key, 0)],
            success: vec![
                recipe::put_op(&key, b"", lease),
                recipe::range_op(holder.clone()),
            ],
            failure: vec![
                recipe::range_op(recipe::get(&key)),
                recipe::range_op(holder),
            ],
        };
        let taken = kv::txn(state, caller.as_ref(), take)
            .await
            .map_err(recipe::relayed)?;
        let create_revision = if taken.succeeded {
            taken.header.as_ref().map_or(0, |h| h.revision)
        } else {
            recipe::range_answer(&taken, 0)
                .first()
                .map_or(0, |kv| kv.create_revision)
        };
        let holds = recipe::range_answer(&taken, 1)
            .first()
            .is_none_or(|holder| holder.create_revision == create_revision);
        if holds {
            return Ok(Response::new(LockResponse {
                header: taken.header,
                key,
            }));
        }
        let cleanup = Cleanup::Delete(key.clone());
        let cancelled = OnCancel::new(Arc::clone(state), caller.clone(), cleanup);
        let waiter = Waiter {
            key,
            create_revision,
        };
        let waited = self
            .recipes
            .wait_deletes(caller.as_ref(), &prefix, &waiter)
            .await;
        let cleanup = cancelled.disarm();
        match waited {
            Ok(header) => Ok(Response::new(LockResponse {
                header: Some(header),
                key: waiter.key,
            })),
            Err(end) => {
                // etcd gives the key back before it answers a failed wait.
                if let Some(cleanup) = cleanup {
                    let _ = cleanup.run(state, caller.as_ref()).await;
                }
                Err(match end {
                    WaitEnd::Failed(status) => status,
                    // etcd 3.5's words when it finds the key gone after its wait.
                    WaitEnd::Lost => Status::unknown("mutex: session is expired"),
                    WaitEnd::Stopped => super::stopped(),
                })
            }
        }
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let caller = super::auth::caller(&self.recipes.state, &request)?;
        let UnlockRequest { key } = request.into_inner();
        let deleted = kv::delete_range(&self.recipes.state, caller.as_ref(), recipe::delete(&key))
            .await
            .map_err(recipe::relayed)?;
        Ok(Response::new(UnlockResponse {
            header: deleted.header,
        }))
    }
}
