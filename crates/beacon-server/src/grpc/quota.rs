//! etcd's space quota (`--quota-backend-bytes`): before a Put, a Txn or a LeaseGrant is
//! proposed, this member checks that the keyspace plus the request's cost stays under
//! the quota; when it would not, it raises the `NOSPACE` alarm through the log and
//! refuses with etcd's "database space exceeded". Once raised, the keyspace itself
//! refuses what takes space on every member (`beacon-mvcc`'s `alarm.rs`) until the
//! alarm is cleared (`etcdctl alarm disarm`).
//!
//! What is measured differs from etcd on purpose: etcd compares its database file's
//! size, which only `defrag` shrinks; Beacon counts what the stored revisions take
//! (`Mvcc::stored_bytes`), which a compaction shrinks at once. The costs are etcd's.

use beacon_mvcc::MvccError;
use beacon_proto::beaconpb::v3_request;
use beacon_proto::etcdserverpb::alarm_request::AlarmAction;
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{AlarmRequest, AlarmType, PutRequest, TxnRequest};
use tonic::Status;

use crate::state::AppState;

/// etcd's estimate of a key's metadata (its `kvOverhead`).
const KV_OVERHEAD: u64 = 256;
/// etcd's estimate of a lease (its `leaseOverhead`).
pub const LEASE_COST: u64 = 64;

/// etcd's cost of a put.
pub fn put_cost(put: &PutRequest) -> u64 {
    KV_OVERHEAD + put.key.len() as u64 + put.value.len() as u64
}

/// etcd's cost of a transaction: the costlier branch's puts (nested transactions count
/// nothing, as in etcd).
pub fn txn_cost(txn: &TxnRequest) -> u64 {
    let branch = |ops: &[beacon_proto::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(Op::RequestPut(put)) => put_cost(put),
                _ => 0,
            })
            .sum()
    };
    branch(&txn.success).max(branch(&txn.failure))
}

/// Refuses a request of `cost` that would take the keyspace to the quota, raising
/// `NOSPACE` for this member first.
pub async fn check(state: &AppState, cost: u64) -> Result<(), Status> {
    let Some(quota) = state.space_quota else {
        return Ok(());
    };
    let used = super::read_mvcc(state)?.stored_bytes();
    if used.saturating_add(cost) < quota {
        return Ok(());
    }
    let raise = AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id: state.status().id,
        alarm: AlarmType::Nospace as i32,
    };
    // As etcd, the refusal stands whether or not the alarm could be raised.
    if let Err(e) = super::propose(state, None, v3_request::Request::Alarm(raise)).await {
        tracing::warn!(error = %e.message(), "raising the NOSPACE alarm");
    }
    Err(super::refused(&MvccError::NoSpace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_proto::etcdserverpb::RequestOp;

    fn put(key: &str, value: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: key.into(),
                value: value.into(),
                ..PutRequest::default()
            })),
        }
    }

    #[test]
    fn costs_are_etcds() {
        let p = PutRequest {
            key: b"k".to_vec(),
            value: b"vv".to_vec(),
            ..PutRequest::default()
        };
        assert_eq!(put_cost(&p), 256 + 3);
        let txn = TxnRequest {
            success: vec![put("a", "1"), put("b", "22")],
            failure: vec![put("c", "333333")],
            ..TxnRequest::default()
        };
        assert_eq!(txn_cost(&txn), (256 + 2) + (256 + 3));
        let nested = TxnRequest {
            success: vec![RequestOp {
                request: Some(Op::RequestTxn(txn)),
            }],
            ..TxnRequest::default()
        };
        assert_eq!(txn_cost(&nested), 0, "etcd counts no nested puts");
    }
}
