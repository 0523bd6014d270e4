//! etcd 3.4.23's v3 keyspace semantics, each pinned as etcd showed them (checked against
//! a real etcd 3.4.23 with `etcdctl` where marked "etcd:").

use beacon_mvcc::{check_put_fields, check_txn, Mvcc, MvccError, TXN_OPS_MAX};
use beacon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use beacon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use beacon_proto::etcdserverpb::request_op::Request;
use beacon_proto::etcdserverpb::response_op::Response;
use beacon_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
};
use beacon_proto::mvccpb::KeyValue;

fn put(m: &mut Mvcc, key: &str, value: &str) -> i64 {
    let req = PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    };
    m.put(&req).expect("put").header.expect("header").revision
}

fn del(m: &mut Mvcc, key: &str, end: &str) -> i64 {
    let req = DeleteRangeRequest {
        key: key.into(),
        range_end: end.into(),
        ..DeleteRangeRequest::default()
    };
    m.delete_range(&req).unwrap().deleted
}

fn get(m: &Mvcc, req: RangeRequest) -> Vec<(String, i64, i64, i64)> {
    let resp = m.range(&req).expect("range");
    resp.kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        })
        .collect()
}

fn range(key: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: end.into(),
        ..RangeRequest::default()
    }
}

fn put_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            ..PutRequest::default()
        })),
    }
}

fn del_op(key: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.into(),
            range_end: end.into(),
            ..DeleteRangeRequest::default()
        })),
    }
}

fn range_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(range(key, ""))),
    }
}

fn txn_op(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestTxn(TxnRequest {
            compare: Vec::new(),
            success,
            failure,
        })),
    }
}

#[test]
fn revisions_versions_and_a_delete_starting_a_new_life() {
    let mut m = Mvcc::default();
    assert_eq!(
        m.current_revision(),
        1,
        "an empty keyspace is at revision 1"
    );
    assert_eq!(put(&mut m, "a", "1"), 2, "the first write is revision 2");
    assert_eq!(put(&mut m, "a", "2"), 3);
    assert_eq!(get(&m, range("a", "")), [("a".into(), 2, 3, 2)]);
    // A put returns the previous value when asked.
    let req = PutRequest {
        key: b"a".to_vec(),
        value: b"3".to_vec(),
        prev_kv: true,
        ..PutRequest::default()
    };
    let prev = m.put(&req).expect("put").prev_kv.expect("prev");
    assert_eq!((prev.value.as_slice(), prev.mod_revision), (&b"2"[..], 3));
    assert_eq!(del(&mut m, "a", ""), 1);
    assert_eq!(m.current_revision(), 5);
    // etcd: deleting what is not there changes nothing, not even the revision.
    assert_eq!(del(&mut m, "a", ""), 0);
    assert_eq!(m.current_revision(), 5);
    put(&mut m, "a", "again");
    assert_eq!(
        get(&m, range("a", "")),
        [("a".into(), 6, 6, 1)],
        "a new life"
    );
}

#[test]
fn ranges_single_prefix_from_key_all_and_empty() {
    let mut m = Mvcc::default();
    for k in ["a", "b/1", "b/2", "c"] {
        put(&mut m, k, "v");
    }
    let keys = |req| get(&m, req).into_iter().map(|k| k.0).collect::<Vec<_>>();
    assert_eq!(keys(range("b/1", "")), ["b/1"]);
    assert_eq!(
        keys(range("b/", "b0")),
        ["b/1", "b/2"],
        "prefix: range_end = prefix + 1"
    );
    assert_eq!(keys(range("b/2", "\0")), ["b/2", "c"], "from key");
    assert_eq!(
        keys(range("\0", "\0")),
        ["a", "b/1", "b/2", "c"],
        "everything"
    );
    assert!(keys(range("c", "a")).is_empty(), "range_end before key");
    assert!(keys(range("zz", "")).is_empty());
}

#[test]
fn history_reads_and_their_errors() {
    let mut m = Mvcc::default();
    put(&mut m, "k", "v2"); // 2
    put(&mut m, "k", "v3"); // 3
    put(&mut m, "other", "x"); // 4
    let at = |rev| RangeRequest {
        revision: rev,
        ..range("k", "")
    };
    let resp = m.range(&at(2)).expect("rev 2");
    assert_eq!(resp.kvs[0].value, b"v2");
    // etcd: the header has the current revision, not the one read.
    assert_eq!(resp.header.expect("header").revision, 4);
    assert_eq!(m.range(&at(5)), Err(MvccError::FutureRevision));
    m.compact(3).expect("compact");
    assert_eq!(m.range(&at(2)), Err(MvccError::Compacted));
    // etcd: reading at exactly the compacted revision is allowed.
    assert_eq!(m.range(&at(3)).expect("rev 3").kvs[0].value, b"v3");
}

#[test]
fn limit_count_filters_sorting_and_projections() {
    let mut m = Mvcc::default();
    put(&mut m, "a", "3"); // 2
    put(&mut m, "b", "1"); // 3
    put(&mut m, "c", "2"); // 4
    put(&mut m, "a", "4"); // 5: a at version 2
    let all = range("\0", "\0");
    let resp = m
        .range(&RangeRequest {
            limit: 2,
            ..all.clone()
        })
        .expect("range");
    assert_eq!((resp.kvs.len(), resp.more, resp.count), (2, true, 3));
    // etcd: the count ignores the filters, which apply before the limit.
    let resp = m
        .range(&RangeRequest {
            limit: 1,
            min_mod_revision: 5,
            ..all.clone()
        })
        .expect("range");
    assert_eq!((resp.kvs.len(), resp.more, resp.count), (1, false, 3));
    assert_eq!(resp.kvs[0].key, b"a");
    let order = |req: RangeRequest| {
        m.range(&req)
            .expect("range")
            .kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect::<Vec<_>>()
    };
    // etcd: a target without an order sorts ascending.
    let by_value = RangeRequest {
        sort_target: SortTarget::Value as i32,
        ..all.clone()
    };
    assert_eq!(order(by_value.clone()), ["b", "c", "a"]);
    let by_value_down = RangeRequest {
        sort_order: SortOrder::Descend as i32,
        ..by_value
    };
    assert_eq!(order(by_value_down), ["a", "c", "b"]);
    let by_mod_down = RangeRequest {
        sort_target: SortTarget::Mod as i32,
        sort_order: SortOrder::Descend as i32,
        ..all.clone()
    };
    assert_eq!(order(by_mod_down), ["a", "c", "b"]);
    let keys_only = m
        .range(&RangeRequest {
            keys_only: true,
            ..all.clone()
        })
        .expect("range");
    assert!(keys_only.kvs.iter().all(|kv| kv.value.is_empty()));
    let count_only = m
        .range(&RangeRequest {
            count_only: true,
            ..all
        })
        .expect("range");
    assert_eq!((count_only.kvs.len(), count_only.count), (0, 3));
}

/// Values in memory that count the reads of committed values.
#[derive(Default)]
struct CountedValues {
    inner: beacon_mvcc::MemValues,
    gets: std::sync::atomic::AtomicUsize,
}

impl beacon_mvcc::Values for CountedValues {
    fn get(
        &self,
        rev: beacon_mvcc::Revision,
    ) -> Result<Option<KeyValue>, beacon_mvcc::StorageError> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.get(rev)
    }
    fn scan(
        &self,
        from: beacon_mvcc::Revision,
        to: beacon_mvcc::Revision,
    ) -> Result<Vec<(beacon_mvcc::Revision, KeyValue)>, beacon_mvcc::StorageError> {
        self.inner.scan(from, to)
    }
    fn commit(&self, changes: &beacon_mvcc::Changes) -> Result<(), beacon_mvcc::StorageError> {
        self.inner.commit(changes)
    }
}

#[test]
fn a_count_reads_the_index_alone() {
    // A count-only Range of a million keys read every value from disk, under the
    // keyspace's read lock, and writes waited behind it (bench/v3-scale's lease poll).
    let values = std::sync::Arc::new(CountedValues::default());
    let mut m = Mvcc::empty(values.clone());
    for key in ["a", "b", "c"] {
        put(&mut m, key, "v");
    }
    del(&mut m, "b", "");
    m.commit(1).expect("commit");
    let count = |req: RangeRequest| m.range(&req).expect("range");
    let all = RangeRequest {
        count_only: true,
        ..range("\0", "\0")
    };
    let resp = count(all.clone());
    assert_eq!((resp.kvs.len(), resp.count, resp.more), (0, 2, false));
    // etcd: the count ignores the limit and the filters.
    let resp = count(RangeRequest {
        limit: 1,
        min_mod_revision: 100,
        ..all.clone()
    });
    assert_eq!((resp.kvs.len(), resp.count, resp.more), (0, 2, false));
    let resp = count(RangeRequest { revision: 4, ..all });
    assert_eq!(resp.count, 3, "b was live at revision 4");
    assert_eq!(
        count(RangeRequest {
            count_only: true,
            ..range("b", "")
        })
        .count,
        0
    );
    assert_eq!(values.gets.load(std::sync::atomic::Ordering::Relaxed), 0);
    // A read of the values does read them (the counter counts).
    m.range(&range("a", "")).expect("range");
    assert_eq!(values.gets.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn compaction_keeps_what_later_reads_see() {
    let mut m = Mvcc::default();
    // etcd: compacting a fresh keyspace to 0 succeeds.
    m.compact(0).expect("compact to 0");
    assert_eq!(m.compact(0), Err(MvccError::Compacted));
    put(&mut m, "live", "1"); // 2
    put(&mut m, "gone", "1"); // 3
    del(&mut m, "gone", ""); // 4
    put(&mut m, "live", "2"); // 5
    assert_eq!(m.compact(6), Err(MvccError::FutureRevision));
    m.compact(4).expect("compact");
    assert_eq!(m.compact(4), Err(MvccError::Compacted));
    let at4 = RangeRequest {
        revision: 4,
        ..range("\0", "\0")
    };
    let seen: Vec<_> = m.range(&at4).expect("at 4").kvs;
    assert_eq!(seen.len(), 1, "the deleted key is gone for good: {seen:?}");
    assert_eq!(
        (seen[0].key.as_slice(), seen[0].value.as_slice()),
        (&b"live"[..], &b"1"[..])
    );
    assert_eq!(get(&m, range("live", "")), [("live".into(), 2, 5, 2)]);
}

#[test]
fn put_field_checks() {
    let mut m = Mvcc::default();
    let keep_value = PutRequest {
        key: b"k".to_vec(),
        ignore_value: true,
        ..PutRequest::default()
    };
    assert_eq!(m.put(&keep_value), Err(MvccError::KeyNotFound));
    let leased = PutRequest {
        key: b"k".to_vec(),
        lease: 7,
        ..PutRequest::default()
    };
    assert_eq!(m.put(&leased), Err(MvccError::LeaseNotFound));
    assert_eq!(m.current_revision(), 1, "refusals change nothing");
    put(&mut m, "k", "kept");
    m.put(&keep_value).expect("ignore_value");
    assert_eq!(m.range(&range("k", "")).expect("get").kvs[0].value, b"kept");
    let both = PutRequest {
        value: b"x".to_vec(),
        ..keep_value
    };
    assert_eq!(check_put_fields(&both), Err(MvccError::ValueProvided));
    assert_eq!(
        check_put_fields(&PutRequest::default()),
        Err(MvccError::EmptyKey)
    );
}

fn compare(key: &str, target: CompareTarget, result: CompareResult, with: TargetUnion) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        target_union: Some(with),
        range_end: Vec::new(),
    }
}

#[test]
fn transactions_compare_then_write_in_one_revision() {
    let mut m = Mvcc::default();
    // etcd: a missing key has version 0 (true), and no value (a value compare fails).
    let create_if_absent = TxnRequest {
        compare: vec![compare(
            "lock",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(0),
        )],
        success: vec![put_op("lock"), range_op("lock")],
        failure: vec![range_op("lock")],
    };
    let resp = m.txn(&create_if_absent).expect("txn");
    assert!(resp.succeeded);
    assert_eq!(resp.header.expect("header").revision, 2);
    // The range after the put sees it, at the transaction's revision.
    let Some(Response::ResponseRange(r)) = &resp.responses[1].response else {
        panic!("a range response");
    };
    assert_eq!(
        (r.kvs.len(), r.header.as_ref().expect("h").revision),
        (1, 2)
    );
    let again = m.txn(&create_if_absent).expect("txn");
    assert!(!again.succeeded);
    assert_eq!(
        again.header.expect("header").revision,
        2,
        "a read-only branch keeps the revision"
    );
    let by_value = TxnRequest {
        compare: vec![compare(
            "missing",
            CompareTarget::Value,
            CompareResult::NotEqual,
            TargetUnion::Value(b"x".to_vec()),
        )],
        ..TxnRequest::default()
    };
    assert!(!m.txn(&by_value).expect("txn").succeeded);
}

#[test]
fn a_nested_transaction_and_a_failing_operation() {
    let mut m = Mvcc::default();
    let nested = TxnRequest {
        success: vec![put_op("a"), txn_op(vec![put_op("b")], vec![put_op("c")])],
        ..TxnRequest::default()
    };
    check_txn(&nested, TXN_OPS_MAX).expect("valid");
    let resp = m.txn(&nested).expect("txn");
    let Some(Response::ResponseTxn(inner)) = &resp.responses[1].response else {
        panic!("a nested txn response");
    };
    assert_eq!(
        inner.header,
        Some(ResponseHeader::default()),
        "etcd: a nested response's header is there, and empty (revision 0)"
    );
    assert_eq!(get(&m, range("b", "")), [("b".into(), 2, 2, 1)]);
    assert!(get(&m, range("c", "")).is_empty());
    // An operation that fails in the branch taken stops the whole transaction.
    let leased = TxnRequest {
        success: vec![
            put_op("d"),
            RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: b"e".to_vec(),
                    lease: 9,
                    ..PutRequest::default()
                })),
            },
        ],
        ..TxnRequest::default()
    };
    assert_eq!(m.txn(&leased), Err(MvccError::LeaseNotFound));
    assert!(get(&m, range("d", "")).is_empty(), "nothing of it applied");
    assert_eq!(m.current_revision(), 2);
}

#[test]
fn duplicate_keys_and_operation_counts() {
    let txn = |success| TxnRequest {
        success,
        ..TxnRequest::default()
    };
    let dup = Err(MvccError::DuplicateKey);
    assert_eq!(check_txn(&txn(vec![put_op("k"), put_op("k")]), 128), dup);
    assert_eq!(
        check_txn(&txn(vec![del_op("a", "z"), put_op("k")]), 128),
        dup
    );
    // etcd: overlapping deletes are fine, and so are reads.
    check_txn(&txn(vec![del_op("a", "z"), del_op("k", "")]), 128).expect("deletes");
    check_txn(&txn(vec![range_op("k"), put_op("k")]), 128).expect("a read and a put");
    // etcd: a nested put of a key the parent puts too is a duplicate...
    assert_eq!(
        check_txn(
            &txn(vec![put_op("n1"), txn_op(vec![put_op("n1")], vec![])]),
            128
        ),
        dup
    );
    // ...but the same key in both branches of one nested transaction is not.
    check_txn(
        &txn(vec![txn_op(vec![put_op("n")], vec![put_op("n")])]),
        128,
    )
    .expect("branches");
    assert_eq!(
        check_txn(
            &txn(vec![del_op("n", ""), txn_op(vec![put_op("n")], vec![])]),
            128
        ),
        dup
    );
    // etcd: 128 operations pass, 129 do not.
    let many = |n: usize| txn((0..n).map(|i| put_op(&format!("k{i}"))).collect());
    check_txn(&many(TXN_OPS_MAX), TXN_OPS_MAX).expect("128");
    assert_eq!(
        check_txn(&many(TXN_OPS_MAX + 1), TXN_OPS_MAX),
        Err(MvccError::TooManyOps)
    );
    let empty_op = txn(vec![RequestOp { request: None }]);
    assert_eq!(check_txn(&empty_op, 128), Err(MvccError::KeyNotFound));
}

#[test]
fn a_delete_returns_what_it_deleted() {
    let mut m = Mvcc::default();
    put(&mut m, "p/1", "a");
    put(&mut m, "p/2", "b");
    let resp = m
        .delete_range(&DeleteRangeRequest {
            key: b"p/".to_vec(),
            range_end: b"p0".to_vec(),
            prev_kv: true,
        })
        .unwrap();
    assert_eq!(resp.deleted, 2);
    let values: Vec<&[u8]> = resp
        .prev_kvs
        .iter()
        .map(|kv: &KeyValue| kv.value.as_slice())
        .collect();
    assert_eq!(values, [&b"a"[..], &b"b"[..]]);
    assert_eq!(
        resp.header.expect("header").revision,
        4,
        "one revision for both"
    );
}

fn grant(m: &mut Mvcc, id: i64, ttl: i64, now_ns: i64) {
    use beacon_proto::etcdserverpb::LeaseGrantRequest;
    m.lease_grant(&LeaseGrantRequest { ttl, id }, now_ns)
        .expect("granted");
}

fn leased(key: &str, lease: i64) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        lease,
        ..PutRequest::default()
    }
}

const SECOND: i64 = 1_000_000_000;

#[test]
fn a_lease_takes_its_keys_with_it_in_one_revision() {
    let mut m = Mvcc::default();
    grant(&mut m, 7, 10, 0);
    assert_eq!(m.current_revision(), 1, "a grant takes no revision");
    m.put(&leased("b", 7)).expect("put");
    m.put(&leased("a", 7)).expect("put");
    m.put(&leased("c", 0)).expect("put");
    // Put again without the lease: detached.
    m.put(&leased("b", 0)).expect("put");
    assert_eq!(m.lease_time_to_live(7, true, 0).keys, vec![b"a".to_vec()]);
    let before = m.current_revision();
    m.lease_revoke(7).expect("revoked");
    assert_eq!(m.current_revision(), before + 1);
    let left: Vec<Vec<u8>> = m
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..RangeRequest::default()
        })
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(left, vec![b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(m.lease_revoke(7), Err(MvccError::LeaseNotFound));
    assert_eq!(m.lease_time_to_live(7, false, 0).ttl, -1);
    assert_eq!(m.lease_renew(7, 0).ttl, 0);
    // A lease without keys takes no revision when it goes.
    grant(&mut m, 8, 10, 0);
    let before = m.current_revision();
    m.lease_revoke(8).expect("revoked");
    assert_eq!(m.current_revision(), before);
}

#[test]
fn leases_expire_by_the_clock_in_the_log_and_renewals_push_expiry_back() {
    let mut m = Mvcc::default();
    grant(&mut m, 1, 5, 0);
    grant(&mut m, 2, 5, 0);
    m.put(&leased("x", 1)).expect("put");
    m.put(&leased("y", 2)).expect("put");
    assert_eq!(m.lease_time_to_live(1, false, 2 * SECOND).ttl, 3);
    assert_eq!(m.lease_renew(2, 4 * SECOND).ttl, 5);
    assert_eq!(m.next_lease_expiry(), Some(5 * SECOND));
    assert_eq!(m.expire(5 * SECOND - 1), 0);
    let before = m.current_revision();
    assert_eq!(m.expire(5 * SECOND), 1, "lease 1 only: 2 was renewed");
    assert_eq!(m.current_revision(), before + 1);
    assert_eq!(m.expire(9 * SECOND), 1);
    assert_eq!(m.lease_leases().leases.len(), 0);
    assert_eq!(m.next_lease_expiry(), None);
}

#[test]
fn lease_refusals_are_etcds() {
    use beacon_proto::etcdserverpb::LeaseGrantRequest;
    let mut m = Mvcc::default();
    grant(&mut m, 3, 10, 0);
    let again = m.lease_grant(&LeaseGrantRequest { ttl: 10, id: 3 }, 0);
    assert_eq!(again, Err(MvccError::LeaseExists));
    let long = m.lease_grant(
        &LeaseGrantRequest {
            ttl: beacon_mvcc::LEASE_TTL_MAX + 1,
            id: 4,
        },
        0,
    );
    assert_eq!(long, Err(MvccError::LeaseTtlTooLarge));
    assert_eq!(m.put(&leased("k", 99)), Err(MvccError::LeaseNotFound));
}

#[test]
fn hashes_depend_on_the_history_not_on_what_is_written_yet() {
    let mut m = Mvcc::default();
    for i in 0..30 {
        put(&mut m, &format!("k{}", i % 4), &format!("v{i}"));
    }
    m.delete_range(&DeleteRangeRequest {
        key: b"k1".to_vec(),
        ..DeleteRangeRequest::default()
    })
    .unwrap();
    m.compact(12).unwrap();
    let (kv_pending, all_pending) = (m.hash_kv(0).unwrap().hash, m.hash().unwrap().hash);
    m.commit(1).unwrap();
    assert_eq!(m.hash_kv(0).unwrap().hash, kv_pending);
    assert_eq!(m.hash().unwrap().hash, all_pending);
    // Another revision, another hash; a compacted one is refused as etcd refuses it.
    assert_ne!(m.hash_kv(20).unwrap().hash, kv_pending);
    assert_eq!(m.hash_kv(12), Err(MvccError::Compacted));
    assert_eq!(m.hash_kv(100), Err(MvccError::FutureRevision));
}

/// One clock entry revokes at most `LEASES_EXPIRED_PER_CLOCK_MAX` leases, earliest
/// first (ties by id); the next entry revokes the rest.
#[test]
fn a_mass_expiry_is_spread_over_clock_entries() {
    use beacon_mvcc::LEASES_EXPIRED_PER_CLOCK_MAX as MAX;
    let mut m = Mvcc::default();
    let n = MAX as i64 + 5;
    for id in 1..=n {
        grant(&mut m, id, 10, 0);
    }
    // One more, due a second later than the others, goes last.
    grant(&mut m, n + 1, 11, 0);
    let now = 20 * SECOND;
    assert_eq!(m.expire(now), MAX);
    let left: Vec<i64> = m.lease_leases().leases.iter().map(|l| l.id).collect();
    assert_eq!(left, [n - 4, n - 3, n - 2, n - 1, n, n + 1]);
    assert_eq!(m.expire(now), 6);
    assert_eq!(m.expire(now), 0);
}

#[test]
fn changes_taken_and_not_yet_written_are_read_newest_first() {
    // The state machine queues each applied batch's changes to the disk's writer and
    // applies on: several batches may be unwritten at once, and reads must see each
    // through them, a later batch's compaction included.
    let values = std::sync::Arc::new(beacon_mvcc::MemValues::default());
    let mut m = Mvcc::empty(values.clone());
    put(&mut m, "a", "1"); // 2
    put(&mut m, "b", "1"); // 3
    let first = m.take_changes(10);
    put(&mut m, "a", "2"); // 4
    m.compact(3).expect("compact");
    let second = m.take_changes(11);
    put(&mut m, "c", "1"); // 5, still pending
    assert_eq!(m.unwritten().collect::<Vec<_>>(), [10, 11]);
    let live = [
        ("a".to_string(), 2, 4, 2),
        ("b".to_string(), 3, 3, 1),
        ("c".to_string(), 5, 5, 1),
    ];
    assert_eq!(get(&m, range("\0", "\0")), live);
    let history = |m: &Mvcc| -> Vec<i64> {
        let changes = m.changes(3, 5).expect("changes");
        changes.iter().map(|(rev, _)| rev.main).collect()
    };
    assert_eq!(history(&m), [3, 4, 5], "revision 2 was compacted away");
    // Written in order, as the writer does; reads stay the same throughout.
    beacon_mvcc::Values::commit(&*values, &first).expect("first");
    m.written(10);
    assert_eq!(m.unwritten().collect::<Vec<_>>(), [11]);
    assert_eq!(get(&m, range("\0", "\0")), live);
    beacon_mvcc::Values::commit(&*values, &second).expect("second");
    m.written(11);
    assert_eq!(m.unwritten().len(), 0);
    assert_eq!(get(&m, range("\0", "\0")), live);
    assert_eq!(history(&m), [3, 4, 5]);
}
