//! `etcdserverpb.Lease`: grants, revocations and keep-alives go through the log (a
//! keep-alive too, unlike etcd's: the new expiry is replicated, so a leader change or a
//! restart keeps every lease's remaining time); TimeToLive and Leases read this
//! member's keyspace.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use beacon_auth::{Access, Caller};
use beacon_proto::beaconpb::{v3_request, v3_response, LeaseGrant, LeaseRenew};
use beacon_proto::etcdserverpb::{
    lease_server, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::failure;
use crate::consensus::caught_up;
use crate::limits::LEASE_KEEP_ALIVES_QUEUED_MAX;
use crate::state::AppState;

pub struct Lease {
    state: Arc<AppState>,
    ids: IdGenerator,
}

/// etcd's request-id generator, which also names leases: the member id's low 16 bits,
/// then the start time's low 40 bits of milliseconds and an 8-bit counter that carries
/// into them, so ids from one member never repeat and rarely meet another member's.
struct IdGenerator {
    prefix: u64,
    suffix: AtomicU64,
}

impl IdGenerator {
    fn new(member_id: u64, now_ns: i64) -> Self {
        let millis = (now_ns.max(0) as u64) / 1_000_000;
        IdGenerator {
            prefix: (member_id & 0xffff) << 48,
            suffix: AtomicU64::new((millis & ((1 << 40) - 1)) << 8),
        }
    }

    /// The next lease id: positive, never 0.
    fn next(&self) -> i64 {
        loop {
            let suffix = self.suffix.fetch_add(1, Ordering::Relaxed) + 1;
            let id = (self.prefix | (suffix & ((1 << 48) - 1))) & (i64::MAX as u64);
            if id != 0 {
                return id as i64;
            }
        }
    }
}

impl Lease {
    pub fn new(state: Arc<AppState>) -> Self {
        let ids = IdGenerator::new(state.status().id, state.consensus.now_ns());
        Self { state, ids }
    }

    /// `LeaseGrant` as a client's call runs it; also the Election and Lock services'
    /// grants, which must take their ids from the same generator.
    pub(super) async fn grant(
        &self,
        mut req: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, Status> {
        super::quota::check(&self.state, super::quota::LEASE_COST).await?;
        if req.id == 0 {
            req.id = self.ids.next();
        }
        // etcd raises a short TTL (zero and negative ones too) to its minimum.
        req.ttl = req.ttl.max(self.state.consensus.min_lease_ttl());
        let grant = LeaseGrant {
            request: Some(req),
            now_ns: self.state.consensus.now_ns(),
        };
        let grant = v3_request::Request::LeaseGrant(grant);
        match super::propose(&self.state, None, grant).await? {
            v3_response::Response::LeaseGrant(mut resp) => {
                resp.header = super::header_with(&self.state, resp.header);
                Ok(resp)
            }
            _ => Err(super::unexpected()),
        }
    }
}

/// One keep-alive through the log.
async fn renew(state: &AppState, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
    let renew = LeaseRenew {
        id,
        now_ns: state.consensus.now_ns(),
    };
    match super::propose(state, None, v3_request::Request::LeaseRenew(renew)).await? {
        v3_response::Response::LeaseRenew(mut resp) => {
            resp.header = super::header_with(state, resp.header);
            Ok(resp)
        }
        _ => Err(super::unexpected()),
    }
}

/// etcd 3.4.45's check of a call that reads or renews leases: while auth is on, root
/// may; anyone else must be able to read (or, to renew, write) every key attached to
/// them. etcd 3.4.23 checked none of these.
fn check_leases(
    state: &AppState,
    caller: Option<&Caller>,
    ids: impl IntoIterator<Item = i64>,
    access: Access,
) -> Result<(), Status> {
    super::read_mvcc(state)?
        .check_lease_access(caller, ids, access)
        .map_err(|e| super::refused(&e))
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl lease_server::Lease for Lease {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        // No permission is checked, but since etcd 3.4.45 a user must be named.
        super::auth::require_caller(&self.state, &request)?;
        self.grant(request.into_inner()).await.map(Response::new)
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let caller = super::auth::require_caller(&self.state, &request)?;
        let req = v3_request::Request::LeaseRevoke(request.into_inner());
        match super::propose(&self.state, caller.as_ref(), req).await? {
            v3_response::Response::LeaseRevoke(mut resp) => {
                resp.header = super::header_with(&self.state, resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(super::unexpected()),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        // The stream runs as the user its opening names (etcd reads the stream's context).
        let caller = super::auth::caller(&self.state, &request)?;
        let mut requests = request.into_inner();
        let (tx, rx) = mpsc::channel(LEASE_KEEP_ALIVES_QUEUED_MAX);
        let state = Arc::clone(&self.state);
        let mut shutdown = state.shutdown.clone();
        // One keep-alive at a time, in order, each answered before the next is read: a
        // client that stops reading its answers stops its stream's work too.
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = requests.next() => next,
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                let answer = match next {
                    Some(Ok(req)) => {
                        match check_leases(&state, caller.as_ref(), [req.id], Access::Write) {
                            Ok(()) => renew(&state, req.id).await,
                            Err(refused) => Err(refused),
                        }
                    }
                    // The client closed its side, or the stream broke.
                    Some(Err(_)) | None => return,
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(super::queued(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let caller = super::auth::require_caller(&self.state, &request)?;
        let req = request.into_inner();
        caught_up(self.state.consensus.as_ref(), self.state.request_timeout)
            .await
            .map_err(|f| failure(&f))?;
        if req.keys {
            check_leases(&self.state, caller.as_ref(), [req.id], Access::Read)?;
        }
        let now_ns = self.state.consensus.now_ns();
        let mut resp = super::read_mvcc(&self.state)?.lease_time_to_live(req.id, req.keys, now_ns);
        resp.header = super::header_with(&self.state, resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let caller = super::auth::caller(&self.state, &request)?;
        caught_up(self.state.consensus.as_ref(), self.state.request_timeout)
            .await
            .map_err(|f| failure(&f))?;
        let mut resp = super::read_mvcc(&self.state)?.lease_leases();
        let ids = resp.leases.iter().map(|l| l.id);
        check_leases(&self.state, caller.as_ref(), ids, Access::Read)?;
        resp.header = super::header_with(&self.state, resp.header);
        Ok(Response::new(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::IdGenerator;

    #[test]
    fn lease_ids_carry_the_member_and_never_repeat() {
        let ids = IdGenerator::new(0xabcd_1234, 1_700_000_000_000_000_000);
        let (a, b) = (ids.next(), ids.next());
        assert!(a > 0 && b == a + 1);
        assert_eq!((a as u64) >> 48, 0x1234 & 0x7fff);
    }
}
