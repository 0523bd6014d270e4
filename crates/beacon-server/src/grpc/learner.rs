//! What a learner serves: etcd 3.4 answers a member that was added as a learner (and is
//! not promoted yet) only `Maintenance.Status` and serializable `KV.Range`; every other
//! call, streams included, gets `UNAVAILABLE` "etcdserver: rpc not supported for
//! learner", so that clients move on to a voting member. The gate checks the method's
//! path here; `KV.Range` itself refuses a linearizable read (`refuse_linearizable`).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready};
use tonic::Status;

use crate::state::AppState;

/// etcd's refusal of a call a learner does not serve.
pub fn not_supported() -> Status {
    Status::unavailable("etcdserver: rpc not supported for learner")
}

/// `Range`'s own check: only a serializable read is served by a learner.
pub fn refuse_linearizable(state: &AppState, serializable: bool) -> Result<(), Status> {
    if !serializable && state.consensus.is_learner() {
        return Err(not_supported());
    }
    Ok(())
}

/// Refuses `path` (a gRPC method's path) when this member is a learner that does not
/// serve it: the gRPC routes and the JSON gateway check alike.
pub fn refuse_unserved(state: &AppState, path: &str) -> Result<(), Status> {
    if !served_by_learner(path) && state.consensus.is_learner() {
        return Err(not_supported());
    }
    Ok(())
}

/// The methods a learner serves (Range only when serializable, checked by Range).
fn served_by_learner(path: &str) -> bool {
    matches!(
        path,
        "/etcdserverpb.Maintenance/Status" | "/etcdserverpb.KV/Range"
    )
}

/// The gRPC services behind the learner check.
#[derive(Clone)]
pub struct LearnerGate<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> LearnerGate<S> {
    pub fn new(inner: S, state: Arc<AppState>) -> Self {
        Self { inner, state }
    }
}

impl<S, B> tower::Service<http::Request<B>> for LearnerGate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if let Err(refused) = refuse_unserved(&self.state, req.uri().path()) {
            return Either::Right(futures_util::future::ready(Ok(refused.into_http())));
        }
        Either::Left(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learner_serves_status_and_range_only() {
        assert!(served_by_learner("/etcdserverpb.Maintenance/Status"));
        assert!(served_by_learner("/etcdserverpb.KV/Range"));
        for path in [
            "/etcdserverpb.KV/Put",
            "/etcdserverpb.Watch/Watch",
            "/etcdserverpb.Cluster/MemberList",
            "/etcdserverpb.Lease/LeaseKeepAlive",
            "/grpc.health.v1.Health/Check",
            "/v3lockpb.Lock/Lock",
            "/v3electionpb.Election/Observe",
        ] {
            assert!(!served_by_learner(path), "{path}");
        }
    }
}
