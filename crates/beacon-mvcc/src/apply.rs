//! One v3 command of the Raft log, applied: the request a client sent, and the answer
//! every replica computes alike (a refusal is an answer too).

use beacon_proto::beaconpb::{v3_request, v3_response, Refusal, V3Request, V3Response};

use crate::alarm::Write;
use crate::error::Code;
use crate::store::Mvcc;
use crate::txn::{check_put_fields, check_txn};
use crate::{MvccError, StorageError};

impl Mvcc {
    /// Applies `req`. `Err` only when the disk failed, after which the keyspace may be
    /// half changed and must not be used.
    pub fn apply(&mut self, req: &V3Request) -> Result<V3Response, StorageError> {
        let write = match &req.request {
            Some(v3_request::Request::Put(_)) => Write::Put,
            Some(v3_request::Request::DeleteRange(_)) => Write::Delete,
            Some(v3_request::Request::Txn(t)) => Write::Txn(t),
            Some(v3_request::Request::Compaction(_)) => Write::Compact,
            Some(v3_request::Request::LeaseGrant(_)) => Write::LeaseGrant,
            _ => Write::Other,
        };
        // A raised alarm refuses first, as etcd's capped applier wraps the others.
        let answer = match self.check_alarms(write) {
            Err(refused) => Err(refused),
            Ok(()) => self
                .check_auth(req)
                .and_then(|()| match self.apply_auth(req) {
                    Some(answer) => answer,
                    None => self.apply_allowed(req),
                }),
        };
        let response = match answer {
            Ok(response) => response,
            Err(MvccError::Storage(e)) => return Err(StorageError(e)),
            Err(refused) => v3_response::Response::Refusal(Refusal {
                code: grpc_code(refused.code()),
                message: refused.to_string(),
            }),
        };
        Ok(V3Response {
            response: Some(response),
        })
    }

    /// Applies a request no alarm refuses.
    fn apply_allowed(&mut self, req: &V3Request) -> Result<v3_response::Response, MvccError> {
        match &req.request {
            Some(v3_request::Request::Range(r)) => self.range(r).map(v3_response::Response::Range),
            Some(v3_request::Request::Put(p)) => check_put_fields(p)
                .and_then(|()| self.put(p))
                .map(v3_response::Response::Put),
            Some(v3_request::Request::DeleteRange(d)) => {
                self.delete_range(d).map(v3_response::Response::DeleteRange)
            }
            // The server checked it before proposing; checked again, because the log is
            // what every replica trusts, whoever wrote the entry. All but the count of
            // operations: that limit is each member's own `--max-txn-ops`, which etcd
            // checks only where the request arrives. A replica deciding by its own flag
            // would answer otherwise than the others.
            Some(v3_request::Request::Txn(t)) => check_txn(t, usize::MAX)
                .and_then(|()| self.txn(t))
                .map(v3_response::Response::Txn),
            Some(v3_request::Request::Compaction(c)) => self
                .compact(c.revision)
                .map(v3_response::Response::Compaction),
            Some(v3_request::Request::LeaseGrant(g)) => self
                .lease_grant(&g.request.unwrap_or_default(), g.now_ns)
                .map(v3_response::Response::LeaseGrant),
            Some(v3_request::Request::LeaseRevoke(r)) => self
                .lease_revoke(r.id)
                .map(v3_response::Response::LeaseRevoke),
            Some(v3_request::Request::LeaseRenew(r)) => Ok(v3_response::Response::LeaseRenew(
                self.lease_renew(r.id, r.now_ns),
            )),
            Some(v3_request::Request::Alarm(a)) => Ok(v3_response::Response::Alarm(self.alarm(a))),
            Some(_) => unreachable!("`apply_auth` answers every Auth service entry"),
            None => Err(MvccError::EmptyKey),
        }
    }
}

/// The gRPC status code number of `code` (the numbering every gRPC library shares).
pub fn grpc_code(code: Code) -> i32 {
    match code {
        Code::InvalidArgument => 3,
        Code::NotFound => 5,
        Code::FailedPrecondition => 9,
        Code::ResourceExhausted => 8,
        Code::OutOfRange => 11,
        Code::Internal => 13,
        Code::DataLoss => 15,
        Code::Unknown => 2,
        Code::PermissionDenied => 7,
        Code::Unauthenticated => 16,
    }
}

#[cfg(test)]
mod tests {
    use beacon_proto::etcdserverpb::request_op::Request;
    use beacon_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};

    use super::*;
    use crate::TXN_OPS_MAX;

    /// The member that proposed a transaction held it to its own `--max-txn-ops`;
    /// every replica applies it whatever its own flag says.
    #[test]
    fn a_transaction_over_the_default_count_applies() {
        let ops = (0..=TXN_OPS_MAX)
            .map(|i| RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: format!("k{i}").into_bytes(),
                    ..PutRequest::default()
                })),
            })
            .collect();
        let txn = TxnRequest {
            success: ops,
            ..TxnRequest::default()
        };
        let mut m = Mvcc::default();
        let answer = m
            .apply(&V3Request {
                caller: None,
                request: Some(v3_request::Request::Txn(txn)),
            })
            .expect("no disk here");
        assert!(
            matches!(answer.response, Some(v3_response::Response::Txn(_))),
            "{answer:?}"
        );
        assert_eq!(m.current_revision(), 2);
    }
}
