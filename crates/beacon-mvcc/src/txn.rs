//! Transactions: etcd's checks before a transaction is proposed (operation count, empty
//! keys, a key written twice), and its application: every compare (of nested
//! transactions too) is decided against the keyspace as it was, every operation of the
//! chosen branches is checked, and only then does anything change.

use std::collections::BTreeSet;

use beacon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use beacon_proto::etcdserverpb::request_op::Request;
use beacon_proto::etcdserverpb::response_op::Response;
use beacon_proto::etcdserverpb::{
    Compare, PutRequest, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use beacon_proto::mvccpb::KeyValue;

use crate::index::KeyRange;
use crate::store::{header, Mvcc};
use crate::{MvccError, Revision};

/// Most compares, or operations in a branch, in one transaction: etcd's default of
/// `--max-txn-ops`, which the server checks before proposing (etcd's API layer,
/// `checkTxnRequest`). A nested transaction gets what its parent left: the limit less
/// the parent's largest count of compares, successes or failures.
pub const TXN_OPS_MAX: usize = 128;

/// etcd's checks of a transaction before it is proposed: operation count, empty keys,
/// `ignore_*` fields given with a value, a key written twice in one branch.
pub fn check_txn(txn: &TxnRequest, ops_max: usize) -> Result<(), MvccError> {
    check_shape(txn, ops_max)?;
    check_writes(&txn.success)?;
    check_writes(&txn.failure)?;
    Ok(())
}

fn check_shape(txn: &TxnRequest, ops_max: usize) -> Result<(), MvccError> {
    let count = txn
        .compare
        .len()
        .max(txn.success.len())
        .max(txn.failure.len());
    if count > ops_max {
        return Err(MvccError::TooManyOps);
    }
    if txn.compare.iter().any(|c| c.key.is_empty()) {
        return Err(MvccError::EmptyKey);
    }
    for op in txn.success.iter().chain(&txn.failure) {
        check_op(op, ops_max - count)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, ops_max: usize) -> Result<(), MvccError> {
    match &op.request {
        Some(Request::RequestRange(r)) if r.key.is_empty() => Err(MvccError::EmptyKey),
        Some(Request::RequestRange(_)) => Ok(()),
        Some(Request::RequestPut(p)) => check_put_fields(p),
        Some(Request::RequestDeleteRange(d)) if d.key.is_empty() => Err(MvccError::EmptyKey),
        Some(Request::RequestDeleteRange(_)) => Ok(()),
        Some(Request::RequestTxn(t)) => check_shape(t, ops_max),
        // etcd's answer to an operation with nothing in it.
        None => Err(MvccError::KeyNotFound),
    }
}

/// A Put's own checks (also of a Put outside any transaction).
pub fn check_put_fields(p: &PutRequest) -> Result<(), MvccError> {
    if p.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

/// The keys a branch puts and the ranges it deletes.
#[derive(Default)]
struct Writes {
    puts: BTreeSet<Vec<u8>>,
    deletes: Vec<KeyRange>,
}

impl Writes {
    fn deleted(&self, key: &[u8]) -> bool {
        self.deletes.iter().any(|d| d.contains(key))
    }
}

/// A branch may not put a key twice, nor put a key it (or a transaction nested in it)
/// deletes; deletes may overlap. A nested transaction's two branches exclude each other,
/// so the same key in both is fine.
fn check_writes(ops: &[RequestOp]) -> Result<Writes, MvccError> {
    let mut level = Writes::default();
    for op in ops {
        if let Some(Request::RequestDeleteRange(d)) = &op.request {
            level.deletes.push(KeyRange::new(&d.key, &d.range_end));
        }
    }
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let then = check_writes(&t.success)?;
        let otherwise = check_writes(&t.failure)?;
        for key in &then.puts {
            if level.puts.contains(key) || level.deleted(key) {
                return Err(MvccError::DuplicateKey);
            }
        }
        for key in &otherwise.puts {
            if (level.puts.contains(key) && !then.puts.contains(key)) || level.deleted(key) {
                return Err(MvccError::DuplicateKey);
            }
        }
        level.puts.extend(then.puts);
        level.puts.extend(otherwise.puts);
        level.deletes.extend(then.deletes);
        level.deletes.extend(otherwise.deletes);
    }
    for op in ops {
        if let Some(Request::RequestPut(p)) = &op.request {
            if level.puts.contains(&p.key) || level.deleted(&p.key) {
                return Err(MvccError::DuplicateKey);
            }
            level.puts.insert(p.key.clone());
        }
    }
    Ok(level)
}

/// A transaction with every compare decided: the branch taken, and the same for each
/// transaction nested in it.
struct Plan<'a> {
    succeeded: bool,
    ops: Vec<Step<'a>>,
}

enum Step<'a> {
    Op(&'a RequestOp),
    Txn(Plan<'a>),
}

impl Mvcc {
    /// Applies a transaction (checked by [`check_txn`]) as one write transaction: it
    /// takes the next revision if anything in it changed the keyspace.
    pub fn txn(&mut self, txn: &TxnRequest) -> Result<TxnResponse, MvccError> {
        let begin = self.current;
        let plan = self.plan(txn, begin)?;
        self.check_plan(&plan, begin)?;
        let mut cursor = Cursor {
            begin,
            sub: 0,
            changed: false,
        };
        // Only a storage failure stops a checked plan half way; the caller treats that
        // as fatal (the keyspace is then half changed).
        let mut resp = self.run(&plan, &mut cursor)?;
        if cursor.changed {
            self.current = begin + 1;
        }
        resp.header = header(self.current);
        Ok(resp)
    }

    fn plan<'a>(&self, txn: &'a TxnRequest, at: i64) -> Result<Plan<'a>, MvccError> {
        let mut succeeded = true;
        for c in &txn.compare {
            if !self.holds(c, at)? {
                succeeded = false;
                break;
            }
        }
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let mut ops = Vec::with_capacity(branch.len());
        for op in branch {
            ops.push(match &op.request {
                Some(Request::RequestTxn(t)) => Step::Txn(self.plan(t, at)?),
                _ => Step::Op(op),
            });
        }
        Ok(Plan { succeeded, ops })
    }

    /// Whether every key of the compare's range satisfies it; on a range with no key,
    /// a value compare fails and the others compare with zeros.
    fn holds(&self, c: &Compare, at: i64) -> Result<bool, MvccError> {
        let range = KeyRange::new(&c.key, &c.range_end);
        let found = self.index.range(&range, at);
        if found.is_empty() {
            if c.target == CompareTarget::Value as i32 {
                return Ok(false);
            }
            return Ok(compare(&KeyValue::default(), c));
        }
        for (_, rev) in found {
            if !compare(&self.value(rev)?, c) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn check_plan(&self, plan: &Plan<'_>, at: i64) -> Result<(), MvccError> {
        for step in &plan.ops {
            match step {
                Step::Txn(nested) => self.check_plan(nested, at)?,
                Step::Op(op) => match &op.request {
                    Some(Request::RequestPut(p)) => self.check_put(p, at)?,
                    Some(Request::RequestRange(r)) if r.revision > at => {
                        return Err(MvccError::FutureRevision)
                    }
                    Some(Request::RequestRange(r))
                        if r.revision > 0 && r.revision < self.compacted =>
                    {
                        return Err(MvccError::Compacted)
                    }
                    _ => {}
                },
            }
        }
        Ok(())
    }

    fn run(&mut self, plan: &Plan<'_>, cursor: &mut Cursor) -> Result<TxnResponse, MvccError> {
        let mut responses = Vec::with_capacity(plan.ops.len());
        for step in &plan.ops {
            let response = match step {
                Step::Txn(nested) => Response::ResponseTxn(self.run(nested, cursor)?),
                Step::Op(op) => match &op.request {
                    Some(Request::RequestRange(r)) => {
                        // Revisions were checked before any change; storage can fail.
                        let mut resp = self.range_at(r, cursor.view())?;
                        resp.header = header(cursor.view());
                        Response::ResponseRange(resp)
                    }
                    Some(Request::RequestPut(p)) => {
                        let resp = self.put_at(p, cursor.next(1))?;
                        cursor.changed = true;
                        Response::ResponsePut(resp)
                    }
                    Some(Request::RequestDeleteRange(d)) => {
                        let (mut resp, deleted) = self.delete_at(d, cursor.peek())?;
                        cursor.next(deleted);
                        cursor.changed |= deleted > 0;
                        resp.header = header(cursor.view());
                        Response::ResponseDeleteRange(resp)
                    }
                    // `check_txn` refused an empty operation, and nested transactions
                    // are steps of their own.
                    Some(Request::RequestTxn(_)) | None => unreachable!("checked"),
                },
            };
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        Ok(TxnResponse {
            // etcd gives every transaction's response a header, and fills in only the
            // outermost one (`txn` does here): a nested one goes on the wire present
            // and empty, revision 0 included.
            header: Some(ResponseHeader::default()),
            succeeded: plan.succeeded,
            responses,
        })
    }
}

/// Where a write transaction is: the revision it read, the next sub revision, and
/// whether it changed anything yet.
struct Cursor {
    begin: i64,
    sub: i64,
    changed: bool,
}

impl Cursor {
    /// The revision reads see: the transaction's own writes once there are any.
    fn view(&self) -> i64 {
        if self.changed {
            self.begin + 1
        } else {
            self.begin
        }
    }

    fn peek(&self) -> Revision {
        Revision {
            main: self.begin + 1,
            sub: self.sub,
        }
    }

    /// The next revision, reserving `n` sub revisions from it.
    fn next(&mut self, n: i64) -> Revision {
        let rev = self.peek();
        self.sub += n;
        rev
    }
}

fn compare(kv: &KeyValue, c: &Compare) -> bool {
    use std::cmp::Ordering;
    let ordering = match (CompareTarget::try_from(c.target), &c.target_union) {
        (Ok(CompareTarget::Version), t) => kv.version.cmp(&int(t)),
        (Ok(CompareTarget::Create), t) => kv.create_revision.cmp(&int(t)),
        (Ok(CompareTarget::Mod), t) => kv.mod_revision.cmp(&int(t)),
        (Ok(CompareTarget::Lease), t) => kv.lease.cmp(&int(t)),
        (Ok(CompareTarget::Value), Some(TargetUnion::Value(v))) => kv.value.as_slice().cmp(v),
        (Ok(CompareTarget::Value), _) => kv.value.as_slice().cmp(&[][..]),
        (Err(_), _) => return false,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ordering == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ordering != Ordering::Equal,
        Ok(CompareResult::Greater) => ordering == Ordering::Greater,
        Ok(CompareResult::Less) => ordering == Ordering::Less,
        Err(_) => false,
    }
}

/// The compare's number, whichever field it came in; 0 when it has none.
fn int(target: &Option<TargetUnion>) -> i64 {
    match target {
        Some(
            TargetUnion::Version(n)
            | TargetUnion::CreateRevision(n)
            | TargetUnion::ModRevision(n)
            | TargetUnion::Lease(n),
        ) => *n,
        _ => 0,
    }
}
